"""Quantization (notebook 16): what fewer bytes per weight and per KV entry should buy, and what they cost.

``decode_bytes`` and ``decode_speedup`` put a quantized model on notebook 10's roofline (bytes one decode step
reads, weights and KV cache separately); ``pool_tokens`` is the KV pool a budget holds with a given
``kv_cache_dtype`` (an fp8 cache keeps one byte per element, so twice the tokens of a 16-bit one);
``logprob_drift`` compares what two engines think of the same text, token by token (read with
``llmkit.logprobs.chosen_prompt_logprobs``; ``llmkit.engine.engine_case`` starts each engine or returns the error
the build gave); ``ensure_w8a8`` writes (once, cached) an int8 W8A8 checkpoint of a model in
the compressed-tensors format that llm-compressor writes and vLLM reads (``quantization_config`` in config.json).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from llmkit.bench.roofline import weight_bytes_read
from llmkit.config import dtype_bytes, model_shape
from llmkit.kvcache import bytes_per_token
from llmkit.logprobs import perplexity

Config = str | Path | dict

# vLLM's names for a quantized KV cache (vllm/config/cache.py, CacheDType), each one byte per element
FP8_KV = ("fp8", "fp8_e4m3", "fp8_e5m2")


def kv_element_bytes(config: Config, kv_cache_dtype: str = "auto") -> int:
    """Bytes per KV-cache element: the model's dtype for ``"auto"`` (16 bits at most: vLLM keeps a float32 model's
    cache in 16 bits on the CPU build, notebook 14), one byte for the fp8 variants."""
    if kv_cache_dtype in FP8_KV:
        return 1
    if kv_cache_dtype not in ("auto", "bfloat16", "float16", "half"):
        raise ValueError(f"unknown kv_cache_dtype {kv_cache_dtype!r}; expected 'auto', 'bfloat16' or one of {FP8_KV}")
    return min(2, model_shape(config).dtype_bytes) if kv_cache_dtype == "auto" else 2


def kv_bytes(config: Config, kv_cache_dtype: str = "auto") -> int:
    """KV-cache bytes per token of context with this cache dtype: 2 × layers × KV heads × head_dim × element bytes."""
    shape = model_shape(config)
    return bytes_per_token(shape) // shape.dtype_bytes * kv_element_bytes(config, kv_cache_dtype)


def pool_tokens(budget_bytes: int, config: Config, block_size: int, kv_cache_dtype: str = "auto") -> int:
    """Tokens a KV budget holds in whole blocks of ``block_size`` with this cache dtype."""
    return budget_bytes // (block_size * kv_bytes(config, kv_cache_dtype)) * block_size


def decode_bytes(config: Config, context_len: int, batch: int = 1, weights: str = "bfloat16",
                 kv_cache_dtype: str = "bfloat16") -> dict[str, int]:
    """Bytes one decode step reads at ``batch`` sequences of ``context_len`` tokens: weights, KV cache, total.

    Weights are read once per step for the whole batch, each sequence's KV cache once per step (notebook 10).
    Quantization scales are left out: one per channel or block, a fraction of a percent of the weights.
    """
    if batch < 1 or context_len < 0:
        raise ValueError(f"batch must be >= 1 and context_len >= 0, got batch={batch}, context_len={context_len}")
    w = int(weight_bytes_read(config, "bfloat16") / 2 * weight_format_bytes(weights))
    kv = batch * context_len * kv_bytes(config, kv_cache_dtype)
    return {"weights": w, "kv": kv, "total": w + kv}


def decode_speedup(config: Config, context_len: int, batch: int = 1, weights: str = "bfloat16",
                   kv_cache_dtype: str = "bfloat16") -> float:
    """The most a quantized step can gain over bf16 if decoding is memory-bound: bf16 bytes / quantized bytes."""
    base = decode_bytes(config, context_len, batch)["total"]
    return base / decode_bytes(config, context_len, batch, weights, kv_cache_dtype)["total"]


def weight_format_bytes(fmt: str) -> float:
    """Bytes per weight of a storage format: bfloat16 2, fp8 and int8 1, int4 0.5."""
    return 0.5 if fmt == "int4" else float(dtype_bytes(fmt))


def logprob_drift(reference: Sequence[float], other: Sequence[float]) -> dict[str, float]:
    """How far ``other``'s logprobs of the same tokens are from ``reference``'s: mean and largest absolute
    difference (nats), both perplexities, and their ratio."""
    if len(reference) != len(other) or not reference:
        raise ValueError(f"need two equally long, non-empty lists of logprobs, got {len(reference)} and {len(other)}")
    diffs = [abs(a - b) for a, b in zip(reference, other)]
    ppl_ref, ppl_other = perplexity(reference), perplexity(other)
    return {"tokens": len(diffs), "mean_abs_diff": sum(diffs) / len(diffs), "max_abs_diff": max(diffs),
            "perplexity_reference": ppl_ref, "perplexity": ppl_other, "perplexity_ratio": ppl_other / ppl_ref}


# --------------------------------------------------------------------------------------------------
# An int8 checkpoint of the course model, made with compressed-tensors (the library llm-compressor writes with)
# --------------------------------------------------------------------------------------------------
W8A8_RECIPE = {"name": "w8a8", "version": 1, "scheme": "W8A8", "targets": ["Linear"], "ignore": ["lm_head"],
               "weights": "int8, symmetric, one scale per output channel (absmax / 127)",
               "activations": "int8, symmetric, one scale per token, computed at run time"}
CHECKPOINT_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                    "chat_template.jinja")


def w8a8_dir(base: str | Path) -> Path:
    """Where the W8A8 checkpoint of ``base`` is cached: keyed by the base weights and the recipe."""
    from llmkit import lora, tiny_poet

    key = hashlib.sha256((lora.base_fingerprint(base) + json.dumps(W8A8_RECIPE, sort_keys=True)).encode()).hexdigest()[:12]
    return tiny_poet.cache_root() / "quantized" / f"{Path(str(base)).name}-w8a8-{key}"


def build_w8a8(base: str | Path, out: Path | None = None) -> Path:
    """Quantize ``base``'s linear layers to int8 W8A8 and save a compressed-tensors checkpoint (seconds for tiny-poet).

    Weights only need their own range, so no calibration data is used: each output channel's scale is its largest
    absolute weight over 127 (what llm-compressor's min-max observer computes for a symmetric scheme). Activation
    scales are dynamic, per token, computed by the engine at run time. The LM head stays in 16 bits.
    """
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config, preset_name_to_scheme
    from transformers import AutoModelForCausalLM

    from llmkit import tiny_poet

    out = Path(out) if out else w8a8_dir(base)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    scheme = preset_name_to_scheme(W8A8_RECIPE["scheme"], W8A8_RECIPE["targets"])
    apply_quantization_config(model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=W8A8_RECIPE["ignore"]))
    layers = 0
    for module in model.modules():
        if hasattr(module, "weight_scale"):
            scale = (module.weight.detach().float().abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-8)
            module.weight_scale.data.copy_(scale.reshape(module.weight_scale.shape).to(module.weight_scale.dtype))
            if hasattr(module, "weight_zero_point"):
                module.weight_zero_point.data.zero_()
            layers += 1
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    compressor.update_config(tmp)
    if Path(str(base)).is_dir():
        for name in CHECKPOINT_FILES:
            if (Path(base) / name).is_file():
                shutil.copy(Path(base) / name, tmp / name)
    else:                                            # a hub id: the tokenizer comes from the hub cache
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(base)).save_pretrained(tmp)
    weights = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
    tiny_poet.publish_build(tmp, out, {**W8A8_RECIPE, "base": str(base), "quantized_linear_layers": layers,
                                       "weights_bytes": weights, "build_seconds": round(time.perf_counter() - t0, 1)})
    return out


def ensure_w8a8(base: str | Path) -> Path:
    """The cached W8A8 checkpoint of ``base``, built first if missing."""
    out = w8a8_dir(base)
    return out if (out / "build_info.json").is_file() else build_w8a8(base, out)
