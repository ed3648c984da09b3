"""Which model the course uses, and the engine settings that fit the machine.

Notebooks never hard-code a model: they call ``default_model()``, which resolves, in order,
``$LLMKIT_MODEL``; a real hub model (``Qwen/Qwen3-0.6B``) when a GPU is present and the hub or its
cache is reachable; otherwise the embedded tiny-poet, built on first use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

from llmkit import tiny_poet

HUB_MODEL = "Qwen/Qwen3-0.6B"
CPU_KV_CACHE_BYTES = 256 * 2**20  # 256 MiB: 131,072 tokens of tiny-poet, plenty for CI
# On a GPU in small-machine mode each engine or server takes this share of the GPU, so several fit side by
# side (the course's GPU test runs three notebook streams at once on one GPU). $LLMKIT_GPU_SHARE overrides it,
# for a run whose notebooks start several engines each at the same time (notebook 13 starts four).
SMALL_GPU_SHARE = float(os.environ.get("LLMKIT_GPU_SHARE") or 0.15)


class ModelNotFound(FileNotFoundError):
    """LLMKIT_MODEL (or a model argument) points at a path that does not exist."""


def _looks_like_path(name: str) -> bool:
    """A local path rather than a hub id such as ``Qwen/Qwen3-0.6B``."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or os.path.exists(name)


def resolve_model(name: str) -> str:
    """Return ``name`` unchanged if it is a hub id, or its absolute path if it is a local folder."""
    if not _looks_like_path(name):
        return name
    path = Path(name).expanduser()
    if not path.exists():
        raise ModelNotFound(
            f"LLMKIT_MODEL points at {path}, which does not exist. Set LLMKIT_MODEL to a model folder "
            f"(with config.json) or a hub id such as {HUB_MODEL}, or unset it to use tiny-poet."
        )
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"LLMKIT_MODEL points at {path}, which has no config.json: is it a model folder?")
    return str(path.resolve())


@lru_cache(maxsize=1)
def gpu_count() -> int:
    """Number of NVIDIA GPUs visible (via nvidia-smi, so no CUDA import is needed)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def hub_cached(model_id: str) -> bool:
    """True when ``model_id`` has a complete snapshot in the local Hugging Face cache."""
    home = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    snaps = home / ("models--" + model_id.replace("/", "--")) / "snapshots"
    return any((s / "config.json").exists() for s in snaps.glob("*")) if snaps.is_dir() else False


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when huggingface.co answers on port 443 and HF_HUB_OFFLINE is not set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def default_model(hub_model: str = HUB_MODEL) -> str:
    """The model the course uses: $LLMKIT_MODEL, else a hub model on a GPU, else tiny-poet."""
    env = os.environ.get("LLMKIT_MODEL", "").strip()
    if env:
        return resolve_model(env)
    if gpu_count() > 0 and (hub_cached(hub_model) or hub_reachable()):
        return hub_model
    return str(tiny_poet.ensure(log=lambda msg: None))


def small_machine() -> bool:
    """The one switch for CI and small machines: $LLMKIT_SMALL=1, or no GPU at all."""
    flag = os.environ.get("LLMKIT_SMALL")
    if flag is not None:
        return flag not in ("0", "", "false", "False")
    return gpu_count() == 0


def llm_kwargs(**overrides) -> dict:
    """Keyword arguments for ``vllm.LLM`` that fit this machine; ``overrides`` win."""
    kw: dict = {"seed": 0}
    if small_machine():
        # Eager mode skips CUDA-graph capture; a short context keeps the KV budget small.
        kw.update(enforce_eager=True, max_model_len=1024, max_num_seqs=16)
        if gpu_count() > 0:
            kw["gpu_memory_utilization"] = SMALL_GPU_SHARE
        else:
            # On CPU, vLLM reads gpu_memory_utilization as a fraction of the NUMA node's RAM; an
            # explicit KV budget is smaller, predictable, and skips the profiling warm-up.
            kw["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    kw.update(overrides)
    return kw


def shared_gpu(engine: str = "vllm", share: float = 0.25) -> dict:
    """Memory options for one of several engines on one GPU: ``share`` of it outside small-machine mode, else none.

    ``llm_kwargs()`` and the server options leave vLLM's default (0.92 of the GPU) to an offline engine, which
    leaves no room for a server beside it; small-machine mode and CPUs already size every engine small.
    """
    if gpu_count() == 0 or small_machine():
        return {}
    return {"gpu_memory_utilization": share} if engine == "vllm" else {"mem_fraction_static": share}


def sglang_kwargs(**overrides) -> dict:
    """Keyword arguments for ``sglang.Engine`` (or ``--flags`` of its server) that fit this machine.

    ``$LLMKIT_SGLANG_ATTENTION_BACKEND`` picks the attention backend (the course's GPU test machine uses
    ``triton`` because its trimmed install lacks FA3); on your own GPU leave it unset for SGLang's default.
    """
    kw: dict = {"random_seed": 0}
    if small_machine():
        kw.update(disable_cuda_graph=True, mem_fraction_static=SMALL_GPU_SHARE, context_length=1024)
    backend = os.environ.get("LLMKIT_SGLANG_ATTENTION_BACKEND")
    if backend:
        kw["attention_backend"] = backend
    kw.update(overrides)
    return kw
