"""Test-suite wiring shared by unit tests and nbval notebook runs.

Each notebook may declare what it needs in its metadata, e.g. ``"llmkit": {"needs": ["sglang"]}``
(or ``"gpu"``, or ``"gpus:2"``). Where this machine lacks it, the notebook is skipped with the reason,
never faked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def notebook_needs(path: Path) -> list[str]:
    """The ``needs`` list of a notebook's llmkit metadata."""
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return list(meta.get("llmkit", {}).get("needs", []))


def skip_reason(needs: list[str]) -> str | None:
    """Why a notebook with these needs cannot run here; None when it can."""
    from llmkit.models import gpu_count
    from llmkit.system import sglang_unavailable

    for need in needs:
        if need == "sglang" and (why := sglang_unavailable()):
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
