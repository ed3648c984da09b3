"""Sampling settings: named presets, version differences, and the next-token distribution as the engine
itself computes it under given settings.

Every picture of a sampling transform in the course comes from vLLM's own numbers: an engine started
with ``logprobs_mode="processed_logprobs"`` returns, with ``logprobs=k``, the distribution it really
sampled from (after penalties, temperature, min_p, top-k and top-p). ``next_token_distribution``
asks for exactly one token and returns that distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from llmkit.logprobs import Distribution, distribution

# Settings under which processed and raw logprobs are the same distribution.
NEUTRAL = {"temperature": 1.0, "top_p": 1.0, "min_p": 0.0, "repetition_penalty": 1.0,
           "presence_penalty": 0.0, "frequency_penalty": 0.0}
TRANSFORMS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
              "frequency_penalty")


@dataclass(frozen=True)
class Preset:
    """A named set of ``SamplingParams`` keyword arguments, with what it is for and why."""

    name: str
    params: dict
    use_for: str
    why: str


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("greedy", {"temperature": 0.0},
           "tests, extraction, answers that must be reproducible",
           "always the most likely token: deterministic, so n must be 1; can loop on repeated phrases"),
    Preset("precise", {"temperature": 0.3, "top_p": 0.9},
           "factual answers, code, summaries",
           "a sharpened distribution with the unlikely tail cut: close to greedy, but not stuck in loops"),
    Preset("balanced", {"temperature": 0.7, "top_p": 0.9},
           "everyday chat (close to many models' generation_config defaults)",
           "keeps the model's preferences but allows variety; top_p removes the long tail of nonsense"),
    Preset("creative", {"temperature": 1.0, "top_p": 0.95, "min_p": 0.05},
           "poems, brainstorming, many different samples",
           "the model's own distribution, minus tokens under 5% of the favourite's probability (min_p)"),
)}


def preset(name: str, **overrides: Any) -> dict:
    """The SamplingParams kwargs of a named preset (greedy, precise, balanced, creative), ``overrides`` win."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {**PRESETS[name].params, **overrides}


def presets_table():
    """A pandas DataFrame of the presets: name, settings, use for, why."""
    import pandas as pd

    return pd.DataFrame([{"preset": p.name, "settings": ", ".join(f"{k}={v}" for k, v in p.params.items()),
                          "use for": p.use_for, "why": p.why} for p in PRESETS.values()])


# --- version differences --------------------------------------------------------------------------

def vllm_version() -> str:
    """The installed vLLM version string (e.g. ``0.32.0``)."""
    import vllm

    return vllm.__version__


def top_k_off() -> int:
    """The ``top_k`` that disables top-k in the installed vLLM: its own default (0 now, -1 in old versions)."""
    from vllm import SamplingParams

    return SamplingParams().top_k


def sampling_errors() -> tuple[type[BaseException], ...]:
    """Exception types vLLM raises for invalid SamplingParams (ValueError, or VLLMValidationError in new versions)."""
    errors: list[type[BaseException]] = [ValueError]
    try:
        from vllm.exceptions import VLLMValidationError

        errors.append(VLLMValidationError)
    except ImportError:
        pass
    return tuple(errors)


# --- the engine's own distribution ----------------------------------------------------------------

def logprobs_mode(llm: Any) -> str:
    """The engine's ``logprobs_mode`` ("raw_logprobs", "processed_logprobs", ...), read from its model config."""
    for owner in (llm, getattr(llm, "llm_engine", None)):
        config = getattr(owner, "model_config", None)
        if config is None:
            config = getattr(getattr(owner, "vllm_config", None), "model_config", None)
        mode = getattr(config, "logprobs_mode", None)
        if mode is not None:
            return str(getattr(mode, "value", mode))
    return "raw_logprobs"


def next_token_distribution(llm: Any, prompt: str | dict, k: int = 20, seed: int | None = 0,
                            **settings: Any) -> Distribution:
    """The next-token distribution the engine samples from under ``settings`` (one token, ``logprobs=k``).

    Needs an engine with ``logprobs_mode="processed_logprobs"`` when ``settings`` change anything;
    a raw engine would return the same numbers whatever the settings, so that is an error.
    """
    from vllm import SamplingParams

    mode = logprobs_mode(llm)
    changes = {key: v for key, v in settings.items() if key in TRANSFORMS and NEUTRAL.get(key, top_k_off()) != v
               and not (key == "top_k" and v in (0, -1))}
    if changes and not mode.startswith("processed"):
        raise ValueError(
            f"this engine has logprobs_mode={mode!r}: its logprobs ignore {', '.join(changes)}. Start it with "
            "logprobs_mode='processed_logprobs' to see the distribution after the sampling transforms.")
    if settings.get("top_k") in (0, -1):
        settings = {**settings, "top_k": top_k_off()}
    params = SamplingParams(max_tokens=1, logprobs=k, seed=seed, **settings)
    out = llm.generate([prompt], params, use_tqdm=False)[0].outputs[0]
    return distribution(out.logprobs[0], out.token_ids[0], settings, mode)


def repeat_fraction(token_ids: Sequence[int]) -> float:
    """Share of tokens that already occurred earlier in the same sequence (0 = no repeats)."""
    if not token_ids:
        return 0.0
    seen: set[int] = set()
    repeats = 0
    for t in token_ids:
        repeats += t in seen
        seen.add(t)
    return repeats / len(token_ids)


def mean_repeat_fraction(request_outputs: Sequence[Any]) -> float:
    """Average ``repeat_fraction`` over every sample of every ``RequestOutput``."""
    values = [repeat_fraction(list(c.token_ids)) for ro in request_outputs for c in ro.outputs]
    return sum(values) / len(values)
