"""The pieces of llmkit.note_server, tested without an engine.

Each piece is a plain function or class: the request model, sampling parameters (real
``vllm.SamplingParams``), the prompt (the real tiny-poet tokenizer, loaded as vLLM loads it), the reply and
the stream events (vLLM's own ``RequestOutput``/``CompletionOutput``/``Logprob``, filled in by hand), the
API key, the error mapping and the body limit. The error handlers, the key check and the body limit are
also run together for real: ``app_shell`` (what ``create_app`` builds on) with one route that needs no
engine, served by uvicorn on 127.0.0.1 and called with ``requests`` and raw sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("vllm", reason="vLLM is not installed in this environment")

from fastapi import Depends  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from vllm.outputs import RequestOutput  # noqa: E402
from vllm.sampling_params import RequestOutputKind, SamplingParams  # noqa: E402

from llmkit.exercises.samples import completion, logprob  # noqa: E402
from llmkit.note_server import (MAX_N, SSE_DONE, BodyLimit, RequestError, StreamState, app_shell,  # noqa: E402
                                check_api_key, check_fits, drain, engine_prompt, error_body, make_request_model,
                                prompt_ids, prompt_text, reply, require_key, sampling_params, sse, steps_json,
                                stop_strings, stream_events, validation_error)

MAX_MODEL_LEN = 1024
Body = make_request_model(MAX_MODEL_LEN, vocab_size=4000)
FIELDS = list(Body.model_fields)
NOTE_BODY = {"prompt": "写一首七言绝句", "max_tokens": 64, "temperature": 0.8, "top_p": 0.95, "n": 2}


def body(**fields):
    """A validated /generate body (the note's prompt unless given)."""
    return Body.model_validate({"prompt": "写一首七言绝句", **fields})


def errors_of(data) -> list[dict]:
    """pydantic's errors for a body, located under "body" as FastAPI reports them."""
    with pytest.raises(ValidationError) as info:
        Body.model_validate(data)
    return [{**e, "loc": ("body", *e["loc"])} for e in info.value.errors()]


def output(*comps, finished: bool = True) -> RequestOutput:
    """A vLLM RequestOutput holding ``comps`` as they are (indexes kept)."""
    return RequestOutput(request_id="r", prompt=None, prompt_token_ids=[1, 2, 3], prompt_logprobs=None,
                         outputs=list(comps), finished=finished)


# ---------------------------------------------------------------------------------------------- request model
def test_request_model_defaults_are_vllms():
    """Only prompt is required; the rest default to vLLM's own defaults (max_tokens 16, temperature 1)."""
    b = Body.model_validate({"prompt": "a"})
    assert (b.max_tokens, b.temperature, b.top_p, b.n, b.top_k) == (16, 1.0, 1.0, 1, None)
    assert not (b.stream or b.chat or b.details) and b.stop is None and b.logprobs is None


def test_request_model_schema_carries_the_engine_limits():
    """max_tokens ≤ max_model_len, n ≤ max_n, logprobs ≤ max_logprobs, top_k ≤ vocab size: all in the schema."""
    props = make_request_model(512, max_n=4, max_logprobs=5, vocab_size=300).model_json_schema()["properties"]
    assert props["max_tokens"]["maximum"] == 512 and props["n"]["maximum"] == 4
    assert props["logprobs"]["anyOf"][0]["maximum"] == 5 and props["top_k"]["anyOf"][0]["maximum"] == 300
    unbounded = make_request_model(512).model_json_schema()["properties"]["top_k"]["anyOf"][0]
    assert "maximum" not in unbounded and unbounded["minimum"] == -1
    assert Body.model_json_schema()["additionalProperties"] is False


@pytest.mark.parametrize("data, field, kind", [
    ({"prompt": "a", "max_tokens": "64"}, "max_tokens", "int_type"),
    ({"prompt": "a", "max_tokens": True}, "max_tokens", "int_type"),
    ({"prompt": "a", "max_tokens": 6.5}, "max_tokens", "int_type"),
    ({"prompt": "a", "temperature": "0.5"}, "temperature", "float_type"),
    ({"prompt": "a", "temperature": math.nan}, "temperature", "finite_number"),
    ({"prompt": "a", "n": MAX_N + 1}, "n", "less_than_equal"),
    ({"prompt": "a", "top_k": 4001}, "top_k", "less_than_equal"),
    ({"prompt": "a", "stop": ["x"] * 17}, "stop", "too_long"),
    ({"prompt": "a", "stop": [""]}, "stop", "string_too_short"),
    ({"prompt": "\ud800"}, "prompt", "string_unicode"),
    ({"prompt": "a", "max_token": 64}, "max_token", "extra_forbidden"),
])
def test_request_model_is_strict(data, field, kind):
    """No coercion, no NaN, engine limits, no lone surrogates, no unknown fields."""
    assert any(e["loc"][1] == field and e["type"] == kind for e in errors_of(data)), errors_of(data)


def test_stop_strings_is_always_a_list():
    """stop may be one string, a list, or absent."""
    assert stop_strings("\n") == ["\n"] and stop_strings(["a", "b"]) == ["a", "b"] and stop_strings(None) == []


# ---------------------------------------------------------------------------------------------- sampling params
def test_sampling_params_carry_the_body():
    """Every field reaches vLLM's SamplingParams; the final output only, unless streaming."""
    p = sampling_params(body(max_tokens=64, temperature=0.8, top_p=0.95, n=2, seed=7, stop="\n", logprobs=3,
                             repetition_penalty=1.2, top_k=5))
    assert isinstance(p, SamplingParams)
    assert (p.max_tokens, p.temperature, p.top_p, p.n, p.seed, p.stop, p.logprobs, p.repetition_penalty, p.top_k) == (
        64, 0.8, 0.95, 2, 7, ["\n"], 3, 1.2, 5)
    assert p.output_kind == RequestOutputKind.FINAL_ONLY
    assert sampling_params(body(stream=True)).output_kind == RequestOutputKind.CUMULATIVE


@pytest.mark.parametrize("off", [None, 0, -1])
def test_top_k_off_is_vllms_own_off_value(off):
    """0, -1 and null all mean "off": the installed vLLM's default is used (0 or -1 depending on the version)."""
    assert sampling_params(body(top_k=off)).top_k == SamplingParams().top_k


def test_sampling_params_vllm_refuses_become_400():
    """A combination only vLLM checks (several greedy samples) is a 400 with vLLM's reason."""
    with pytest.raises(RequestError) as info:
        sampling_params(body(n=2, temperature=0))
    assert info.value.status == 400 and "greedy" in info.value.message


# ---------------------------------------------------------------------------------------------- prompt
@pytest.fixture(scope="module")
def tokenizer(tiny_poet_dir):
    """tiny-poet's tokenizer, loaded the way vLLM's engine loads it."""
    from vllm.tokenizers import get_tokenizer

    return get_tokenizer(str(tiny_poet_dir))


def test_prompt_text_plain_and_chat(tokenizer):
    """Plain: the prompt with special tokens added by the tokenizer; chat: the template around it, as is."""
    assert prompt_text(tokenizer, "写一首七言绝句", chat=False) == ("写一首七言绝句", True)
    text, special = prompt_text(tokenizer, "写一首七言绝句", chat=True)
    expected = tokenizer.apply_chat_template([{"role": "user", "content": "写一首七言绝句"}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=False)   # thinking off
    assert text == expected and "写一首七言绝句" in text and text != "写一首七言绝句" and special is False


def test_chat_without_a_template_is_400(tokenizer, monkeypatch):
    """A tokenizer with no chat template refuses chat=true, naming the field."""
    monkeypatch.setattr(tokenizer, "chat_template", None, raising=False)
    with pytest.raises(RequestError) as info:
        prompt_text(tokenizer, "写一首七言绝句", chat=True)
    assert (info.value.status, info.value.param) == (400, "chat")


def test_prompt_ids_tokenize_and_fit(tokenizer):
    """The ids are the tokenizer's; the chat ids are the template's; both fit the context."""
    assert prompt_ids(tokenizer, body(), MAX_MODEL_LEN) == list(tokenizer.encode("写一首七言绝句"))
    chat_ids = prompt_ids(tokenizer, body(chat=True), MAX_MODEL_LEN)
    assert len(chat_ids) > len(prompt_ids(tokenizer, body(), MAX_MODEL_LEN))
    with pytest.raises(RequestError) as info:
        prompt_ids(tokenizer, body(prompt="春" * 3000), MAX_MODEL_LEN)
    assert info.value.param == "prompt" and "max_model_len is 1024" in info.value.message


@pytest.mark.parametrize("n_prompt, max_tokens, param, fragment", [
    (0, 16, "prompt", "zero tokens"),
    (1024, 1, "prompt", "it is 1024 tokens"),
    (1, 1024, "max_tokens", "at most 1023"),
    (1000, 30, "max_tokens", "the prompt is 1000 tokens and max_tokens is 30, 1030 in all"),
])
def test_check_fits_names_the_field_and_the_fix(n_prompt, max_tokens, param, fragment):
    """Too long for the context: a 400 naming prompt or max_tokens, with the numbers."""
    with pytest.raises(RequestError) as info:
        check_fits(n_prompt, max_tokens, 1024)
    assert (info.value.status, info.value.param) == (400, param) and fragment in info.value.message


def test_check_fits_accepts_an_exact_fit():
    """prompt + max_tokens == max_model_len fits."""
    check_fits(1000, 24, 1024)
    check_fits(1, 1, 2)


def test_engine_prompt_is_vllms_rendered_token_input():
    """The engine gets a TokensInput (type "token"), the input type it takes without the raw-prompt warning."""
    from vllm.inputs import TokensInput

    prompt = engine_prompt([5, 6, 7])
    assert prompt == {"type": "token", "prompt_token_ids": [5, 6, 7]}
    assert set(prompt) <= set(TokensInput.__annotations__)


# ---------------------------------------------------------------------------------------------- reply
STEPS = [{11: logprob(-0.1, 1, "秋"), 12: logprob(-2.5, 2, "春")},
         {13: logprob(-0.7, 2, "风"), 14: logprob(-0.5, 1, "月"), 15: logprob(-math.inf, 3, "x")}]


def test_reply_is_exactly_the_notes_shape():
    """{"results": [...]} in sample order, nothing else unless asked."""
    final = output(completion(2, text="second", index=1), completion(3, text="first", index=0))
    assert reply(final, 5) == {"results": ["first", "second"]}


def test_reply_details_and_logprobs_are_added_fields():
    """details: prompt_tokens and per-sample finish_reasons, num_tokens, token_ids; logprobs: one list per sample."""
    c = completion(2, text="秋风", finish_reason="stop", logprobs=STEPS)
    c.token_ids = [11, 13]
    data = reply(output(c), 7, logprobs=True, details=True)
    assert set(data) == {"results", "logprobs", "details"}
    assert data["details"] == {"prompt_tokens": 7, "finish_reasons": ["stop"], "num_tokens": [2],
                               "token_ids": [[11, 13]]}
    assert data["logprobs"] == [steps_json(c)]


def test_steps_json_sorts_by_rank_and_nulls_minus_infinity():
    """Each step: the sampled token's logprob and rank, candidates by rank, -inf as null (JSON has no -inf)."""
    c = completion(2, logprobs=STEPS)
    c.token_ids = [11, 13]
    first, second = steps_json(c)
    assert (first["token"], first["token_id"], first["logprob"], first["rank"]) == ("秋", 11, -0.1, 1)
    assert [t["rank"] for t in second["top"]] == [1, 2, 3] and second["top"][2]["logprob"] is None
    assert (second["token"], second["rank"]) == ("风", 2)
    assert steps_json(c, start=1) == [second]
    json.dumps(steps_json(c), allow_nan=False)  # valid strict JSON
    assert steps_json(completion(2)) == []  # no logprobs asked


def test_steps_json_sampled_token_outside_the_candidates():
    """A sampled token missing from its position's dict still gets a step, with nulls."""
    c = completion(1, logprobs=STEPS[:1])
    c.token_ids = [99]
    assert steps_json(c)[0] | {"top": None} == {"token": None, "token_id": 99, "logprob": None, "rank": None,
                                                 "top": None}


# ---------------------------------------------------------------------------------------------- stream
def cumulative(*texts_and_reasons):
    """Cumulative outputs of one sample (index 0): each step its text so far, token count and finish_reason."""
    return [output(completion(k, text=t, finish_reason=r), finished=r is not None) for t, k, r in texts_and_reasons]


def test_stream_state_sends_only_the_new_text():
    """Each event holds the text added since the last one; the last one carries the finish_reason."""
    state = StreamState()
    steps = cumulative(("秋", 1, None), ("秋风", 2, None), ("秋风起", 3, "length"))
    events = [e for out in steps for e in state.events(out)]
    assert events == [{"index": 0, "text": "秋", "finish_reason": None},
                      {"index": 0, "text": "风", "finish_reason": None},
                      {"index": 0, "text": "起", "finish_reason": "length"}]
    assert state.events(steps[-1]) == []  # a finished sample is not repeated


def test_stream_state_holds_half_characters_and_their_logprobs():
    """A token that decodes to no text yet sends nothing; its logprobs come with the next event."""
    state = StreamState(logprobs=True)
    lps = [{i: logprob(-0.5, 1, "")} for i in range(3)]
    steps = [output(completion(k, text=t, logprobs=lps[:k], finish_reason=None)) for t, k in (("秋", 1), ("秋", 2),
                                                                                           ("秋风", 3))]
    events = [e for out in steps for e in state.events(out)]
    assert [e["text"] for e in events] == ["秋", "风"]
    assert [len(e["logprobs"]) for e in events] == [1, 2]


def test_stream_state_keeps_samples_apart():
    """n=2: events name their sample; one finishing early does not stop the other."""
    state = StreamState()
    a = output(completion(1, text="秋", finish_reason=None, index=0),
               completion(1, text="月", finish_reason="stop", index=1))
    b = output(completion(2, text="秋风", finish_reason="length", index=0),
               completion(1, text="月", finish_reason="stop", index=1))
    assert [(e["index"], e["text"], e["finish_reason"]) for e in state.events(a) + state.events(b)] == [
        (0, "秋", None), (1, "月", "stop"), (0, "风", "length")]


async def _generator(items, fail: Exception | None = None):
    """An async generator of ``items`` (as the engine's is), raising ``fail`` at the end."""
    for item in items:
        yield item
    if fail is not None:
        raise fail


def _collect(agen) -> list[str]:
    """Every line an async generator yields."""
    async def run():
        return [line async for line in agen]

    return asyncio.run(run())


def test_stream_events_are_sse_lines_then_done():
    """data: <json> per event, blank line after each, [DONE] last."""
    steps = cumulative(("秋", 1, None), ("秋风", 2, "stop"))
    lines = _collect(stream_events(steps[0], _generator(steps[1:])))
    assert lines == [sse({"index": 0, "text": "秋", "finish_reason": None}),
                     sse({"index": 0, "text": "风", "finish_reason": "stop"}), SSE_DONE]
    assert lines[0] == 'data: {"index": 0, "text": "秋", "finish_reason": null}\n\n'
    assert _collect(stream_events(None, _generator([]))) == [SSE_DONE]


def test_stream_failure_becomes_an_error_event():
    """The headers are already sent, so an engine failure is reported in the stream, then [DONE]."""
    steps = cumulative(("秋", 1, None))
    lines = _collect(stream_events(steps[0], _generator([], fail=RuntimeError("boom"))))
    assert lines[-1] == SSE_DONE
    err = json.loads(lines[-2][len("data: "):])["error"]
    assert err["code"] == 500 and "RuntimeError" in err["message"]


# ---------------------------------------------------------------------------------------------- auth and errors
def test_check_api_key():
    """No key: everything passes; with a key: only that exact token."""
    check_api_key(None, None)
    check_api_key(None, "anything")
    check_api_key("k3y", "k3y")
    for token in (None, "", "K3Y", "k3y ", "wrong"):
        with pytest.raises(RequestError) as info:
            check_api_key("k3y", token)
        assert info.value.status == 401 and "Bearer" in info.value.message


def test_error_body_shape():
    """{"error": {"message", "type", "param", "code"}}, the shape of vLLM's OpenAI server."""
    assert error_body(422, "n: too big", "n") == {"error": {"message": "n: too big", "type": "invalid_request_error",
                                                            "param": "n", "code": 422}}
    assert error_body(413, "x")["error"]["type"] == "request_too_large"
    assert error_body(500, "x")["error"]["type"] == "internal_error"


@pytest.mark.parametrize("data, status, param, fragment", [
    ({"max_tokens": 8}, 422, "prompt", "prompt: this field is required"),
    ({"prompt": "a", "max_token": 64}, 422, "max_token", "unknown field 'max_token'; accepted fields: prompt, "),
    ({"prompt": "a", "max_tokens": "64"}, 422, "max_tokens", 'valid integer (got "64")'),
    ({"prompt": "a", "stop": ["", "x"]}, 422, "stop", "at least 1 character"),
    ({"prompt": "\ud800"}, 422, "prompt", "unicode string"),
    (["a"], 400, None, "must be a JSON object"),
    ("写一首七言绝句", 400, None, "must be a JSON object"),
])
def test_validation_error_names_the_field(data, status, param, fragment):
    """pydantic's errors become one message that names the field, with 422 (or 400 for a non-object)."""
    code, payload = validation_error(errors_of(data), FIELDS)
    err = payload["error"]
    assert (code, err["code"], err["param"]) == (status, status, param)
    assert fragment in err["message"], err["message"]
    json.dumps(payload).encode("utf-8")  # sendable, even for a lone surrogate


def test_validation_error_for_invalid_json():
    """FastAPI's json_invalid error: a 400 quoting the decoder's reason."""
    errors = [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {},
               "ctx": {"error": "Expecting value"}}]
    code, payload = validation_error(errors, FIELDS)
    assert code == 400 and payload["error"]["message"] == "the request body is not valid JSON (Expecting value)"


# ---------------------------------------------------------------------------------------------- body limit (ASGI)
def _messages(body: bytes, chunk: int) -> list[dict]:
    """A request body as the ASGI server delivers it, in ``chunk``-byte messages."""
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]


