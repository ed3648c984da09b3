"""llmkit.logprobs: probabilities, tables, labels and charts from vLLM's {token_id: Logprob} dicts."""

from __future__ import annotations

import math

import pytest

from llmkit import logprobs as L

vllm_logprobs = pytest.importorskip("vllm.logprobs", reason="vLLM is not installed in this environment")
Logprob = vllm_logprobs.Logprob


def position(*entries: tuple[int, float, int, str]) -> dict:
    """A fake position dict {token_id: Logprob(logprob, rank, decoded_token)}."""
    return {tid: Logprob(lp, rank, text) for tid, lp, rank, text in entries}


class FakeCompletion:
    """The two fields of a CompletionOutput that the helpers read."""

    def __init__(self, token_ids, logprobs):
        self.token_ids, self.logprobs = token_ids, logprobs


POS = position((7, math.log(0.6), 1, "秋"), (8, math.log(0.3), 2, "风"), (9, math.log(0.01), 22, "\n"))


def test_to_prob_and_perplexity():
    assert L.to_prob(0.0) == 1.0 and L.to_prob(float("-inf")) == 0.0
    assert math.isclose(L.to_prob(math.log(0.25)), 0.25)
    assert math.isclose(L.perplexity([math.log(0.25)] * 4), 4.0)      # four equally likely choices
    with pytest.raises(ValueError):
        L.perplexity([])


def test_candidates_sorted_and_distribution_splits_cut_tokens():
    cut = {**POS, 5: Logprob(float("-inf"), 4, "x")}
    assert [c.token_id for c in L.candidates(cut)] == [7, 8, 9, 5]
    d = L.distribution(cut, sampled_id=9, settings={"top_k": 3})
    assert d.token_ids() == [7, 8, 9] and [c.token_id for c in d.removed] == [5]
    assert d.sampled.rank == 22 and math.isclose(d.prob(8), 0.3) and d.prob(12345) == 0.0
    assert d.complete() and d.status(5) == "cut" and d.status(12345) == "cut" and d.status(7) == "kept"
    open_ended = L.distribution(POS)                                   # mass 0.91, nothing cut: tail unknown
    assert not open_ended.complete() and open_ended.status(12345) == "unknown"
    assert math.isclose(open_ended.shown_mass(), 0.91) and open_ended.text(8) == "风"
    frame = L.distribution_frame(d)
    assert list(frame["token_id"]) == [7, 8, 9] and frame["sampled"].tolist() == [False, False, True]


def test_chosen_logprobs_ranks_and_top_table():
    comp = FakeCompletion([8, 9], [POS, POS])
    assert L.chosen_logprobs(comp) == [math.log(0.3), math.log(0.01)]
    assert L.chosen_ranks(comp) == [2, 22]
    table = L.top_table(comp, k=2)
    assert list(table.columns) == ["pos", "chosen", "prob", "rank", "top1", "top2"]
    assert table["rank"].tolist() == [2, 22] and table.loc[0, "top1"].startswith("'秋'")
    with pytest.raises(ValueError, match="logprobs=k"):
        L.chosen_logprobs(FakeCompletion([1], None))


def test_position_table_marks_chosen():
    table = L.position_table(POS, chosen_id=9)
    assert table["token_id"].tolist() == [7, 8, 9] and table["chosen"].tolist() == [False, False, True]
    assert math.isclose(table["prob"].sum(), 0.91)


def test_token_label_escapes_what_no_font_draws(monkeypatch):
    monkeypatch.setattr(L, "cjk_font", lambda: None)
    L._covered.cache_clear()
    assert L.token_label("秋", 7) == "\\u79cb #7"
    assert L.token_label("a\n") == "a\\n" and L.token_label(" ") == "␣" and L.token_label("", 3) == "#3"
    L._covered.cache_clear()


def test_chart_text_escapes_titles_without_a_cjk_font(monkeypatch):
    monkeypatch.setattr(L, "cjk_font", lambda: None)
    L._covered.cache_clear()
    assert L.chart_text("after 秋, T=0.5") == "after \\u79cb, T=0.5"
    L._covered.cache_clear()


