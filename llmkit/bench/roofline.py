"""The decode roofline: the speed limit that memory bandwidth sets, and the batch where the KV cache takes over.

One decode step reads every weight once for the whole batch, plus each sequence's KV cache so far:

    bytes per step = weight bytes read + batch × context × KV bytes per token
    tokens/s      ≤ batch × bandwidth / bytes per step

The **knee** is the batch where the two terms are equal. Below it, more sequences share the same weight read
and the bound rises almost linearly; above it, every extra sequence brings its own KV reads and the bound
flattens towards ``bandwidth / (context × KV bytes per token)``. Shapes come from ``llmkit.config``, KV bytes
from ``llmkit.kvcache``: this module only adds the arithmetic of a step.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from llmkit.config import model_shape, param_count
from llmkit.kvcache import REFERENCE_CONFIGS, bytes_per_token

# Qwen3-0.6B's published config (llmkit.kvcache's reference copy), to reason about it without a download.
QWEN3_0_6B = REFERENCE_CONFIGS["Qwen3-0.6B"]

# Peak memory bandwidth (bytes/s) and dense bf16 tensor throughput (FLOP/s) from the vendors' data sheets.
# Matched against nvidia-smi's name, most specific first. Measure your own with measure_bandwidth().
GPU_SPECS: list[tuple[str, float, float]] = [
    ("H200", 4.8e12, 989e12),
    ("GH200", 4.0e12, 989e12),
    ("H100 NVL", 3.9e12, 835e12),
    ("H100 PCIe", 2.0e12, 756e12),
    ("H100", 3.35e12, 989e12),          # SXM5 80GB ("NVIDIA H100 80GB HBM3")
    ("H800", 3.35e12, 989e12),
    ("B200", 8.0e12, 2250e12),
    ("A100-SXM4-80GB", 2.039e12, 312e12),
    ("A100 80GB PCIe", 1.935e12, 312e12),
    ("A100", 1.555e12, 312e12),         # 40GB
    ("L40S", 0.864e12, 362e12),
    ("L4", 0.3e12, 121e12),
    ("A10G", 0.6e12, 70e12),
    ("A10", 0.6e12, 125e12),
    ("RTX 4090", 1.008e12, 165e12),
    ("RTX 3090", 0.936e12, 71e12),
    ("T4", 0.32e12, 65e12),
]

Config = str | Path | dict


def parameter_count(config: Config) -> dict:
    """Parameters of a dense decoder from its config: the total, the embedding, the LM head (0 if tied), the layers."""
    shape = model_shape(config)
    total = param_count(shape)
    embed = shape.vocab_size * shape.hidden_size
    head = 0 if shape.tied_embeddings else embed
    return {"total": total, "embedding": embed, "lm_head": head, "layers": total - embed - head,
            "tied": shape.tied_embeddings}


def weight_bytes_read(config: Config, dtype: str | None = None) -> int:
    """Weight bytes one decode step reads: every layer and the LM head; of an untied embedding only one row."""
    shape = model_shape(config, dtype)
    n = parameter_count(config)
    read = n["layers"] + (n["embedding"] if n["tied"] else n["lm_head"] + shape.hidden_size)
    return read * shape.dtype_bytes


def kv_bytes_per_token(config: Config, dtype: str | None = None) -> int:
    """KV-cache bytes one token of context adds to every step's reads (``llmkit.kvcache.bytes_per_token``)."""
    return bytes_per_token(model_shape(config, dtype))


def roofline(config: Config, bandwidth: float, context_len: int = 0, batch: int = 1, dtype: str | None = None,
             peak_flops: float | None = None) -> dict:
    """The decode speed limit at ``batch`` sequences of ``context_len`` tokens; ``peak_flops`` adds the compute cap."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive bytes/s, got {bandwidth}")
    if batch < 1 or context_len < 0:
        raise ValueError(f"batch must be >= 1 and context_len >= 0, got batch={batch}, context_len={context_len}")
    weights = weight_bytes_read(config, dtype)
    kv = kv_bytes_per_token(config, dtype) * context_len
    step_bytes = weights + batch * kv
    memory_bound = batch * bandwidth / step_bytes
    out = {"bandwidth": bandwidth, "batch": batch, "context_len": context_len, "weight_bytes": weights,
           "kv_bytes_per_sequence": kv, "bytes_per_step": step_bytes, "tokens_per_s": memory_bound,
           "memory_bound_tokens_per_s": memory_bound}
    if peak_flops:
        out["compute_bound_tokens_per_s"] = peak_flops / (2 * parameter_count(config)["total"])
        out["tokens_per_s"] = min(memory_bound, out["compute_bound_tokens_per_s"])
    return out


def knee(config: Config, context_len: int, dtype: str | None = None) -> float:
    """The batch where a step's KV reads equal its weight reads: weight bytes / (context × KV bytes per token)."""
    if context_len <= 0:
        raise ValueError(f"at context_len={context_len} the KV cache adds no reads, so the roofline has no knee")
    return weight_bytes_read(config, dtype) / (context_len * kv_bytes_per_token(config, dtype))


def gpu_spec(name: str) -> tuple[float, float] | None:
    """(peak bandwidth bytes/s, peak bf16 FLOP/s) of a GPU from its nvidia-smi name, or None."""
    for key, bw, flops in GPU_SPECS:
        if key.lower() in name.lower():
            return bw, flops
    return None


def measure_bandwidth(device: str | None = None, megabytes: int = 1024, repeats: int = 10) -> float:
    """Achievable memory bandwidth (bytes/s): the best of ``repeats`` copies of a buffer (one read + one write)."""
    import torch

    if megabytes < 1 or repeats < 1:
        raise ValueError(f"megabytes and repeats must be >= 1, got {megabytes}, {repeats}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = megabytes * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dst.copy_(src)
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / best
