"""Prefix caching: which tokens of a prompt an engine can reuse from an earlier request, and what it reports.

Both engines keep the KV cache of finished requests and reuse it when a new prompt starts with the same
tokens. They differ in the unit they reuse:

- **vLLM (automatic prefix caching)** hashes the prompt in *full blocks* (``block_size`` tokens: usually 16 on
  a GPU, 128 in the CPU build). Each block's hash covers the hash of the block before it, so a block can only
  hit if everything before it matched too; a partial last block is never cached (vllm/v1/core/kv_cache_utils.py).
- **SGLang (RadixAttention)** keeps a radix tree of tokens with pages of 1 token by default, so any shared
  prefix, token by token, can hit (sglang/srt/mem_cache/radix_cache.py).
- **Both recompute the last prompt token**, because its logits are needed to sample the first new token
  (vLLM caps a hit at ``prompt length − 1``; so does SGLang's ``_compute_max_prefix_len``).

So the tokens that can hit are::

    unit × floor(min(shared prefix, prompt length − 1) / unit)      unit = block_size (vLLM), page_size (SGLang)

``hittable_tokens`` computes it; the notebook checks it against the engines' own counters: vLLM's
``num_cached_tokens`` (offline), ``usage.prompt_tokens_details.cached_tokens`` (its server, with
``--enable-prompt-tokens-details``; SGLang's with ``--enable-cache-report``) and the ``vllm:prefix_cache_hits``
and ``vllm:prefix_cache_queries`` counters on ``/metrics``.
"""

from __future__ import annotations

import hashlib
import statistics
from typing import Any, Mapping, Sequence

# The Prometheus samples of vLLM's prefix cache (vllm/v1/metrics/loggers.py; the client adds ``_total``).
VLLM_QUERIES = "vllm:prefix_cache_queries_total"
VLLM_HITS = "vllm:prefix_cache_hits_total"
VLLM_CACHE_INFO = "vllm:cache_config_info"


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two token sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _check_unit(unit: int) -> None:
    """Refuse a block or page size that is not a positive integer."""
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
        raise ValueError(f"the block (or page) size must be a positive integer, got {unit!r}")


def hittable_tokens(prompt: Sequence[int], cached: Sequence[int] | Sequence[Sequence[int]], unit: int) -> int:
    """Tokens of ``prompt`` an engine can reuse from ``cached`` (one token sequence or several), in whole units.

    The longest prefix shared with any cached sequence, never the last prompt token, rounded down to a
    multiple of ``unit`` (vLLM's block size, SGLang's page size).
    """
    _check_unit(unit)
    seqs = [cached] if cached and isinstance(cached[0], int) else list(cached)
    shared = max((common_prefix(prompt, seq) for seq in seqs), default=0)
    reusable = min(shared, max(len(prompt) - 1, 0))
    return reusable // unit * unit


def predict_hits(prompts: Sequence[Sequence[int]], unit: int, cached: Sequence[Sequence[int]] = ()) -> list[int]:
    """``hittable_tokens`` of each prompt sent one after another, against ``cached`` and every earlier prompt.

    Assumes nothing is evicted in between (a pool much larger than the prompts).
    """
    seen = [list(seq) for seq in cached]
    hits = []
    for prompt in prompts:
        hits.append(hittable_tokens(prompt, seen, unit))
        seen.append(list(prompt))
    return hits


def block_hashes(token_ids: Sequence[int], block_size: int) -> list[str]:
    """Chained hashes of the full blocks of a token sequence (short hex), in the spirit of vLLM's block table.

    Block k's hash covers block k's tokens and the hash of block k − 1, so two prompts share block k's hash
    only if they agree on every token up to the end of block k. The partial last block gets no hash.
    """
    _check_unit(block_size)
    hashes, parent = [], ""
    for start in range(0, len(token_ids) - block_size + 1, block_size):
        block = ",".join(map(str, token_ids[start:start + block_size]))
        parent = hashlib.sha256(f"{parent}|{block}".encode()).hexdigest()[:8]
        hashes.append(parent)
    return hashes


