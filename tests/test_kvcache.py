"""llmkit.kvcache: the per-token formula, the block pool, and agreement with a running vLLM."""

from __future__ import annotations

import pytest

from llmkit import kvcache
from llmkit.config import model_shape

# Qwen3-0.6B's published shape: 28 layers, 16 query heads, 8 KV heads, head_dim 128, bf16.
QWEN3_06B = {"num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
             "hidden_size": 1024, "torch_dtype": "bfloat16"}


def test_bytes_per_token_qwen3_06b():
    shape = model_shape(QWEN3_06B)
    assert kvcache.bytes_per_token(shape) == 2 * 28 * 8 * 128 * 2 == 114_688


def test_tensor_parallel_divides_kv_heads():
    shape = model_shape(QWEN3_06B)
    assert kvcache.bytes_per_token(shape, tp=2) == kvcache.bytes_per_token(shape) // 2
    assert kvcache.kv_heads_per_gpu(shape, tp=16) == 1      # more GPUs than KV heads: replicated
    with pytest.raises(ValueError):
        kvcache.kv_heads_per_gpu(shape, tp=0)


def test_kv_per_gpu_stops_shrinking_at_the_kv_head_count():
    """vLLM's get_num_kv_heads: max(1, kv_heads // tp); past tp = kv_heads each GPU keeps one (copied) head."""
    shape = model_shape(kvcache.REFERENCE_CONFIGS["Llama-3.1-8B"])
    assert [kvcache.bytes_per_token(shape, tp) for tp in (1, 2, 4, 8, 16, 32)] == \
        [131_072, 65_536, 32_768, 16_384, 16_384, 16_384]
    assert kvcache.pool_tokens(2**30, shape, tp=2) == 2 * kvcache.pool_tokens(2**30, shape, tp=1)


def test_reference_configs_carry_the_full_layer_shapes():
    """llmkit.parallel needs the MLP width, vocabulary and tying too, not only the attention shape."""
    for name, cfg in kvcache.REFERENCE_CONFIGS.items():
        assert {"intermediate_size", "vocab_size", "tie_word_embeddings", "model_type"} <= cfg.keys(), name


def test_head_dim_defaults_to_hidden_over_heads_and_dtype_override():
    cfg = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 256}
    shape = model_shape(cfg, dtype="float16")
    assert (shape.head_dim, shape.kv_heads, shape.dtype_bytes) == (64, 4, 2)
    with pytest.raises(ValueError, match="unknown dtype"):
        model_shape(cfg, dtype="float13")


def test_pool_is_whole_blocks():
    shape = model_shape(QWEN3_06B)
    per_block = 16 * kvcache.bytes_per_token(shape)
    assert kvcache.pool_tokens(10 * per_block + per_block - 1, shape) == 160
    assert kvcache.max_model_len_fits(10 * per_block, shape, 160)
    assert not kvcache.max_model_len_fits(10 * per_block, shape, 161)


def test_note_formula_is_not_the_real_size():
    shape = model_shape(QWEN3_06B)
    note = kvcache.note_formula_bytes(256, 4096, shape.hidden_size)
    real = 256 * 4096 * kvcache.bytes_per_token(shape)
    assert real / note == 112       # off by 2 × layers × kv_dim × bytes / hidden = 112×


def test_gpu_budget_rule():
    assert kvcache.gpu_budget_bytes(80 * 2**30, 0.9, 2**30, 2**30, 2**29) == int(72 * 2**30) - 5 * 2**29


def test_human():
    assert kvcache.human(3 * 2**30) == "3.0 GiB" and kvcache.human(1536) == "1.5 KiB" and kvcache.human(12) == "12 B"


@pytest.mark.engine
def test_matches_the_running_engine_within_2_percent(llm, tiny_poet_dir):
    from llmkit.models import llm_kwargs

    cap = kvcache.engine_capacity(llm)
    shape = model_shape(tiny_poet_dir, dtype=cap["kv_dtype"])
    budget = llm_kwargs().get("kv_cache_memory_bytes")
    if budget is None:
        pytest.skip("the KV budget was profiled (GPU), not set; notebook 02 covers that case")
    predicted = kvcache.pool_tokens(budget, shape, cap["block_size"], cap["tensor_parallel_size"])
    assert abs(predicted - cap["tokens"]) / cap["tokens"] < 0.02, (predicted, cap)


def test_comparison_rows_and_plot():
    rows = kvcache.comparison_rows(kvcache.REFERENCE_CONFIGS, max_model_len=4096, max_num_seqs=256)
    by = {r["model"]: r for r in rows}
    assert by["Qwen3-0.6B"]["bytes/token"] == 114_688 and by["Llama-3.1-8B"]["bytes/token"] == 131_072
    fig = kvcache.plot_budget([("weights", 2**30), ("KV pool", 3 * 2**30)], 8 * 2**30, "t")
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 3) for b in bars] == [1.0, 3.0] and bars[1].get_x() == 1.0