def _run_limit(body: bytes, *, chunk: int = 1000, headers: list | None = None, max_bytes: int = 4000,
               drain_bytes: int = 100_000) -> tuple[list[dict], list[dict], list]:
    """Run BodyLimit over an app that echoes its body's size; return what was sent, what the app got, the rest."""
    queue = _messages(body, chunk)
    sent: list[dict] = []
    got: list[dict] = []

    async def app(scope, receive, send):
        more = True
        while more:
            message = await receive()
            got.append(message)
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(sum(len(m["body"]) for m in got)).encode()})

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    asyncio.run(BodyLimit(app, max_bytes, drain_bytes)(scope, receive, send))
    return sent, got, queue


def _length(n: int) -> list:
    return [(b"content-length", str(n).encode())]


def test_body_limit_passes_small_bodies_through():
    """Under the limit: by Content-Length the app reads the body itself; chunked, it gets it whole."""
    sent, got, rest = _run_limit(b"x" * 3000, headers=_length(3000))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"3000" and len(got) == 3 and rest == []
    sent, got, rest = _run_limit(b"x" * 3000)
    assert sent[1]["body"] == b"3000" and got == [{"type": "http.request", "body": b"x" * 3000, "more_body": False}]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_body_limit_reads_the_refused_body_then_answers_413(declared):
    """Over the limit: the app never runs, the body is read to its end, then the 413 JSON (and close)."""
    sent, got, rest = _run_limit(b"x" * 50_000, headers=_length(50_000) if declared else [])
    assert got == [] and rest == [], "the whole body was read"
    start, end = sent
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert json.loads(end["body"])["error"] == {"message": "request body over 4000 bytes",
                                                "type": "request_too_large", "param": None, "code": 413}


