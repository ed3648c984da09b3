"""llmkit.tool_calls: by hand, with vLLM's own parser classes on tiny-poet's tokenizer, and on a real vLLM server
started with --reasoning-parser qwen3 --enable-auto-tool-choice --tool-call-parser hermes (the parser_server
fixture of conftest.py)."""

from __future__ import annotations

import json

import pytest

from llmkit import tool_calls as tc
from llmkit.tiny_poet import COUNT_CHARS_TOOL

CALL = '<tool_call>{"name": "count_chars", "arguments": {"text": "白日依山尽"}}</tool_call>'
ASK = [{"role": "user", "content": "“白日依山尽，黄河入海流。”有几个字？"}]
AUTUMN = [{"role": "user", "content": "写一首关于秋天的诗"}]


@pytest.mark.parametrize("text,expected", [
    ("<think>\n七言绝句，写秋天\n</think>\n\n《秋》\n寒山", ("七言绝句，写秋天", "《秋》\n寒山")),
    ("<think>\n\n</think>\n\n诗", ("", "诗")),
    ("<think>\n先想", ("先想", "")),            # cut inside the block: reasoning, no answer
    ("没有思考", (None, "没有思考")),
])
def test_split_think(text, expected):
    assert tc.split_think(text) == expected


def test_reasoning_of_reads_both_engines_fields():
    assert tc.reasoning_of({"reasoning": "a", "content": "b"}) == "a"            # vLLM
    assert tc.reasoning_of({"reasoning_content": "a", "content": "b"}) == "a"    # SGLang
    assert tc.reasoning_of({"content": "b"}) is None and tc.reasoning_of({"reasoning": ""}) is None


def test_call_problem_names_each_fault():
    ok = {"function": {"name": "count_chars", "arguments": '{"text": "白日"}'}}
    assert tc.call_problem(ok) is None
    assert tc.call_problem({"function": {"name": "count_chars", "arguments": {"text": "白日"}}}) is None
    assert "unknown tool" in tc.call_problem({"function": {"name": "rhyme", "arguments": "{}"}})
    assert "not JSON" in tc.call_problem({"function": {"name": "count_chars", "arguments": '{"text": "白'}})
    assert "schema" in tc.call_problem({"function": {"name": "count_chars", "arguments": '{"text": 5}'}})
    assert "schema" in tc.call_problem({"function": {"name": "count_chars", "arguments": '{"words": "白"}'}})
    assert tc.valid_share([ok, None, {"function": {"name": "x"}}, ok]) == 0.5


def test_run_tool_calls_answers_every_call_and_reports_bad_ones():
    calls = [{"id": "a", "function": {"name": "count_chars", "arguments": '{"text": "白日依山尽，黄河"}'}},
             {"id": "b", "function": {"name": "last_char", "arguments": '{"text": "黄河入海流。"}'}},
             {"id": "c", "function": {"name": "count_chars", "arguments": '{"text": 5}'}}]
    replies = tc.run_tool_calls(calls)
    assert [r["tool_call_id"] for r in replies] == ["a", "b", "c"] and all(r["role"] == "tool" for r in replies)
    assert replies[0]["content"] == "7" and replies[1]["content"] == "流"
    assert replies[2]["content"].startswith("error:") and "schema" in replies[2]["content"]


def test_kinds_in_order_collapses_runs():
    assert tc.kinds_in_order(["other", "reasoning", "reasoning", "content", "other", "content"]) == ["reasoning", "content"]


