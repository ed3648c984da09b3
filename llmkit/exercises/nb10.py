"""Exercises of notebook 10 (benchmarking): the checkers, and beside them the cases that test them.

Expected answers come from Qwen3-0.6B's published numbers with plain arithmetic (10.1, 10.2), from the rows
``vllm bench serve`` wrote (10.3), and from the raw timestamps of the timed request (10.4); never from
``llmkit.bench``'s own formulas.
"""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

# Qwen3-0.6B as published: 596,049,920 parameters (its embedding of 151,936 × 1,024 tied to the LM head),
# 28 layers with 8 KV heads of head_dim 128, in bfloat16 (2 bytes).
QWEN3_PARAMS = 596_049_920
QWEN3_LAYER_PARAMS = QWEN3_PARAMS - 151_936 * 1024 - 1024      # without the embedding and the final norm
QWEN3_KV_BYTES_PER_TOKEN = 2 * 28 * 8 * 128 * 2                # K and V × layers × KV heads × head_dim × bytes
H200_BANDWIDTH = 4.8e12


def _near(value: float, target: float, tolerance: float = 0.03) -> bool:
    """Within ``tolerance`` (a fraction) of ``target``."""
    return abs(value - target) <= tolerance * abs(target)


@exercise("10.1", "tokens/s: the batch-1 roofline of Qwen3-0.6B on an H200 (4.8 TB/s), context 0")
def _ex_10_1(answer: Any) -> str:
    """Bandwidth over the bytes one step reads: every parameter once in bf16, the tied table included."""
    value = number(answer)
    right = H200_BANDWIDTH / (2 * QWEN3_PARAMS)
    if _near(value, right):
        return (f"{right:,.0f} tokens/s: each step reads all {QWEN3_PARAMS / 1e6:.0f} M bf16 parameters "
                "(1.19 GB, the tied embedding included, since it is also the LM head), and 4.8 TB/s moves that "
                "about 4,000 times a second.")
    if _near(value, right * 3.35 / 4.8):
        raise Hint("that is the H100's figure (3.35 TB/s): use the H200's bandwidth.")
    if _near(value, H200_BANDWIDTH / (2 * QWEN3_LAYER_PARAMS)):
        raise Hint("close: Qwen3-0.6B ties its LM head to the embedding table, so the whole table is read every step.")
    if _near(value, right / 2) or _near(value, right * 2):
        raise Hint("check the bytes per parameter: bf16 takes 2 bytes.")
    if value > 1e6:
        raise Hint("far too fast: tokens/s = bandwidth (bytes/s) / bytes read per step. Count every weight in bytes.")
    raise Hint("tokens/s = bandwidth / bytes read per step; at batch 1 and context 0 that is the weights alone.")


@exercise("10.2", "a number of sequences: the knee of Qwen3-0.6B's roofline at context 4096")
def _ex_10_2(answer: Any) -> str:
    """The batch where batch × context × KV bytes per token equals the weight bytes a step reads."""
    value = number(answer)
    weights = 2 * QWEN3_PARAMS
    right = weights / (4096 * QWEN3_KV_BYTES_PER_TOKEN)
    if _near(value, right, 0.05):
        return (f"about {right:.1f} sequences: one 4096-token context is {4096 * QWEN3_KV_BYTES_PER_TOKEN / 1e6:.0f} MB "
                f"of KV cache, so {right:.1f} of them weigh as much as the {weights / 1e9:.2f} GB of weights. Four "
                "times the context of the plot moves the knee four times closer to batch 1.")
    if _near(value, weights / (1024 * QWEN3_KV_BYTES_PER_TOKEN), 0.05):
        raise Hint("that is the knee at context 1024, from the plot: the exercise asks about 4096 tokens.")
    if _near(value, right * 2, 0.05) or _near(value, right / 2, 0.05):
        raise Hint("off by two: a token stores a key AND a value per layer and KV head, 2 bytes each in bf16.")
    if _near(value, 2 * QWEN3_LAYER_PARAMS / (4096 * QWEN3_KV_BYTES_PER_TOKEN), 0.05):
        raise Hint("the tied embedding is read every step too (it is the LM head): count it in the weight bytes.")
    if value < 1:
        raise Hint("below one sequence: compare bytes with bytes (weights in bytes, KV bytes per token × 4096).")
    raise Hint("knee = weight bytes read per step / (context × KV bytes per token); bench.kv_bytes_per_token "
               "gives the second factor, or count 2 × layers × KV heads × head_dim × 2 bytes.")


