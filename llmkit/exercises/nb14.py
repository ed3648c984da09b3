"""Exercises of notebook 14 (prefix caching): the checkers, and beside them the cases that test them.

Expected answers come from the reuse rule worked out here with plain arithmetic (14.1, 14.2), from the server's
own ``/metrics`` text read with a regular expression (14.3), and from the sweep's measured medians (14.4);
never from ``llmkit.prefix``, the module the lesson teaches.
"""

from __future__ import annotations

import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, need, number


def _reusable(prompt_len: int, shared: int, unit: int) -> int:
    """Full units of the shared part, the last prompt token never among them."""
    return min(shared, prompt_len - 1) // unit * unit


@exercise("14.1", "tokens that can hit: a number (vLLM's CPU build), or a pair (vLLM CPU, SGLang)")
def _ex_14_1(answer: Any) -> str:
    """A 2000-token prompt whose first 1500 tokens an earlier request had: vLLM CPU (block 128), SGLang (page 1)."""
    vllm_cpu, sglang = _reusable(2000, 1500, 128), _reusable(2000, 1500, 1)
    pair = isinstance(answer, (list, tuple))
    first = number(answer[0] if pair else answer)
    if first != vllm_cpu:
        if first == 1500:
            raise Hint("that is SGLang's answer, token by token. vLLM only reuses whole blocks: how many full "
                       "blocks of 128 fit in the shared part?")
        if first == 1536:
            raise Hint("you rounded up: the sixth block is only partly shared, and a block hits only if every "
                       "one of its tokens matches.")
        if first in (2000, 1999):
            raise Hint("only the shared part can come from the cache; the other tokens are new to the engine.")
        if first % 128:
            raise Hint("vLLM's CPU build reuses whole blocks of 128 tokens: the answer is a multiple of 128.")
        raise Hint("count the full 128-token blocks inside the shared tokens.")
    if pair and len(answer) > 1 and number(answer[1]) != sglang:
        raise Hint("vLLM's number is right. SGLang's radix tree shares pages of one token: how much of the shared "
                   "part can it reuse, given that the last prompt token is always recomputed (it is not shared here)?")
    return ("eleven full blocks: 11 × 128 = 1408 tokens. The twelfth block is only partly shared, so its hash "
            "differs and it is computed again. SGLang, with pages of one token, reuses all 1500. On a GPU, with "
            "blocks of 16, vLLM would reuse 1488.")


@exercise("14.2", "a number of tokens: what the second of two identical 512-token prompts finds in the cache")
def _ex_14_2(answer: Any, block_size: Any = None) -> str:
    """The same 512-token prompt twice: everything is shared, but the last token must be computed."""
    block = int(number(need("block_size", block_size)))
    right = _reusable(512, 512, block)
    value = number(answer)
    if value == right:
        return (f"{right} tokens: 511 are reusable (the last one must be computed to get the logits of the next "
                f"token), and in whole blocks of {block} that is {right}. The block holding the last token is "
                "computed again, all of it.")
    if value == 512:
        raise Hint("not quite all: the engine must run the model on at least one prompt token to get the "
                   "distribution of the first new token.")
    if value == 511:
        raise Hint("that would be right token by token (SGLang). vLLM reuses whole blocks only: which blocks lie "
                   "entirely inside the first 511 tokens?")
    if value % block:
        raise Hint(f"this server reuses whole blocks of {block} tokens: the answer is a multiple of {block}.")
    raise Hint("the reusable part is at most prompt length − 1 tokens, rounded down to whole blocks.")


_SAMPLE = r"^{name}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$"


def _counter(text: str, name: str) -> float:
    """A Prometheus counter summed over its labels, read with a regular expression."""
    return sum(float(v) for v in re.findall(_SAMPLE.format(name=re.escape(name)), text, re.M))


