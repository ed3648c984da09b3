"""Random-weight models of real architectures, with tiny-poet's tokenizer: for timing, memory and engine checks.

Their text is noise; what they are for is their shape. ``qwen3-0.6b`` has Qwen3-0.6B's layer sizes (timing and
memory on a GPU), ``small`` is an untrained model of tiny-poet's size (a flat distribution in seconds on CPU),
and the architecture matrix (``MATRIX``) holds small two-layer models built with transformers' own classes:

=================  ========  ===========  ========  ===================  =========================
name               family    attention    head_dim  embeddings           config.json
=================  ========  ===========  ========  ===================  =========================
llama-gqa          Llama     GQA 4/2      64        untied               ``torch_dtype`` only
mistral-gqa        Mistral   GQA 4/2      64        untied               no ``head_dim`` (derived)
qwen2-tied         Qwen2     GQA 4/2      64        tied, q/k/v bias     byte-level tokenizer
qwen3-hd128        Qwen3     GQA 4/2      128 ≠ 64  tied, q/k norms      thinking chat template
gemma-mqa          Gemma     MQA 4/1      256       tied                 ``dtype`` only
llama-tied-top     Llama     GQA 4/2      64        untied               two top tokens tie exactly
=================  ========  ===========  ========  ===================  =========================

Every config gives only ``dtype`` unless the table says otherwise. ``llama-tied-top`` makes two LM-head rows
identical and dominant, so at every position the two most likely tokens have exactly the same logit: a real
engine's output for testing code that must handle ties.

The models use tiny-poet's tokenizer, copied in, except ``qwen2-tied``: for a ``qwen2`` config, transformers 5
ignores the ``tokenizer_class`` of tokenizer_config.json and rebuilds the tokenizer as ``Qwen2Tokenizer``, with
a byte-level pre-tokenizer that a character vocabulary does not survive (every text encodes to nothing).
That model gets the same tokens re-encoded in GPT-2's byte-level alphabet, the form Qwen2 tokenizers have;
tiny-poet's markup tokens (``<think>``, ...) are then ordinary text, which a random model does not miss.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
TIED_TOKENS = ("春", "秋")  # the two tokens llama-tied-top ties at the top


@dataclass(frozen=True)
class RandomModel:
    """One random-weight model: its transformers model type, config fields, and quirks of its config.json."""

    model_type: str
    config: dict[str, Any]
    dtype_key: str = "dtype"      # "torch_dtype": the key transformers 4 wrote, before it became "dtype"
    drop_head_dim: bool = False   # leave head_dim out of config.json, as older configs did (readers derive it)
    tied_top: bool = False        # two identical, dominant LM-head rows: the top two tokens always tie
    byte_level: bool = False      # tiny-poet's tokens in byte-level BPE form (what transformers forces on qwen2)
    note: str = field(default="", compare=False)


_SMALL = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=4096)

SHAPES: dict[str, RandomModel] = {
    "small": RandomModel("qwen3", dict(hidden_size=256, intermediate_size=768, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=64),
                         note="tiny-poet's size, untrained: a nearly flat next-token distribution"),
    "qwen3-0.6b": RandomModel("qwen3", dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                            num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                                            max_position_embeddings=40960, rope_theta=1000000.0),
                              note="Qwen3-0.6B's layer shapes"),
}
MATRIX: dict[str, RandomModel] = {
    "llama-gqa": RandomModel("llama", dict(_SMALL, head_dim=64, tie_word_embeddings=False), dtype_key="torch_dtype",
                             note="GQA, head_dim 64, untied embeddings; config gives only torch_dtype"),
    "mistral-gqa": RandomModel("mistral", dict(_SMALL, tie_word_embeddings=False), drop_head_dim=True,
                               note="GQA, head_dim 64 derived from hidden/heads, sliding-window config field"),
    "qwen2-tied": RandomModel("qwen2", dict(_SMALL, tie_word_embeddings=True), byte_level=True,
                              note="GQA, q/k/v bias, tied embeddings, head_dim derived; byte-level tokenizer"),
    "qwen3-hd128": RandomModel("qwen3", dict(_SMALL, head_dim=128, tie_word_embeddings=True),
                               note="head_dim 128 while hidden/heads is 64; tiny-poet's thinking chat template"),
    "gemma-mqa": RandomModel("gemma", dict(_SMALL, num_key_value_heads=1, head_dim=256, tie_word_embeddings=True),
                             note="MQA (one KV head), head_dim 256, tied embeddings"),
    "llama-tied-top": RandomModel("llama", dict(_SMALL, head_dim=64, tie_word_embeddings=False), tied_top=True,
                                  note="the two most likely tokens (春, 秋) tie exactly at every position"),
}
MODELS: dict[str, RandomModel] = {**SHAPES, **MATRIX}


def make_config(spec: RandomModel, vocab_size: int):
    """The transformers config of ``spec`` (its own config class) for a tokenizer of ``vocab_size`` tokens."""
    from transformers import AutoConfig

    ids = dict(bos_token_id=None, eos_token_id=2, pad_token_id=0)  # tiny-poet's <|im_end|> and <|endoftext|>
    return AutoConfig.for_model(spec.model_type, vocab_size=vocab_size, **{**ids, **spec.config})


def _tie_top_two(model, token_ids: Sequence[int]) -> None:
    """Make ``token_ids`` the two most likely tokens everywhere, with exactly equal logits.

    Every embedding gets a large constant in dimension 0, which dominates the residual stream after the final
    norm; both LM-head rows read only that dimension, so they are identical and far above all others.
    """
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight[:, 0] = 1.0
        head = model.get_output_embeddings().weight
        for t in token_ids:
            head[t].zero_()
            head[t, 0] = 1.0


def _rewrite_config(path: Path, spec: RandomModel) -> None:
    """Apply the spec's config.json quirks: the dtype key, and head_dim left out."""
    cfg = json.loads(path.read_text(encoding="utf-8"))
    dtype = cfg.pop("dtype", None) or cfg.pop("torch_dtype", None)
    cfg[spec.dtype_key] = dtype
    if spec.drop_head_dim:
        if cfg.get("head_dim") not in (None, cfg["hidden_size"] // cfg["num_attention_heads"]):
            raise ValueError("drop_head_dim needs head_dim == hidden_size / num_attention_heads")
        cfg.pop("head_dim", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def copy_tokenizer(base: Path, out: Path) -> int:
    """Copy tiny-poet's tokenizer files from ``base`` to ``out``; returns the vocabulary size."""
    for f in TOKENIZER_FILES:
        shutil.copy(base / f, out / f)
    return len(json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"])


def byte_level_tokenizer(base: Path, out: Path) -> int:
    """Write tiny-poet's tokens as a byte-level BPE tokenizer (Qwen2Tokenizer's form) into ``out``; returns its size.

    Every character token becomes its UTF-8 bytes in GPT-2's byte alphabet, built up by merges from the left
    (a UTF-8 lead byte never follows another byte of the same character, so no merge can fire across two
    characters); special tokens stay special. Byte-fallback tokens are dropped: the 256 bytes are the base.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_char = bytes_to_unicode()
    source = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    specials = [a["content"] for a in source["added_tokens"] if a["special"]]
    vocab = {byte_char[b]: b for b in range(256)}
    merges = []
    for token in sorted(source["model"]["vocab"], key=source["model"]["vocab"].get):
        if token in specials or token.startswith("<0x"):
            continue
        text = "".join(byte_char[b] for b in token.encode("utf-8"))
        for i in range(1, len(text)):
            if text[: i + 1] not in vocab:
                vocab[text[: i + 1]] = len(vocab)
                merges.append((text[:i], text[i]))
    for t in specials:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.save(str(out / "tokenizer.json"))
    for f in ("special_tokens_map.json", "generation_config.json"):
        shutil.copy(base / f, out / f)
    cfg = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    return len(vocab)


def build(out: str | os.PathLike, name: str = "qwen3-0.6b", base: Path | None = None, seed: int = 0) -> Path:
    """Build the random-weight model ``name`` (see ``MODELS``) with tiny-poet's tokenizer into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit import tiny_poet

    if name not in MODELS:
        raise KeyError(f"unknown random model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    base = Path(base) if base else tiny_poet.ensure(log=lambda m: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = (byte_level_tokenizer if spec.byte_level else copy_tokenizer)(base, out)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(spec, vocab_size), dtype=torch.float32)
    tied = None
    if spec.tied_top:
        vocab = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
        tied = [vocab[t] for t in TIED_TOKENS]
        _tie_top_two(model, tied)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    _rewrite_config(out / "config.json", spec)
    info = {"name": f"random-{name}", "model_type": spec.model_type, "config": spec.config, "note": spec.note,
            "tokenizer": "tiny-poet" + (" (byte-level BPE form)" if spec.byte_level else ""), "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
            "tied_top_token_ids": tied, "weights": "random: for shapes, timing and engines, not text"}
    (out / "build_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def build_matrix(root: str | os.PathLike, base: Path | None = None, names: list[str] | None = None) -> dict[str, Path]:
    """Build every model of the architecture matrix (or ``names``) under ``root``; returns name -> folder."""
    root = Path(root)
    return {n: build(root / n, n, base=base) for n in (names or list(MATRIX))}
