"""Reasoning and tool calling as the engines do them: their own parsers, the OpenAI fields, and the loop.

A reasoning model writes its thinking between ``<think>`` and ``</think>``, then its answer. A tool-calling model
writes a call as text too, for example Hermes-style ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
Neither engine changes what the model writes: a *parser* chosen at server start (vLLM's ``--reasoning-parser`` and
``--tool-call-parser``, SGLang's ``--reasoning-parser`` and ``--tool-call-parser``) cuts the text into the OpenAI
fields afterwards. This module:

- names the fields each engine answers (``reasoning_of``: vLLM's ``reasoning``, SGLang's ``reasoning_content``);
- runs vLLM's own parser classes on any text, offline (``vllm_reasoning_split``, ``vllm_tool_calls``), so a
  learner can see what a server would return without starting one, or with the wrong parser;
- checks a parsed call against its tool's JSON schema (``call_problem``), runs calls (``run_tool_calls``), and
  drives the whole loop over HTTP (``tool_loop``);
- puts a streamed answer back together (``stream_chat``): reasoning, content and tool-call deltas by index.

The course's tool is ``count_chars`` (tiny-poet was trained to call it; any tool-calling model can).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from llmkit.tiny_poet import COUNT_CHARS_TOOL, count_chars

THINK_START, THINK_END = "<think>", "</think>"

# A second course tool, for parallel calls on a model that makes them (Qwen3 on the GPU): the rhyme group of a
# character is out of scope, so this one returns the last character of a line, the one a rhyme rests on.
LAST_CHAR_TOOL = {"type": "function", "function": {
    "name": "last_char", "description": "一句诗的最后一个汉字（押韵的字）",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}


def last_char(text: str) -> str:
    """The last Han character of ``text`` (punctuation skipped), or an empty string."""
    han = [c for c in text if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff"]
    return han[-1] if han else ""


TOOLS = [COUNT_CHARS_TOOL, LAST_CHAR_TOOL]
REGISTRY: dict[str, Callable[..., Any]] = {"count_chars": count_chars, "last_char": last_char}


# --------------------------------------------------------------------------------------------------
# Reasoning
# --------------------------------------------------------------------------------------------------
def reasoning_of(message: Mapping[str, Any] | Any) -> str | None:
    """The reasoning text of a chat message or delta, whichever engine answered.

    vLLM (0.26 and the CPU build 0.32) answers ``reasoning``; ``reasoning_content`` is its deprecated name, still
    read on input (vllm/entrypoints/openai/chat_completion/protocol.py). SGLang answers ``reasoning_content``
    (sglang/srt/entrypoints/openai/protocol.py).
    """
    get = message.get if isinstance(message, Mapping) else (lambda k: getattr(message, k, None))
    return get("reasoning") or get("reasoning_content") or None


def split_think(text: str) -> tuple[str | None, str]:
    """(reasoning, content) of raw model text, by hand: what a ``<think>`` parser does, for offline output.

    No ``</think>`` means no finished reasoning: a cut-off think block is all reasoning and no content, which is
    what max_tokens does to a thinking model that thinks too long.
    """
    if THINK_END not in text:
        if text.lstrip().startswith(THINK_START):
            return text.lstrip()[len(THINK_START):].strip("\n"), ""
        return None, text
    head, _, tail = text.partition(THINK_END)
    return head.replace(THINK_START, "", 1).strip("\n"), tail.lstrip("\n")


def _request(model: str, tools: Sequence[Mapping] | None = None, **fields: Any):
    """A ChatCompletionRequest, the object vLLM's parsers read (tools, tool_choice, chat_template_kwargs)."""
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "-"}],
                                 tools=list(tools) if tools else None, **fields)


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def vllm_reasoning_split(text: str, model: str, parser: str = "qwen3", tokenizer: Any = None,
                         **request_fields: Any) -> tuple[str | None, str | None]:
    """(reasoning, content) as vLLM's ``--reasoning-parser`` ``parser`` cuts ``text`` (the engine's own class)."""
    from vllm.reasoning import ReasoningParserManager

    tok = tokenizer or _tokenizer(model)
    cls = ReasoningParserManager.get_reasoning_parser(parser)
    return cls(tok).extract_reasoning(text, _request(model, **request_fields))


