"""llmkit.random_models: random-weight models of real architectures, and the architecture matrix in real vLLM.

The matrix (Llama, Mistral, Qwen2, Qwen3, Gemma) covers GQA and MQA, head_dim 64/128/256, tied and untied
embeddings, and configs that give only ``torch_dtype``, only ``dtype``, or no ``head_dim``. Each model is
loaded by the real engine, generates, and has its KV pool predicted by llmkit.kvcache within 2%.
"""

from __future__ import annotations

import json

import pytest

from llmkit import random_models
from llmkit.config import model_shape
from llmkit.kvcache import engine_capacity, pool_tokens

KV_BUDGET = 64 * 2**20  # bytes: enough blocks for a 2% check, quick to allocate


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, tiny_poet_dir):
    """Every model of the architecture matrix, built into a temporary folder (seconds each)."""
    return random_models.build_matrix(tmp_path_factory.mktemp("matrix"), base=tiny_poet_dir)


def _config(path) -> dict:
    """A built model's config.json as written."""
    return json.loads((path / "config.json").read_text(encoding="utf-8"))


def test_matrix_covers_the_architectures_and_config_variants(matrix):
    shapes = {name: model_shape(path) for name, path in matrix.items()}
    configs = {name: _config(path) for name, path in matrix.items()}
    assert {s.model_type for s in shapes.values()} >= {"llama", "mistral", "qwen2", "qwen3", "gemma"}
    assert {s.head_dim for s in shapes.values()} >= {64, 128, 256}
    assert any(s.kv_heads == 1 < s.heads for s in shapes.values()), "MQA"
    assert any(1 < s.kv_heads < s.heads for s in shapes.values()), "GQA"
    assert {s.tied_embeddings for s in shapes.values()} == {True, False}
    assert any(s.head_dim != s.hidden_size // s.heads for s in shapes.values()), "head_dim that is not hidden/heads"
    only_torch_dtype = [n for n, c in configs.items() if "torch_dtype" in c and "dtype" not in c]
    only_dtype = [n for n, c in configs.items() if "dtype" in c and "torch_dtype" not in c]
    assert only_torch_dtype and only_dtype and all(shapes[n].dtype == "bfloat16" for n in configs)
    assert any("head_dim" not in c for c in configs.values()), "a config that leaves head_dim to be derived"
    assert all(s.layers == 2 and s.hidden_size <= 256 for s in shapes.values()), "kept cheap for CPU engines"
    qwen2 = shapes["qwen2-tied"]
    assert qwen2.qkv_bias and not qwen2.o_bias


def test_each_loads_in_transformers_as_its_own_class(matrix):
    import torch
    from transformers import AutoModelForCausalLM

    for name, path in matrix.items():
        spec = random_models.MATRIX[name]
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        assert model.config.model_type == spec.model_type, name
        assert type(model).__name__.lower().startswith(spec.model_type), (name, type(model).__name__)
        assert (path / "tokenizer.json").is_file() and (path / "tokenizer_config.json").is_file()


def test_tied_top_model_ties_its_two_best_tokens_exactly(matrix):
    """In transformers' own forward pass, at every position, the two top logits are equal and belong to 春 and 秋."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = matrix["llama-tied-top"]
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok.convert_tokens_to_ids(list(random_models.TIED_TOKENS))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    with torch.no_grad():
        logits = model(torch.tensor([tok.encode("写一首关于秋天的诗")])).logits[0]
    top = logits.topk(3, dim=-1)
    assert (top.values[:, 0] == top.values[:, 1]).all() and (top.values[:, 1] > top.values[:, 2]).all()
    assert all(sorted(row[:2]) == sorted(ids) for row in top.indices.tolist())
    assert json.loads((path / "build_info.json").read_text())["tied_top_token_ids"] == ids


@pytest.mark.engine
@pytest.mark.parametrize("name", list(random_models.MATRIX))
def test_vllm_loads_generates_and_kv_pool_matches(matrix, name):
    """One real engine per model: greedy tokens come out, and the predicted KV pool is within 2% of vLLM's."""
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.engine import close_llm
    from llmkit.models import llm_kwargs

    path = matrix[name]
    llm = vllm.LLM(model=str(path), **llm_kwargs(max_model_len=256, kv_cache_memory_bytes=KV_BUDGET))
    try:
        out = llm.generate("写一首关于秋天的诗", vllm.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True,
                                                                  logprobs=2))[0].outputs[0]
        cap = engine_capacity(llm)
    finally:
        close_llm(llm)
    assert len(out.token_ids) == 8 and out.finish_reason == "length"
    predicted = pool_tokens(KV_BUDGET, model_shape(path, dtype=cap["kv_dtype"]), cap["block_size"],
                            cap["tensor_parallel_size"])
    print(f"{name}: vLLM pool {cap['tokens']} tokens ({cap['num_blocks']} blocks of {cap['block_size']}, "
          f"{cap['kv_dtype']}), predicted {predicted}")
    assert abs(predicted - cap["tokens"]) / cap["tokens"] < 0.02, (predicted, cap)
    if random_models.MATRIX[name].tied_top:
        tied = set(json.loads((path / "build_info.json").read_text())["tied_top_token_ids"])
        for step, chosen in zip(out.logprobs, out.token_ids):
            best = sorted(step.values(), key=lambda lp: -lp.logprob)[:2]
            assert best[0].logprob == best[1].logprob, step          # an exact tie, in the engine too
            assert {tid for tid, lp in step.items() if lp.logprob == best[0].logprob} >= tied and chosen in tied


# ------------------------------------------------------------------------------------------------
# The timing shapes (qwen3-0.6b, small)
# ------------------------------------------------------------------------------------------------
def test_shaped_random_model_has_the_requested_shape(tmp_path, tiny_poet_dir, monkeypatch):
    monkeypatch.setitem(random_models.MODELS, "small-test", random_models.RandomModel("qwen3", dict(
        hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=64)))
    out = random_models.build(tmp_path / "m", "small-test", base=tiny_poet_dir)
    cfg = _config(out)
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]) == (128, 2, 1, 64)
    assert (out / "tokenizer.json").read_bytes() == (tiny_poet_dir / "tokenizer.json").read_bytes()
    assert random_models.MODELS["qwen3-0.6b"].config["num_hidden_layers"] == 28
    with pytest.raises(KeyError, match="small"):
        random_models.build(tmp_path / "x", "no-such-model", base=tiny_poet_dir)


def test_small_shape_is_a_quick_flat_stand_in(tmp_path, tiny_poet_dir, capsys):
    """--shape small: an untrained model of tiny-poet's size, with the nearly flat distribution of random weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit.__main__ import main

    with pytest.raises(SystemExit):
        main(["random-model", "--shape", "no-such-shape", "--out", str(tmp_path / "x")])
    assert "small" in capsys.readouterr().err, "an unknown shape is refused with the list of shapes"
    out = random_models.build(tmp_path / "s", "small", base=tiny_poet_dir)
    cfg = _config(out)
    assert cfg["hidden_size"] == 256 and cfg["num_hidden_layers"] <= 4 and cfg["head_dim"] == 64
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        probs = model(torch.tensor([[5, 6, 7, 8]])).logits[0, -1].softmax(-1)
    assert probs.topk(20).values.sum().item() < 0.1, "nearly flat: the top 20 tokens hold under 10%"