@exercise("14.3", "a fraction between 0 and 1: the server's prefix-cache hit rate so far, from /metrics")
def _ex_14_3(answer: Any, metrics: Any = None) -> str:
    """Tokens that hit over tokens looked up, from the server's own counters."""
    text = str(need("metrics", metrics))
    queries = _counter(text, "vllm:prefix_cache_queries_total")
    hits = _counter(text, "vllm:prefix_cache_hits_total")
    if not queries:
        raise Hint("this /metrics text has no vllm:prefix_cache_queries_total: pass metrics= the server's text.")
    right = hits / queries
    value = number(answer)
    if abs(value - right) <= 0.005:
        return (f"{hits:,.0f} of {queries:,.0f} prompt tokens came from the cache ({right:.1%}). vLLM counts both "
                "in tokens: queries are the prompt tokens it looked up, hits the ones it found.")
    if abs(value - 100 * right) <= 0.5:
        raise Hint("give a fraction between 0 and 1, not a percentage.")
    if queries > hits and abs(value - hits / (queries - hits)) <= 0.005:
        raise Hint("divide by every token looked up (the queries), not by the misses.")
    if value > 1:
        raise Hint("a hit rate cannot exceed 1: hits are a part of the queries.")
    raise Hint("read vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total from the text, and divide.")


@exercise("14.4", "a ratio: how many times faster the first token came with the shared prefix, at the longest length")
def _ex_14_4(answer: Any, rows: Any = None) -> str:
    """Median TTFT of unique prompts over median TTFT with the shared prefix, at the sweep's longest prefix."""
    table = need("rows", rows)
    longest = max(table, key=lambda r: r["shared_tokens"])
    right = longest["ttft_unique_ms"] / longest["ttft_shared_ms"]
    value = number(answer)
    if abs(value - right) <= 0.01 * right:
        return (f"{right:.1f}× at {longest['shared_tokens']} shared tokens: the cached request only computes its "
                f"own {longest['prompt_tokens'] - longest['shared_tokens']} tokens (and the last shared block's "
                "remainder), the other one all of them.")
    if right and abs(value - 1 / right) <= 0.01 / right:
        raise Hint("upside down: divide the slower time (unique prompts) by the faster one.")
    shortest = min(table, key=lambda r: r["shared_tokens"])
    if shortest["ttft_shared_ms"] and abs(value - shortest["ttft_unique_ms"] / shortest["ttft_shared_ms"]) <= 0.01 * value:
        raise Hint("that is the shortest prefix's ratio: take the row with the most shared tokens.")
    raise Hint("in the sweep's row with the most shared tokens, divide ttft_unique_ms by ttft_shared_ms.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    metrics = ('vllm:prefix_cache_queries_total{engine="0",model_name="m"} 4000.0\n'
               'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 1000.0\n')
    rows = [{"shared_tokens": 128, "prompt_tokens": 144, "ttft_shared_ms": 10.0, "ttft_unique_ms": 12.0},
            {"shared_tokens": 1024, "prompt_tokens": 1040, "ttft_shared_ms": 16.0, "ttft_unique_ms": 80.0}]
    out = [Case("14.1", a) for a in (1408, "1,408", (1408, 1500), [1408, 1500])]
    out += [Case("14.1", a, passes=False) for a in (1500, 1536, 2000, 1400, 1280, (1408, 1408), (1408, 1499))]
    out += [Case("14.2", 384, context={"block_size": 128}), Case("14.2", 496, context={"block_size": 16})]
    out += [Case("14.2", a, passes=False, context={"block_size": 128}) for a in (512, 511, 500, 256)]
    out += [Case("14.2", 496, passes=False, context={"block_size": 128})]
    out += [Case("14.2", 384, passes=False)]                          # no block size passed: a hint, not a crash
    out += [Case("14.3", a, context={"metrics": metrics}) for a in (0.25, "0.25", 0.252)]
    out += [Case("14.3", a, passes=False, context={"metrics": metrics}) for a in (25, 0.333, 4, 0.75)]
    out += [Case("14.3", 0.25, passes=False, context={"metrics": "# nothing\n"})]
    out += [Case("14.4", a, context={"rows": rows}) for a in (5.0, "5", 5.02)]
    out += [Case("14.4", a, passes=False, context={"rows": rows}) for a in (0.2, 1.2, 64, 3)]
    return out
