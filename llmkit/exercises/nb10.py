"""Exercises of notebook 10 (benchmarking): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import math
from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

@exercise("10.1", "tokens/s: the batch-1 roofline of Qwen3-0.6B on an H200 (4.8 TB/s), context 0")
def _ex_10_1(answer: Any) -> str:
    """bandwidth / weight bytes read per step, for Qwen3-0.6B in bf16 with its tied embedding."""
    from llmkit.bench import QWEN3_0_6B, parameter_count, roofline

    value = number(answer)
    right = roofline(QWEN3_0_6B, 4.8e12)["tokens_per_s"]
    layers_only = 4.8e12 / (2 * parameter_count(QWEN3_0_6B)["layers"])
    if abs(value - right) <= 0.03 * right:
        return (f"{right:,.0f} tokens/s: each step reads 1.19 GB of bf16 weights (the 156 M-parameter tied embedding "
                "included, as the LM head), and 4.8 TB/s moves that about 4,000 times a second.")
    if abs(value - right * 3.35 / 4.8) <= 0.03 * right:
        raise Hint("that is the H100's figure (3.35 TB/s): use the H200's bandwidth.")
    if abs(value - layers_only) <= 0.03 * layers_only:
        raise Hint("close: Qwen3-0.6B ties its LM head to the embedding table, so the whole table is read every step.")
    if abs(value - right / 2) <= 0.03 * right or abs(value - right * 2) <= 0.06 * right:
        raise Hint("check the bytes per parameter: bf16 takes 2 bytes.")
    if value > 1e6:
        raise Hint("far too fast: tokens/s = bandwidth (bytes/s) / bytes read per step. Count every weight in bytes.")
    raise Hint("tokens/s = bandwidth / bytes read per step; bench.roofline(bench.QWEN3_0_6B, bandwidth) does the "
               "counting, or count the parameters × 2 bytes yourself.")


@exercise("10.2", "the concurrency level with the highest output tokens/s in the sweep")
def _ex_10_2(answer: Any, sweep: Any = None) -> str:
    """The level whose output_throughput is the largest."""
    rows = need("sweep", sweep)
    levels = [r["concurrency"] for r in rows]
    value = number(answer)
    if value not in levels:
        raise Hint("that level is not in the sweep: pick one from its concurrency column.")
    best = max(rows, key=lambda r: r["output_throughput"])
    if value != best["concurrency"]:
        mine = next(r for r in rows if r["concurrency"] == value)
        raise Hint(f"concurrency {int(value)} gave {mine['output_throughput']:,.0f} output tokens/s; another level "
                   "did better. Compare the output_throughput column.")
    first = rows[0]
    return (f"{best['output_throughput']:,.0f} output tokens/s, {best['output_throughput'] / first['output_throughput']:.1f}× "
            f"concurrency {first['concurrency']}'s, while p50 TPOT went from {first['p50_tpot_ms']:.1f} to "
            f"{best['p50_tpot_ms']:.1f} ms: more sequences per step, each step a little slower.")


@exercise("10.3", "the result dict of serve_bench with request_rate=4.0 and 16 requests")
def _ex_10_3(answer: Any) -> str:
    """A Poisson clock at 4 requests/s: 16 requests take about 4 s to send."""
    if not isinstance(answer, dict) or "output_throughput" not in answer:
        raise Hint("pass the dict that bench.serve_bench(...) returns.")
    if answer.get("request_rate") in ("inf", None) or (isinstance(answer.get("request_rate"), float)
                                                         and math.isinf(answer["request_rate"])):
        raise Hint("this run sent as fast as the concurrency allowed: give serve_bench a request_rate.")
    if abs(float(answer["request_rate"]) - 4.0) > 1e-9:
        raise Hint(f"request_rate was {answer['request_rate']}: the exercise asks for 4 requests per second.")
    if answer.get("num_prompts") != 16:
        raise Hint(f"{answer.get('num_prompts')} requests were sent: send 16 (prompts[:16]).")
    if answer.get("failed"):
        raise Hint(f"{answer['failed']} request(s) failed: is the server still running?")
    if answer["duration"] < 1.5:
        raise Hint(f"the run took {answer['duration']:.1f} s: at 4 requests/s, 16 requests cannot all be sent so fast.")
    return (f"16 requests in {answer['duration']:.1f} s: Poisson arrivals at 4/s spread them over about 4 s, so the "
            "server is often idle and TTFT shows no queueing; fixed concurrency would keep it busy.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    sweep = [{"concurrency": c, "output_throughput": t, "p50_tpot_ms": p}
             for c, t, p in ((1, 250.0, 4.0), (4, 780.0, 5.1), (16, 1900.0, 8.3))]

    def paced(**changes) -> dict:
        return {"output_throughput": 60.0, "request_rate": 4.0, "num_prompts": 16, "failed": 0, "duration": 4.3,
                "completed": 16, **changes}

    out = [Case("10.1", a) for a in (4026.5, 4000, "4,027")]
    out += [Case("10.1", a, passes=False) for a in (2810, 5449, 2013, 8050, 1e9, "fast")]
    out += [Case("10.2", a, context={"sweep": sweep}) for a in (16, "16")]
    out += [Case("10.2", a, passes=False, context={"sweep": sweep}) for a in (1, 4, 3, 64)]
    out += [Case("10.3", paced())]
    out += [Case("10.3", a, passes=False) for a in (paced(request_rate="inf"), paced(request_rate=2.0),
                                                    paced(num_prompts=8), paced(failed=3), paced(duration=0.4),
                                                    {"results": []}, 4.3)]
    return out