@dataclass
class ParsedCalls:
    """What a tool parser made of a text: the calls (OpenAI form), the content left over, and the parser."""

    parser: str
    tools_called: bool
    calls: list[dict] = field(default_factory=list)
    content: str | None = None


def vllm_tool_calls(text: str, model: str, parser: str = "hermes", tools: Sequence[Mapping] = (COUNT_CHARS_TOOL,),
                    tokenizer: Any = None) -> ParsedCalls:
    """The calls vLLM's ``--tool-call-parser`` ``parser`` finds in ``text``: its own class, no server.

    A text the parser does not recognise comes back as content with no calls: the server does exactly that,
    answering 200 with ``tool_calls: []`` and the raw markup in ``content``.
    """
    from vllm.tool_parsers import ToolParserManager

    tok = tokenizer or _tokenizer(model)
    cls = ToolParserManager.get_tool_parser(parser)
    info = cls(tok, list(tools)).extract_tool_calls(text, _request(model, tools=tools))
    calls = [{"type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in info.tool_calls]
    return ParsedCalls(parser, bool(info.tools_called), calls, info.content)


# --------------------------------------------------------------------------------------------------
# Tool calls: check, run, loop
# --------------------------------------------------------------------------------------------------
def call_problem(call: Mapping[str, Any], tools: Sequence[Mapping] = TOOLS) -> str | None:
    """Why a parsed call cannot be run (unknown tool, arguments not JSON, or against the schema), or None."""
    import jsonschema

    fn = call.get("function") or {}
    known = {t["function"]["name"]: t["function"] for t in tools}
    if fn.get("name") not in known:
        return f"unknown tool {fn.get('name')!r} (offered: {', '.join(known)})"
    raw = fn.get("arguments")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        return f"arguments are not JSON ({exc.msg} at character {exc.pos}): {raw!r}"
    try:
        jsonschema.validate(args, known[fn["name"]].get("parameters") or {"type": "object"})
    except jsonschema.ValidationError as exc:
        return f"arguments break {fn['name']}'s schema: {exc.message}"
    return None


def valid_share(calls: Sequence[Mapping | None], tools: Sequence[Mapping] = TOOLS) -> float:
    """The share of answers whose call exists and can run (``None`` = an answer without a call)."""
    return sum(c is not None and call_problem(c, tools) is None for c in calls) / max(1, len(calls))


def run_tool_calls(calls: Sequence[Mapping[str, Any]], registry: Mapping[str, Callable[..., Any]] = REGISTRY,
                   tools: Sequence[Mapping] = TOOLS) -> list[dict[str, Any]]:
    """Run each call and answer it with a ``tool`` message (``tool_call_id`` kept); a bad call's answer is the
    problem, as text, so the model can correct itself rather than the loop crashing."""
    out = []
    for call in calls:
        problem = call_problem(call, tools)
        if problem is None:
            fn = call["function"]
            args = fn["arguments"] if isinstance(fn["arguments"], Mapping) else json.loads(fn["arguments"])
            try:
                result = registry[fn["name"]](**args)
            except Exception as exc:  # the tool itself failed: say so to the model
                result = f"error: {type(exc).__name__}: {exc}"
        else:
            result = f"error: {problem}"
        msg = {"role": "tool", "content": str(result)}
        if call.get("id"):
            msg["tool_call_id"] = call["id"]
        out.append(msg)
    return out


def chat(server: Any, messages: Sequence[Mapping], **body: Any) -> dict[str, Any]:
    """One chat completion over HTTP (non-streaming); returns the JSON answer."""
    from llmkit.clients import post_json

    model = body.pop("model", None) or getattr(server, "model", None)
    return post_json(server, "/v1/chat/completions", {"model": model, "messages": list(messages), **body},
                     timeout=body.pop("timeout", 600)).json()


def assistant_turn(message: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant message to send back in the next request: content and tool calls (reasoning dropped, as
    Qwen3's template drops it from earlier turns anyway)."""
    turn: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        turn["tool_calls"] = [{k: c[k] for k in ("id", "type", "function") if k in c} for c in message["tool_calls"]]
    return turn


@dataclass
class LoopStep:
    """One round of the loop: what the model answered, and the tool messages that went back."""

    finish_reason: str
    message: dict[str, Any]
    tool_messages: list[dict[str, Any]]


def tool_loop(server: Any, messages: Sequence[Mapping], tools: Sequence[Mapping] = (COUNT_CHARS_TOOL,),
              registry: Mapping[str, Callable[..., Any]] = REGISTRY, max_rounds: int = 3,
              **body: Any) -> tuple[list[LoopStep], list[dict[str, Any]]]:
    """The whole loop: ask; while the model calls tools, run them and send the results back as ``tool``
    messages; stop at an answer without calls or after ``max_rounds``. Returns the steps and the conversation."""
    convo = [dict(m) for m in messages]
    steps: list[LoopStep] = []
    for _ in range(max_rounds):
        choice = chat(server, convo, tools=list(tools), **body)["choices"][0]
        msg = choice["message"]
        calls = msg.get("tool_calls") or []
        replies = run_tool_calls(calls, registry, tools) if calls else []
        steps.append(LoopStep(choice["finish_reason"], msg, replies))
        convo.append(assistant_turn(msg))
        if not calls:
            break
        convo += replies
    return steps, convo


# --------------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------------
@dataclass
class Streamed:
    """A streamed chat answer put back together, and how it arrived."""

    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    chunks: int = 0
    kinds: list[str] = field(default_factory=list)   # per chunk: "reasoning", "content", "tool_call", "other"
    first_call_s: float | None = None                 # seconds to the first tool-call delta


def stream_chat(server: Any, messages: Sequence[Mapping], **body: Any) -> Streamed:
    """Stream a chat completion and join its deltas: reasoning and content are appended, and each tool call is
    assembled by its ``index`` (the first delta brings id and name, later ones pieces of the arguments)."""
    import requests

    from llmkit.clients import auth_headers, base_url, raise_for_error, sse_events

    model = body.pop("model", None) or getattr(server, "model", None)
    req = {"model": model, "messages": list(messages), "stream": True, **body}
    out, calls, t0 = Streamed(), {}, time.perf_counter()
    with requests.post(base_url(server) + "/v1/chat/completions", json=req, headers=auth_headers(server),
                       stream=True, timeout=600) as resp:
        raise_for_error(resp)
        for event in sse_events(resp):
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                out.chunks += 1
                kind = "other"
                if reasoning_of(delta):
                    out.reasoning += reasoning_of(delta)
                    kind = "reasoning"
                if delta.get("content"):
                    out.content += delta["content"]
                    kind = "content"
                for tc in delta.get("tool_calls") or []:
                    kind = "tool_call"
                    if out.first_call_s is None:
                        out.first_call_s = time.perf_counter() - t0
                    slot = calls.setdefault(tc.get("index", 0), {"id": None, "type": "function",
                                                                 "function": {"name": "", "arguments": ""}})
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
                out.kinds.append(kind)
                out.finish_reason = choice.get("finish_reason") or out.finish_reason
    out.tool_calls = [calls[i] for i in sorted(calls)]
    return out


def kinds_in_order(kinds: Sequence[str]) -> list[str]:
    """The kinds of a stream's chunks with repeats collapsed: ['reasoning', 'content'] for a thinking answer."""
    runs: list[str] = []
    for k in kinds:
        if k != "other" and (not runs or runs[-1] != k):
            runs.append(k)
    return runs
