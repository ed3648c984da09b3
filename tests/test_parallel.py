"""llmkit.parallel: per-GPU weights and KV cache under tensor parallelism, vLLM's TP rules, and the run records."""

from __future__ import annotations

import json
import math

import pytest

from llmkit import parallel
from llmkit.config import ModelShape, model_shape
from llmkit.kvcache import REFERENCE_CONFIGS, bytes_per_token

TINY = {"model_type": "qwen3", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 64, "intermediate_size": 768, "vocab_size": 3142,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16"}          # tiny-poet's shape
GQA_24_8 = {"num_hidden_layers": 2, "hidden_size": 3072, "num_attention_heads": 24, "num_key_value_heads": 8,
            "head_dim": 128, "intermediate_size": 24 * 512, "vocab_size": 1000, "torch_dtype": "bfloat16"}


def replicated_params(shape: ModelShape) -> int:
    """Parameters every GPU keeps whole: the norms (and Qwen3's q/k norms)."""
    return shape.layers * (2 * shape.hidden_size + (2 * shape.head_dim if shape.qk_norm else 0)) + shape.hidden_size


# ------------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize("name, published", [("Qwen3-0.6B", 596_049_920), ("Llama-3.1-8B", 8_030_261_248),
                                             ("Qwen2.5-72B", 72_706_203_648)])
def test_param_count_matches_published_models(name, published):
    """The layer-by-layer count gives each model's published parameter count exactly."""
    assert parallel.param_count(model_shape(REFERENCE_CONFIGS[name])) == published


def test_param_count_matches_the_tiny_poet_checkpoint(tiny_poet_dir):
    """Counted from config.json = the tensors in model.safetensors."""
    from safetensors import safe_open

    with safe_open(str(tiny_poet_dir / "model.safetensors"), "np") as f:
        stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    built = json.loads((tiny_poet_dir / "build_info.json").read_text(encoding="utf-8"))
    assert parallel.param_count(model_shape(tiny_poet_dir)) == stored == built["parameters"]


def test_shards_add_up_to_the_whole_model():
    """Without KV replication, tp GPUs hold the (vocab-padded) model once plus tp copies of the norms."""
    for cfg in (REFERENCE_CONFIGS["Qwen3-0.6B"], REFERENCE_CONFIGS["Llama-3.1-8B"], TINY):
        shape = model_shape(cfg)
        one = parallel.params_per_gpu(shape, 1)
        for tp in (2, 4, 8):
            if parallel.tp_problem(shape, tp) or tp > shape.kv_heads:
                continue
            assert parallel.params_per_gpu(shape, tp) * tp - (tp - 1) * replicated_params(shape) == one


def test_vocabulary_is_padded_to_64_and_tied_embeddings_count_once():
    shape = model_shape(TINY)
    assert parallel.params_per_gpu(shape, 1) - parallel.param_count(shape) == (3200 - 3142) * 256
    untied = model_shape({**TINY, "tie_word_embeddings": False})
    assert parallel.param_count(untied) - parallel.param_count(shape) == 3142 * 256
    assert parallel.weight_bytes_per_gpu(shape, 2) == 2 * parallel.params_per_gpu(shape, 2)  # bf16


