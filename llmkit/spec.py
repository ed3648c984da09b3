"""Speculative decoding (notebook 17): how many tokens a verified draft buys per step, and what it costs.

``expected_tokens`` and ``speedup`` are the textbook model (Leviathan et al., 2023): a proposer guesses ``k`` tokens,
the target model scores all of them in one forward pass and keeps the longest prefix it agrees with, plus one token
of its own. ``spec_counters`` reads vLLM's own counters of drafts and accepted tokens (the Prometheus metrics
``vllm:spec_decode_*``, v1/spec_decode/metrics.py) from an offline engine, and ``acceptance`` turns the change
between two readings into the figures vLLM logs: the acceptance rate, the mean acceptance length (accepted tokens
per draft plus the bonus token) and the per-position rates. ``ensure_draft`` trains (once, cached) a smaller sibling
of tiny-poet with the same tokenizer: the draft model of the course's pair. ``draft_pair`` picks a target and
draft that share a tokenizer for whatever model the course runs on.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from llmkit import tiny_poet

# The draft: tiny-poet's recipe (same corpus, tokenizer, chat data and optimiser) in one decoder layer of width 128
# (tiny-poet: four of width 256), so a draft step costs a fraction of a target step.
DRAFT_SPEC = replace(tiny_poet.SPEC, hidden_size=128, intermediate_size=384, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1, head_dim=64)
DRAFT_NAME = "tiny-poet-draft"

# Known target -> draft pairs on the hub (same tokenizer and vocabulary); $LLMKIT_DRAFT_MODEL names any other draft.
HUB_DRAFTS = {
    "Qwen/Qwen3-1.7B": "Qwen/Qwen3-0.6B", "Qwen/Qwen3-4B": "Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B": "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-14B": "Qwen/Qwen3-0.6B", "Qwen/Qwen3-32B": "Qwen/Qwen3-1.7B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct": "meta-llama/Llama-3.2-1B-Instruct",
}


def draft_dir() -> Path:
    """The folder the course's draft model is (or will be) built into, beside tiny-poet."""
    return tiny_poet.cache_root() / f"{DRAFT_NAME}-{tiny_poet.VERSION}"


def ensure_draft(log: Callable[[str], None] = print, force: bool = False) -> Path:
    """The draft model's folder, trained first (about half a minute on two cores) if missing, of another recipe, or
    ``force``."""
    path = draft_dir()
    if not force and tiny_poet.is_built(path, spec=DRAFT_SPEC):
        return path
    return tiny_poet.build(out=path, spec=DRAFT_SPEC, log=log, name=DRAFT_NAME)


def draft_pair(model: str) -> tuple[str, str, str]:
    """(target, draft, why) for a draft-model run on ``model``: the two must share a tokenizer.

    $LLMKIT_DRAFT_MODEL wins; a known hub pair (``HUB_DRAFTS``) next; otherwise (tiny-poet, or a model without a
    smaller sibling, such as Qwen3-0.6B) the course's own pair: tiny-poet and its trained draft.
    """
    env = os.environ.get("LLMKIT_DRAFT_MODEL", "").strip()
    if env:
        return model, env, "the draft $LLMKIT_DRAFT_MODEL names"
    if model in HUB_DRAFTS:
        return model, HUB_DRAFTS[model], f"{model}'s smaller sibling on the hub"
    draft = str(ensure_draft(log=lambda msg: None))
    target = str(tiny_poet.ensure(log=lambda msg: None))
    why = ("tiny-poet's trained sibling" if Path(model).resolve() == Path(target).resolve()
           else f"{model} has no smaller sibling with its tokenizer here, so the course's own pair runs")
    return target, draft, why