def test_token_label_keeps_characters_a_cjk_font_draws(monkeypatch):
    monkeypatch.setattr(L, "font_families", lambda: ["DejaVu Sans", "Fake CJK"])
    monkeypatch.setattr(L, "_covered", lambda families: frozenset(map(ord, "abc秋")))
    assert L.token_label("秋", 7) == "秋 #7" and L.token_label("风") == "\\u98ce"


def test_charts_hold_the_probabilities(recwarn, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(L, "cjk_font", lambda: None)     # as on a machine without Chinese fonts
    L._covered.cache_clear()
    before = L.distribution(POS)
    after = L.distribution({7: Logprob(math.log(0.7), 1, "秋"), 8: Logprob(math.log(0.3), 2, "风"),
                            9: Logprob(float("-inf"), 3, "\n")})
    ax = L.plot_before_after(before, after, n=3, highlight=[8], title="秋 before and after")
    ax.figure.canvas.draw()                              # glyphs are looked up when drawing
    assert ax.get_title() == "\\u79cb before and after"
    heights = [round(p.get_height(), 3) for p in ax.patches]
    assert heights == [0.6, 0.3, 0.01, 0.7, 0.3, 0.0]
    assert [t.get_color() for t in ax.get_xticklabels()][1] == "tab:red"
    fig = L.plot_grid(before, {"a": after, "b": before}, n=3)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    ax2 = L.plot_distribution(after, n=5)
    assert len(ax2.patches) == 2                                    # the cut token has no bar
    comp = FakeCompletion([8, 9], [POS, POS])
    probs, labels, ranks = L.heatmap_data(comp, k=2)
    assert probs.shape == (2, 2) and ranks == [2, 22] and math.isclose(probs[0, 0], 0.6)
    L.plot_heatmap(comp, k=2, title="写一首关于秋天的诗").canvas.draw()
    plt.close("all")
    L._covered.cache_clear()
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


@pytest.mark.engine
def test_real_logprobs_sum_to_cumulative_and_prompt_table(llm):
    from vllm import SamplingParams

    out = llm.generate(["写一首关于秋天的诗"], SamplingParams(temperature=1.0, max_tokens=12, logprobs=5,
                                                      prompt_logprobs=3, seed=1), use_tqdm=False)[0]
    comp = out.outputs[0]
    chosen = L.chosen_logprobs(comp)
    assert len(chosen) == len(comp.token_ids) and all(lp <= 0 for lp in chosen)
    assert math.isclose(sum(chosen), comp.cumulative_logprob, rel_tol=1e-4, abs_tol=1e-4)
    assert L.perplexity(chosen) >= 1.0
    assert all(5 <= len(p) <= 6 for p in comp.logprobs)
    prompt = L.prompt_table(out)
    assert out.prompt_logprobs[0] is None and len(prompt) == len(out.prompt_token_ids)
    assert prompt["logprob"].isna().tolist() == [True] + [False] * (len(prompt) - 1)
    assert prompt["rank"].iloc[1:].ge(1).all()
    fig = L.plot_prompt_logprobs(out)
    assert len(fig.axes[0].patches) == len(out.prompt_token_ids) - 1     # no bar for the first token
    top = L.top_table(comp, k=5)
    assert len(top) == len(comp.token_ids) and "top5" in top.columns


@pytest.mark.network
def test_fetch_cjk_font_makes_charts_draw_chinese(tmp_path, monkeypatch):
    import shutil

    if not shutil.which("apt-get"):
        pytest.skip("needs apt-get (Debian or Ubuntu)")
    from matplotlib import font_manager

    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    L.cjk_font.cache_clear()
    L._covered.cache_clear()
    try:
        path = L.fetch_cjk_font(log=lambda m: None)
        assert path is not None and path.parent == tmp_path / "fonts" and path.stat().st_size > 1_000_000
        assert L.cjk_font() is not None and L.token_label("秋", 7) == "秋 #7"
    finally:  # forget the temporary font again, so later tests do not draw with a deleted file
        manager = font_manager.fontManager
        manager.ttflist = [f for f in manager.ttflist if not f.fname.startswith(str(tmp_path))]
        manager._findfont_cached.cache_clear()
        L.cjk_font.cache_clear()
        L._covered.cache_clear()
