"""KV-cache memory: the per-token formula, how vLLM turns a memory budget into a block pool, and the check.

Per token, every layer stores one key and one value vector per KV head:

    bytes/token = 2 (K and V) × layers × kv_heads × head_dim × bytes per element

With tensor parallelism each GPU holds ``kv_heads / tp`` of the heads (at least one). vLLM sizes a
*pool* of fixed-size blocks (``block_size`` tokens each) from the memory it may use, and shares it
among all running requests; ``max_num_seqs`` only caps how many run at once.
"""

from __future__ import annotations

import math
from pathlib import Path

from llmkit.config import ModelShape, model_shape


def kv_heads_per_gpu(shape: ModelShape, tp: int = 1) -> int:
    """KV heads each GPU holds under tensor parallelism (replicated when tp exceeds the head count)."""
    if tp < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tp}")
    return max(1, shape.kv_heads // tp)


def bytes_per_token(shape: ModelShape, tp: int = 1) -> int:
    """KV-cache bytes one token needs on one GPU: 2 × layers × kv_heads/tp × head_dim × dtype bytes."""
    return 2 * shape.layers * kv_heads_per_gpu(shape, tp) * shape.head_dim * shape.dtype_bytes


def pool_tokens(budget_bytes: int, shape: ModelShape, block_size: int = 16, tp: int = 1) -> int:
    """Tokens a KV budget holds once cut into whole blocks of ``block_size`` tokens."""
    blocks = budget_bytes // (block_size * bytes_per_token(shape, tp))
    return blocks * block_size


def note_formula_bytes(max_num_seqs: int, max_model_len: int, hidden_size: int) -> int:
    """The study note's (wrong) estimate, max_num_seqs × max_model_len × hidden_dim, taken as bytes."""
    return max_num_seqs * max_model_len * hidden_size


def gpu_budget_bytes(total_bytes: int, utilization: float, weights_bytes: int, activation_bytes: int,
                     other_bytes: int = 0) -> int:
    """vLLM's GPU rule: utilization × total memory, minus weights, peak activations and non-torch memory."""
    return int(total_bytes * utilization) - weights_bytes - activation_bytes - other_bytes


def null_blocks(vllm_version: str | None = None) -> int:
    """Blocks of the pool vLLM's "does max_model_len fit" check holds back: its permanent null block.

    The block pool always takes one block as a placeholder (vllm/v1/core/block_pool.py, ``null_block``).
    vLLM 0.32 (the course's CPU pin) leaves it out when it checks and estimates max_model_len
    (``get_kv_cache_configs`` in vllm/v1/core/kv_cache_utils.py); vLLM 0.26 (the GPU pin) counts it.
    """
    if vllm_version is None:
        try:
            import vllm

            vllm_version = vllm.__version__
        except ImportError:
            return 0
    major, minor = (int(x) for x in vllm_version.split("+")[0].split(".")[:2])
    return 1 if (major, minor) >= (0, 32) else 0


def sliding_window_blocks(sliding_window: int | None) -> int:
    """The extra block one request needs when the model attends through a sliding window (Mistral 7B v0.1,
    Gemma 2 and 3): the window may start inside a block, so vLLM counts one block more per request
    (vllm/v1/kv_cache_interface.py, ``SlidingWindowSpec.max_admission_blocks_per_request``, both pinned versions)."""
    return 1 if sliding_window else 0


def max_model_len_estimate(budget_bytes: int, shape: ModelShape, block_size: int = 16, tp: int = 1,
                           reserved: int = 0) -> int:
    """The longest request a KV budget admits, in whole blocks: (blocks − reserved) × block_size."""
    blocks = pool_tokens(budget_bytes, shape, block_size, tp) // block_size
    return max(0, blocks - reserved) * block_size


def max_model_len_fits(budget_bytes: int, shape: ModelShape, max_model_len: int, block_size: int = 16,
                       tp: int = 1, reserved: int = 0) -> bool:
    """Whether one request of ``max_model_len`` tokens fits the pool (vLLM refuses to start otherwise)."""
    return math.ceil(max_model_len / block_size) * block_size <= max_model_len_estimate(
        budget_bytes, shape, block_size, tp, reserved)


def engine_capacity(llm) -> dict:
    """What a running ``vllm.LLM`` allocated: blocks, block size, tokens, KV dtype and TP size."""
    cfg = llm.llm_engine.vllm_config
    blocks = cfg.cache_config.num_gpu_blocks
    block = cfg.cache_config.block_size
    cache_dtype = cfg.cache_config.cache_dtype
    dtype = str(cfg.model_config.dtype).replace("torch.", "") if cache_dtype == "auto" else cache_dtype
    return {"num_blocks": blocks, "block_size": block, "tokens": blocks * block, "kv_dtype": dtype,
            "tensor_parallel_size": cfg.parallel_config.tensor_parallel_size,
            "max_model_len": cfg.model_config.max_model_len, "sliding_window": cfg.model_config.get_sliding_window()}


def human(n_bytes: float) -> str:
    """Bytes as KiB/MiB/GiB with one decimal."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes:.0f} B"


# Published shapes of well-known models, to compare KV costs (and, in llmkit.parallel, per-GPU weights)
# without downloading them.
REFERENCE_CONFIGS = {
    "Qwen3-0.6B": {"num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
                   "head_dim": 128, "hidden_size": 1024, "torch_dtype": "bfloat16",
                   "model_type": "qwen3", "intermediate_size": 3072, "vocab_size": 151936, "tie_word_embeddings": True},
    "Llama-3.1-8B": {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "head_dim": 128, "hidden_size": 4096, "torch_dtype": "bfloat16",
                     "model_type": "llama", "intermediate_size": 14336, "vocab_size": 128256,
                     "tie_word_embeddings": False},
    "Qwen2.5-72B": {"num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
                    "head_dim": 128, "hidden_size": 8192, "torch_dtype": "bfloat16",
                    "model_type": "qwen2", "intermediate_size": 29568, "vocab_size": 152064,
                    "tie_word_embeddings": False},
}


def comparison_rows(models: dict[str, dict | str | Path], max_model_len: int = 4096, max_num_seqs: int = 256) -> list[dict]:
    """Per model: KV bytes per token, one full-length request, and the note's formula for comparison."""
    rows = []
    for name, cfg in models.items():
        s = model_shape(cfg)
        per_tok = bytes_per_token(s)
        rows.append({"model": name, "layers": s.layers, "kv_heads": s.kv_heads, "head_dim": s.head_dim,
                     "bytes/token": per_tok, "per token": human(per_tok),
                     f"one {max_model_len}-token request": human(per_tok * max_model_len),
                     f"{max_num_seqs} such requests": human(per_tok * max_model_len * max_num_seqs),
                     "note's formula": human(note_formula_bytes(max_num_seqs, max_model_len, s.hidden_size))})
    return rows


def plot_budget(segments: list[tuple[str, float]], total: float, title: str):
    """A stacked horizontal bar of how memory is split (weights, KV pool, ...); returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 2.4))
    left = 0.0
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#cccccc"]
    for (label, size), color in zip(segments, colors):
        ax.barh(0, size / 2**30, left=left / 2**30, color=color, label=f"{label}: {human(size)}")
        left += size
    ax.set_xlim(0, total / 2**30)
    ax.set_yticks([])
    ax.set_xlabel("GiB")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.7), ncol=min(len(segments), 3), fontsize=9)
    fig.tight_layout()
    return fig
