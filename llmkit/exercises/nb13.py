"""Exercises of notebook 13 (reasoning and tool calling): the checkers, and beside them the cases that test them.

The expected answers come from plain string operations, ``json``, a regular expression over Han characters and
the ``jsonschema`` validator, with the tool's schema written out here: not from ``llmkit.tool_calls``, the module
the lesson teaches. 13.3 also asks the server itself, when the cell passes it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, number

RAW_13_1 = "<think>\n五言绝句，写月亮\n</think>\n\n床前明月光，疑是地上霜。"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
COUNT_CHARS_PARAMETERS = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


@exercise("13.1", "a (reasoning, content) pair of strings for the raw answer of the exercise")
def _ex_13_1(answer: Any) -> str:
    """The split at </think>: before it (tags and the newlines around them dropped) reasoning, after it content."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Hint("give a pair: (reasoning, content).")
    reasoning, content = answer
    head, _, tail = RAW_13_1.partition("</think>")
    want = (head.removeprefix("<think>").strip("\n"), tail.lstrip("\n"))
    if not all(isinstance(x, str) for x in answer):
        raise Hint("both parts are strings.")
    if "<think>" in reasoning or "</think>" in reasoning or "think>" in content:
        raise Hint("the tags are markup, not part of either field: a parser drops them.")
    if (reasoning.strip(), content.strip()) == (want[1], want[0]):
        raise Hint("the other way round: reasoning is inside the block, the answer after it.")
    if reasoning.strip() != want[0]:
        raise Hint(f"the reasoning is what stands between <think> and </think> (got {reasoning!r}).")
    if content.strip() != want[1]:
        raise Hint(f"the content is everything after </think> (got {content!r}).")
    return ("the text before </think> is the reasoning, the rest the answer: what --reasoning-parser qwen3 puts in "
            "`reasoning` and `content`.")


@exercise("13.2", "a dict: the tool message (role, tool_call_id, content) that answers the call")
def _ex_13_2(answer: Any, call: Any = None) -> str:
    """role tool, the call's id, and the Han-character count of the call's own text argument, as a string."""
    if call is None:
        raise Hint("this check needs call=... (the first call of steps[0]); the model made no call in this run, "
                   "so run the loop again with another seed.")
    if not isinstance(answer, dict):
        raise Hint(f"give the message as a dict (got {type(answer).__name__}).")
    if answer.get("role") != "tool":
        raise Hint("a tool's result goes back with role 'tool'.")
    if answer.get("tool_call_id") != call.get("id"):
        raise Hint("tool_call_id must be the id of the call it answers (call['id']): with several calls, it says "
                   "which result is which.")
    try:
        text = json.loads(call["function"]["arguments"])["text"]
    except (ValueError, KeyError, TypeError):
        raise Hint("this call's arguments are not a JSON object with a text field; pick a runnable call.") from None
    want = str(len(HAN.findall(text)))
    content = answer.get("content")
    if not isinstance(content, str):
        raise Hint("content is a string: send the result as text (str(...) or json.dumps(...)).")
    if content.strip() != want:
        raise Hint(f"run the tool on the arguments the model wrote ({text!r}), not on the question's text.")
    return f"the model asked about {text!r}, which has {want} Han characters; that answer goes back as the tool's turn."


@exercise("13.3", "the tool_choice value (a dict) that forces a call of last_char")
def _ex_13_3(answer: Any, server: Any = None) -> str:
    """{"type": "function", "function": {"name": "last_char"}}; with server=, the server's forced call is checked."""
    if answer in ("required", "auto"):
        raise Hint(f"{answer!r} lets the model pick any offered tool; name the one you want.")
    if isinstance(answer, str):
        raise Hint("a named tool choice is an object, not a string: {'type': 'function', 'function': {...}}.")
    if not isinstance(answer, dict) or answer.get("type") != "function":
        raise Hint("the OpenAI form is {'type': 'function', 'function': {'name': ...}}.")
    fn = answer.get("function")
    if not isinstance(fn, dict) or fn.get("name") != "last_char":
        raise Hint("answer['function']['name'] is the tool's name, last_char.")
    said = ""
    if server is not None:
        from llmkit.clients import post_json

        tools = [{"type": "function", "function": {"name": name, "description": name,
                                                   "parameters": COUNT_CHARS_PARAMETERS}}
                 for name in ("count_chars", "last_char")]
        body = {"model": server.model, "messages": [{"role": "user", "content": "“黄河入海流”最后一个字是什么？"}],
                "tools": tools, "tool_choice": answer, "max_tokens": 256, "temperature": 0,
                "chat_template_kwargs": {"enable_thinking": False}}
        calls = post_json(server, "/v1/chat/completions", body, timeout=600).json()["choices"][0]["message"]["tool_calls"]
        if not calls or calls[0]["function"]["name"] != "last_char":
            raise Hint(f"the server did not call last_char with it: {calls}")
        said = f" The server called it with {calls[0]['function']['arguments']}."
    return "a named tool choice: vLLM forces that tool's argument schema with a grammar, so the call always parses." + said


