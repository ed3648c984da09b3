"""llmkit.outputs: the real vLLM output tree and the normalized view."""

from __future__ import annotations

import math

import pytest

from llmkit import outputs

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def two_by_two(llm):
    from vllm import SamplingParams

    params = SamplingParams(temperature=1.0, n=2, max_tokens=12, logprobs=3, seed=3)
    return llm.generate(["写一首七言绝句", "写一首关于秋天的诗"], params)


def test_real_class_names_and_fields(two_by_two):
    ro = two_by_two[0]
    assert type(ro).__name__ == "RequestOutput" and type(ro.outputs[0]).__name__ == "CompletionOutput"
    for name in outputs.REQUEST_FIELDS:
        assert hasattr(ro, name)
    for name in outputs.COMPLETION_FIELDS:
        assert hasattr(ro.outputs[0], name)
    assert not hasattr(ro.outputs[0], "n_generated_tokens")


def test_normalized_view(two_by_two):
    gens = [outputs.from_vllm(ro) for ro in two_by_two]
    assert [g.prompt for g in gens] == ["写一首七言绝句", "写一首关于秋天的诗"]
    for g in gens:
        assert g.source == "vllm" and len(g.completions) == 2 and len(g.texts) == 2
        for c in g.completions:
            assert c.finish_reason in ("stop", "length")
            assert c.num_tokens == len(c.token_ids) <= 12
            assert len(c.steps) == c.num_tokens
            for step in c.steps:
                assert step.chosen.logprob <= 0
                assert [t.logprob for t in step.top] == sorted((t.logprob for t in step.top), reverse=True)
                assert 3 <= len(step.top) <= 4           # top-3, plus the sampled token if outside them
            total = sum(s.chosen.logprob for s in c.steps)
            assert math.isclose(total, c.cumulative_logprob, rel_tol=1e-3, abs_tol=1e-3)


def test_tree_text_and_html(two_by_two):
    text = outputs.tree_text(two_by_two)
    assert text.startswith("list[RequestOutput]  (2 prompts)")
    assert text.count("] CompletionOutput") == 4 and "finish_reason" in text and "prompt_token_ids" in text
    html = outputs.tree_html(two_by_two)
    assert html.count("<details") == 1 + 2 + 2 + 4     # root, 2 requests, 2 outputs lists, 4 completions
    assert "Logprob(logprob, rank, decoded_token)" in html


def test_completions_table(two_by_two):
    df = outputs.completions_table([outputs.from_vllm(ro) for ro in two_by_two])
    assert len(df) == 4 and list(df["index"]) == [0, 1, 0, 1]
