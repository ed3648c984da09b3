"""The offline engine's lifecycle: load ``vllm.LLM`` on the course model, and shut it down on time."""

from __future__ import annotations

import gc
import time

from llmkit.models import default_model, llm_kwargs


def load_llm(model: str | None = None, **overrides):
    """Create ``vllm.LLM`` for ``model`` (default: the course model) with settings that fit this machine."""
    from vllm import LLM

    t0 = time.perf_counter()
    llm = LLM(model=model or default_model(), **llm_kwargs(**overrides))
    llm.llmkit_load_seconds = time.perf_counter() - t0
    return llm


def close_llm(llm) -> None:
    """Stop the engine's worker processes and free its memory now, not at garbage collection."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
