"""llmkit.widgets: the sampling explorer redraws from the engine when a slider moves."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")

from llmkit.chat import chat_prompt  # noqa: E402
from llmkit.sampling import top_k_off  # noqa: E402
from llmkit.widgets import SamplingExplorer  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture()
def explorer(processed_llm):
    import matplotlib

    matplotlib.use("Agg")
    return SamplingExplorer(processed_llm, chat_prompt(processed_llm, "写一首关于秋天的诗", "《秋思》\n"),
                            samples=3, max_tokens=8)


def test_widgets_are_named_for_the_browser_test(explorer):
    import ipywidgets as w

    assert explorer.temperature.description == "temperature"
    assert (explorer.top_p.description, explorer.top_k.description) == ("top_p", "top_k")
    assert isinstance(explorer.plot, w.Output) and explorer.plot in explorer.widget.children
    assert explorer.draws == 1 and explorer.last_probs


def test_moving_temperature_redraws_from_the_engine(explorer):
    first = dict(explorer.last_probs)
    explorer.temperature.value = 0.3                      # as a user dragging the slider would
    assert explorer.draws == 2 and explorer.last_settings["temperature"] == 0.3
    assert explorer.last_probs != first
    assert max(explorer.last_probs.values()) > max(first.values())   # colder = sharper
    explorer.temperature.value = 1.8
    assert max(explorer.last_probs.values()) < max(first.values())


def test_top_k_and_top_p_sliders_cut_the_distribution(explorer):
    assert explorer.settings()["top_k"] == top_k_off()
    explorer.top_k.value = 3
    assert 3 <= len(explorer.last_probs) <= 4 and explorer.last.removed
    explorer.top_k.value = 0
    explorer.top_p.value = 0.05
    assert len(explorer.last_probs) < 20 and abs(sum(explorer.last_probs.values()) - 1) < 1e-3


def test_sample_button_generates_answers(explorer):
    explorer.sample_button.click()
    assert len(explorer.last_samples) == 3 and all(isinstance(t, str) for t in explorer.last_samples)


def test_raw_engine_is_refused(llm):
    with pytest.raises(ValueError, match="processed_logprobs"):
        SamplingExplorer(llm, "写一首七言绝句")