def cached_tokens(reply: Any) -> int | None:
    """The cached prompt tokens an engine reported for one request, or None where it reported none.

    Takes a vLLM ``RequestOutput`` (``num_cached_tokens``), an ``llmkit.outputs.Generation`` or an OpenAI-style
    answer dict (``usage.prompt_tokens_details.cached_tokens``, or SGLang's native ``cached_tokens``).
    """
    if hasattr(reply, "num_cached_tokens"):
        return reply.num_cached_tokens
    usage = getattr(reply, "usage", None)
    if usage is None and isinstance(reply, Mapping):
        usage = reply.get("usage") or {}
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    value = details.get("cached_tokens") if isinstance(details, Mapping) else None
    if value is None:
        value = usage.get("cached_tokens")
    return None if value is None else int(value)


# --------------------------------------------------------------------------------------------------
# What a server says on /metrics
# --------------------------------------------------------------------------------------------------
def read_metrics(server: Any) -> str:
    """The Prometheus text a server serves at ``/metrics`` (vLLM always; SGLang with ``--enable-metrics``)."""
    import requests

    from llmkit.clients import auth_headers, base_url, raise_for_error

    resp = requests.get(base_url(server) + "/metrics", headers=auth_headers(server), timeout=30)
    raise_for_error(resp)
    return resp.text


