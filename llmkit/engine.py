"""The offline engine's lifecycle: load ``vllm.LLM`` on the course model, shut it down on time, and try a
start in a child process to see whether (and why) vLLM refuses a configuration."""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from typing import Any

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


def config_refusal(model: str | None = None, **options) -> str | None:
    """vLLM's verdict on engine options that it checks while building its config: the error, or None.

    Builds only ``EngineArgs(...).create_engine_config()``, in this process: no weights are loaded and
    no engine starts, so it takes about a second. Limits that need the loaded model (the KV pool) are
    checked later; ``engine_refusal`` covers those.
    """
    from vllm.engine.arg_utils import EngineArgs

    try:
        EngineArgs(model=model or default_model(), **options).create_engine_config()
    except Exception as err:  # pydantic wraps the ValueError of the check
        text = str(err)
        return text.split("Value error, ", 1)[1].split(" [type=", 1)[0] if "Value error, " in text else text
    return None


ANSI = re.compile(r"\x1b\[[0-9;]*m")
ROOT_CAUSE = re.compile(r"^(?:\(\w+ pid=\d+\) )?(?:ERROR [^]]*\] )?(\w*(?:Error|Exception): .+)$")


def root_cause(log: str) -> str | None:
    """The last error line of an engine's start-up log that is not one of the wrappers around the real error."""
    log = ANSI.sub("", log)       # vLLM colours its log when it thinks a terminal reads it (a Jupyter kernel's child)
    causes = [m.group(1) for line in log.splitlines() if (m := ROOT_CAUSE.match(line.strip()))]
    # the wrappers around the real error: the engine core's and (multiprocess executor) the worker's
    generic = ("Engine core initialization failed", "WorkerProc initialization failed")
    return ([c for c in causes if not any(g in c for g in generic)] or causes or [None])[-1]


def engine_refusal(model: str | None = None, timeout: float = 600, **overrides) -> str | None:
    """Start ``vllm.LLM`` in a child process: None if it starts, else the root-cause error line it printed.

    ``LLM(...)`` itself only raises "Engine core initialization failed. See root cause above." The real
    reason (a ``ValueError`` from the engine process) is in the output; this returns that line.
    """
    from llmkit.lifecycle import run_group

    options = json.dumps(overrides)
    done = run_group([sys.executable, "-m", "llmkit.engine", "try", model or default_model(), options], timeout)
    if done.returncode == 0 and "LLMKIT-ENGINE-STARTED" in done.stdout:
        return None
    cause = root_cause(done.stdout)
    return cause or f"exit {done.returncode}: " + "\n".join(done.stdout.splitlines()[-5:])


def engine_case(model: str, **options: Any) -> tuple[Any, str | None, float]:
    """Start ``vllm.LLM`` with these options: (the engine, None, seconds), or (None, the build's error, seconds).

    ``LLM(...)`` only raises "Engine core initialization failed"; on a failure the same options are started once
    more in a child process (``llmkit.engine.engine_refusal``) to read the root cause the engine printed.
    """
    t0 = time.perf_counter()
    try:
        llm = load_llm(model, **options)
    except Exception as err:  # noqa: BLE001 - any refusal is the lesson's data
        cause = engine_refusal(model, **options) or f"{type(err).__name__}: {err}"
        return None, cause, time.perf_counter() - t0
    return llm, None, time.perf_counter() - t0


def _try_start(model: str, options: str) -> int:
    """The child of ``engine_refusal``: start the engine with these options, say so, and close it."""
    llm = load_llm(model, **json.loads(options))
    print("LLMKIT-ENGINE-STARTED", flush=True)
    close_llm(llm)
    return 0


if __name__ == "__main__":  # vLLM spawns its engine process: the guard is required
    if sys.argv[1:2] == ["try"] and len(sys.argv) == 4:
        sys.exit(_try_start(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m llmkit.engine try MODEL OPTIONS_JSON")
