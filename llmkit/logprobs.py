"""Log-probabilities: from vLLM's ``{token_id: Logprob(logprob, rank, decoded_token)}`` to
probabilities, tables and pictures.

vLLM returns, for every generated position, a dict of the top ``logprobs=k`` candidates plus the
sampled token (so k or k+1 entries). Which numbers those are depends on the engine's
``logprobs_mode``: ``"raw_logprobs"`` (the default) is the model's own distribution, before any
sampling transform; ``"processed_logprobs"`` is the distribution actually sampled from, after
penalties, temperature, min_p, top-k and top-p (tokens cut away come back as ``-inf``).

Charts label tokens with their text where a font can draw it; without a CJK font (many servers and
CI machines) Han characters are written as ``\\u79cb`` escapes instead, so matplotlib never warns
about missing glyphs. ``fetch_cjk_font()`` puts a small Chinese font (Debian's fonts-wqy-microhei,
1.6 MB, no root needed) into llmkit's cache, where the charts find it.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from llmkit.outputs import TokenLogprob

# Font families that cover Chinese, in order of preference (Debian: fonts-noto-cjk, fonts-wqy-*).
CJK_FONT_HINTS = ("Noto Sans CJK", "Noto Serif CJK", "Source Han Sans", "Source Han Serif", "WenQuanYi",
                  "Droid Sans Fallback", "AR PL", "SimHei", "Microsoft YaHei", "PingFang", "Hiragino Sans GB",
                  "Heiti", "Songti", "Arial Unicode")
NEG_INF = float("-inf")


# --- numbers --------------------------------------------------------------------------------------

def to_prob(logprob: float) -> float:
    """exp(logprob): a log-probability as a probability (``-inf`` becomes 0)."""
    return 0.0 if logprob == NEG_INF else math.exp(logprob)


def perplexity(logprobs: Sequence[float]) -> float:
    """exp(-mean logprob): the model's average "number of equally likely choices" per token."""
    if not logprobs:
        raise ValueError("perplexity of an empty sequence is undefined")
    return math.exp(-sum(logprobs) / len(logprobs))


def chosen_logprobs(completion: Any) -> list[float]:
    """The logprob of each generated token of a vLLM ``CompletionOutput`` (requested with ``logprobs=k``)."""
    if completion.logprobs is None:
        raise ValueError("this output has no logprobs: pass SamplingParams(logprobs=k)")
    return [position[tid].logprob for tid, position in zip(completion.token_ids, completion.logprobs)]


def chosen_prompt_logprobs(request_output: Any) -> list[float]:
    """The logprob of each prompt token after the first, as the engine scored it (``SamplingParams(prompt_logprobs=0)``)."""
    if request_output.prompt_logprobs is None:
        raise ValueError("this output has no prompt logprobs: pass SamplingParams(prompt_logprobs=k)")
    ids, positions = request_output.prompt_token_ids, request_output.prompt_logprobs
    return [position[tid].logprob for tid, position in zip(ids[1:], positions[1:])]


def chosen_ranks(completion: Any) -> list[int | None]:
    """The rank (1 = the model's favourite) of each generated token of a ``CompletionOutput``."""
    if completion.logprobs is None:
        raise ValueError("this output has no logprobs: pass SamplingParams(logprobs=k)")
    return [position[tid].rank for tid, position in zip(completion.token_ids, completion.logprobs)]


def candidates(position: Mapping[int, Any]) -> list[TokenLogprob]:
    """One position's ``{token_id: Logprob}`` dict as TokenLogprobs, most likely first."""
    items = [TokenLogprob(lp.decoded_token or "", lp.logprob, tid, lp.rank) for tid, lp in position.items()]
    return sorted(items, key=lambda c: (-c.logprob, c.rank or 0))


# --- a next-token distribution ---------------------------------------------------------------------

