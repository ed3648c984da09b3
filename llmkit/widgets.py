"""An ipywidgets explorer for sampling settings, drawn from the engine's own numbers.

Sliders for temperature, top_p and top_k redraw the next-token distribution (asked from a vLLM engine
started with ``logprobs_mode="processed_logprobs"``); the **Sample** button generates a few short
answers under the same settings. The state is inspectable (``last_probs``, ``last_settings``,
``draws``, ``last_samples``), so tests and browser checks can move a slider and see the plot change.
"""

from __future__ import annotations

import html
from typing import Any

from llmkit.logprobs import Distribution, plot_before_after
from llmkit.sampling import logprobs_mode, next_token_distribution, top_k_off


class SamplingExplorer:
    """Sliders (temperature, top_p, top_k) over the engine's next-token distribution, plus a Sample button."""

    def __init__(self, llm: Any, prompt: str | dict, k: int = 20, bars: int = 15, samples: int = 4,
                 max_tokens: int = 24, seed: int = 0):
        """Build the widgets for ``prompt`` on ``llm`` (which needs ``logprobs_mode="processed_logprobs"``)."""
        import ipywidgets as w

        mode = logprobs_mode(llm)
        if not mode.startswith("processed"):
            raise ValueError(f"SamplingExplorer needs an engine started with logprobs_mode='processed_logprobs' "
                             f"(this one has {mode!r}, whose logprobs ignore the sliders)")
        self.llm, self.prompt, self.k, self.bars = llm, prompt, k, bars
        self.samples, self.max_tokens, self.seed = samples, max_tokens, seed
        style = {"description_width": "90px"}
        self.temperature = w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, description="temperature",
                                         continuous_update=False, style=style)
        self.top_p = w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top_p",
                                   continuous_update=False, style=style)
        self.top_k = w.IntSlider(value=0, min=0, max=50, step=1, description="top_k",
                                 continuous_update=False, style=style)
        self.sample_button = w.Button(description="Sample", icon="random",
                                      tooltip="generate answers with these settings")
        self.status = w.HTML()
        self.plot = w.Output()
        self.sample_output = w.Output()
        self.baseline: Distribution = next_token_distribution(llm, prompt, k=k, seed=seed)
        self.last: Distribution | None = None
        self.last_probs: dict[int, float] = {}
        self.last_settings: dict = {}
        self.last_samples: list[str] = []
        self.draws = 0
        for slider in (self.temperature, self.top_p, self.top_k):
            slider.observe(self._on_change, names="value")
        self.sample_button.on_click(lambda _button: self.sample())
        self.widget = w.VBox([w.HBox([w.VBox([self.temperature, self.top_p, self.top_k]),
                                      w.VBox([self.sample_button, self.status])]),
                              self.plot, self.sample_output])
        self.redraw()

    def settings(self) -> dict:
        """The sliders' current values as SamplingParams kwargs (top_k slider 0 = off, in this vLLM's spelling)."""
        return {"temperature": round(self.temperature.value, 4), "top_p": round(self.top_p.value, 4),
                "top_k": self.top_k.value or top_k_off()}

    def _on_change(self, _change: dict) -> None:
        """Slider callback: redraw the distribution."""
        self.redraw()

    def redraw(self) -> Distribution:
        """Ask the engine for the distribution under the sliders' settings and draw it into ``plot``."""
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        settings = self.settings()
        dist = next_token_distribution(self.llm, self.prompt, k=self.k, seed=self.seed, **settings)
        self.last, self.last_settings, self.last_probs = dist, settings, dist.probs()
        self.draws += 1
        kept = len(dist.candidates)
        more = "" if dist.removed else "+"
        self.status.value = (f"<small>draw {self.draws}: {kept}{more} tokens kept of the top {self.k} returned; "
                             f"top token p={max(self.last_probs.values()):.3f}</small>")
        with self.plot:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(9, 3.2))
            title = ", ".join(f"{k}={v}" for k, v in settings.items()) + "   (grey: temperature 1, no filters)"
            plot_before_after(self.baseline, dist, ax=ax, n=self.bars, title=title)
            fig.tight_layout()
            display(fig)
            plt.close(fig)
        return dist

    def sample(self) -> list[str]:
        """Generate ``samples`` short answers under the current settings and show them under the plot."""
        from IPython.display import clear_output, display
        from vllm import SamplingParams

        import ipywidgets as w

        params = SamplingParams(n=self.samples, max_tokens=self.max_tokens, **self.settings())
        out = self.llm.generate([self.prompt], params, use_tqdm=False)[0]
        self.last_samples = [c.text for c in out.outputs]
        with self.sample_output:
            clear_output(wait=True)
            rows = "".join(f"<li><code>{html.escape(repr(t))}</code></li>" for t in self.last_samples)
            display(w.HTML(f"<b>{len(self.last_samples)} samples</b> with {self.settings()}:<ol>{rows}</ol>"))
        return self.last_samples

    def _ipython_display_(self) -> None:
        """Show the widget when the explorer is the last expression of a cell."""
        from IPython.display import display

        display(self.widget)
