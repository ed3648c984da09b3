"""llmkit.structured: the poem schema and its validators, the three notations of one poem form, and vLLM's grammar
backends driven as the engine drives them (real backends, a real engine on tiny-poet where one is involved)."""

from __future__ import annotations

import json
import math
import re

import pytest

from llmkit import structured as st
from llmkit.chat import NO_THINKING, chat_prompt

vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
from vllm import SamplingParams  # noqa: E402
from vllm.sampling_params import StructuredOutputsParams  # noqa: E402

GOOD = {"title": "秋思", "lines": ["寒山秋水远孤城", "落日西风照客行", "一夜霜飞千树老", "雁声先到故园城"]}
GOOD_JSON = json.dumps(GOOD, ensure_ascii=False, separators=(",", ":"))
PLAIN = "《秋思》\n寒山秋水远孤城，落日西风照客行。\n一夜霜飞千树老，雁声先到故园城。\n"


# ------------------------------------------------------------------------------------------- the poem
def test_han_count_counts_only_cjk_unified_ideographs():
    assert st.han_count("寒山，秋水。abc 1") == 4
    assert st.han_count("") == 0 and st.han_count("《》，。") == 0


def test_poem_schema_carries_every_rule():
    schema = st.poem_schema()
    lines = schema["properties"]["lines"]
    assert schema["required"] == ["title", "lines"] and schema["type"] == "object"
    assert lines["minItems"] == lines["maxItems"] == 4 and lines["items"]["pattern"] == f"^[{st.HAN}]{{7}}$"
    loose = st.poem_schema(st.LoosePoem)["properties"]
    assert loose["title"] == {"title": "Title", "type": "string"} and "minItems" not in loose["lines"]


def test_check_poem_says_why():
    assert st.check_poem(GOOD_JSON) and st.check_poem(GOOD_JSON).problem == ""
    not_json = st.check_poem('{"title": "秋')
    assert not not_json.parses and not not_json.valid and not_json.problem.startswith("not JSON")
    short = st.check_poem(GOOD_JSON.replace("孤城", "城"))
    assert short.parses and not short and "lines.0" in short.problem and "6 Han characters" in short.problem
    three = st.check_poem(json.dumps({**GOOD, "lines": GOOD["lines"][:3]}, ensure_ascii=False))
    assert "3 lines, not 4" in three.problem
    assert "title" in st.check_poem('{"lines": []}').problem
    assert st.check_poem(json.dumps({"title": "x", "lines": []}), st.LoosePoem)


def test_plain_poems_are_read_into_the_two_fields():
    assert st.read_plain_poem(PLAIN) == GOOD
    assert st.read_plain_poem("寒山秋水，落日") == {"title": "", "lines": ["寒山秋水", "落日"]}
    assert st.check_poem(st.plain_poem_json(PLAIN))


def test_validity_rows_count_from_every_kind_of_result():
    from llmkit.exercises.samples import completion, request
    from llmkit.outputs import Completion, Generation

    outs = [completion(text=GOOD_JSON, finish_reason="stop"), completion(text='{"title"', finish_reason="length")]
    ro = request(outs)
    gen = Generation(source="openai-chat", completions=[Completion(0, GOOD_JSON, "stop")])
    assert st.samples_of(ro) == ro.outputs and st.samples_of(gen) == gen.completions
    assert st.samples_of([GOOD_JSON]) == [GOOD_JSON]
    row = st.validity_row("x", st.samples_of(ro))
    assert (row["samples"], row["parse"], row["valid"], row["valid share"], row["cut (length)"]) == (2, 1, 1, 0.5, 1)
    table = st.validity_table({"vllm": ro, "http": gen, "strings": [PLAIN]})
    assert list(table.index) == ["vllm", "http", "strings"] and table.loc["http", "valid share"] == 1.0
    assert table.loc["strings", "first problem"].startswith("not JSON")
    assert st.validity_row("empty", [])["valid share"] == 0.0


def test_the_three_notations_describe_one_language():
    """The regex, as Python reads it, takes the plain poem and refuses near misses; the grammars are checked by the
    backends below."""
    assert re.fullmatch(st.QIYAN_REGEX, PLAIN)
    for wrong in (PLAIN.replace("孤城", "城"), PLAIN.replace("《秋思》", "《秋》"), PLAIN.rstrip("\n"), PLAIN + PLAIN):
        assert not re.fullmatch(st.QIYAN_REGEX, wrong), wrong
    assert "HAN{2,8}" in st.QIYAN_LARK and "HAN{7}" in st.QIYAN_LARK and "root ::=" in st.QIYAN_EBNF


# ------------------------------------------------------------------------------------- the backends
@pytest.fixture(scope="module")
def parts(llm):
    """The session engine's config and tokenizer."""
    return st.engine_parts(llm)