def metric_values(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text, summed over its labels: ``{"vllm:prefix_cache_hits_total": 1536.0, ...}``."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def metric_labels(text: str, name: str) -> dict[str, str]:
    """The labels of the first sample called ``name`` (an info metric such as ``vllm:cache_config_info``)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return dict(sample.labels)
    raise KeyError(f"no sample {name!r} in this /metrics text")


def prefix_counters(text: str) -> dict[str, int]:
    """vLLM's prefix-cache counters from a ``/metrics`` text: tokens queried and tokens that hit."""
    values = metric_values(text)
    if VLLM_QUERIES not in values:
        raise KeyError(f"no {VLLM_QUERIES} in this /metrics text: is it a vLLM server?")
    return {"queries": int(values[VLLM_QUERIES]), "hits": int(values.get(VLLM_HITS, 0))}


def cache_info(text: str) -> dict[str, Any]:
    """What a vLLM server's KV cache is, from ``vllm:cache_config_info``: block size, blocks, prefix caching on."""
    labels = metric_labels(text, VLLM_CACHE_INFO)
    return {"block_size": int(labels["block_size"]), "num_blocks": int(labels["num_gpu_blocks"]),
            "enable_prefix_caching": labels.get("enable_prefix_caching") == "True",
            "hash_algo": labels.get("prefix_caching_hash_algo")}


# --------------------------------------------------------------------------------------------------
# The measurement: TTFT with a shared prefix against unique prompts
# --------------------------------------------------------------------------------------------------
def sweep_prompts(vocab_size: int, special_ids: Sequence[int], shared_len: int, suffix_len: int, repeats: int,
                  seed: int = 0) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """(the shared prefix, ``repeats`` prompts starting with it, ``repeats`` unique prompts of the same length)."""
    from llmkit.bench.workload import Workload, prompt_token_ids

    total = shared_len + suffix_len
    prefix = prompt_token_ids(Workload(1, max(shared_len, 1), 1, seed), vocab_size, special_ids)[0][:shared_len]
    suffixes = prompt_token_ids(Workload(repeats, suffix_len, 1, seed + 1), vocab_size, special_ids)
    uniques = prompt_token_ids(Workload(repeats, total, 1, seed + 2), vocab_size, special_ids)
    return prefix, [prefix + s for s in suffixes], uniques


def ttft_sweep(server: Any, shared_lengths: Sequence[int], *, suffix_len: int = 16, repeats: int = 5,
               seed: int = 0, model: str | None = None, unit: int | None = None) -> list[dict]:
    """Median TTFT of prompts that share a prefix of each length, against unique prompts of the same length.

    Per length: one request caches the prefix, then ``repeats`` prompts that start with it and ``repeats``
    unique ones are timed one at a time, interleaved (``llmkit.bench.time_request``, one token each). Token-id
    prompts, so every length is exact. ``cached`` holds what the server reported for each shared-prefix
    request (None where it reports nothing); with ``unit`` (block or page size), ``predicted`` holds what
    ``predict_hits`` expects for them, given every request this sweep sent before.
    """
    from llmkit.bench.stream import time_request
    from llmkit.bench.workload import vocabulary
    from llmkit.clients import served_model

    if suffix_len < 1 or repeats < 1:
        raise ValueError("suffix_len and repeats must be at least 1")
    served = model or served_model(server)
    vocab_size, special = vocabulary(getattr(server, "model", None) or served)
    rows, sent = [], []
    for i, length in enumerate(shared_lengths):
        prefix, shared, unique = sweep_prompts(vocab_size, sorted(special), length, suffix_len, repeats,
                                               seed + 10 * i)
        if length:
            time_request(server, prefix, max_tokens=1, model=served)              # computes and caches the prefix
            sent.append(prefix)
        hit, miss, cached, predicted = [], [], [], []
        for a, b in zip(shared, unique):
            if unit is not None:
                predicted.append(hittable_tokens(a, sent, unit) if sent else 0)
            t = time_request(server, a, max_tokens=1, model=served)
            hit.append(1e3 * t.ttft)
            cached.append(t.cached_tokens)
            miss.append(1e3 * time_request(server, b, max_tokens=1, model=served).ttft)
            sent += [a, b]
        row = {"shared_tokens": length, "prompt_tokens": length + suffix_len,
               "ttft_shared_ms": statistics.median(hit), "ttft_unique_ms": statistics.median(miss),
               "cached": cached, "shared_ms": hit, "unique_ms": miss}
        if unit is not None:
            row["predicted"] = predicted
        rows.append(row)
    return rows


def plot_ttft(series: Mapping[str, Sequence[Mapping[str, Any]]], title: str = ""):
    """TTFT against the shared prefix length: per engine a line for shared prefixes and one for unique prompts."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (name, rows) in enumerate(series.items()):
        rows = sorted(rows, key=lambda r: r["shared_tokens"])
        xs = [r["shared_tokens"] for r in rows]
        ax.plot(xs, [r["ttft_unique_ms"] for r in rows], color=f"C{i}", ls="--", marker="x",
                label=f"{name}: unique prompts (nothing to reuse)")
        ax.plot(xs, [r["ttft_shared_ms"] for r in rows], color=f"C{i}", marker="o",
                label=f"{name}: shared prefix (cached)")
    ax.set_xlabel("tokens shared with an earlier request (the rest of the prompt: unique)")
    ax.set_ylabel("time to first token, median (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "prefix caching: the shared part of a prompt is not computed again", fontsize=10)
    fig.tight_layout()
    return fig


def plot_blocks(prompt_len: int, shared_len: int, unit: int, title: str = ""):
    """One prompt as blocks of ``unit`` tokens: which can hit (full, shared, not the last token) and which cannot."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    _check_unit(unit)
    hit = hittable_tokens(list(range(prompt_len)), [list(range(shared_len))], unit)
    colors = {"reused": "#55a868", "last": "#dd8452", "new": "#4c72b0", "partial": "#bbbbbb"}
    fig, ax = plt.subplots(figsize=(9, 2.8))
    for start in range(0, prompt_len, unit):
        end = min(start + unit, prompt_len)
        if end <= hit:
            kind = "reused"
        elif end - start < unit:
            kind = "partial"                                    # the partial last block: never cached
        elif end <= shared_len:
            kind = "last"                                       # shared, but it holds the last prompt token
        else:
            kind = "new"
        ax.barh(0, end - start, left=start, height=0.6, color=colors[kind], edgecolor="white", linewidth=1.5)
    ax.axvline(shared_len, color="black", ls="--", lw=1.2)
    side = "right" if shared_len > 0.75 * prompt_len else "left" if shared_len < 0.25 * prompt_len else "center"
    ax.annotate(f"shared with an earlier request up to token {shared_len}", (shared_len, 0.32), xytext=(0, 6),
                textcoords="offset points", ha=side, fontsize=8)
    ax.set_xlim(0, prompt_len)
    ax.set_ylim(-0.45, 0.75)
    ax.set_yticks([])
    ax.set_xlabel(f"prompt tokens, in blocks of {unit}: {hit} can be reused")
    ax.legend(handles=[Patch(color=colors["reused"], label="reused: full blocks, all shared"),
                       Patch(color=colors["last"], label="shared, but holds the last token: recomputed"),
                       Patch(color=colors["new"], label="computed: not (entirely) shared"),
                       Patch(color=colors["partial"], label="partial last block: never cached")],
              loc="upper center", bbox_to_anchor=(0.5, -0.42), ncol=2, fontsize=8, frameon=False)
    ax.set_title(title or f"a {prompt_len}-token prompt sharing {shared_len} tokens", fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.97, top=0.85, bottom=0.42)
    return fig