@exercise("13.4", "a number from 0 to 1: the share of the answers whose call could run")
def _ex_13_4(answer: Any, calls: Any = None) -> str:
    """Calls named count_chars with JSON arguments that meet the schema, over all answers (no call counts as 0)."""
    import jsonschema

    if calls is None:
        raise Hint("this check needs calls=... (the list from section 7).")
    share = number(answer)
    good = 0
    for call in calls:
        if not call or (call.get("function") or {}).get("name") != "count_chars":
            continue
        try:
            jsonschema.validate(json.loads(call["function"]["arguments"]), COUNT_CHARS_PARAMETERS)
        except (ValueError, TypeError, jsonschema.ValidationError):
            continue
        good += 1
    want = good / max(1, len(calls))
    if share > 1:
        raise Hint("give a share from 0 to 1, not a percentage.")
    if abs(share - sum(c is not None for c in calls) / max(1, len(calls))) < 1e-9 and abs(share - want) > 1e-9:
        raise Hint("that counts every parsed call; some of them cannot run (check the arguments against the schema).")
    if abs(share - want) > 1e-9:
        raise Hint("count the calls whose arguments parse as JSON and meet count_chars' schema, over all answers.")
    return f"{good} of {len(calls)} answers hold a call your code could run."


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    out = [Case("13.1", ("五言绝句，写月亮", "床前明月光，疑是地上霜。")),
           Case("13.1", ["五言绝句，写月亮\n", "床前明月光，疑是地上霜。"])]
    out += [Case("13.1", a, passes=False) for a in (
        ("<think>\n五言绝句，写月亮", "床前明月光，疑是地上霜。"), ("床前明月光，疑是地上霜。", "五言绝句，写月亮"),
        ("五言绝句", "床前明月光，疑是地上霜。"), ("五言绝句，写月亮", ""), "五言绝句，写月亮", (1, 2))]
    out += [Case("13.1", ("床前明月光，疑是地上霜。", "五言绝句，写月亮"), passes=False, says="other way")]

    call = {"id": "chatcmpl-tool-1", "type": "function",
            "function": {"name": "count_chars", "arguments": json.dumps({"text": "白日依山尽"}, ensure_ascii=False)}}
    out += [Case("13.2", {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": "5"}, context={"call": call})]
    out += [Case("13.2", a, passes=False, context={"call": call}) for a in (
        {"role": "user", "tool_call_id": "chatcmpl-tool-1", "content": "5"},
        {"role": "tool", "tool_call_id": "x", "content": "5"},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": 5},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-1", "content": "10"}, "5")]
    out += [Case("13.2", {"role": "tool", "content": "5"}, passes=False)]   # no call= given: a hint, not a crash

    named = {"type": "function", "function": {"name": "last_char"}}
    out += [Case("13.3", named)]
    out += [Case("13.3", a, passes=False) for a in (
        "required", "last_char", {"type": "function", "function": {"name": "count_chars"}}, {"name": "last_char"})]

    bad = {"type": "function", "function": {"name": "count_chars", "arguments": '{"text": 5}'}}
    cut = {"type": "function", "function": {"name": "count_chars", "arguments": '{"text": "白'}}
    calls = [call, call, bad, cut, None]
    out += [Case("13.4", 0.4, context={"calls": calls}), Case("13.4", "0.4", context={"calls": calls})]
    out += [Case("13.4", a, passes=False, context={"calls": calls}) for a in (0.8, 0.5, 40)]
    out += [Case("13.4", 0.8, passes=False, context={"calls": calls}, says="every parsed call")]
    return out