@dataclass(frozen=True)
class Distribution:
    """A next-token distribution as the engine returned it: candidates with probability > 0, most likely first.

    ``removed`` holds returned candidates with logprob ``-inf`` (cut by top-k, top-p or min_p; only
    ``processed_logprobs`` shows them). Tokens outside the returned top-k are unknown, and count as 0.
    """

    candidates: tuple[TokenLogprob, ...]
    removed: tuple[TokenLogprob, ...] = ()
    sampled: TokenLogprob | None = None
    settings: dict = field(default_factory=dict)
    mode: str | None = None

    def prob(self, token_id: int) -> float:
        """Probability of ``token_id`` (0 when it was cut, or is not among the returned candidates)."""
        return next((to_prob(c.logprob) for c in self.candidates if c.token_id == token_id), 0.0)

    def logprob(self, token_id: int) -> float:
        """Log-probability of ``token_id`` (``-inf`` when it was cut or not returned)."""
        return next((c.logprob for c in self.candidates if c.token_id == token_id), NEG_INF)

    def probs(self) -> dict[int, float]:
        """``{token_id: probability}`` of the candidates, most likely first."""
        return {c.token_id: to_prob(c.logprob) for c in self.candidates}

    def token_ids(self) -> list[int]:
        """Ids of the candidates with probability > 0, most likely first."""
        return [c.token_id for c in self.candidates]

    def shown_mass(self) -> float:
        """Total probability of the returned candidates (1.0 when nothing is hidden beyond them)."""
        return sum(to_prob(c.logprob) for c in self.candidates)

    def complete(self) -> bool:
        """True when every token with probability > 0 was returned (some came back cut, or the mass is ~1)."""
        return bool(self.removed) or self.shown_mass() > 0.999

    def status(self, token_id: int) -> str:
        """"kept" (probability > 0), "cut" (probability 0 after a filter) or "unknown" (not returned)."""
        if any(c.token_id == token_id for c in self.candidates):
            return "kept"
        return "cut" if self.complete() else "unknown"

    def text(self, token_id: int) -> str:
        """Decoded text of a returned token id ('' if unknown)."""
        return next((c.token for c in self.candidates + self.removed if c.token_id == token_id), "")


def distribution(position: Mapping[int, Any], sampled_id: int | None = None, settings: dict | None = None,
                 mode: str | None = None) -> Distribution:
    """A Distribution from one position's ``{token_id: Logprob}`` dict."""
    cands = candidates(position)
    kept = tuple(c for c in cands if c.logprob > NEG_INF)
    removed = tuple(c for c in cands if c.logprob == NEG_INF)
    sampled = next((c for c in cands if c.token_id == sampled_id), None)
    return Distribution(kept, removed, sampled, dict(settings or {}), mode)


def distribution_frame(dist: Distribution, n: int | None = None):
    """A pandas DataFrame of a Distribution: rank, token_id, token, logprob, prob, sampled."""
    import pandas as pd

    rows = [{"rank": i + 1, "token_id": c.token_id, "token": c.token, "logprob": round(c.logprob, 4),
             "prob": round(to_prob(c.logprob), 4),
             "sampled": bool(dist.sampled and c.token_id == dist.sampled.token_id)}
            for i, c in enumerate(dist.candidates[:n])]
    return pd.DataFrame(rows)


# --- tables ---------------------------------------------------------------------------------------

def position_table(position: Mapping[int, Any], chosen_id: int | None = None):
    """One position's dict as a DataFrame: token_id, token, logprob, prob, rank, chosen (sorted by rank)."""
    import pandas as pd

    rows = [{"token_id": c.token_id, "token": c.token, "logprob": c.logprob, "prob": to_prob(c.logprob),
             "rank": c.rank, "chosen": c.token_id == chosen_id} for c in candidates(position)]
    return pd.DataFrame(rows)


def top_table(completion: Any, k: int = 5):
    """One row per generated position: the chosen token, its prob and rank, then the top-k as "token p"."""
    import pandas as pd

    rows = []
    for pos, (tid, position) in enumerate(zip(completion.token_ids, completion.logprobs or [])):
        chosen = position[tid]
        row = {"pos": pos, "chosen": chosen.decoded_token, "prob": round(to_prob(chosen.logprob), 4),
               "rank": chosen.rank}
        for i, c in enumerate(candidates(position)[:k]):
            row[f"top{i + 1}"] = f"{c.token!r} {to_prob(c.logprob):.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def prompt_table(request_output: Any):
    """One row per prompt token: its text, logprob, prob and rank as predicted from the tokens before it."""
    import pandas as pd

    if request_output.prompt_logprobs is None:
        raise ValueError("this output has no prompt logprobs: pass SamplingParams(prompt_logprobs=k)")
    rows = []
    for pos, (tid, position) in enumerate(zip(request_output.prompt_token_ids, request_output.prompt_logprobs)):
        if position is None:
            rows.append({"pos": pos, "token_id": tid, "token": None, "logprob": None, "prob": None, "rank": None})
            continue
        lp = position[tid]
        rows.append({"pos": pos, "token_id": tid, "token": lp.decoded_token, "logprob": lp.logprob,
                     "prob": to_prob(lp.logprob), "rank": lp.rank})
    return pd.DataFrame(rows)


# --- fonts and labels -----------------------------------------------------------------------------

def font_dir() -> Path:
    """Where llmkit keeps fonts it fetched: ``<llmkit cache>/fonts`` (next to tiny-poet)."""
    from llmkit.tiny_poet import cache_root

    return cache_root() / "fonts"


