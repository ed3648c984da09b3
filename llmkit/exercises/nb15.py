"""Exercises of notebook 15 (multi-LoRA serving): the checkers, and beside them the cases that test them.

Expected answers come from Qwen3-0.6B's published shape with plain arithmetic (15.1), from vLLM's own list of
allowed ranks (15.2), from the samples counted here with a regular expression (15.3), and from what the server
lists (15.4); never from ``llmkit.lora``, the module the lesson teaches.
"""

from __future__ import annotations

import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, need, number, word

# Qwen3-0.6B as published: hidden 1024, 16 query heads and 8 KV heads of head_dim 128, MLP 3072, 28 layers, bf16.
H, Q, KV, MLP, LAYERS, BF16 = 1024, 16 * 128, 8 * 128, 3072, 28, 2
# In + out features of the seven matrices a LoRA slot covers in one layer: q, k, v, o, gate, up, down.
IN_OUT = (H + Q) + (H + KV) + (H + KV) + (Q + H) + (H + MLP) + (H + MLP) + (MLP + H)


@exercise("15.1", "bytes (or MiB): the LoRA slots of Qwen3-0.6B's decoder layers with max_loras=4, max_lora_rank=64")
def _ex_15_1(answer: Any) -> str:
    """max_loras × max_lora_rank × (in + out of every linear layer) × layers × 2 bytes."""
    right = 4 * 64 * IN_OUT * LAYERS * BF16
    value = number(answer)
    if value == right or abs(value - right / 2**20) <= 0.05:
        return (f"{right:,} bytes = {right / 2**20:.0f} MiB, reserved when the engine starts, before any adapter "
                "is loaded. A slot holds an A (rank × in) and a B (out × rank) matrix for each of the seven "
                "matrices of every layer; doubling max_loras or max_lora_rank doubles it. On a GPU that memory "
                "comes out of the KV cache.")
    mib = value if value < 1e5 else value / 2**20
    ratios = {4: "you counted one slot: max_loras=4 reserves four.",
              2: "half of it: each element takes 2 bytes (bf16), and each matrix gets both an A and a B.",
              8: "did you use rank 8? max_lora_rank=64 sizes every slot."}
    for factor, hint in ratios.items():
        if abs(mib * factor - right / 2**20) <= 0.05 * factor:
            raise Hint(hint)
    if abs(mib - 4 * 64 * ((H + Q) * 4 + 3 * (H + MLP)) * LAYERS * BF16 / 2**20) <= 0.05:
        raise Hint("k and v are smaller than q in Qwen3-0.6B: it has 8 KV heads, not 16 (grouped-query attention).")
    raise Hint("per layer, add in + out features of q, k, v, o, gate, up and down; multiply by layers, max_loras, "
               "max_lora_rank and 2 bytes.")


@exercise("15.2", "a number: the smallest max_lora_rank vLLM accepts that can load a rank-24 adapter")
def _ex_15_2(answer: Any) -> str:
    """vLLM accepts only a fixed set of max_lora_rank values (its config's MaxLoRARanks)."""
    from typing import get_args

    from vllm.config.lora import MaxLoRARanks

    allowed = sorted(get_args(MaxLoRARanks))
    right = min(r for r in allowed if r >= 24)
    value = number(answer)
    if value == right:
        return (f"{right}: vLLM accepts only {', '.join(map(str, allowed))} for max_lora_rank (the slots are "
                "sized by it), so a rank-24 adapter needs the next allowed size up, and pays for the unused rows.")
    if value == 24:
        raise Hint("24 is not one of the values vLLM accepts: read the allowed ranks in vLLM's LoRA config "
                   "(vllm.config.lora.MaxLoRARanks).")
    if value < 24:
        raise Hint("too small: the engine refuses an adapter whose rank exceeds max_lora_rank.")
    raise Hint("that works but reserves more than needed: find the smallest allowed value that is at least 24.")


