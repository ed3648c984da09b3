"""The GPU install path, proven as far as a CPU machine can: each GPU environment's pins must resolve.

`pip install --dry-run --report` resolves requirements/gpu-vllm.txt and requirements/gpu-sglang.txt for
Linux x86_64 and CPython 3.12 (the GPU image's Python) without installing anything, and fails on any
conflict. It needs the package index (PyPI), which the course's machines reach.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pip matches manylinux tags exactly, so list every glibc level a wheel may be tagged with.
PLATFORMS = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64", "linux_x86_64"] + [
    f"manylinux_2_{n}_x86_64" for n in range(5, 40)
]


def resolve(requirements: Path, tmp_path: Path) -> dict:
    """Resolve a requirements file for Linux x86_64 / CPython 3.12; return pip's JSON report."""
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--target", str(tmp_path / "target"), "--report", str(report),
           "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
           "--abi", "none", "--only-binary=:all:", "-r", str(requirements)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    errors = "\n".join(line for line in r.stderr.splitlines() if not line.startswith("WARNING: Location"))
    assert r.returncode == 0, f"{requirements.name} does not resolve for Linux x86_64 / Python 3.12:\n{errors[-3000:]}"
    return {item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


@pytest.mark.network
@pytest.mark.parametrize("env,engine,version", [("gpu-vllm", "vllm", "0.26.0"), ("gpu-sglang", "sglang", "0.5.17")])
def test_gpu_environment_resolves(env, engine, version, tmp_path):
    got = resolve(ROOT / "requirements" / f"{env}.txt", tmp_path)
    print(f"{env}: {len(got)} packages, {engine} {got.get(engine)}, torch {got.get('torch')}, "
          f"transformers {got.get('transformers')}")
    assert got[engine] == version
    assert got["torch"] == "2.11.0", "both GPU environments must share the GPU image's torch"
    for shared in ("jupyterlab", "nbval", "ipywidgets", "requests", "openai"):
        assert shared in got, f"{shared} missing from {env}"


def test_cpu_and_gpu_pins_agree_on_the_shared_packages():
    """Every environment includes requirements/course.txt, so Jupyter and test tools match everywhere."""
    for env in ("cpu", "gpu-vllm", "gpu-sglang"):
        lines = (ROOT / "requirements" / f"{env}.txt").read_text().splitlines()
        assert "-r course.txt" in lines, env