def accepts(parts, backend: str, text: str, **constraint) -> bool:
    """Whether vLLM's backend object, compiled for the constraint, accepts every token of ``text``."""
    config, tokenizer = parts
    cfg = st.config_for(config, backend)
    params, key = st.prepared(cfg, tokenizer, **constraint)
    grammar = st.compile_key(st.make_backend(backend, cfg, tokenizer), key, params)
    return grammar.accept_tokens("t", tokenizer.encode(text, add_special_tokens=False))


def test_backends_offered_are_read_from_vllm():
    offered = st.backends_offered()
    assert offered[0] == "auto" and set(offered[1:]) == set(st.BACKENDS)
    assert st.library_version("xgrammar") and st.library_version("guidance")


def test_config_for_leaves_the_engines_config_alone(parts):
    config, _ = parts
    view = st.config_for(config, "guidance", disable_any_whitespace=True)
    assert view.structured_outputs_config.backend == "guidance" and view.structured_outputs_config.disable_any_whitespace
    assert config.structured_outputs_config.backend == "auto" and view.model_config is config.model_config


@pytest.mark.parametrize("backend", ["xgrammar", "guidance"])
def test_the_grammars_and_the_regex_accept_the_same_poems(parts, backend):
    for constraint in ({"regex": st.QIYAN_REGEX}, {"grammar": st.QIYAN_EBNF}, {"grammar": st.QIYAN_LARK}):
        assert accepts(parts, backend, PLAIN, **constraint), (backend, constraint)
        for wrong in (PLAIN.replace("孤城", "城"), PLAIN + "山", "《秋》\n"):
            assert not accepts(parts, backend, wrong, **constraint), (backend, constraint, wrong)


def test_prepared_checks_and_rewrites_as_vllms_front_end_does(parts):
    config, tokenizer = parts
    params, key = st.prepared(st.config_for(config, "xgrammar"), tokenizer, choice=st.SEASONS)
    assert params.structured_outputs.choice is None and key[0].name == "GRAMMAR", "xgrammar turns a choice into a grammar"
    auto, _ = st.prepared(st.config_for(config), tokenizer, json={"type": "integer", "multipleOf": 7})
    assert auto.structured_outputs._backend == "guidance", "auto falls back to guidance for what xgrammar lacks"
    with pytest.raises((vllm.exceptions.VLLMValidationError, ValueError), match="uniqueItems|not supported"):
        st.prepared(st.config_for(config), tokenizer, json={"type": "array", "uniqueItems": True})


def test_compile_key_builds_a_matcher_on_each_working_backend(parts):
    config, tokenizer = parts
    for name in ("xgrammar", "guidance", "outlines"):
        cfg = st.config_for(config, name)
        params, key = st.prepared(cfg, tokenizer, json=st.poem_schema())
        grammar = st.compile_key(st.make_backend(name, cfg, tokenizer), key, params)
        assert grammar.accept_tokens("t", tokenizer.encode(GOOD_JSON, add_special_tokens=False)), name


def test_allowed_ids_reads_the_bitmask_bit_by_bit():
    import torch

    row = torch.tensor([0b101, -2**31], dtype=torch.int32)  # ids 0 and 2; id 63 (the sign bit of the second word)
    assert st.allowed_ids(row, 64) == [0, 2, 63]
    assert st.allowed_ids(row, 40) == [0, 2], "ids past the vocabulary are padding"
    assert st.allowed_ids(torch.full((2,), -1, dtype=torch.int32), 50) == list(range(50))


def test_allowed_tokens_show_the_whitespace_the_default_grammar_allows(llm):
    schema = st.poem_schema()
    default = st.allowed_tokens(llm, "{", json=schema)
    compact = st.allowed_tokens(llm, "{", disable_any_whitespace=True, json=schema)
    assert "\n" in default and " " in default and '"' in default
    assert set(compact) == {'"'}
    seasons = set(st.allowed_tokens(llm, "", choice=st.SEASONS))
    assert seasons - {"\ufffd"} == set(st.SEASONS), "the four characters (and the first byte of their byte spellings)"
    with pytest.raises(ValueError, match="does not accept the prefix"):
        st.allowed_tokens(llm, "[", json=schema)


def test_mask_profile_walks_a_valid_answer(llm):
    steps = st.mask_profile(llm, GOOD_JSON, json=st.poem_schema())
    assert steps[0]["token"].startswith("{") and "".join(s["token"] for s in steps) == GOOD_JSON
    han = [s for s in steps if st.han_count(s["token"])]
    assert han and all(s["allowed"] > 1000 and not s["forced"] for s in han), "a line admits thousands of characters"
    assert any(s["forced"] for s in steps), "the key's letters are forced"
    with pytest.raises(ValueError, match="rejects"):
        st.mask_profile(llm, GOOD_JSON.replace("孤城", "城"), json=st.poem_schema())


