"""llmkit.spec: the expected tokens per step and speed-up (by hand), vLLM's counters read into acceptance figures
(from counter readings shaped like the engine's), the draft model (tiny-poet's sibling: same tokenizer, smaller,
its own recipe), the target/draft pairing, and the clear error on a real engine that keeps no statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import spec, tiny_poet


def test_expected_tokens_is_a_geometric_series():
    assert spec.expected_tokens(0.6, 4) == pytest.approx(1 + 0.6 + 0.36 + 0.216 + 0.1296)
    assert spec.expected_tokens(0, 7) == 1 and spec.expected_tokens(1, 3) == 4
    assert spec.expected_tokens(0.5, 0) == 1                       # no guesses: one token a step
    for bad in ((-0.1, 3), (1.2, 3), (0.5, -1)):
        with pytest.raises(ValueError, match="alpha"):
            spec.expected_tokens(*bad)


def test_speedup_needs_a_cheap_proposer_and_a_memory_bound_step():
    assert spec.speedup(0.6, 4) == pytest.approx(spec.expected_tokens(0.6, 4))       # free proposer, cheap verify
    assert spec.speedup(0.6, 3, draft_cost=0.2) == pytest.approx(spec.expected_tokens(0.6, 3) / 1.6)
    assert spec.speedup(0.0, 3, draft_cost=0.1) < 1                                    # never right: only costs
    assert all(spec.speedup(a / 10, 4, 0, verify_cost=5) <= 1 for a in range(11))     # compute-bound: never faster
    with pytest.raises(ValueError, match="costs"):
        spec.speedup(0.5, 3, draft_cost=-1)


def test_acceptance_reads_counter_deltas_as_vllm_logs_them():
    before = {"drafts": 10, "draft_tokens": 40, "accepted": 12, "per_position": [6, 4, 2, 0]}
    after = {"drafts": 30, "draft_tokens": 120, "accepted": 42, "per_position": [20, 12, 7, 3]}
    got = spec.acceptance(before, after)
    assert (got["drafts"], got["draft_tokens"], got["accepted"]) == (20, 80, 30)
    assert got["acceptance_rate"] == pytest.approx(30 / 80)
    assert got["mean_acceptance_length"] == pytest.approx(1 + 30 / 20)
    assert got["per_position"] == pytest.approx([14 / 20, 8 / 20, 5 / 20, 3 / 20])
    assert got["mean_acceptance_length"] == pytest.approx(1 + sum(got["per_position"]))
    # the first reading of a fresh engine has no per-position vector yet
    fresh = spec.acceptance({"drafts": 0, "draft_tokens": 0, "accepted": 0, "per_position": []}, after)
    assert fresh["per_position"] == pytest.approx([20 / 30, 12 / 30, 7 / 30, 3 / 30])
    none = spec.acceptance(before, before)
    assert none["drafts"] == 0 and none["per_position"] == [] and none["acceptance_rate"] != none["acceptance_rate"]


def test_first_divergence():
    assert spec.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert spec.first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert spec.first_divergence([1, 2, 3], [1, 2]) == 2 and spec.first_divergence([], [4]) == 0


def test_configs_name_vllms_fields():
    assert spec.ngram_config(k=5) == {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4,
                                      "prompt_lookup_min": 2}
    assert spec.draft_config(Path("/m/d"), k=2) == {"method": "draft_model", "model": "/m/d", "num_speculative_tokens": 2}


def test_the_draft_is_a_smaller_sibling_with_the_same_tokenizer(tiny_poet_dir):
    draft = spec.ensure_draft(log=lambda msg: None)
    assert tiny_poet.is_built(draft, spec=spec.DRAFT_SPEC) and not tiny_poet.is_built(draft)
    assert not tiny_poet.is_built(Path(tiny_poet_dir), spec=spec.DRAFT_SPEC)
    assert (draft / "tokenizer.json").read_bytes() == (Path(tiny_poet_dir) / "tokenizer.json").read_bytes()
    d_cfg, t_cfg = (json.loads((p / "config.json").read_text()) for p in (draft, Path(tiny_poet_dir)))
    assert d_cfg["vocab_size"] == t_cfg["vocab_size"] and d_cfg["num_hidden_layers"] < t_cfg["num_hidden_layers"]
    info = json.loads((draft / "build_info.json").read_text())
    assert info["name"] == spec.DRAFT_NAME and info["recipe"] == tiny_poet.recipe_hash(spec.DRAFT_SPEC) != tiny_poet.RECIPE
    assert info["parameters"] < json.loads((Path(tiny_poet_dir) / "build_info.json").read_text())["parameters"] / 4


def test_draft_pair(monkeypatch, tiny_poet_dir):
    monkeypatch.delenv("LLMKIT_DRAFT_MODEL", raising=False)
    target, draft, why = spec.draft_pair(str(tiny_poet_dir))
    assert Path(target) == Path(tiny_poet_dir) and Path(draft) == spec.draft_dir() and "sibling" in why
    assert spec.draft_pair("Qwen/Qwen3-8B")[:2] == ("Qwen/Qwen3-8B", "Qwen/Qwen3-0.6B")
    target, draft, why = spec.draft_pair("Qwen/Qwen3-0.6B")                 # no smaller sibling: the course's pair
    assert Path(target) == Path(tiny_poet_dir) and "no smaller sibling" in why
    monkeypatch.setenv("LLMKIT_DRAFT_MODEL", "/my/draft")
    assert spec.draft_pair("Qwen/Qwen3-0.6B") == ("Qwen/Qwen3-0.6B", "/my/draft", "the draft $LLMKIT_DRAFT_MODEL names")


def test_counters_need_statistics_on_a_real_engine(llm):
    # LLM(...) turns statistics off by default: the counters cannot be read, and the error says how to fix it
    with pytest.raises(RuntimeError, match="disable_log_stats=False"):
        spec.spec_counters(llm)
