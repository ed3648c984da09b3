"""Test-suite wiring shared by unit tests and nbval notebook runs.

Each notebook may declare what it needs in its metadata, e.g. ``"llmkit": {"needs": ["sglang"]}``
(or ``"gpu"``, or ``"gpus:2"``). Where this machine lacks it, the notebook is skipped with the reason,
never faked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def notebook_needs(path: Path) -> list[str]:
    """The ``needs`` list of a notebook's llmkit metadata."""
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return list(meta.get("llmkit", {}).get("needs", []))


def skip_reason(needs: list[str]) -> str | None:
    """Why a notebook with these needs cannot run here; None when it can."""
    from llmkit.models import gpu_count
    from llmkit.system import sglang_server_unavailable, sglang_unavailable

    for need in needs:
        if need == "sglang" and (why := sglang_unavailable()):
            return why
        if need == "sglang-server" and (why := sglang_server_unavailable()):
            return why
        if need == "gpu" and gpu_count() == 0:
            return "needs an NVIDIA GPU; this machine has none"
        if need.startswith("gpus:") and gpu_count() < int(need.split(":")[1]):
            return f"needs {need.split(':')[1]} NVIDIA GPUs; this machine has {gpu_count()}"
    return None


def pytest_collection_modifyitems(config, items):
    """Skip notebook cells whose notebook needs what this machine lacks (the reason is shown by -rs)."""
    cache: dict[Path, str | None] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            continue
        if path not in cache:
            cache[path] = skip_reason(notebook_needs(path))
        if cache[path]:
            item.add_marker(pytest.mark.skip(reason=f"{path.name}: {cache[path]}"))


def pytest_configure(config):
    """Start notebook kernels without pytest's variables, so they behave as they do in JupyterLab.

    ipykernel stops forwarding process-level stdout/stderr when it sees PYTEST_CURRENT_TEST, and
    vLLM's GPU engine process then fails to start inside the kernel ("Engine core initialization
    failed"; seen on an H100 with vllm 0.26.0 under nbval, not with the CPU build).
    """
    try:
        import nbval.kernel as nbval_kernel
    except ImportError:
        return
    original = nbval_kernel.start_new_kernel

    def start_without_pytest_env(*args, **kwargs):
        kwargs.setdefault("env", {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
        return original(*args, **kwargs)

    nbval_kernel.start_new_kernel = start_without_pytest_env


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With LLMKIT_NB_OUTPUT_DIR set, keep each notebook cell's printed text in DIR/<notebook>.txt.

    nbval discards what cells print; this keeps it, so a run on another machine (the GPU run in
    docs/gpu-run.md) can report the figures the notebooks computed.
    """
    yield
    out_dir = os.environ.get("LLMKIT_NB_OUTPUT_DIR")
    if not out_dir or call.when != "call" or getattr(item, "test_outputs", None) is None:
        return
    text = []
    for out in item.test_outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            text.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            text.append(str(out["data"]["text/plain"]))
    if text:
        path = Path(out_dir) / (Path(str(item.fspath)).stem + ".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(f"--- {item.name}\n" + "".join(t if t.endswith("\n") else t + "\n" for t in text))