@exercise("10.3", "the concurrency level with the highest output tokens/s in load_rows")
def _ex_10_3(answer: Any, sweep: Any = None) -> str:
    """The level whose output_throughput, as vllm bench serve measured it, is the largest."""
    rows = need("sweep", sweep)
    levels = [r["concurrency"] for r in rows]
    value = number(answer)
    if value not in levels:
        raise Hint("that level is not in the sweep: pick one from its concurrency column.")
    best = max(rows, key=lambda r: r["output_throughput"])
    if value != best["concurrency"]:
        mine = next(r for r in rows if r["concurrency"] == value)
        raise Hint(f"at that level vllm bench serve measured {mine['output_throughput']:,.0f} output tokens/s; "
                   "another level did better. Compare the output_throughput column.")
    first = min(rows, key=lambda r: r["concurrency"])
    return (f"{best['output_throughput']:,.0f} output tokens/s, {best['output_throughput'] / first['output_throughput']:.1f}× "
            f"concurrency {first['concurrency']}'s, while the median TPOT went from {first['median_tpot_ms']:.1f} to "
            f"{best['median_tpot_ms']:.1f} ms: more sequences per step, each step a little slower.")


@exercise("10.4", "milliseconds: the TPOT of the timed request, computed from its chunk_times and output_tokens")
def _ex_10_4(answer: Any, timing: Any = None) -> str:
    """(last chunk − first chunk) / (output tokens − 1), from the request's own clock readings."""
    one = need("timing", timing)
    times, tokens = list(one.chunk_times), int(one.output_tokens)
    value = number(answer)
    right = 1000 * (times[-1] - times[0]) / (tokens - 1)
    if _near(value, right, 0.01):
        return (f"{right:.2f} ms per token: the decode time, from the first chunk to the last, spread over the "
                f"{tokens - 1} tokens after the first. TTFT is left out: it holds the queueing and the prefill.")
    if _near(value, right / 1000, 0.01):
        raise Hint("the clock readings are in seconds: give milliseconds.")
    if _near(value, 1000 * times[-1] / tokens, 0.01) or _near(value, 1000 * times[-1] / (tokens - 1), 0.01):
        raise Hint("that spreads the whole wait, TTFT included, over the tokens: start from the first chunk instead.")
    if _near(value, 1000 * (times[-1] - times[0]) / tokens, 0.01):
        raise Hint("almost: the first token came with the first chunk, so the gap is shared by one token fewer.")
    raise Hint("TPOT = (time of the last chunk − time of the first chunk) / (output tokens − 1), in ms.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.bench import StreamTiming
    from llmkit.exercises.core import Case

    sweep = [{"concurrency": c, "output_throughput": t, "median_tpot_ms": p}
             for c, t, p in ((1, 250.0, 4.0), (4, 780.0, 5.1), (16, 1900.0, 8.3))]
    # A request of 5 tokens in 4 chunks (the server sent two tokens at once once): TPOT = (0.6 - 0.2) / 4 s.
    timing = StreamTiming((0.2, 0.3, 0.5, 0.6), 5, 8, "秋风", "length")
    out = [Case("10.1", a) for a in (4026.5, 4000, "4,027")]
    out += [Case("10.1", a, passes=False) for a in (2810, 5449, 2013, 8050, 1e9, "fast")]
    out += [Case("10.2", a) for a in (2.54, "2.5", 2.6)]
    out += [Case("10.2", a, passes=False) for a in (10.15, 5.07, 1.27, 1.88, 0.002, 40, "two")]
    out += [Case("10.3", a, context={"sweep": sweep}) for a in (16, "16")]
    out += [Case("10.3", a, passes=False, context={"sweep": sweep}) for a in (1, 4, 3, 64)]
    out += [Case("10.4", a, context={"timing": timing}) for a in (100.0, "100")]
    out += [Case("10.4", a, passes=False, context={"timing": timing}) for a in (0.1, 120, 150, 80, 7)]
    out += [Case("10.4", 100.0, passes=False)]                       # no timing passed: a hint, not a crash
    return out
