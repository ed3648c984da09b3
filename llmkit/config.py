"""One reader for a model's config: the shapes that weights, the KV cache and parallelism depend on.

Every other module (``kvcache``, ``parallel``, ``bench.roofline``) reads a model through ``model_shape``,
so the fallbacks that real configs need live here once:

- multimodal configs nest the language model in ``text_config``;
- ``head_dim`` may be missing (then it is ``hidden_size / heads``) or differ from it (Qwen3, Gemma);
- ``num_key_value_heads`` may be missing (then every head has its own KV: multi-head attention);
- the dtype is ``torch_dtype`` in older configs and ``dtype`` in configs written by transformers 5;
  a config with neither means float32 (transformers' default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "fp8": 1,
               "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1}


def read_config(model: str | Path | dict) -> dict:
    """A model's language-model config as a dict: from a dict, a folder's config.json, or the hub."""
    if isinstance(model, dict):
        cfg = model
    else:
        path = Path(model).expanduser()
        if (path / "config.json").is_file():
            cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        else:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(str(model)).to_dict()
    text = cfg.get("text_config")
    return {**cfg, **text} if isinstance(text, dict) else cfg


def dtype_bytes(dtype: object) -> int:
    """Bytes per element of a dtype given as a string ("bfloat16") or a torch dtype."""
    name = str(dtype).replace("torch.", "")
    if name not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


def config_dtype(cfg: dict) -> str:
    """The dtype a config stores its weights in: ``torch_dtype`` or ``dtype``, else float32."""
    value = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    return str(value).replace("torch.", "")


@dataclass(frozen=True)
class ModelShape:
    """What weights, KV cache and tensor parallelism depend on, read from a dense decoder's config."""

    model_type: str
    layers: int
    hidden_size: int
    heads: int
    kv_heads: int
    head_dim: int
    dtype: str
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tied_embeddings: bool = False
    qk_norm: bool = False        # Qwen3 normalizes q and k per head
    qkv_bias: bool = False       # Qwen2, or attention_bias=True
    o_bias: bool = False         # Llama-style attention_bias also gives o_proj a bias (Qwen2 biases q, k, v only)
    max_position_embeddings: int | None = None

    @property
    def dtype_bytes(self) -> int:
        """Bytes per element of the weights (and of the KV cache when the engine keeps the model's dtype)."""
        return dtype_bytes(self.dtype)

    def with_dtype(self, dtype: object) -> "ModelShape":
        """The same shape with another element type (e.g. the engine's KV-cache dtype)."""
        from dataclasses import replace

        return replace(self, dtype=str(dtype).replace("torch.", ""))

    def require_layers(self) -> None:
        """Raise unless the MLP and vocabulary sizes are known (parameter counts need them)."""
        if self.intermediate_size is None or self.vocab_size is None:
            raise ValueError("the config lacks intermediate_size or vocab_size: "
                             "parameter counts need the full layer shapes")


def model_shape(model: str | Path | dict, dtype: object | None = None) -> ModelShape:
    """The ModelShape of a model (a folder, a hub id or a config dict); ``dtype`` overrides the config's."""
    cfg = read_config(model)
    missing = [k for k in ("num_hidden_layers", "hidden_size", "num_attention_heads") if k not in cfg]
    if missing:
        raise ValueError(f"the config lacks {', '.join(missing)}: is this a decoder language model?")
    if any(k in cfg for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise ValueError("mixture-of-experts models are not covered: their MLPs split and count differently")
    heads = cfg["num_attention_heads"]
    model_type = str(cfg.get("model_type", "")).lower()
    bias = cfg.get("attention_bias")
    dtype = str(dtype).replace("torch.", "") if dtype is not None else config_dtype(cfg)
    dtype_bytes(dtype)  # an unknown dtype fails here, not later in a formula
    return ModelShape(
        model_type=model_type, layers=cfg["num_hidden_layers"], hidden_size=cfg["hidden_size"], heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        dtype=dtype,
        intermediate_size=cfg.get("intermediate_size"), vocab_size=cfg.get("vocab_size"),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qk_norm=model_type.startswith("qwen3"),
        qkv_bias=bool(bias) if bias is not None else model_type == "qwen2",
        o_bias=bool(bias) and model_type != "qwen2",
        max_position_embeddings=cfg.get("max_position_embeddings"))


def layer_params(shape: ModelShape, q_heads: int | None = None, kv_heads: int | None = None,
                 inter: int | None = None) -> int:
    """Parameters of one decoder layer holding ``q_heads``/``kv_heads`` heads and ``inter`` MLP columns."""
    shape.require_layers()
    q = shape.heads if q_heads is None else q_heads
    kv = shape.kv_heads if kv_heads is None else kv_heads
    mlp = shape.intermediate_size if inter is None else inter
    h, d = shape.hidden_size, shape.head_dim
    attn = h * q * d + 2 * h * kv * d + q * d * h  # q, k, v, o
    if shape.qkv_bias:
        attn += (q + 2 * kv) * d
    if shape.o_bias:
        attn += h  # added after the all-reduce: every GPU holds all of it
    norms = 2 * h + (2 * d if shape.qk_norm else 0)  # replicated on every GPU
    return attn + 3 * h * mlp + norms  # gate, up, down


def param_count(shape: ModelShape) -> int:
    """Parameters of the whole model, as stored in its checkpoint (embeddings, layers, final norm)."""
    shape.require_layers()
    embeddings = shape.vocab_size * shape.hidden_size * (1 if shape.tied_embeddings else 2)
    return embeddings + shape.layers * layer_params(shape) + shape.hidden_size


def weight_bytes(shape: ModelShape) -> int:
    """Bytes the weights take in the config's dtype: ``param_count`` × bytes per element."""
    return param_count(shape) * shape.dtype_bytes


def describe(shape: ModelShape) -> str:
    """One line: layers, hidden size, heads, KV heads, head_dim, dtype."""
    return (f"{shape.model_type or 'model'}: {shape.layers} layers, hidden {shape.hidden_size}, {shape.heads} heads, "
            f"{shape.kv_heads} KV heads of head_dim {shape.head_dim}, {shape.dtype}")


def as_config(shape: ModelShape) -> dict[str, Any]:
    """A config dict that reads back to the same shape (for tables and saved records)."""
    return {"model_type": shape.model_type, "num_hidden_layers": shape.layers, "hidden_size": shape.hidden_size,
            "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads, "head_dim": shape.head_dim,
            "torch_dtype": shape.dtype, "intermediate_size": shape.intermediate_size, "vocab_size": shape.vocab_size,
            "tie_word_embeddings": shape.tied_embeddings}
