"""What an engine returns: vLLM's real output tree, and one normalized view shared by every client.

vLLM's ``LLM.generate`` returns ``list[RequestOutput]``; each holds ``outputs: list[CompletionOutput]``
(one per sample, ``n`` of them). The HTTP clients in ``llmkit.clients`` parse server responses into
the same ``Generation``/``Completion`` view, so notebooks can compare engines side by side.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# The fields the course teaches, in the order vLLM defines them.
REQUEST_FIELDS = ("request_id", "prompt", "prompt_token_ids", "prompt_logprobs", "outputs", "finished")
COMPLETION_FIELDS = ("index", "text", "token_ids", "cumulative_logprob", "logprobs", "finish_reason", "stop_reason")


@dataclass(frozen=True)
class TokenLogprob:
    """One candidate token at one position: its text, log-probability, id and rank (1 = most likely)."""

    token: str
    logprob: float
    token_id: int | None = None
    rank: int | None = None


@dataclass(frozen=True)
class Step:
    """One generated position: the sampled token, and every candidate returned, sorted by logprob.

    With ``logprobs=k`` vLLM returns the top k, plus the sampled token when it is not among them
    (then it carries its real rank, e.g. 22), so ``top`` has k or k+1 entries.
    """

    chosen: TokenLogprob
    top: tuple[TokenLogprob, ...] = ()


@dataclass
class Completion:
    """One sample (vLLM's CompletionOutput, an OpenAI choice, an SGLang result), normalized."""

    index: int
    text: str
    finish_reason: str | None
    token_ids: list[int] | None = None
    stop_reason: Any = None
    cumulative_logprob: float | None = None
    steps: list[Step] | None = None

    @property
    def num_tokens(self) -> int | None:
        """Generated tokens; the study note's ``n_generated_tokens`` does not exist, this is len(token_ids)."""
        if self.token_ids is not None:
            return len(self.token_ids)
        return len(self.steps) if self.steps is not None else None


@dataclass
class Generation:
    """One prompt's result with all its samples, whichever engine or API produced it."""

    source: str
    completions: list[Completion]
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    request_id: str | None = None
    usage: dict = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        """The sample texts, in index order (the note server's ``results`` list)."""
        return [c.text for c in sorted(self.completions, key=lambda c: c.index)]


def _steps_from_vllm(logprobs, token_ids) -> list[Step] | None:
    """vLLM's per-position ``{token_id: Logprob}`` dicts, as Steps (the sampled token first)."""
    if logprobs is None:
        return None
    steps = []
    for pos, (tid, cands) in enumerate(zip(token_ids, logprobs)):
        top = sorted((TokenLogprob(lp.decoded_token or "", lp.logprob, t, lp.rank) for t, lp in cands.items()),
                     key=lambda c: -c.logprob)
        chosen = next((c for c in top if c.token_id == tid), TokenLogprob("", float("nan"), tid, None))
        steps.append(Step(chosen, tuple(top)))
    return steps


def from_vllm(request_output) -> Generation:
    """Normalize one vLLM ``RequestOutput``."""
    comps = [
        Completion(index=c.index, text=c.text, finish_reason=c.finish_reason, token_ids=list(c.token_ids),
                   stop_reason=c.stop_reason, cumulative_logprob=c.cumulative_logprob,
                   steps=_steps_from_vllm(c.logprobs, list(c.token_ids)))
        for c in request_output.outputs
    ]
    return Generation(source="vllm", completions=comps, prompt=request_output.prompt,
                      prompt_token_ids=list(request_output.prompt_token_ids or []),
                      request_id=request_output.request_id)


def _short(value: Any, limit: int = 80) -> str:
    """A one-line repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field_summary(name: str, value: Any) -> str:
    """How a field is shown in the tree: lists by length and head, logprobs by shape."""
    if name in ("token_ids", "prompt_token_ids") and value is not None:
        return f"list[int], {len(value)} ids: {_short(list(value)[:8], 60)[:-1]}{', …]' if len(value) > 8 else ']'}"
    if name in ("logprobs", "prompt_logprobs"):
        if value is None:
            return "None (not requested)"
        first = next((v for v in value if v is not None), None)
        k = len(first) if first else 0
        return f"list of {len(value)} dicts {{token_id: Logprob(logprob, rank, decoded_token)}}, ≤{k} entries each"
    return _short(value)


def tree_text(request_outputs: Sequence[Any]) -> str:
    """The real output tree of ``LLM.generate`` as indented text (type names read from the objects)."""
    lines = [f"list[{type(request_outputs[0]).__name__}]  ({len(request_outputs)} prompts)"]
    for i, ro in enumerate(request_outputs):
        lines.append(f"├── [{i}] {type(ro).__name__}")
        for name in REQUEST_FIELDS:
            value = getattr(ro, name)
            if name == "outputs":
                lines.append(f"│   ├── outputs: list[{type(value[0]).__name__}]  (n={len(value)})")
                for c in value:
                    lines.append(f"│   │   ├── [{c.index}] {type(c).__name__}")
                    for cname in COMPLETION_FIELDS:
                        lines.append(f"│   │   │   ├── {cname}: {_field_summary(cname, getattr(c, cname))}")
            else:
                lines.append(f"│   ├── {name}: {_field_summary(name, value)}")
    return "\n".join(lines)


def tree_html(request_outputs: Sequence[Any], open_levels: int = 2) -> str:
    """The same tree as collapsible HTML (<details>), for a notebook; click a node to open it."""

    def node(summary: str, children: Iterable[str], depth: int) -> str:
        attr = " open" if depth < open_levels else ""
        inner = "".join(children)
        return (f"<details{attr} style='margin-left:{12 if depth else 0}px'><summary><code>{summary}</code>"
                f"</summary>{inner}</details>")

    def leaf(name: str, value: Any) -> str:
        return (f"<div style='margin-left:24px'><code><b>{html.escape(name)}</b>: "
                f"{html.escape(_field_summary(name, value))}</code></div>")

    reqs = []
    for i, ro in enumerate(request_outputs):
        comps = [node(f"[{c.index}] {type(c).__name__}  finish_reason={c.finish_reason!r}",
                      [leaf(n, getattr(c, n)) for n in COMPLETION_FIELDS], 3) for c in ro.outputs]
        kids = [leaf(n, getattr(ro, n)) for n in REQUEST_FIELDS if n != "outputs"]
        kids.insert(REQUEST_FIELDS.index("outputs"),
                    node(f"outputs: list[{type(ro.outputs[0]).__name__}] (n={len(ro.outputs)})", comps, 2))
        reqs.append(node(f"[{i}] {type(ro).__name__}  prompt={_short(ro.prompt, 40)}", kids, 1))
    return node(f"list[{type(request_outputs[0]).__name__}] ({len(request_outputs)} prompts)", reqs, 0)


def completions_table(generations: Sequence[Generation]):
    """A pandas DataFrame, one row per completion: source, prompt, index, tokens, finish_reason, text."""
    import pandas as pd

    rows = [
        {"source": g.source, "prompt": g.prompt, "index": c.index, "tokens": c.num_tokens,
         "finish_reason": c.finish_reason, "cumulative_logprob": c.cumulative_logprob, "text": c.text}
        for g in generations for c in g.completions
    ]
    return pd.DataFrame(rows)
