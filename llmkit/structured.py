"""Structured outputs: the poem schema and its validators, valid shares, and what vLLM's grammar backends cost.

A constraint (a JSON schema, a regex, a choice list, a grammar) is compiled by a *grammar backend* into a
matcher. At every decoding step the matcher fills a bitmask of the tokens that keep the output a valid prefix;
the engine sets every other token's logit to -inf, samples, and feeds the sampled token back to the matcher.

This module holds the lesson's pieces:

- the poem: ``Poem`` (pydantic: a title and four lines of seven Han characters), ``LoosePoem`` (too loose to
  help), ``check_poem`` (parses, and matches the schema?), ``han_count``, ``validity_table``;
- the plain-text forms of a 七言绝句 as a regex, an EBNF grammar and a Lark grammar (one language, three
  notations);
- vLLM's grammar backends, driven in this process exactly as the engine drives them (``SamplingParams.verify``
  picks and checks the backend, the engine's backend class compiles, ``fill_bitmask`` / ``accept_tokens`` run
  once per token): ``backends_offered``, ``allowed_tokens``, ``mask_profile``, ``backend_cost``,
  ``backend_costs``; and ``decode_overhead``, the same cost measured end to end on a running engine.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata as md
import inspect
import json
import re
import statistics
import time
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, Field, StringConstraints, ValidationError

# --------------------------------------------------------------------------------------------------
# The poem
# --------------------------------------------------------------------------------------------------
HAN = "一-鿿"  # the CJK Unified Ideographs block, U+4E00–U+9FFF: the characters of the poems
HAN_CHAR = re.compile(f"[{HAN}]")
LINE_CHARS = 7  # 七言: seven characters a line
LINES = 4  # 绝句: four lines
TITLE_MAX = 8

HanLine = Annotated[str, StringConstraints(pattern=f"^[{HAN}]{{{LINE_CHARS}}}$")]


class Poem(BaseModel):
    """A 七言绝句 as JSON: a title of 1–8 Han characters and four lines of exactly seven."""

    title: Annotated[str, StringConstraints(pattern=f"^[{HAN}]{{1,{TITLE_MAX}}}$")]
    lines: Annotated[list[HanLine], Field(min_length=LINES, max_length=LINES)]


class LoosePoem(BaseModel):
    """The same two fields with no constraints on them: any strings, any number of lines."""

    title: str
    lines: list[str]


def poem_schema(model: type[BaseModel] = Poem) -> dict[str, Any]:
    """The JSON schema pydantic writes for ``model`` (what ``response_format`` and ``structured_outputs`` take)."""
    return model.model_json_schema()


def han_count(text: str) -> int:
    """How many Han characters (U+4E00–U+9FFF) ``text`` holds."""
    return len(HAN_CHAR.findall(text))


@dataclass(frozen=True)
class PoemCheck:
    """One text checked against the poem schema: does it parse, is it valid, and if not, why not."""

    parses: bool
    valid: bool
    problem: str = ""

    def __bool__(self) -> bool:
        """True when the text is a valid poem."""
        return self.valid


def _why_invalid(data: Any, err: ValidationError) -> str:
    """The first schema violation in words, counting Han characters where a line or title is wrong."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    value = first.get("input")
    if first["type"] == "string_pattern_mismatch" and isinstance(value, str):
        return f"{where} = {value!r} has {han_count(value)} Han characters among {len(value)}"
    if first["type"] in ("too_short", "too_long") and isinstance(value, list):
        return f"{where} has {len(value)} lines, not {LINES}"
    return f"{where}: {first['msg']}"


def check_poem(text: str, model: type[BaseModel] = Poem) -> PoemCheck:
    """Whether ``text`` parses as JSON and matches ``model`` (default: four lines of seven Han characters)."""
    try:
        data = json.loads(text)
    except ValueError as err:
        return PoemCheck(False, False, f"not JSON: {err}")
    try:
        model.model_validate(data)
    except ValidationError as err:
        return PoemCheck(True, False, _why_invalid(data, err))
    return PoemCheck(True, True)


PLAIN_TITLE = re.compile(r"《([^》]*)》")
PLAIN_BREAK = re.compile(r"[，。！？；、,.!?;\s]+")


def read_plain_poem(text: str) -> dict[str, Any]:
    """A poem written as plain text (``《题》`` then lines cut at punctuation) read into the schema's two fields."""
    title = PLAIN_TITLE.search(text)
    body = text[title.end():] if title else text
    return {"title": title.group(1) if title else "", "lines": [s for s in PLAIN_BREAK.split(body) if s]}


def plain_poem_json(text: str) -> str:
    """``read_plain_poem`` as JSON text, so a plain-text answer can be checked against the schema leniently."""
    return json.dumps(read_plain_poem(text), ensure_ascii=False)


def _sample(item: Any) -> tuple[str, str | None]:
    """(text, finish_reason) of a sample: a vLLM CompletionOutput, an llmkit Completion, or a bare string."""
    if isinstance(item, str):
        return item, None
    return item.text, getattr(item, "finish_reason", None)


def samples_of(result: Any) -> list[Any]:
    """The samples of a result: a vLLM RequestOutput's outputs, a Generation's completions, or a list as is."""
    for name in ("outputs", "completions"):
        if hasattr(result, name):
            return list(getattr(result, name))
    return list(result)


def validity_row(label: str, samples: Iterable[Any], model: type[BaseModel] = Poem) -> dict[str, Any]:
    """One row of the valid-share table: how many samples parse, are valid, were cut by max_tokens."""
    pairs = [_sample(s) for s in samples]
    checks = [check_poem(text, model) for text, _ in pairs]
    n = len(pairs)
    problems = [c.problem for c in checks if not c.valid]
    return {"how": label, "samples": n, "parse": sum(c.parses for c in checks), "valid": sum(c.valid for c in checks),
            "valid share": sum(c.valid for c in checks) / n if n else 0.0,
            "cut (length)": sum(reason == "length" for _, reason in pairs),
            "first problem": problems[0][:70] if problems else ""}


def validity_table(results: Mapping[str, Any], model: type[BaseModel] = Poem):
    """A DataFrame, one row per way of asking: samples, parse, valid, valid share, cut, the first problem."""
    import pandas as pd

    return pd.DataFrame([validity_row(label, samples_of(r), model) for label, r in results.items()]).set_index("how")


# --------------------------------------------------------------------------------------------------
# The 七言绝句 as plain text: one language in three notations
# --------------------------------------------------------------------------------------------------
# 《title》, newline, then two couplets "七字，七字。" each on its own line (four lines of seven characters).
QIYAN_REGEX = f"《[{HAN}]{{2,{TITLE_MAX}}}》\n([{HAN}]{{7}}，[{HAN}]{{7}}。\n){{2}}"
# The same language in GBNF-style EBNF (what xgrammar reads, and SGLang's ``ebnf``) ...
QIYAN_EBNF = f"""root ::= "《" han han han? han? han? han? han? han? "》\\n" couplet couplet
couplet ::= line "，" line "。\\n"
line ::= han han han han han han han
han ::= [{HAN}]"""
# ... and in Lark, with llguidance's {m,n} repetition and a character range (xgrammar 0.2.8 reads it too; vLLM
# 0.26 converts Lark to EBNF line by line, which xgrammar then refuses, so "auto" hands it to guidance there).
QIYAN_LARK = f"""start: "《" HAN{{2,{TITLE_MAX}}} "》\\n" couplet couplet
couplet: line "，" line "。\\n"
line: HAN{{7}}
HAN: "{HAN[0]}".."{HAN[-1]}\""""
SEASONS = ["春", "夏", "秋", "冬"]


# --------------------------------------------------------------------------------------------------
# vLLM's grammar backends, driven as the engine drives them
# --------------------------------------------------------------------------------------------------
# vLLM's names, the module and class of each backend, and the library it wraps.
BACKENDS = {
    "xgrammar": ("vllm.v1.structured_output.backend_xgrammar", "XgrammarBackend", "xgrammar"),
    "guidance": ("vllm.v1.structured_output.backend_guidance", "GuidanceBackend", "llguidance"),
    "outlines": ("vllm.v1.structured_output.backend_outlines", "OutlinesBackend", "outlines_core"),
    "lm-format-enforcer": ("vllm.v1.structured_output.backend_lm_format_enforcer", "LMFormatEnforcerBackend",
                           "lm-format-enforcer"),
}


def backends_offered() -> list[str]:
    """The backend names vLLM's ``structured_outputs_config`` accepts, read from vLLM itself ("auto" first)."""
    from typing import get_args

    from vllm.config.structured_outputs import StructuredOutputsBackend

    return list(get_args(StructuredOutputsBackend))


def library_version(backend: str) -> str | None:
    """The installed version of the library a vLLM backend wraps, or None."""
    try:
        return md.version(BACKENDS[backend][2])
    except md.PackageNotFoundError:
        return None


def config_for(vllm_config: Any, backend: str = "auto", disable_any_whitespace: bool = False) -> Any:
    """A copy of an engine's config whose ``structured_outputs_config`` names ``backend`` (and the whitespace rule)."""
    from vllm.config import StructuredOutputsConfig

    view = copy.copy(vllm_config)
    view.structured_outputs_config = StructuredOutputsConfig(backend=backend,
                                                             disable_any_whitespace=disable_any_whitespace)
    return view


def engine_parts(llm: Any) -> tuple[Any, Any]:
    """(vllm_config, tokenizer) of a running ``vllm.LLM``: what its grammar backends are built from."""
    return llm.llm_engine.vllm_config, llm.get_tokenizer()


def make_backend(name: str, vllm_config: Any, tokenizer: Any) -> Any:
    """vLLM's own backend object (the one the engine core builds) for ``name``; ``vllm_config`` from ``config_for``."""
    module, cls, _ = BACKENDS[name]
    backend_cls = getattr(importlib.import_module(module), cls)
    return backend_cls(vllm_config, tokenizer=tokenizer, vocab_size=vllm_config.model_config.get_vocab_size())


def prepared(vllm_config: Any, tokenizer: Any, **constraint: Any) -> tuple[Any, Any]:
    """Check a constraint as vLLM's front end does; return (SamplingParams, the key the engine compiles).

    ``constraint`` is one ``StructuredOutputsParams`` field: ``json=``, ``regex=``, ``choice=``, ``grammar=``.
    ``SamplingParams.verify`` raises vLLM's own ``VLLMValidationError`` when the backend rejects it, and
    rewrites it where the engine would (xgrammar turns a choice list into a grammar).
    """
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.v1.structured_output.request import get_structured_output_key

    params = SamplingParams(max_tokens=1, structured_outputs=StructuredOutputsParams(**constraint))
    params.verify(vllm_config.model_config, None, vllm_config.structured_outputs_config, tokenizer)
    return params, get_structured_output_key(params.structured_outputs)


def compile_key(backend: Any, key: Any, params: Any) -> Any:
    """Compile a constraint key with a backend object, as the engine core does (stop ids where vLLM passes them)."""
    kwargs = {}
    if "stop_token_ids" in inspect.signature(backend.compile_grammar).parameters:  # vLLM 0.32; 0.26 has none
        kwargs["stop_token_ids"] = params.all_stop_token_ids
    return backend.compile_grammar(*key, **kwargs)


def allowed_ids(bitmask_row: Any, vocab_size: int) -> list[int]:
    """The token ids whose bit is set in one row of a grammar bitmask (32 tokens per int32, low bit first)."""
    import torch

    bits = (bitmask_row.to(torch.int64).unsqueeze(-1) >> torch.arange(32)) & 1
    return torch.nonzero(bits.flatten()[:vocab_size]).flatten().tolist()


def allowed_tokens(llm: Any, prefix: str, backend: str = "xgrammar", disable_any_whitespace: bool = False,
                   **constraint: Any) -> list[str]:
    """The tokens a constraint allows right after ``prefix`` (a text the model has written so far)."""
    vllm_config, tokenizer = engine_parts(llm)
    cfg = config_for(vllm_config, backend, disable_any_whitespace)
    params, key = prepared(cfg, tokenizer, **constraint)
    be = make_backend(backend, cfg, tokenizer)
    grammar = compile_key(be, key, params)
    ids = tokenizer.encode(prefix, add_special_tokens=False) if prefix else []
    if not grammar.accept_tokens("prefix", ids):
        raise ValueError(f"the constraint does not accept the prefix {prefix!r}")
    bitmask = be.allocate_token_bitmask(1)
    grammar.fill_bitmask(bitmask, 0)
    return [tokenizer.decode([i]) for i in allowed_ids(bitmask[0], cfg.model_config.get_vocab_size())]


FORCED_CHECK_LIMIT = 64  # decode the allowed tokens only when there are this few (a line admits thousands)


def mask_profile(llm: Any, text: str, backend: str = "xgrammar", **constraint: Any) -> list[dict[str, Any]]:
    """Walk ``text`` token by token: the token, how many tokens the mask allowed there, and whether all of them
    spell the same text (``forced``: the constraint left the model no choice, e.g. a character token and its
    byte-fallback twin)."""
    vllm_config, tokenizer = engine_parts(llm)
    cfg = config_for(vllm_config, backend)
    params, key = prepared(cfg, tokenizer, **constraint)
    be = make_backend(backend, cfg, tokenizer)
    grammar = compile_key(be, key, params)
    bitmask = be.allocate_token_bitmask(1)
    vocab = cfg.model_config.get_vocab_size()
    steps = []
    for token_id in tokenizer.encode(text, add_special_tokens=False):
        grammar.fill_bitmask(bitmask, 0)
        allowed = allowed_ids(bitmask[0], vocab)
        forced = len(allowed) <= FORCED_CHECK_LIMIT and len({tokenizer.decode([i]) for i in allowed}) == 1
        steps.append({"token": tokenizer.decode([token_id]), "allowed": len(allowed), "forced": forced})
        if not grammar.accept_tokens("walk", [token_id]):
            raise ValueError(f"the constraint rejects {steps[-1]['token']!r} after {len(steps) - 1} tokens")
    return steps


def _median_ms(seconds: Sequence[float]) -> float:
    """The median of timings in seconds, in milliseconds."""
    return 1000 * statistics.median(seconds)


def backend_cost(name: str, vllm_config: Any, tokenizer: Any, text: str, repeats: int = 5,
                 budget_s: float = 30.0, **constraint: Any) -> dict[str, Any]:
    """What one backend costs for one constraint: set-up, validation, compilation, and the mask per token.

    Each repeat builds a fresh backend object (so no compiled grammar is reused from a cache), then walks the
    tokens of ``text`` (a valid output) calling ``fill_bitmask`` and ``accept_tokens`` once per token, as the
    engine does at every step. Times are medians over the repeats, which stop early once ``budget_s`` seconds
    are spent (a 150k-token vocabulary makes some backends slow to set up); ``error`` says why a backend failed.
    """
    row: dict[str, Any] = {"backend": name, "library": f"{BACKENDS[name][2]} {library_version(name) or '—'}"}
    cfg = config_for(vllm_config, name)
    ids = tokenizer.encode(text, add_special_tokens=False)
    setup, validate, compile_, per_token = [], [], [], []
    started = time.perf_counter()
    try:
        while len(per_token) < repeats and (not per_token or time.perf_counter() - started < budget_s):
            t0 = time.perf_counter()
            params, key = prepared(cfg, tokenizer, **constraint)
            t1 = time.perf_counter()
            be = make_backend(name, cfg, tokenizer)
            t2 = time.perf_counter()
            grammar = compile_key(be, key, params)
            t3 = time.perf_counter()
            bitmask = be.allocate_token_bitmask(1)
            steps = []
            for token_id in ids:
                s0 = time.perf_counter()
                grammar.fill_bitmask(bitmask, 0)
                ok = grammar.accept_tokens("cost", [token_id])
                steps.append(time.perf_counter() - s0)
                if not ok:
                    raise ValueError(f"it rejected token {len(steps)} of a valid output")
            validate.append(t1 - t0)
            setup.append(t2 - t1)
            compile_.append(t3 - t2)
            per_token.append(statistics.median(steps))
    except Exception as err:  # noqa: BLE001 - a backend that fails is a result: the row says why
        row.update(ok=False, error=f"{type(err).__name__}: {str(err).splitlines()[0][:160]}")
        return row
    row.update(ok=True, error="", tokens=len(ids), repeats=len(per_token), setup_ms=_median_ms(setup),
               validate_ms=_median_ms(validate), compile_ms=_median_ms(compile_),
               mask_us_per_token=1000 * _median_ms(per_token))
    return row


def backend_costs(llm: Any, text: str, backends: Sequence[str] | None = None, repeats: int = 5,
                  budget_s: float = 30.0, **constraint: Any):
    """``backend_cost`` for every backend vLLM offers (or ``backends``), as a DataFrame indexed by backend."""
    import pandas as pd

    vllm_config, tokenizer = engine_parts(llm)
    names = backends or [b for b in backends_offered() if b in BACKENDS]
    rows = [backend_cost(b, vllm_config, tokenizer, text, repeats, budget_s, **constraint) for b in names]
    return pd.DataFrame(rows).set_index("backend")


def capability_table(llm: Any, constraints: Mapping[str, Mapping[str, Any]], backends: Sequence[str] | None = None):
    """Which constraint kinds each backend takes: "✓", or the start of vLLM's refusal, per backend and kind."""
    import pandas as pd

    vllm_config, tokenizer = engine_parts(llm)
    names = backends or [b for b in backends_offered() if b in BACKENDS]
    table: dict[str, dict[str, str]] = {}
    for name in names:
        cfg = config_for(vllm_config, name)
        row = {}
        try:
            be = make_backend(name, cfg, tokenizer)  # one per backend: set-up reads the whole vocabulary
        except Exception as err:  # noqa: BLE001 - a backend that cannot start refuses everything
            table[name] = {kind: f"✗ {type(err).__name__}: {str(err).splitlines()[0][:60]}" for kind in constraints}
            continue
        for kind, constraint in constraints.items():
            try:
                params, key = prepared(cfg, tokenizer, **constraint)
                compile_key(be, key, params)
                row[kind] = "✓"
            except Exception as err:  # noqa: BLE001 - the refusal is the answer
                row[kind] = f"✗ {type(err).__name__}: {str(err).splitlines()[0][:60]}"
        table[name] = row
    return pd.DataFrame(table).T


# --------------------------------------------------------------------------------------------------
# The same cost end to end, on a running engine
# --------------------------------------------------------------------------------------------------
def _timed_generate(llm: Any, prompt: str, params: Any) -> tuple[float, int, list[Any]]:
    """(seconds, generated tokens, outputs) of one ``llm.generate`` call."""
    t0 = time.perf_counter()
    out = llm.generate([prompt], params, use_tqdm=False)[0].outputs
    return time.perf_counter() - t0, sum(len(c.token_ids) for c in out), out


def decode_overhead(llm: Any, prompt: str, regex: str, max_tokens: int = 64, n: int = 8, repeats: int = 5,
                    seed: int = 0) -> dict[str, Any]:
    """Milliseconds per generated token without and with a regex constraint, same prompt, same token count.

    The regex must not end before ``max_tokens`` (e.g. many Han characters), and the plain run ignores EOS,
    so both runs generate exactly ``n × max_tokens`` tokens. The two alternate ``repeats`` times, after one
    warm-up each (which also compiles the grammar); the medians and the overhead in percent are returned,
    with the last constrained outputs.
    """
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    free = SamplingParams(n=n, max_tokens=max_tokens, temperature=0.8, seed=seed, ignore_eos=True)
    held = SamplingParams(n=n, max_tokens=max_tokens, temperature=0.8, seed=seed,
                          structured_outputs=StructuredOutputsParams(regex=regex))
    _timed_generate(llm, prompt, free)
    _timed_generate(llm, prompt, held)
    plain, constrained, outputs = [], [], []
    for _ in range(repeats):
        seconds, tokens, _ = _timed_generate(llm, prompt, free)
        plain.append(1000 * seconds / tokens)
        seconds, tokens, outputs = _timed_generate(llm, prompt, held)
        constrained.append(1000 * seconds / tokens)
    free_ms, held_ms = statistics.median(plain), statistics.median(constrained)
    return {"unconstrained_ms_per_token": free_ms, "constrained_ms_per_token": held_ms,
            "overhead_percent": 100 * (held_ms - free_ms) / free_ms, "repeats": repeats, "n": n,
            "max_tokens": max_tokens, "plain_runs_ms": plain, "constrained_runs_ms": constrained,
            "outputs": outputs}


# --------------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------------
def plot_mask_profile(steps: Sequence[Mapping[str, Any]], vocab_size: int, title: str = ""):
    """Bars: how many of the vocabulary's tokens the mask allowed at each step (log scale, red where forced)."""
    import matplotlib.pyplot as plt

    from llmkit.logprobs import chart_text, font_families

    fig, ax = plt.subplots(figsize=(min(14, 1.5 + 0.18 * len(steps)), 3.4))
    ax.bar(range(len(steps)), [s["allowed"] for s in steps], color=["C3" if s["forced"] else "C0" for s in steps])
    ax.axhline(vocab_size, color="grey", ls="--", lw=1, label=f"whole vocabulary ({vocab_size:,} tokens)")
    ax.set_yscale("log")
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([chart_text(repr(s["token"])[1:-1]) for s in steps], fontsize=7, rotation=90,
                       fontfamily=font_families())
    ax.set_ylabel("tokens allowed")
    ax.set_title(title or "the mask at each step (red: every allowed token spells the same text)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_valid_shares(table, title: str = ""):
    """Horizontal bars: valid share per way of asking, with the count written on each bar."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(table) + 1.2))
    labels = list(table.index)[::-1]
    shares = [table.loc[k, "valid share"] for k in labels]
    ax.barh(labels, shares, color=["C2" if s == 1 else "C1" if s > 0 else "C3" for s in shares])
    for y, k in enumerate(labels):
        ax.text(min(table.loc[k, "valid share"], 0.85) + 0.01, y, f"{table.loc[k, 'valid']}/{table.loc[k, 'samples']}",
                va="center", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples that parse and match the schema")
    ax.set_title(title or "valid poems out of the same number of samples")
    fig.tight_layout()
    return fig


def plot_backend_costs(costs, decode_ms_per_token: float | None = None, title: str = ""):
    """Two panels per working backend: compile time (ms), and the mask's time per token (µs) against a decode step."""
    import matplotlib.pyplot as plt

    ok = costs[costs["ok"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    names = list(ok.index)
    left.bar(names, ok["compile_ms"], color="C0", label="compile (engine core)")
    left.bar(names, ok["validate_ms"], bottom=ok["compile_ms"], color="C9", label="validate (front end)")
    left.set_ylabel("ms per new constraint")
    left.set_title("compile once per new constraint")
    left.legend(fontsize=8)
    right.bar(names, ok["mask_us_per_token"], color="C1", label="fill mask + accept token")
    if decode_ms_per_token:
        right.axhline(1000 * decode_ms_per_token, color="C3", ls="--",
                      label=f"one unconstrained decode step here ({decode_ms_per_token:.2f} ms per token)")
        right.set_yscale("log")
    right.set_ylabel("µs per generated token")
    right.set_title("pay at every step")
    right.legend(fontsize=8)
    fig.suptitle(title or "what a grammar backend costs")
    fig.tight_layout()
    return fig
