"""The study note's custom vLLM server, made production-safe: FastAPI on vLLM's async engine.

``servers/vllm_server.py`` (the note's own command) and ``python -m llmkit.note_server`` run this module.

    python servers/vllm_server.py [--model MODEL] [--host 127.0.0.1] [--port 8000] [--api-key KEY]
                                  [any vLLM engine option: --max-model-len 1024 --enforce-eager ...]

API (``GET /docs`` shows it; ``GET /openapi.json`` is the machine-readable schema):

``POST /generate``
    Body: ``{"prompt": "写一首七言绝句", "max_tokens": 64, "temperature": 0.8, "top_p": 0.95, "n": 2}``
    Reply: ``{"results": ["...", "..."]}``, exactly the note's shape, one text per sample.
    Optional fields: ``top_k``, ``repetition_penalty``, ``seed``, ``stop``, ``logprobs`` (adds a
    ``"logprobs"`` field to the reply), ``details`` (adds ``"details"``: prompt_tokens, and per sample
    finish_reasons, num_tokens and token_ids), ``chat`` (wrap the prompt in the model's chat template)
    and ``stream`` (server-sent events: ``data: {"index", "text", "finish_reason"}`` lines, then
    ``data: [DONE]``).
``GET /health``
    200 ``{"status": "ok"}`` when the engine can serve; 503 otherwise. Never needs the API key.
``GET /info``
    The served model and this server's limits (max_model_len, max_n, max_logprobs, vocab_size).

Errors are JSON, ``{"error": {"message", "type", "param", "code"}}``, the shape vLLM's OpenAI server
uses, and the server keeps serving:

- 400: the body is not JSON or not an object; the prompt is longer than the model allows
  (prompt tokens + max_tokens > max_model_len); the engine rejected the sampling parameters.
- 401: ``--api-key`` is set and the ``Authorization: Bearer <key>`` header is missing or wrong.
- 413: the body is larger than ``--max-body-bytes`` (the rest of it is read and dropped first, up to
  64 MiB, so that a client still sending it can read the answer).
- 422: a field is missing, has the wrong type (types are strict: ``"0.5"`` is not a number, ``true``
  and ``64.0`` are not integers) or is out of range, or the body has a field this server does not know. Unknown
  fields are rejected rather than ignored, so a typo such as ``max_token`` cannot silently fall back
  to a default.
- 503: the engine has died; ``/health`` says so too.

Concurrent requests are not serialized: each one is handed to the engine, whose scheduler batches
them (continuous batching). The server binds 127.0.0.1 unless told otherwise, and shuts the engine
down cleanly on SIGTERM or Ctrl-C. Engine options not given on the command line take the course's
defaults for this machine (``llmkit.llm_kwargs()``: on CPU eager mode, a 1024-token context and a
256 MiB KV cache), so the same command works on a laptop CPU and on a GPU.

The app is built from small pieces, each usable (and tested) without an engine: the request model,
``sampling_params``, ``prompt_ids``, ``reply``, ``StreamState``/``stream_events``, ``check_api_key``,
``error_body``/``validation_error`` and the ``BodyLimit`` middleware (``app_shell`` puts the handlers and
the limit on an app). ``create_app`` only wires them to the engine.
"""

import argparse
import asyncio
import hmac
import inspect
import json
import logging
import math
import os
import signal
import socket
import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator, Optional, Union

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:  # vLLM itself is imported where it is used: importing it takes seconds
    from vllm import SamplingParams

logger = logging.getLogger("vllm_server")

MAX_N = 16  # samples per request; a cap keeps one request from occupying the whole batch
MAX_STOP = 16  # stop strings per request
MAX_BODY_BYTES = 1 << 20  # 1 MiB of JSON is far more than max_model_len tokens of any prompt
DRAIN_BYTES = 64 << 20  # a refused body is read and dropped up to this size, so the client sees the 413
SEED_MAX = 2**32 - 1  # exact in every JSON parser (doubles lose 2**63 - 1)
TEMPERATURE_MAX = 2.0  # vLLM's own upper bound (it rejects higher values)
THREAD_PROMPT_CHARS = 4096  # longer prompts are tokenized in a thread, off the event loop


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
class RequestError(Exception):
    """A request the server refuses, with its HTTP status, message and the offending field."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 413: "request_too_large",
               422: "invalid_request_error", 503: "service_unavailable"}


def error_body(status: int, message: str, param: str | None = None, **extra: Any) -> dict:
    """The JSON error shape shared with vLLM's OpenAI server."""
    err = {"message": message, "type": ERROR_TYPES.get(status, "internal_error"), "param": param, "code": status}
    err.update(extra)
    return {"error": err}