def test_replicated_kv_heads_keep_one_head_per_gpu():
    """tiny-poet at tp=4: 4 query heads → 1 per GPU, 2 KV heads → 1 per GPU, each held by 2 GPUs."""
    shape = model_shape(TINY)
    assert parallel.kv_replicas(shape, 4) == 2 and parallel.kv_replicas(shape, 2) == 1
    h, d = shape.hidden_size, shape.head_dim
    # q and o shrink by 2 from tp=2 to tp=4; k and v stay at one head each; the MLP and vocabulary halve.
    per_layer_drop = (2 * h * d) + 3 * h * (768 // 2 - 768 // 4)
    vocab_drop = 3200 // 2 * h - 3200 // 4 * h
    assert parallel.params_per_gpu(shape, 2) - parallel.params_per_gpu(shape, 4) == 4 * per_layer_drop + vocab_drop
    with pytest.raises(ValueError):
        parallel.kv_replicas(shape, 0)


# ------------------------------------------------------------------------------------ vLLM's rules
def test_tp_problem_follows_vllms_rules():
    tiny, gqa = model_shape(TINY), model_shape(GQA_24_8)
    assert parallel.tp_problem(tiny, 8) == ("Total number of attention heads (4) must be divisible by tensor "
                                            "parallel size (8).")
    assert [tp for tp in range(1, 9) if parallel.tp_problem(tiny, tp) is None] == [1, 2, 4]
    assert [tp for tp in range(1, 25) if parallel.tp_problem(gqa, tp) is None] == [1, 2, 4, 8, 24]
    assert "not divisible by 8" in parallel.tp_problem(gqa, 12)      # 12 GPUs cannot share 8 KV heads
    assert "8 is not divisible by 3" in parallel.tp_problem(gqa, 3)
    odd_mlp = model_shape({**GQA_24_8, "intermediate_size": 1004})
    assert "MLP" in parallel.tp_problem(odd_mlp, 8) and parallel.tp_problem(odd_mlp, 4) is None
    assert parallel.tp_problem(tiny, 0)
    with pytest.raises(ValueError, match="refused"):
        parallel.params_per_gpu(tiny, 8)


def test_vllm_itself_agrees_on_the_tiny_poet_model(tiny_poet_dir):
    """vLLM's config check refuses exactly the sizes llmkit refuses for the head count (no GPUs needed)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    shape = model_shape(tiny_poet_dir)
    for tp in (2, 3, 4, 8):
        ours, theirs = parallel.tp_problem(shape, tp), parallel.vllm_refusal(str(tiny_poet_dir), tp)
        assert (ours is None) == (theirs is None), (tp, ours, theirs)
        if ours:
            assert theirs == ours


def test_parameter_counts_need_full_layer_shapes():
    """A config without the MLP size still gives KV figures, but no per-GPU weights."""
    partial = model_shape({k: v for k, v in TINY.items() if k != "intermediate_size"})
    assert bytes_per_token(partial) == bytes_per_token(model_shape(TINY))
    with pytest.raises(ValueError, match="intermediate_size"):
        parallel.params_per_gpu(partial, 1)


# ------------------------------------------------------------------------------------ tables and plots
def test_tp_rows_for_qwen3_06b():
    rows = {r["tp"]: r for r in parallel.tp_rows(REFERENCE_CONFIGS["Qwen3-0.6B"], tps=(1, 2, 4, 8, 16))}
    assert rows[1]["KV bytes/token/GPU"] == 114_688 and rows[2]["KV bytes/token/GPU"] == 57_344
    assert rows[16]["KV heads/GPU"] == 1 and rows[16]["KV copies"] == 2
    assert rows[16]["KV bytes/token/GPU"] == rows[8]["KV bytes/token/GPU"], "replicated heads: no further gain"
    assert rows[2]["KV tokens/GiB/GPU"] == 2 * rows[1]["KV tokens/GiB/GPU"]
    budget = int(80 * 2**30 * 0.9)
    assert rows[1]["KV tokens/GPU"] == (budget - rows[1]["weight bytes/GPU"]) // 114_688
    assert rows[2]["KV tokens/GPU"] > 2 * rows[1]["KV tokens/GPU"], "the weights split too"


def test_tp_rows_mark_refused_sizes():
    rows = parallel.tp_rows(TINY)
    assert [r["vLLM"] for r in rows] == ["ok", "ok", "ok", "refused"]
    assert rows[3]["why"].startswith("Total number of attention heads") and rows[3]["KV tokens/GPU"] == "—"
    assert rows[1]["KV bytes/token/GPU"] == bytes_per_token(model_shape(TINY), 2)


def test_plot_tp_draws_each_size_and_greys_refused_ones():
    fig = parallel.plot_tp({"tiny": parallel.tp_rows(TINY), "Qwen3-0.6B": parallel.tp_rows(REFERENCE_CONFIGS["Qwen3-0.6B"])})
    tiny_weights, tiny_kv = fig.axes[0], fig.axes[1]
    heights = [round(b.get_height(), 3) for b in tiny_kv.patches]
    assert heights == [2.0, 1.0, 1.0, 0.0], "KV KiB/token/GPU: 2 → 1 → 1 (replicated) → refused"
    assert tiny_weights.patches[3].get_facecolor()[:3] == pytest.approx((0.8, 0.8, 0.8), abs=0.01)
    assert "refused" in [t.get_text() for t in tiny_weights.texts]
    assert len(fig.axes) == 4
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------------ machine checks
def test_tp_unavailable_counts_gpus(monkeypatch):
    import llmkit.models
    import llmkit.system

    monkeypatch.setattr(llmkit.models, "gpu_count", lambda: 1)
    assert parallel.tp_unavailable(1) is None
    assert parallel.tp_unavailable(2) == "tensor parallelism over 2 GPUs needs 2 NVIDIA GPUs; this machine has 1"
    monkeypatch.setattr(llmkit.models, "gpu_count", lambda: 2)
    assert parallel.tp_unavailable(2) is None
    monkeypatch.setattr(llmkit.system, "sglang_server_unavailable", lambda: "no SGLang here")
    assert parallel.tp_unavailable(2, "sglang") == "no SGLang here"
    monkeypatch.setattr(llmkit.system, "sglang_server_unavailable", lambda: None)
    assert parallel.tp_unavailable(2, "sglang") is None
    with pytest.raises(ValueError):
        parallel.tp_unavailable(2, "trt")


def test_safe_multi_gpu_env_sets_defaults_and_keeps_what_is_set():
    env = {"NCCL_NVLS_ENABLE": "0", "OTHER": "x"}
    assert parallel.safe_multi_gpu_env(env) == {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                                                "NVSHMEM_DISABLE_NVLS": "1"}
    assert env["OTHER"] == "x" and len(env) == 4
    assert parallel.safe_multi_gpu_env({"NCCL_NVLS_ENABLE": "1"})["NCCL_NVLS_ENABLE"] == "1"


def test_device_name(monkeypatch):
    import llmkit.system

    monkeypatch.setattr(llmkit.system, "gpus", lambda: [("NVIDIA H200", 139.8)] * 2)
    assert parallel.device_name() == "2 × NVIDIA H200"
    monkeypatch.setattr(llmkit.system, "gpus", lambda: [])
    assert parallel.device_name().startswith("CPU (")


# ------------------------------------------------------------------------------------ SGLang server info
def test_kv_tokens_from_server_info_finds_the_pool():
    """SGLang 0.5.17's /server_info carries the KV pool as a top-level max_total_num_tokens (also nested per DP
    rank in internal_states); the recorded reply of a real server is checked in tests/test_sglang_capture.py."""
    assert parallel.kv_tokens_from_server_info({"max_total_num_tokens": 7, "internal_states": []}) == 7
    assert parallel.kv_tokens_from_server_info({"tp_size": 2, "internal_states": [{"max_total_num_tokens": 9}]}) == 9
    assert parallel.kv_tokens_from_server_info({"tp_size": 2, "internal_states": [{}]}) is None


# ------------------------------------------------------------------------------------ records
def row(engine, tp, kv, tps, startup, device="1 × GPU"):
    return parallel.result_row(engine, tp, model="/models/tiny", startup_s=startup, kv_tokens=kv, tokens_per_s=tps,
                               device=device)


def test_result_rows_compare_to_tp1_of_the_same_engine():
    rows = parallel.compare_to_tp1([row("vllm", 1, 1000, 100.0, 40), row("vllm", 2, 2000, 150.0, 60),
                                    row("sglang", 2, 3000, 90.0, 50)])
    assert rows[0]["model"] == "tiny" and rows[0]["KV tokens × TP=1"] == 1.0
    assert (rows[1]["KV tokens × TP=1"], rows[1]["tokens/s × TP=1"], rows[1]["start-up × TP=1"]) == (2.0, 1.5, 1.5)
    assert rows[2]["KV tokens × TP=1"] is None, "no SGLang TP=1 run to compare with"


def test_compare_prefers_a_baseline_from_the_same_device():
    rows = [row("vllm", 1, 1000, 100.0, 40, "CPU"), row("vllm", 1, 4000, 100.0, 40, "2 × H200"),
            row("vllm", 2, 8000, 100.0, 40, "2 × H200")]
    assert parallel.compare_to_tp1(rows)[2]["KV tokens × TP=1"] == 2.0


def test_save_results_merges_runs(tmp_path):
    path = tmp_path / "sub" / "tp.json"
    assert parallel.load_results(path) == []
    parallel.save_results([row("vllm", 1, 1000, 100.0, 40)], path)
    merged = parallel.save_results([row("vllm", 1, 1100, 110.0, 41), row("vllm", 2, 2200, 120.0, 50)], path)
    assert [(r["tp"], r["kv_tokens"]) for r in merged] == [(1, 1100), (2, 2200)], "a rerun replaces, a new TP adds"
    assert parallel.load_results(path) == merged


def test_the_exercise_constants_agree_with_llmkit_parallel():
    """Exercise 11.2 checks against Llama-3.1-8B figures computed from its published numbers; llmkit.parallel,
    which the lesson teaches, must give the same (each is a check on the other)."""
    from llmkit.exercises.nb11 import LLAMA_KV_TOKENS, LLAMA_WEIGHTS, _accepted_24_8

    rows = {r["tp"]: r for r in parallel.tp_rows(REFERENCE_CONFIGS["Llama-3.1-8B"], tps=(1, 2))}
    assert {tp: rows[tp]["KV tokens/GPU"] for tp in (1, 2)} == LLAMA_KV_TOKENS
    assert {tp: rows[tp]["weight bytes/GPU"] for tp in (1, 2)} == LLAMA_WEIGHTS
    shape = model_shape({**GQA_24_8, "intermediate_size": 24 * 8 * 64})
    assert {tp for tp in range(1, 25) if parallel.tp_problem(shape, tp) is None} == _accepted_24_8()
