"""The lessons on models the course never trained: notebooks 00-04 and 06 under nbval on random-weight models of
other architectures (llmkit.random_models.MATRIX: Llama, Mistral, Qwen2, Qwen3, Gemma; GQA and MQA; head_dim 64,
128 and 256; tied and untied embeddings; configs with only ``torch_dtype`` or only ``dtype``; a model whose two
top tokens tie exactly).

A learner's model differs from tiny-poet in all of these ways, and a random-weight model also has a nearly flat
next-token distribution and may never write a line break: every self-check and hidden solution must hold anyway.
Each notebook runs on one of the models, the one whose quirk it meets (so the whole matrix stays inside CI's
time), with ``LLMKIT_MODEL`` pointing at the model, exactly as a learner would run it. Set
``LLMKIT_ARCH_MATRIX=0`` to leave the matrix out of a quick local run; CI runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# model → the notebook it runs: each of 00-04 and 06 once, on the architecture where it bites, so the matrix stays
# inside CI's time (one engine start per model; tests/test_arch_matrix.py checks every model's KV pool as well):
# a sliding window and a derived head_dim (mistral: 06's KV maths and refusal), the thinking template (qwen3: 01),
# exact ties (tied-top: 04's top-k and top-p), a byte-level tokenizer (qwen2: 02), MQA with head_dim 256 (gemma: 03).
PLAN = {
    "llama-gqa": ["00_setup_check"],
    "mistral-gqa": ["06_engine_parameters"],
    "qwen2-tied": ["02_output_tree"],
    "qwen3-hd128": ["01_vllm_quickstart"],
    "gemma-mqa": ["03_logprobs"],
    "llama-tied-top": ["04_sampling"],
}

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(os.environ.get("LLMKIT_ARCH_MATRIX", "1") in ("0", "false", "False"),
                       reason="LLMKIT_ARCH_MATRIX=0: the architecture matrix is left out of this run"),
]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, tiny_poet_dir):
    """Every model of the plan, built once (seconds each) with tiny-poet's tokenizer."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.random_models import build_matrix

    return build_matrix(tmp_path_factory.mktemp("arch"), base=tiny_poet_dir, names=list(PLAN))


def test_the_plan_covers_every_notebook():
    """00-04 and 06 each run on another architecture, and every model of the matrix is used."""
    from llmkit.random_models import MATRIX

    runs = [nb for notebooks in PLAN.values() for nb in notebooks]
    for nb in ("00_setup_check", "01_vllm_quickstart", "02_output_tree", "03_logprobs", "04_sampling",
               "06_engine_parameters"):
        assert runs.count(nb) >= 1, nb
        assert (ROOT / "notebooks" / f"{nb}.ipynb").is_file(), nb
    assert set(PLAN) == set(MATRIX)


@pytest.mark.parametrize("name", sorted(PLAN))
def test_notebooks_pass_on_the_architecture(name, matrix, tmp_path):
    """nbval of the planned notebooks with LLMKIT_MODEL set to the random-weight model."""
    notebooks = [str(ROOT / "notebooks" / f"{nb}.ipynb") for nb in PLAN[name]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(LLMKIT_MODEL=str(matrix[name]), PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    log = tmp_path / "nbval.log"
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                               "--nbval-cell-timeout=600", *notebooks], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=1800)
    text = log.read_text(encoding="utf-8", errors="replace")
    summary = [line for line in text.splitlines() if " passed" in line or " failed" in line]
    print(f"{name}: {summary[-1] if summary else 'no summary'}")
    assert done.returncode == 0, f"{name} ({', '.join(PLAN[name])}) failed:\n" + "\n".join(text.splitlines()[-80:])