def _field_of(loc: tuple) -> str | None:
    """``("body", "max_tokens")`` -> ``"max_tokens"``; the body itself -> None."""
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or None


def _safe(text: str) -> str:
    """Text that can be sent as UTF-8 (a lone surrogate from the request becomes ``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_error(errors: list[dict], fields: list[str]) -> tuple[int, dict]:
    """Turn pydantic's errors into one clear message naming the field, and the status code."""
    first = errors[0]
    kind, field = first.get("type", ""), _field_of(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        ctx = str(first.get("ctx", {}).get("error", ""))
        return 400, error_body(400, _safe(f"the request body is not valid JSON ({ctx})".replace(" ()", "")))
    if field is None or kind in ("model_type", "model_attributes_type", "dict_type"):
        return 400, error_body(400, "the request body must be a JSON object such as "
                                    '{"prompt": "写一首七言绝句", "max_tokens": 64} '
                                    "(sent with Content-Type: application/json)")
    top = field.split(".")[0]
    # For a union field (stop: str or list of str) the deepest error is the informative one.
    same = [e for e in errors if (_field_of(tuple(e.get("loc", ()))) or "").split(".")[0] == top]
    first = max(same, key=lambda e: len(e.get("loc", ())))
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        msg = f"unknown field '{top}'; accepted fields: {', '.join(fields)}"
    elif kind == "missing":
        msg = f"{top}: this field is required"
    else:
        msg = f"{top}: {first.get('msg', 'invalid value')}".replace("Value error, ", "")
        if "input" in first and not isinstance(first["input"], (dict, list)):
            msg += f" (got {json.dumps(first['input'], ensure_ascii=False, default=str)[:80]})"
    details = [{"field": _safe(_field_of(tuple(e.get("loc", ()))) or ""), "message": _safe(str(e.get("msg"))),
                "type": e.get("type")} for e in errors]
    return 422, error_body(422, _safe(msg), _safe(top), errors=details)


async def on_request_error(_: Request, exc: RequestError) -> JSONResponse:
    """A refused request: its status and error body (a 401 also names the Bearer scheme)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(error_body(exc.status, exc.message, exc.param), exc.status, headers=headers)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body pydantic refused: one message naming the field (the app's fields are in ``app.state.fields``)."""
    status, body = validation_error(list(exc.errors()), request.app.state.fields)
    return JSONResponse(body, status)


async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404, 405, ...) in the shared error shape."""
    return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers)


async def on_crash(_: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: a 500 naming the exception type; the traceback goes to the server log."""
    logger.exception("internal error")
    return JSONResponse(error_body(500, f"internal server error ({type(exc).__name__}); see the server log"), 500)


ERROR_HANDLERS = {RequestError: on_request_error, RequestValidationError: on_validation_error,
                  StarletteHTTPException: on_http_error, Exception: on_crash}


# --------------------------------------------------------------------------------------------------
# The request: model, limits, sampling parameters
# --------------------------------------------------------------------------------------------------
def _utf8(value):
    """Reject strings that cannot be UTF-8 encoded (JSON may carry lone surrogates such as \\ud800)."""
    for text in [value] if isinstance(value, str) else (value or []):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from exc
    return value


StopString = Annotated[str, Field(min_length=1, max_length=256)]


def make_request_model(max_model_len: int, max_n: int = MAX_N, max_logprobs: int = 20,
                       vocab_size: Optional[int] = None) -> type[BaseModel]:
    """The pydantic model of the /generate body, with this engine's limits in its schema."""

    class GenerateRequest(BaseModel):
        """Body of POST /generate: the study note's five fields, plus optional sampling controls."""

        # strict: no silent coercion ("0.5" -> 0.5, true -> 1); forbid: unknown fields are errors;
        # allow_inf_nan=False: Python's json accepts NaN and Infinity, vLLM must never see them.
        model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

        prompt: str = Field(min_length=1, description="The text to continue (or, with chat=true, the user turn).")
        max_tokens: int = Field(16, ge=1, le=max_model_len,
                                description="Most tokens to generate per sample (vLLM's default is 16).")
        temperature: float = Field(1.0, ge=0.0, le=TEMPERATURE_MAX, description="0 means greedy.")
        top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: keep the top tokens up to this mass.")
        n: int = Field(1, ge=1, le=max_n, description="Samples per prompt.")
        top_k: Optional[int] = Field(None, ge=-1, le=vocab_size,
                                     description="Keep the k most likely tokens; 0 or -1 (or null) turns it off.")
        repetition_penalty: float = Field(1.0, gt=0.0, le=10.0, description="1.0 is off; >1 discourages repeats.")
        seed: Optional[int] = Field(None, ge=0, le=SEED_MAX, description="Per-request seed, for reproducible sampling.")
        stop: Union[StopString, Annotated[list[StopString], Field(max_length=MAX_STOP)], None] = Field(
            None, description="Stop string(s); generation ends before them.")
        logprobs: Optional[int] = Field(None, ge=0, le=max_logprobs,
                                        description="Return each sampled token's logprob and the top-k candidates.")
        details: bool = Field(False, description="Add prompt_tokens, finish_reasons, num_tokens, token_ids.")
        chat: bool = Field(False, description="Apply the model's chat template to the prompt (one user turn).")
        stream: bool = Field(False, description="Reply with server-sent events as tokens are generated.")

        _valid_text = field_validator("prompt", "stop")(_utf8)

    return GenerateRequest


def client_errors() -> tuple[type[Exception], ...]:
    """What vLLM raises for a bad request: ValueError, TypeError, and from 0.32 VLLMClientError (not a ValueError)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:  # vLLM 0.26: its VLLMValidationError is a ValueError
        return (ValueError, TypeError)
    return (ValueError, TypeError, VLLMClientError)


def stop_strings(stop: str | list[str] | None) -> list[str]:
    """A body's ``stop`` as a list: one string, a list of them, or none."""
    return [stop] if isinstance(stop, str) else list(stop or [])


def sampling_params(body: BaseModel) -> "SamplingParams":
    """The engine's SamplingParams for a validated body (every output when streaming, else the final one)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    kw: dict[str, Any] = dict(n=body.n, max_tokens=body.max_tokens, temperature=body.temperature,
                              top_p=body.top_p, repetition_penalty=body.repetition_penalty, seed=body.seed,
                              stop=stop_strings(body.stop) or None, logprobs=body.logprobs,
                              output_kind=RequestOutputKind.CUMULATIVE if body.stream else RequestOutputKind.FINAL_ONLY)
    if body.top_k is not None and body.top_k >= 1:  # "off" is 0 or -1 depending on the version
        kw["top_k"] = body.top_k
    try:
        return SamplingParams(**kw)
    except client_errors() as exc:
        raise RequestError(400, f"invalid sampling parameters: {exc}", getattr(exc, "parameter", None)) from exc


# --------------------------------------------------------------------------------------------------
# The prompt
# --------------------------------------------------------------------------------------------------
def _tokens(count: int) -> str:
    """``1 token``, ``2 tokens``."""
    return f"{count} token" + ("" if count == 1 else "s")


def prompt_text(tokenizer: Any, prompt: str, chat: bool) -> tuple[str, bool]:
    """The text to tokenize and whether to add special tokens: the prompt, or the chat template around it.

    The note's server answers poems, not thoughts: a thinking model's template (Qwen3) gets thinking off.
    """
    if not chat:
        return prompt, True
    if not getattr(tokenizer, "chat_template", None):
        raise RequestError(400, "chat=true, but this model's tokenizer has no chat template", "chat")
    from llmkit.chat import render

    return render(tokenizer, prompt, thinking=False), False  # the template already holds the special tokens


def check_fits(n_prompt: int, max_tokens: int, max_model_len: int) -> None:
    """Refuse (400) a prompt of no tokens, one that fills the context, or one that leaves no room for max_tokens."""
    if not n_prompt:
        raise RequestError(400, "prompt: it encodes to zero tokens", "prompt")
    if n_prompt >= max_model_len:
        raise RequestError(400, f"prompt: it is {_tokens(n_prompt)}, but this server's max_model_len is "
                                f"{max_model_len} (prompt + generated tokens). Shorten the prompt.", "prompt")
    if n_prompt + max_tokens > max_model_len:
        raise RequestError(400, f"max_tokens: the prompt is {_tokens(n_prompt)} and max_tokens is {max_tokens}, "
                                f"{n_prompt + max_tokens} in all, over this server's max_model_len of "
                                f"{max_model_len}. Lower max_tokens to at most {max_model_len - n_prompt}.",
                           "max_tokens")


def prompt_ids(tokenizer: Any, body: BaseModel, max_model_len: int) -> list[int]:
    """Tokenize the prompt (through the chat template if asked) and check it fits the context."""
    text, special = prompt_text(tokenizer, body.prompt, body.chat)
    ids = list(tokenizer.encode(text, add_special_tokens=special))
    check_fits(len(ids), body.max_tokens, max_model_len)
    return ids


def engine_prompt(ids: list[int]) -> dict:
    """The engine's input for a tokenized prompt: vLLM's ``TokensInput`` (``type="token"``, already rendered).

    vLLM 0.26 and 0.32 both export ``vllm.inputs.tokens_input``; a raw ``{"prompt_token_ids": ...}`` prompt
    still works but makes the engine log that raw prompts are deprecated.
    """
    from vllm.inputs import tokens_input

    return tokens_input(ids)


# --------------------------------------------------------------------------------------------------
# The reply and the stream
# --------------------------------------------------------------------------------------------------
def _finite(x: float | None) -> float | None:
    """JSON has no -inf/NaN: a masked candidate's logprob becomes null."""
    return x if x is not None and math.isfinite(x) else None


def steps_json(completion: Any, start: int = 0) -> list[dict]:
    """Per generated position from ``start``: the sampled token and the top candidates, JSON-ready."""
    if completion.logprobs is None:
        return []
    out = []
    ids = list(completion.token_ids)
    for tid, cands in zip(ids[start:], completion.logprobs[start:]):
        top = sorted(({"token": lp.decoded_token, "token_id": t, "logprob": _finite(lp.logprob), "rank": lp.rank}
                      for t, lp in cands.items()),
                     key=lambda c: (c["rank"] is None, c["rank"] or 0))
        chosen = next((c for c in top if c["token_id"] == tid), {"token": None, "token_id": tid,
                                                                 "logprob": None, "rank": None})
        out.append({**chosen, "top": top})
    return out


def reply(final: Any, n_prompt: int, *, logprobs: bool = False, details: bool = False) -> dict:
    """The note's ``{"results": [...]}`` for a finished RequestOutput, plus ``logprobs`` / ``details`` if asked."""
    comps = sorted(final.outputs, key=lambda c: c.index)
    out: dict[str, Any] = {"results": [c.text for c in comps]}
    if logprobs:
        out["logprobs"] = [steps_json(c) for c in comps]
    if details:
        out["details"] = {"prompt_tokens": n_prompt, "finish_reasons": [c.finish_reason for c in comps],
                          "num_tokens": [len(c.token_ids) for c in comps],
                          "token_ids": [list(c.token_ids) for c in comps]}
    return out


class StreamState:
    """What a stream has sent so far, per sample, so that each event carries only the new text (and tokens)."""

    def __init__(self, logprobs: bool = False):
        self.logprobs = logprobs
        self.chars: dict[int, int] = {}
        self.tokens: dict[int, int] = {}
        self.finished: set[int] = set()

    def events(self, out: Any) -> list[dict]:
        """The events for one cumulative RequestOutput: ``{"index", "text", "finish_reason"[, "logprobs"]}``."""
        events = []
        for c in sorted(out.outputs, key=lambda c: c.index):
            if c.index in self.finished:
                continue
            text = c.text[self.chars.get(c.index, 0):]
            if not text and c.finish_reason is None:
                continue  # a token that decodes to no text yet (half a character): it goes with the next event
            ev: dict[str, Any] = {"index": c.index, "text": text, "finish_reason": c.finish_reason}
            if self.logprobs:
                ev["logprobs"] = steps_json(c, self.tokens.get(c.index, 0))
            self.chars[c.index], self.tokens[c.index] = len(c.text), len(c.token_ids)
            if c.finish_reason is not None:
                self.finished.add(c.index)
            events.append(ev)
        return events


SSE_DONE = "data: [DONE]\n\n"


def sse(data: Any) -> str:
    """One server-sent event: ``data: <json>`` and a blank line."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_events(first: Any, gen: AsyncIterator, logprobs: bool = False) -> AsyncIterator[str]:
    """Server-sent events for ``first`` and the rest of ``gen``, then ``[DONE]``; a failure becomes an error event."""
    state = StreamState(logprobs)
    try:
        if first is not None:
            for ev in state.events(first):
                yield sse(ev)
        async for out in gen:
            for ev in state.events(out):
                yield sse(ev)
    except Exception as exc:  # noqa: BLE001 - headers are sent: report the error in the stream
        logger.exception("stream failed")
        yield sse(error_body(500, f"generation failed: {type(exc).__name__}"))
    yield SSE_DONE


# --------------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------------
BEARER = HTTPBearer(auto_error=False)  # reads "Authorization: Bearer <token>" (and documents it in /docs)


def check_api_key(api_key: str | None, token: str | None) -> None:
    """Refuse (401) unless the server has no key or ``token`` is the key (compared in constant time)."""
    if api_key is None:
        return
    if token is None or not hmac.compare_digest(token.encode(), api_key.encode()):
        raise RequestError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'")


async def require_key(request: Request, cred: Optional[HTTPAuthorizationCredentials] = Depends(BEARER)) -> None:
    """FastAPI dependency: the request's bearer token must be the app's key (``app.state.api_key``)."""
    check_api_key(request.app.state.api_key, cred.credentials if cred else None)


# --------------------------------------------------------------------------------------------------
# The body-size limit
# --------------------------------------------------------------------------------------------------
async def drain(receive: Any, budget: int) -> bool:
    """Read and drop the rest of a request body, at most about ``budget`` bytes; True when its end arrived."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, by Content-Length or, for a chunked
    body, while it streams in (it is buffered up to the limit, then replayed to the app).

    Before the 413 goes out, the rest of the refused body is read and dropped (up to ``drain_bytes``). A
    server that closes a connection with unread data makes the kernel answer with a reset, and a client
    still sending its body then sees ``Connection reset by peer`` instead of the 413. Nothing is read for
    a client that sent ``Expect: 100-continue`` (it waits for the answer before sending the body).
    """

    def __init__(self, app: Any, max_bytes: int, drain_bytes: int = DRAIN_BYTES):
        self.app, self.max_bytes, self.drain_bytes = app, max_bytes, drain_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        size = headers.get(b"content-length")
        if size is not None:
            if size.isdigit() and int(size) <= self.max_bytes:
                return await self.app(scope, receive, send)
            waits = headers.get(b"expect", b"").lower() == b"100-continue"
            if size.isdigit() and int(size) <= self.drain_bytes and not waits:
                await drain(receive, int(size))
            return await self._refuse(send)
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.max_bytes:
                chunks.clear()
                if more:
                    await drain(receive, self.drain_bytes - seen)
                return await self._refuse(send)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Any) -> None:
        """Send the 413 answer, and close the connection afterwards."""
        body = json.dumps(error_body(413, f"request body over {self.max_bytes} bytes")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------------------
# The engine side
# --------------------------------------------------------------------------------------------------
class EngineInfo:
    """What the handlers need to know about the engine, read once at start-up."""

    def __init__(self, engine, tokenizer, model: str, max_model_len: int, max_logprobs: int,
                 vocab_size: int | None, max_n: int):
        self.engine, self.tokenizer, self.model = engine, tokenizer, model
        self.max_model_len, self.max_logprobs, self.vocab_size, self.max_n = (
            max_model_len, max_logprobs, vocab_size, max_n)


async def engine_info(engine, max_n: int = MAX_N) -> EngineInfo:
    """Read the model's limits and tokenizer from an AsyncLLMEngine (vLLM 0.26 and 0.32 alike)."""
    mc = getattr(engine, "model_config", None)
    if mc is None:
        mc = await engine.get_model_config()
    tok = engine.get_tokenizer()
    if inspect.isawaitable(tok):
        tok = await tok
    try:
        vocab = int(mc.get_vocab_size())
    except Exception:  # noqa: BLE001 - an exotic config without a vocab size: no top_k bound then
        vocab = None
    return EngineInfo(engine, tok, mc.served_model_name if isinstance(getattr(mc, "served_model_name", None), str)
                      else mc.model, int(mc.max_model_len), int(getattr(mc, "max_logprobs", 20)), vocab, max_n)


async def first_output(gen: AsyncIterator) -> Any:
    """The engine's first output; errors before generation starts become HTTP errors."""
    try:
        return await gen.__anext__()
    except StopAsyncIteration:
        return None
    except client_errors() as exc:  # input validation inside the engine
        raise RequestError(400, str(exc), getattr(exc, "parameter", None)) from exc
    except Exception as exc:
        if type(exc).__name__ == "EngineDeadError":
            raise RequestError(503, "the engine has died; restart the server") from exc
        raise


async def collect(gen: AsyncIterator) -> Any:
    """Drain the engine's outputs; FINAL_ONLY means one, the finished request."""
    final = await first_output(gen)
    async for out in gen:
        final = out
    return final


async def run_unless_disconnected(request: Request, coro: Any) -> Any:
    """Await ``coro``, but cancel it (and so abort the engine request) if the client goes away."""
    task = asyncio.ensure_future(coro)

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        raise RequestError(499, "client disconnected")
    return task.result()


async def answer(info: EngineInfo, body: BaseModel, request: Request) -> Any:
    """Run one validated /generate body on the engine: the reply dict, or a streaming response."""
    params = sampling_params(body)
    if len(body.prompt) > THREAD_PROMPT_CHARS:
        ids = await asyncio.to_thread(prompt_ids, info.tokenizer, body, info.max_model_len)
    else:
        ids = prompt_ids(info.tokenizer, body, info.max_model_len)
    gen = info.engine.generate(engine_prompt(ids), params, uuid.uuid4().hex)
    if body.stream:
        first = await first_output(gen)
        return StreamingResponse(stream_events(first, gen, body.logprobs is not None), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    final = await run_unless_disconnected(request, collect(gen))
    return reply(final, len(ids), logprobs=body.logprobs is not None, details=body.details)


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------
async def health(request: Request):
    """Readiness: 200 when the engine can serve."""
    try:
        await request.app.state.info.engine.check_health()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return JSONResponse(error_body(503, f"engine unhealthy: {exc!r}"), 503)
    return {"status": "ok"}


async def server_info(request: Request):
    """The served model and this server's limits."""
    info = request.app.state.info
    return {"model": info.model, "max_model_len": info.max_model_len, "max_n": info.max_n,
            "max_logprobs": info.max_logprobs, "vocab_size": info.vocab_size}


def app_shell(fields: list[str], api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The app without routes: the error handlers, the body limit, and the state that ``require_key`` reads."""
    app = FastAPI(title="The study note's vLLM server", version="1.0",
                  description="POST /generate → {\"results\": [text, ...]}; see servers/vllm_server.py.")
    app.state.api_key, app.state.fields = api_key, fields
    for exc_type, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(exc_type, handler)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def create_app(info: EngineInfo, api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app: /generate, /health and /info on one engine (wiring only; the pieces are above)."""
    GenerateRequest = make_request_model(info.max_model_len, info.max_n, info.max_logprobs, info.vocab_size)
    app = app_shell(list(GenerateRequest.model_fields), api_key, max_body_bytes)
    app.state.info = info
    app.get("/health")(health)
    app.get("/info", dependencies=[Depends(require_key)])(server_info)

    @app.post("/generate", dependencies=[Depends(require_key)])
    async def generate(body: GenerateRequest, request: Request):  # type: ignore[valid-type]
        """Generate ``n`` samples for ``prompt``: ``{"results": [text, ...]}``, or a stream of events."""
        return await answer(request.app.state.info, body, request)

    return app


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def bind_socket(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` now (before the engine loads), so a busy port fails in a second, not a minute."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc.strerror}. "
                         f"{'Another process holds the port: pick another with --port. ' if port else ''}".strip())
    return sock


def build_parser():
    """Our options plus every vLLM engine option (AsyncEngineArgs.add_cli_args)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # older layouts
        try:
            from vllm.utils import FlexibleArgumentParser  # type: ignore[no-redef]
        except ImportError:
            FlexibleArgumentParser = argparse.ArgumentParser  # type: ignore[misc,assignment]

    parser = FlexibleArgumentParser(prog="python servers/vllm_server.py",
                                    description="The study note's /generate server on vLLM's async engine.")
    srv = parser.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    srv.add_argument("--api-key", default=os.environ.get("LLMKIT_API_KEY"),
                     help="require 'Authorization: Bearer KEY' (default: $LLMKIT_API_KEY, else no key)")
    srv.add_argument("--max-n", type=int, default=MAX_N, help=f"most samples per request (default {MAX_N})")
    srv.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="largest request body")
    srv.add_argument("--server-log-level", default="info", choices=["debug", "info", "warning", "error"],
                     help="uvicorn's log level")
    parser = AsyncEngineArgs.add_cli_args(parser)
    dests = {a.dest for a in parser._actions}
    # The course's defaults for this machine (CPU: eager, short context, explicit KV budget); flags win.
    from llmkit.models import llm_kwargs

    parser.set_defaults(model=None, **{k: v for k, v in llm_kwargs().items() if k in dests})
    return parser


async def serve(args: argparse.Namespace, sock: socket.socket) -> None:
    """Load the engine, then serve HTTP on ``sock`` until SIGTERM or Ctrl-C; always shut the engine down."""
    import uvicorn
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.engine.async_llm_engine import AsyncLLMEngine

    engine_args = AsyncEngineArgs.from_cli_args(args)
    engine = AsyncLLMEngine.from_engine_args(engine_args)
    try:
        info = await engine_info(engine, args.max_n)
        app = create_app(info, api_key=args.api_key, max_body_bytes=args.max_body_bytes)
        config = uvicorn.Config(app, log_level=args.server_log_level, timeout_graceful_shutdown=10,
                                timeout_keep_alive=5)
        server = uvicorn.Server(config)
        host, port = sock.getsockname()[:2]
        logger.info("serving %s on http://%s:%d (POST /generate, GET /health)", info.model, host, port)
        await server.serve(sockets=[sock])
    finally:
        engine.shutdown()


class Stopped(BaseException):
    """Raised by the SIGTERM handler, like KeyboardInterrupt is by Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    """SIGTERM: unwind the stack so that ``finally`` blocks shut the engine down."""
    raise Stopped()


def main(argv: list[str] | None = None) -> int:
    """Entry point: bind the port, parse engine options, load the model, serve."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--host", default="127.0.0.1")
    pre.add_argument("--port", type=int, default=8000)
    early, _ = pre.parse_known_args(argv)
    help_only = any(a in ("-h", "--help") or a.startswith("--help=") for a in (argv or sys.argv[1:]))
    sock = None if help_only else bind_socket(early.host, early.port)

    # SIGTERM unwinds like Ctrl-C, so the engine is always shut down (uvicorn handles both while it
    # serves, drains in-flight requests, then re-raises the signal, which lands here).
    signal.signal(signal.SIGTERM, _on_sigterm)
    # A program started from a background job (`cmd &` in a script, nohup, some CI runners) inherits
    # SIGINT as *ignored*; uvicorn would then restore "ignored" and the engine would not be shut down by
    # the usual path. Ctrl-C (SIGINT to the group) stops the server whoever started it.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = build_parser().parse_args(argv)
        if args.model is None:
            from llmkit.models import default_model

            args.model = default_model()
        if args.max_n < 1:
            raise SystemExit("error: --max-n must be at least 1")
        args.api_key = args.api_key or None
        try:  # uvloop, as vLLM's own server uses: a faster event loop where it is installed
            from uvloop import run
        except ImportError:
            run = asyncio.run
        run(serve(args, sock))
    except (KeyboardInterrupt, Stopped) as exc:
        logger.info("stopped by %s; engine shut down", "SIGTERM" if isinstance(exc, Stopped) else "Ctrl-C")
    finally:
        if sock is not None:
            sock.close()
    return 0


if __name__ == "__main__":  # vLLM starts its engine in another process: the guard is required
    sys.exit(main())