def test_backend_costs_measure_the_working_backends_and_name_the_broken_one(llm):
    costs = st.backend_costs(llm, GOOD_JSON, repeats=1, json=st.poem_schema())
    assert list(costs.index) == ["xgrammar", "guidance", "outlines", "lm-format-enforcer"]
    working = costs[costs["ok"]]
    assert {"xgrammar", "guidance", "outlines"} <= set(working.index)
    assert (working["repeats"] == 1).all()
    for column in ("setup_ms", "validate_ms", "compile_ms", "mask_us_per_token"):
        assert (working[column] > 0).all() and working[column].map(math.isfinite).all(), column
    assert (working["tokens"] == len(llm.get_tokenizer().encode(GOOD_JSON, add_special_tokens=False))).all()
    if not costs.loc["lm-format-enforcer", "ok"]:
        assert "ImportError" in costs.loc["lm-format-enforcer", "error"], "lm-format-enforcer 0.11.3 imports a removed module"
    bad = st.backend_cost("xgrammar", *st.engine_parts(llm), text=PLAIN, repeats=1, json=st.poem_schema())
    assert not bad["ok"] and "rejected token 1" in bad["error"]
    quick = st.backend_cost("xgrammar", *st.engine_parts(llm), text=GOOD_JSON, repeats=50, budget_s=0.0,
                            json=st.poem_schema())
    assert quick["ok"] and quick["repeats"] == 1, "a spent budget stops after the first repeat"


def test_capability_table_marks_what_each_backend_refuses(llm):
    table = st.capability_table(llm, {"regex": {"regex": st.QIYAN_REGEX}, "EBNF": {"grammar": st.QIYAN_EBNF},
                                      "Lark": {"grammar": st.QIYAN_LARK}},
                                backends=["xgrammar", "guidance", "outlines"])
    assert (table.loc[["xgrammar", "guidance"]] == "✓").all().all() and table.loc["outlines", "regex"] == "✓"
    assert table.loc["outlines", "EBNF"].startswith("✗") and table.loc["outlines", "Lark"].startswith("✗")


def test_decode_overhead_compares_equal_amounts_of_work(llm):
    result = st.decode_overhead(llm, chat_prompt(llm, "写一首七言绝句"), f"[{st.HAN}]{{200}}", max_tokens=8, n=2,
                                repeats=2)
    assert len(result["plain_runs_ms"]) == len(result["constrained_runs_ms"]) == 2
    assert result["unconstrained_ms_per_token"] > 0 and result["constrained_ms_per_token"] > 0
    assert math.isfinite(result["overhead_percent"])
    assert all(c.finish_reason == "length" and len(c.token_ids) == 8 for c in result["outputs"])
    assert all(re.fullmatch(f"[{st.HAN}]*\ufffd*", c.text) for c in result["outputs"])


def test_plots_return_figures(llm):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    steps = st.mask_profile(llm, GOOD_JSON, json=st.poem_schema())
    table = st.validity_table({"a": [GOOD_JSON], "b": ["{"]})
    costs = pd.DataFrame({"ok": [True, False], "compile_ms": [5.0, None], "validate_ms": [1.0, None],
                          "mask_us_per_token": [3.0, None]}, index=["xgrammar", "lm-format-enforcer"])
    for fig in (st.plot_mask_profile(steps, 3142), st.plot_valid_shares(table), st.plot_backend_costs(costs, 0.5),
                st.plot_backend_costs(costs)):
        assert fig.axes
        plt.close(fig)


# ---------------------------------------------------------------------- what the engine does (facts the lesson shows)
def test_the_request_level_whitespace_switch_is_ignored(llm):
    """StructuredOutputsParams(disable_any_whitespace=True) changes nothing: the backends read the engine's config."""
    params = [SamplingParams(temperature=0.8, seed=3, max_tokens=24,
                             structured_outputs=StructuredOutputsParams(json=st.poem_schema(), **extra))
              for extra in ({}, {"disable_any_whitespace": True})]
    outs = llm.chat([[{"role": "user", "content": "写一首七言绝句"}]] * 2, params, chat_template_kwargs=NO_THINKING,
                    use_tqdm=False)
    assert outs[0].outputs[0].text == outs[1].outputs[0].text


def test_a_strict_compact_schema_is_always_met(tiny_poet_dir):
    """With the engine's compact JSON, every answer is a valid poem, whatever the model writes inside the lines."""
    from llmkit.engine import close_llm, load_llm

    engine = load_llm(str(tiny_poet_dir), structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True})
    try:
        out = engine.chat([{"role": "user", "content": "写一首七言绝句"}],
                          SamplingParams(n=8, temperature=1.0, seed=0, max_tokens=160,
                                         structured_outputs=StructuredOutputsParams(json=st.poem_schema())),
                          chat_template_kwargs=NO_THINKING, use_tqdm=False)[0]
    finally:
        close_llm(engine)
    assert st.validity_row("compact", out.outputs)["valid share"] == 1.0