@pytest.mark.engine
def test_vllm_parsers_on_text(tiny_poet_dir):
    """vLLM's own hermes and qwen3 classes: one call, two calls, wrong parsers, malformed calls."""
    model = str(tiny_poet_dir)
    one = tc.vllm_tool_calls(CALL, model, "hermes")
    assert one.tools_called and one.calls == [{"type": "function", "function": {
        "name": "count_chars", "arguments": json.dumps({"text": "白日依山尽"}, ensure_ascii=False)}}]
    two = tc.vllm_tool_calls(CALL + CALL.replace("count_chars", "last_char"), model, "hermes",
                             [COUNT_CHARS_TOOL, tc.LAST_CHAR_TOOL])
    assert [c["function"]["name"] for c in two.calls] == ["count_chars", "last_char"]
    wrong = tc.vllm_tool_calls(CALL, model, "pythonic")
    assert not wrong.tools_called and not wrong.calls and "<tool_call>" in wrong.content
    swallowed = tc.vllm_tool_calls(CALL, model, "qwen3_xml")   # Qwen3-Coder's XML format: no call, no text
    assert not swallowed.tools_called and not swallowed.calls and "count_chars" not in (swallowed.content or "")
    with pytest.raises(RuntimeError, match="python_tag"):   # its start token is not in this vocabulary
        tc.vllm_tool_calls(CALL, model, "llama3_json")
    for text in (CALL[:-20], CALL.replace('"text"', "text")):
        bad = tc.vllm_tool_calls(text, model, "hermes")
        assert not bad.tools_called and bad.content == text
    reasoning, content = tc.vllm_reasoning_split("<think>\n七言绝句，写秋天\n</think>\n\n《秋》", model)
    assert reasoning.strip() == "七言绝句，写秋天" and content.strip() == "《秋》"


@pytest.mark.engine
def test_tool_loop_runs_the_models_call_and_sends_the_result_back(parser_server):
    steps, convo = tc.tool_loop(parser_server, ASK, max_tokens=200, seed=0, temperature=0.7)
    first = steps[0]
    assert first.finish_reason == "tool_calls" and first.tool_messages
    call = first.message["tool_calls"][0]
    args = json.loads(call["function"]["arguments"])
    assert first.tool_messages[0] == {"role": "tool", "content": str(tc.count_chars(args["text"])),
                                      "tool_call_id": call["id"]}
    assert [m["role"] for m in convo[:4]] == ["user", "assistant", "tool", "assistant"]
    assert not steps[-1].message.get("tool_calls")


@pytest.mark.engine
def test_forced_calls_always_run_and_none_never_calls(parser_server):
    """required and a named tool are grammars: 20 of 20 runnable calls (thinking off: with thinking on the grammar
    waits for </think>, which a model may never write); none: no call."""
    for choice in ("required", {"type": "function", "function": {"name": "count_chars"}}):
        choices = tc.chat(parser_server, ASK, n=20, seed=0, temperature=0.7, max_tokens=200,
                          tools=[COUNT_CHARS_TOOL], tool_choice=choice,
                          chat_template_kwargs={"enable_thinking": False})["choices"]
        calls = [(c["message"].get("tool_calls") or [None])[0] for c in choices]
        assert tc.valid_share(calls) == 1.0, (choice, calls)
    none = tc.chat(parser_server, ASK, n=8, seed=0, temperature=0.7, max_tokens=200, tools=[COUNT_CHARS_TOOL],
                   tool_choice="none")["choices"]
    assert not any(c["message"].get("tool_calls") for c in none)
    one = tc.chat(parser_server, ASK, n=8, seed=0, temperature=0.7, max_tokens=300, tools=tc.TOOLS,
                  tool_choice="required", parallel_tool_calls=False,
                  chat_template_kwargs={"enable_thinking": False})["choices"]
    assert all(len(c["message"]["tool_calls"]) == 1 for c in one)


@pytest.mark.engine
def test_streams_join_reasoning_content_and_calls(parser_server):
    poem = tc.stream_chat(parser_server, AUTUMN, max_tokens=200, seed=0, temperature=0.7)
    assert tc.kinds_in_order(poem.kinds)[0] == "reasoning" and poem.reasoning and "</think>" not in poem.content
    call = tc.stream_chat(parser_server, ASK, tools=[COUNT_CHARS_TOOL], tool_choice="required", max_tokens=200,
                          seed=0, temperature=0.7, chat_template_kwargs={"enable_thinking": False})
    assert call.tool_calls and call.tool_calls[0]["function"]["name"] == "count_chars" and call.tool_calls[0]["id"]
    assert tc.call_problem(call.tool_calls[0]) is None, call.tool_calls


@pytest.mark.engine
def test_thinking_budget_caps_the_block(parser_server, tiny_poet_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_poet_dir))
    for budget in (1, 4):
        msgs = [c["message"] for c in tc.chat(parser_server, AUTUMN, n=8, seed=0, temperature=0.7, max_tokens=200,
                                              thinking_token_budget=budget)["choices"]]
        assert all(len(tok.encode(tc.reasoning_of(m) or "", add_special_tokens=False)) <= budget + 2 for m in msgs)