def ngram_config(k: int = 4, lookup_max: int = 4, lookup_min: int = 2) -> dict[str, Any]:
    """vLLM's ``speculative_config`` for prompt lookup: propose the ``k`` tokens that followed the last
    ``lookup_min``..``lookup_max`` tokens where they occurred earlier in the prompt or output (vllm/config/speculative.py)."""
    return {"method": "ngram", "num_speculative_tokens": k, "prompt_lookup_max": lookup_max,
            "prompt_lookup_min": lookup_min}


def draft_config(draft: str | os.PathLike, k: int = 3) -> dict[str, Any]:
    """vLLM's ``speculative_config`` for a separate draft model proposing ``k`` tokens a step."""
    return {"method": "draft_model", "model": str(draft), "num_speculative_tokens": k}


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens one target step yields on average when each of ``k`` drafted tokens is accepted with probability
    ``alpha``, independently, until the first rejection, plus the target's own token: (1 - alpha^(k+1)) / (1 - alpha)."""
    if not 0 <= alpha <= 1 or k < 0:
        raise ValueError(f"alpha must be in [0, 1] and k >= 0, got alpha={alpha}, k={k}")
    return float(k + 1) if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def speedup(alpha: float, k: int, draft_cost: float = 0.0, verify_cost: float = 1.0) -> float:
    """Speed over plain decoding: tokens per step over the step's cost, in plain target steps.

    A step costs ``k`` draft steps of ``draft_cost`` each (0 for prompt lookup) plus one verification pass of
    ``verify_cost`` (1 when the step is memory-bound and k + 1 positions cost what one does; nearer k + 1 when the
    target is compute-bound, as at large batches).
    """
    if draft_cost < 0 or verify_cost <= 0:
        raise ValueError("costs are positive multiples of a plain target step")
    return expected_tokens(alpha, k) / (k * draft_cost + verify_cost)


def spec_counters(llm) -> dict[str, Any]:
    """vLLM's speculative-decoding counters so far, summed over its engines: drafts, draft tokens, accepted tokens,
    and accepted tokens per draft position. The engine needs ``disable_log_stats=False`` (``LLM`` turns stats off)."""
    from vllm.v1.metrics.reader import Counter, Vector

    totals: dict[str, Any] = {"drafts": 0, "draft_tokens": 0, "accepted": 0, "per_position": []}
    names = {"vllm:spec_decode_num_drafts": "drafts", "vllm:spec_decode_num_draft_tokens": "draft_tokens",
             "vllm:spec_decode_num_accepted_tokens": "accepted"}
    try:
        metrics = llm.get_metrics()
    except AssertionError as err:
        raise RuntimeError("this engine keeps no statistics: start it with disable_log_stats=False") from err
    for m in metrics:
        if isinstance(m, Counter) and m.name in names:
            totals[names[m.name]] += m.value
        elif isinstance(m, Vector) and m.name == "vllm:spec_decode_num_accepted_tokens_per_pos":
            pos = totals["per_position"]
            pos.extend([0] * (len(m.values) - len(pos)))
            totals["per_position"] = [a + b for a, b in zip(pos, m.values)]
    return totals


def acceptance(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two ``spec_counters`` readings, as vLLM logs it (v1/spec_decode/metrics.py):
    acceptance rate = accepted / drafted tokens; mean acceptance length = 1 + accepted / drafts (the bonus token
    counts); per-position rate = drafts whose i-th token was accepted / drafts."""
    d = {key: after[key] - before[key] for key in ("drafts", "draft_tokens", "accepted")}
    pos_before = list(before["per_position"]) + [0] * (len(after["per_position"]) - len(before["per_position"]))
    per_pos = [a - b for a, b in zip(after["per_position"], pos_before)]
    drafts = d["drafts"]
    return {**d, "acceptance_rate": d["accepted"] / d["draft_tokens"] if d["draft_tokens"] else float("nan"),
            "mean_acceptance_length": 1 + d["accepted"] / drafts if drafts else float("nan"),
            "per_position": [n / drafts for n in per_pos] if drafts else []}


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first position where two token sequences differ (one ending early counts), or None if equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