def fetch_cjk_font(package: str = "fonts-wqy-microhei", log: Callable[[str], None] = print) -> Path | None:
    """Download a Chinese font with ``apt-get download`` (no root) into ``font_dir()``; None where impossible."""
    dest = font_dir()
    found = sorted(dest.glob("*.tt[cf]"))
    if found:
        return found[0]
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        log("no apt-get here: install a CJK font with your system's package manager (e.g. fonts-noto-cjk)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{package}*.deb"))
        if r.returncode != 0 or not debs:
            log(f"apt-get download {package} failed: {(r.stderr or r.stdout).strip()[-300:]}")
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp, "x"))], check=True)
        fonts = sorted(Path(tmp, "x").rglob("*.tt[cf]"))
        if not fonts:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(fonts[0], dest / fonts[0].name)
    cjk_font.cache_clear()
    _covered.cache_clear()
    return dest / fonts[0].name


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed (or fetched) font that draws Chinese, or None (labels use escapes)."""
    from matplotlib import font_manager

    for path in sorted(font_dir().glob("*.tt[cf]")):
        font_manager.fontManager.addfont(str(path))
    names = {f.name for f in font_manager.fontManager.ttflist}
    for hint in CJK_FONT_HINTS:
        match = sorted(n for n in names if hint.lower() in n.lower())
        if match:
            return match[0]
    return None


@lru_cache(maxsize=4)
def _covered(families: tuple[str, ...]) -> frozenset[int]:
    """Code points that the first font file of each family can draw."""
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager

    points: set[int] = set()
    for family in families:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
            with TTFont(path, fontNumber=0, lazy=True) as font:
                points.update(font.getBestCmap() or {})
        except Exception:  # noqa: BLE001 - a font we cannot read simply covers nothing
            continue
    return frozenset(points)


def font_families() -> list[str]:
    """Font families for charts: DejaVu Sans, then a CJK font when one is installed."""
    cjk = cjk_font()
    return ["DejaVu Sans"] + ([cjk] if cjk else [])


def chart_text(text: str) -> str:
    """Free text (titles) for a chart: characters no installed font can draw become ``\\uXXXX`` escapes."""
    covered = _covered(tuple(font_families()))
    return "".join(ch if ord(ch) in covered or ch in "\n" else f"\\u{ord(ch):04x}" for ch in text)


def token_label(text: str, token_id: int | None = None) -> str:
    """A chart label for a token: visible whitespace, escapes for characters no installed font can draw."""
    covered = _covered(tuple(font_families()))
    visible = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}
    out = []
    for ch in text:
        if ch in visible:
            out.append(visible[ch])
        elif ch.isprintable() and ord(ch) in covered:
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    label = "".join(out)
    if token_id is None:
        return label or "''"
    return f"{label} #{token_id}" if label else f"#{token_id}"


def _tidy(ax: Any) -> None:
    """Hide the top and right frame lines of an axes."""
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


# --- pictures -------------------------------------------------------------------------------------

def _title(ax: Any, text: str) -> None:
    """Set an axes title, escaping what no installed font can draw."""
    ax.set_title(chart_text(text), fontsize=10, fontfamily=font_families())


def plot_distribution(dist: Distribution, ax: Any = None, n: int = 15, title: str | None = None,
                      color: str = "tab:blue"):
    """Bar chart of a Distribution's top ``n`` tokens (the sampled one outlined in black); returns the axes."""
    import matplotlib.pyplot as plt

    ids = dist.token_ids()[:n]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(ids)), 3))
    bars = ax.bar(range(len(ids)), [dist.prob(t) for t in ids], color=color)
    if dist.sampled is not None and dist.sampled.token_id in ids:
        bars[ids.index(dist.sampled.token_id)].set_edgecolor("black")
        bars[ids.index(dist.sampled.token_id)].set_linewidth(2)
    ax.set_xticks(range(len(ids)))
    ax.set_xticklabels([token_label(dist.text(t), t) for t in ids], rotation=90, fontsize=8,
                       fontfamily=font_families())
    ax.set_ylabel("probability")
    _title(ax, title if title is not None else _settings_title(dist.settings))
    _tidy(ax)
    return ax