_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def _share(texts: Any, chars: int) -> float:
    """Share of the verse lines (split at ，。？！；) that are exactly ``chars`` Han characters and a ，or 。."""
    lines = [c for t in texts for line in str(t).split("\n") if not line.strip().startswith("《")
             for c in re.findall(r"[^，。？！；：、,.?!;:]*[，。？！；：、,.?!;:]?", line.strip()) if c]
    good = sum(bool(re.fullmatch(rf"{_HAN}{{{chars}}}[，。]", c)) for c in lines)
    return good / len(lines) if lines else 0.0


@exercise("15.3", "percentage points: how much qiyan raised the share of seven-character lines over the base model")
def _ex_15_3(answer: Any, samples: Any = None) -> str:
    """(share with the adapter − share without) × 100, over the samples the notebook drew."""
    drawn = need("samples", samples)
    base, adapter = _share(drawn["base"], 7), _share(drawn["qiyan"], 7)
    right = 100 * (adapter - base)
    value = number(answer)
    if abs(value - right) <= 0.5:
        return (f"{100 * base:.0f}% → {100 * adapter:.0f}%: {right:+.0f} percentage points from {len(drawn['qiyan'])} "
                "samples each, same prompt, same seeds. A low-rank adapter, a few percent of the model's "
                "parameters, moved the whole model's habit.")
    if abs(value - right / 100) <= 0.005:
        raise Hint("that is a fraction: give percentage points (× 100).")
    if base and abs(value - 100 * adapter / base) <= 1:
        raise Hint("that is a ratio in percent; the question asks for the difference in percentage points.")
    if abs(value - 100 * adapter) <= 0.5:
        raise Hint("that is the adapter's share alone: subtract the base model's share.")
    raise Hint("count, in samples['base'] and samples['qiyan'], the lines of exactly seven Han characters and a "
               "，or 。; subtract the two shares.")


@exercise("15.4", "the name you loaded the wuyan adapter under, at run time, on the notebook's server")
def _ex_15_4(answer: Any, adapters: Any = None, wuyan: Any = None) -> str:
    """An adapter name the server lists (from /v1/models) whose folder is the wuyan adapter's."""
    listed = need("adapters", adapters)
    folder = str(need("wuyan", wuyan))
    name = str(answer).strip()
    if name not in listed:
        if word(name) in {word(n) for n in listed}:
            raise Hint("adapter names are case-sensitive: use exactly the name you loaded.")
        raise Hint("the server does not list that name: POST /v1/load_lora_adapter with lora_name and lora_path "
                   "(llmkit.lora.load_adapter), then run this cell again.")
    if str(listed[name]) != folder:
        raise Hint("the server serves that name, but from another folder: load the wuyan adapter's folder.")
    return (f"'{name}' now answers as the wuyan adapter: a request with \"model\": \"{name}\" gets five-character "
            "lines. The base weights were not touched and nothing restarted; unload it with /v1/unload_lora_adapter.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    right = 4 * 64 * IN_OUT * LAYERS * BF16                     # 322,961,408 bytes = 308.0 MiB
    samples = {"base": ["白日依山尽，黄河入海流。", "朝辞白帝彩云间，千里江陵一日还。"],
               "qiyan": ["朝辞白帝彩云间，千里江陵一日还。", "两岸猿声啼不住，轻舟已过万重山。"]}
    listing = {"qiyan": "/c/qiyan", "five": "/c/wuyan"}
    out = [Case("15.1", a) for a in (right, "322,961,408", 308.0, "308")]
    out += [Case("15.1", a, passes=False) for a in (right // 4, right // 2, right // 8, 77.0, 154.0, 12345, 1e12)]
    out += [Case("15.2", a) for a in (32, "32")]
    out += [Case("15.2", a, passes=False) for a in (24, 16, 64, 8)]
    # base: 2 of 4 lines have seven characters; qiyan: 4 of 4. The difference is 50 points.
    out += [Case("15.3", a, context={"samples": samples}) for a in (50, "50", 50.3)]
    out += [Case("15.3", a, passes=False, context={"samples": samples}) for a in (0.5, 200, 100, 7)]
    out += [Case("15.4", "five", context={"adapters": listing, "wuyan": "/c/wuyan"})]
    out += [Case("15.4", a, passes=False, context={"adapters": listing, "wuyan": "/c/wuyan"})
            for a in ("Five", "wuyan", "qiyan")]
    return out
