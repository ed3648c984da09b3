"""What TTFT, TPOT and ITL are, on one streamed request: a clock read at every chunk of one answer.

This is a teaching client, not a load generator: it sends ONE request and times it. Load is measured by the
engines' own tools (``llmkit.bench.tools``), which define the same figures over many requests:

- **TTFT**, time to first token: send → the first chunk that carries text (queueing + prefill);
- **ITL**, inter-token latency: the gaps between consecutive chunks;
- **TPOT**, time per output token: (last chunk − first chunk) / (output tokens − 1), the decode pace;
- **E2EL**, end-to-end latency: send → the last chunk.

A server that falls behind sends several tokens in one chunk; then there are fewer ITL gaps than tokens,
while TPOT, which divides by the tokens the server counted, stays right.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class StreamTiming:
    """One streamed request: when each text chunk arrived (seconds after sending) and what the server counted."""

    chunk_times: tuple[float, ...]
    output_tokens: int
    prompt_tokens: int
    text: str
    finish_reason: str | None
    cached_tokens: int | None = None  # prompt tokens served from the prefix cache, where the server reports them

    @property
    def ttft(self) -> float:
        """Time to first token (s): the arrival of the first chunk."""
        return self.chunk_times[0]

    @property
    def e2el(self) -> float:
        """End-to-end latency (s): the arrival of the last chunk."""
        return self.chunk_times[-1]

    @property
    def itl(self) -> list[float]:
        """Inter-token latencies (s): the gap before each chunk after the first."""
        return [b - a for a, b in zip(self.chunk_times, self.chunk_times[1:])]

    @property
    def tpot(self) -> float:
        """Time per output token after the first (s): (E2EL − TTFT) / (tokens − 1); NaN for a one-token answer."""
        if self.output_tokens < 2:
            return math.nan
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    def summary(self) -> dict[str, float | int]:
        """The figures in milliseconds, with the token and chunk counts."""
        itl = self.itl
        return {"output_tokens": self.output_tokens, "chunks": len(self.chunk_times), "ttft_ms": 1e3 * self.ttft,
                "tpot_ms": 1e3 * self.tpot, "mean_itl_ms": 1e3 * sum(itl) / len(itl) if itl else math.nan,
                "max_itl_ms": 1e3 * max(itl) if itl else math.nan, "e2el_ms": 1e3 * self.e2el}


def time_request(server: Any, prompt: str | Sequence[int], max_tokens: int = 64, *, model: str | None = None,
                 ignore_eos: bool = True, temperature: float = 1.0) -> StreamTiming:
    """Stream one ``/v1/completions`` request and read the clock at every chunk that carries text."""
    from llmkit.clients import openai_stream, served_model

    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    model = model or served_model(server)               # asked before the clock starts
    times: list[float] = []
    text, finish, usage = "", None, {}
    t0 = time.perf_counter()
    for chunk in openai_stream(server, prompt, model=model, max_tokens=max_tokens, temperature=temperature,
                               ignore_eos=ignore_eos, stream_options={"include_usage": True}):
        now = time.perf_counter() - t0
        if chunk.get("choices"):
            times.append(now)
            choice = chunk["choices"][0]
            text += choice.get("text") or ""
            finish = choice.get("finish_reason") or finish
        usage = chunk.get("usage") or usage
    if not times:
        raise RuntimeError("the stream ended without a single text chunk")
    details = usage.get("prompt_tokens_details") or {}   # vLLM: --enable-prompt-tokens-details; SGLang: --enable-cache-report
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return StreamTiming(tuple(times), int(usage.get("completion_tokens") or len(times)),
                        int(usage.get("prompt_tokens") or 0), text, finish,
                        None if cached is None else int(cached))