def plot_before_after(before: Distribution, after: Distribution, ax: Any = None, n: int = 15,
                      title: str | None = None, highlight: Sequence[int] = ()):
    """Grouped bars on the ``before`` top-``n`` tokens: grey = before, blue = after.

    A red x marks a token cut to probability 0 by a filter; a grey v one that fell below the returned top-k
    (its probability is smaller than every bar shown, but not known). Labels in ``highlight`` are red.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    ids = before.token_ids()[:n]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(ids)), 3))
    x = np.arange(len(ids))
    ax.bar(x - 0.2, [before.prob(t) for t in ids], width=0.4, color="0.7", label="before")
    ax.bar(x + 0.2, [after.prob(t) for t in ids], width=0.4, color="tab:blue", label="after")
    for status, marker, color, label in (("cut", "x", "tab:red", "cut to 0"),
                                         ("unknown", "v", "0.4", "below returned top-k")):
        where = [i for i, t in enumerate(ids) if after.status(t) == status]
        if where:
            ax.plot(x[where] + 0.2, [0.0] * len(where), marker, color=color, label=label)
    ax.set_xticks(x)
    labels = ax.set_xticklabels([token_label(before.text(t), t) for t in ids], rotation=90, fontsize=8,
                                fontfamily=font_families())
    for t, text in zip(ids, labels):
        if t in highlight:
            text.set_color("tab:red")
    ax.set_ylabel("probability")
    _title(ax, title if title is not None else _settings_title(after.settings))
    ax.legend(fontsize=8, frameon=False)
    _tidy(ax)
    return ax


def plot_grid(before: Distribution, afters: Mapping[str, Distribution], n: int = 12, cols: int = 2,
              highlight: Sequence[int] = ()):
    """One before/after panel per transform (titles are the dict keys); returns the figure."""
    import matplotlib.pyplot as plt

    rows = math.ceil(len(afters) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, after) in zip(axes.flat, afters.items()):
        plot_before_after(before, after, ax=ax, n=n, title=name, highlight=highlight)
    for ax in list(axes.flat)[len(afters):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def heatmap_data(completion: Any, k: int = 5, max_positions: int | None = None):
    """(probs[k, positions], labels[k][positions], chosen_rank[positions]) for a sequence heatmap."""
    import numpy as np

    positions = list(zip(completion.token_ids, completion.logprobs or []))[:max_positions]
    probs = np.zeros((k, len(positions)))
    labels = [["" for _ in positions] for _ in range(k)]
    ranks = []
    for j, (tid, position) in enumerate(positions):
        for i, c in enumerate(candidates(position)[:k]):
            probs[i, j] = to_prob(c.logprob)
            labels[i][j] = token_label(c.token)
        ranks.append(position[tid].rank)
    return probs, labels, ranks


def plot_heatmap(completion: Any, k: int = 5, max_positions: int = 24, title: str = ""):
    """Heatmap of a generated sequence: columns = positions, rows = top-k candidates, colour = probability.

    The chosen token's cell is outlined in red; a chosen token outside the top k is marked rN under its column.
    """
    import matplotlib.pyplot as plt

    probs, labels, ranks = heatmap_data(completion, k, max_positions)
    chosen = [token_label(position[tid].decoded_token or "")
              for tid, position in list(zip(completion.token_ids, completion.logprobs))[:max_positions]]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * probs.shape[1]), 0.6 * k + 1.6))
    im = ax.imshow(probs, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(float(probs.max()), 1e-9))
    for j in range(probs.shape[1]):
        for i in range(k):
            if labels[i][j]:
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7, fontfamily=font_families(),
                        color="white" if probs[i, j] < 0.6 * probs.max() else "black")
        r = ranks[j]
        if r is not None and r <= k:
            ax.add_patch(plt.Rectangle((j - 0.5, r - 1.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_yticks(range(k))
    ax.set_yticklabels([f"rank {i + 1}" for i in range(k)], fontsize=8)
    ax.set_xticks(range(probs.shape[1]))
    ax.set_xticklabels([f"{c}\n{'r' + str(r) if r and r > k else ''}" for c, r in zip(chosen, ranks)],
                       fontsize=7, fontfamily=font_families())
    ax.set_xlabel("chosen token per position (red box = chosen; rN = chosen at rank N, outside the top k)")
    fig.colorbar(im, ax=ax, label="probability", fraction=0.03)
    _title(ax, title)
    fig.tight_layout()
    return fig


def plot_prompt_logprobs(request_output: Any, title: str = "how expected was each prompt token? (0 = certain)"):
    """Bar chart of each prompt token's logprob (from ``prompt_logprobs``); the first token has no bar."""
    import matplotlib.pyplot as plt

    table = prompt_table(request_output)
    scored = table.iloc[1:]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.4 * len(scored)), 2.8))
    ax.bar(scored["pos"], scored["logprob"], color="tab:purple")
    ax.set_xticks(list(scored["pos"]))
    labels = [token_label(t) for t in scored["token"]]
    ax.set_xticklabels(labels, fontsize=8, fontfamily=font_families(),
                       rotation=90 if max(map(len, labels), default=0) > 2 else 0)
    ax.set_ylabel("logprob")
    _title(ax, title)
    _tidy(ax)
    fig.tight_layout()
    return fig


def _settings_title(settings: Mapping[str, Any]) -> str:
    """A short chart title from sampling settings, e.g. ``temperature=0.5, top_k=5``."""
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "model distribution"