def test_body_limit_drains_no_more_than_its_budget():
    """A refused body larger than the drain budget is not read to its end (the connection is then dropped)."""
    sent, _, rest = _run_limit(b"x" * 50_000, drain_bytes=10_000)
    assert sent[0]["status"] == 413 and 30 <= len(rest) <= 40
    sent, _, rest = _run_limit(b"x" * 50_000, headers=_length(50_000), drain_bytes=10_000)
    assert sent[0]["status"] == 413 and len(rest) == 50, "declared over the budget: nothing is read"


def test_body_limit_reads_nothing_for_expect_100_continue():
    """A client that waits for 100 Continue has not sent its body: the 413 goes out at once."""
    sent, _, rest = _run_limit(b"x" * 50_000, headers=_length(50_000) + [(b"expect", b"100-continue")])
    assert sent[0]["status"] == 413 and len(rest) == 50


def test_drain_stops_when_the_client_goes_away():
    """A disconnect ends the drain early."""
    queue = [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return queue.pop(0)

    assert asyncio.run(drain(receive, 1000)) is False and queue == []


# ---------------------------------------------------------------------------------------------- the shell, served
@contextlib.contextmanager
def serving(app):
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; stop it afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


KEY = "shell-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def shell():
    """app_shell (the handlers, the key check, a 1 MiB body limit) with one engine-free route: /params."""
    app = app_shell(FIELDS, api_key=KEY, max_body_bytes=1 << 20)

    @app.post("/params", dependencies=[Depends(require_key)])
    async def params(b: Body):  # type: ignore[valid-type]
        """The SamplingParams a body turns into."""
        p = sampling_params(b)
        return {"n": p.n, "max_tokens": p.max_tokens, "stop": p.stop}

    @app.get("/ok")
    async def ok():
        """Always 200."""
        return {"status": "ok"}

    with serving(app) as url:
        yield url


def test_shell_accepts_the_notes_body(shell):
    """The note's body validates and becomes SamplingParams."""
    resp = requests.post(shell + "/params", json=NOTE_BODY, headers=AUTH, timeout=30)
    assert resp.status_code == 200 and resp.json() == {"n": 2, "max_tokens": 64, "stop": []}


@pytest.mark.parametrize("raw, status, param, fragment", [
    (json.dumps({"prompt": "a", "max_token": 64}).encode(), 422, "max_token", "unknown field"),
    (json.dumps({"prompt": "a", "n": 0}).encode(), 422, "n", "greater than or equal to 1"),
    (b'{"prompt": "a", "temperature": NaN}', 422, "temperature", "finite"),
    (b'{"prompt": "\\ud800"}', 422, "prompt", "unicode string"),
    (b'{"prompt": "a", ', 400, None, "not valid JSON"),
    (b"prompt=hello", 400, None, "not valid JSON"),
    (b"", 400, None, "JSON object"),
    (json.dumps({"prompt": "a", "n": 2, "temperature": 0}).encode(), 400, None, "greedy"),
])
def test_shell_maps_errors_to_the_shared_shape(shell, raw, status, param, fragment):
    """FastAPI's own validation errors, through the app's handlers: status, param, a message naming it."""
    resp = requests.post(shell + "/params", data=raw, headers={"Content-Type": "application/json", **AUTH},
                         timeout=30)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert (err["code"], err["param"]) == (status, param) and fragment in err["message"], err


def test_shell_needs_the_key(shell):
    """Missing, wrong or non-Bearer credentials: 401 naming the Bearer scheme; routes without the check stay open."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = requests.post(shell + "/params", json=NOTE_BODY, headers=headers, timeout=30)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        assert resp.json()["error"]["type"] == "authentication_error"
    assert requests.get(shell + "/ok", timeout=30).status_code == 200


def test_shell_unknown_path_is_in_the_shared_shape(shell):
    """Starlette's 404 and 405 use the same error body."""
    for resp in (requests.get(shell + "/nope", timeout=30), requests.get(shell + "/params", timeout=30)):
        assert resp.json()["error"]["code"] == resp.status_code in (404, 405)


TEN_MB = 10 * 2**20


def test_shell_413_is_read_by_every_client(shell, raw_post):
    """10 MB over a 1 MiB limit: requests (both framings), urllib and a raw socket all read the 413 JSON,
    the connection ends with a clean close (no reset while the client is still sending), and the server serves on."""
    big = json.dumps({"prompt": "a" * TEN_MB}).encode()
    chunked = (big[i:i + 65536] for i in range(0, len(big), 65536))
    for data in (big, chunked):
        resp = requests.post(shell + "/params", data=data, headers={"Content-Type": "application/json", **AUTH},
                             timeout=120)
        assert resp.status_code == 413 and resp.json()["error"]["type"] == "request_too_large"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(shell + "/params", data=big, headers=AUTH), timeout=120)
    assert info.value.code == 413
    send_error, answer, clean = raw_post(shell, "/params", big, {"Content-Type": "application/json", **AUTH})
    assert send_error is None and clean, (send_error, answer[:80])
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"request_too_large"' in answer
    assert requests.post(shell + "/params", json=NOTE_BODY, headers=AUTH, timeout=30).status_code == 200


def test_shell_413_before_the_body_with_expect_100_continue(shell, raw_post):
    """With Expect: 100-continue the answer comes before the body is sent, and no 100 Continue is sent."""
    _, answer, clean = raw_post(shell, "/params", b"x" * TEN_MB, {"Expect": "100-continue", **AUTH}, send_body=False)
    assert clean and answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer
