"""Small clients for the course's servers, each returning the normalized ``llmkit.outputs.Generation``.

- the study note's server (servers/vllm_server.py): ``note_generate``, ``note_stream``;
- any OpenAI-compatible server (vLLM, SGLang), with ``requests``: ``openai_completion``,
  ``openai_chat``, ``openai_stream``; with the ``openai`` package: ``openai_client`` and
  ``from_openai`` / ``from_openai_stream`` to normalize what it returns;
- SGLang's native ``/generate``: ``sglang_generate``, ``from_sglang``.

``server`` is a base URL (``http://127.0.0.1:8000``) or a handle from ``llmkit.lifecycle`` (then its API
key is sent, and a dead server is reported as ``ServerDied`` with its log tail). An error answer is
raised as ``ServerError`` with the HTTP status and the server's own message.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping, Sequence

import requests

from llmkit.outputs import Completion, Generation, Step, TokenLogprob

DEFAULT_TIMEOUT = 300.0  # seconds; generation on a 2-core CPU under load can be slow


class ServerError(RuntimeError):
    """A server answered with an error: ``.status`` (HTTP code, 0 if unreachable), ``.message``, ``.body``."""

    def __init__(self, status: int, message: str, url: str = "", body: Any = None):
        super().__init__(f"HTTP {status} from {url}: {message}" if status else f"{url}: {message}")
        self.status, self.message, self.url, self.body = status, message, url, body


class ServerUnreachable(ServerError):
    """Nothing answered at the server's address (not started, stopped, or crashed)."""


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------
def base_url(server: Any) -> str:
    """The base URL of a server given as a URL string or a handle with ``.url``."""
    url = server if isinstance(server, str) else server.url
    return url.rstrip("/")


def auth_headers(server: Any, api_key: str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` for an explicit key, else the handle's key, else nothing."""
    key = api_key or (None if isinstance(server, str) else getattr(server, "api_key", None))
    return {"Authorization": f"Bearer {key}"} if key else {}


def error_message(body: Any, fallback: str) -> str:
    """The message inside an error body: ``{"error": {"message"}}``, ``{"detail": ...}``, ``{"message"}`` or
    ``{"error_message"}``."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if "detail" in body:
            return body["detail"] if isinstance(body["detail"], str) else json.dumps(body["detail"], ensure_ascii=False)
        if body.get("message"):
            return str(body["message"])
        if body.get("error_message"):                           # SGLang's /load_lora_adapter and friends
            return str(body["error_message"])
    return fallback


def raise_for_error(resp: requests.Response) -> None:
    """Raise ``ServerError`` (status, the server's message) for a 4xx/5xx answer."""
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    raise ServerError(resp.status_code, error_message(body, str(body)[:500] or resp.reason), resp.url, body)


def _unreachable(server: Any, url: str, exc: Exception) -> ServerError:
    """The error for a failed connection: the handle's own diagnosis if it has died, else ServerUnreachable."""
    check = getattr(server, "check", None)
    if callable(check):
        check()  # raises ServerDied, with the exit status and log tail, if the process has ended
    return ServerUnreachable(0, f"cannot connect ({type(exc).__name__}): is the server running?", url)


def post_json(server: Any, path: str, body: Mapping[str, Any], *, api_key: str | None = None,
              timeout: float = DEFAULT_TIMEOUT, stream: bool = False) -> requests.Response:
    """POST a JSON body to ``server + path``; errors become ``ServerError``."""
    url = base_url(server) + path
    try:
        resp = requests.post(url, json=dict(body), headers=auth_headers(server, api_key), timeout=timeout,
                             stream=stream)
    except requests.ConnectionError as exc:
        raise _unreachable(server, url, exc) from exc
    raise_for_error(resp)
    return resp


def get_json(server: Any, path: str, *, api_key: str | None = None, timeout: float = 30.0) -> Any:
    """GET ``server + path`` and decode the JSON answer; errors become ``ServerError``."""
    url = base_url(server) + path
    try:
        resp = requests.get(url, headers=auth_headers(server, api_key), timeout=timeout)
    except requests.ConnectionError as exc:
        raise _unreachable(server, url, exc) from exc
    raise_for_error(resp)
    return resp.json()


def sse_events(resp: requests.Response) -> Iterator[Any]:
    """Decode a server-sent-events answer: each ``data:`` line's JSON, until ``[DONE]``."""
    try:
        for line in resp.iter_lines(decode_unicode=False):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip().decode("utf-8")
            if data == "[DONE]":
                return
            event = json.loads(data)
            if isinstance(event, dict) and "error" in event:
                raise ServerError(int(event["error"].get("code") or 500) if isinstance(event["error"], dict) else 500,
                                  error_message(event, data), resp.url, event)
            yield event
    finally:
        resp.close()


def _logprob(value: Any) -> float:
    """A logprob as float; null (masked, -inf) becomes -inf."""
    return float("-inf") if value is None else float(value)


# --------------------------------------------------------------------------------------------------
# The study note's server
# --------------------------------------------------------------------------------------------------
def note_body(prompt: str, **params: Any) -> dict[str, Any]:
    """The /generate body: the prompt and every parameter that is not None."""
    return {"prompt": prompt, **{k: v for k, v in params.items() if v is not None}}


def _steps_from_note(steps: Sequence[Mapping[str, Any]] | None) -> list[Step] | None:
    """The note server's logprobs of one sample, as Steps."""
    if steps is None:
        return None
    out = []
    for s in steps:
        top = tuple(TokenLogprob(c.get("token") or "", _logprob(c.get("logprob")), c.get("token_id"), c.get("rank"))
                    for c in s.get("top", []))
        out.append(Step(TokenLogprob(s.get("token") or "", _logprob(s.get("logprob")), s.get("token_id"),
                                     s.get("rank")), top))
    return out


def from_note(reply: Mapping[str, Any], prompt: str | None = None) -> Generation:
    """Normalize the note server's ``{"results": [...]}`` (plus ``logprobs`` / ``details`` if present)."""
    results = reply["results"]
    details = reply.get("details") or {}
    logprobs = reply.get("logprobs") or [None] * len(results)
    comps = []
    for i, text in enumerate(results):
        steps = _steps_from_note(logprobs[i])
        finish = (details.get("finish_reasons") or [None] * len(results))[i]
        ids = (details.get("token_ids") or [None] * len(results))[i]
        if ids is None and steps:
            ids = [s.chosen.token_id for s in steps]
        comps.append(Completion(index=i, text=text, finish_reason=finish, token_ids=ids, steps=steps))
    usage = {}
    if details:
        usage = {"prompt_tokens": details.get("prompt_tokens"),
                 "completion_tokens": sum(details.get("num_tokens") or [])}
    return Generation(source="note-server", completions=comps, prompt=prompt, usage=usage)


def note_generate(server: Any, prompt: str, *, max_tokens: int | None = 64, temperature: float | None = None,
                  top_p: float | None = None, n: int | None = None, api_key: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT, **params: Any) -> Generation:
    """``POST /generate`` on the note's server; extra ``params``: top_k, seed, stop, logprobs, chat, details…"""
    body = note_body(prompt, max_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, **params)
    reply = post_json(server, "/generate", body, api_key=api_key, timeout=timeout).json()
    return from_note(reply, prompt)


def note_stream(server: Any, prompt: str, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                **params: Any) -> Iterator[dict[str, Any]]:
    """Stream ``/generate``: yields events ``{"index", "text", "finish_reason"}`` as tokens arrive."""
    body = note_body(prompt, stream=True, **params)
    yield from sse_events(post_json(server, "/generate", body, api_key=api_key, timeout=timeout, stream=True))


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible servers (vLLM, SGLang)
# --------------------------------------------------------------------------------------------------
def served_model(server: Any, api_key: str | None = None) -> str:
    """The first model id the server lists at ``/v1/models`` (what the ``model`` field must say)."""
    return get_json(server, "/v1/models", api_key=api_key)["data"][0]["id"]


def _as_dict(obj: Any) -> Any:
    """An openai SDK object (pydantic) as a plain dict; dicts pass through."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def _steps_from_completions_api(lp: Mapping[str, Any] | None) -> list[Step] | None:
    """``/v1/completions`` logprobs (tokens, token_logprobs, top_logprobs) as Steps; ranks from the top lists."""
    if not lp or lp.get("tokens") is None:
        return None
    steps = []
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    for token, logprob, top in zip(lp["tokens"], lp.get("token_logprobs") or [], tops):
        ranked = sorted((top or {}).items(), key=lambda kv: -_logprob(kv[1]))
        cands = tuple(TokenLogprob(t, _logprob(v), None, r) for r, (t, v) in enumerate(ranked, 1))
        rank = next((c.rank for c in cands if c.token == token), None)
        steps.append(Step(TokenLogprob(token, _logprob(logprob), None, rank), cands))
    return steps


def _steps_from_chat_api(lp: Mapping[str, Any] | None) -> list[Step] | None:
    """``/v1/chat/completions`` logprobs (content: [{token, logprob, top_logprobs}]) as Steps."""
    if not lp or lp.get("content") is None:
        return None
    steps = []
    for item in lp["content"]:
        ranked = sorted(item.get("top_logprobs") or [], key=lambda c: -_logprob(c.get("logprob")))
        cands = tuple(TokenLogprob(c["token"], _logprob(c.get("logprob")), None, r) for r, c in enumerate(ranked, 1))
        rank = next((c.rank for c in cands if c.token == item["token"]), None)
        steps.append(Step(TokenLogprob(item["token"], _logprob(item.get("logprob")), None, rank), cands))
    return steps


def from_openai(response: Any, prompt: str | None = None) -> Generation:
    """Normalize an OpenAI completions or chat answer (a dict from requests, or an openai SDK object)."""
    data = _as_dict(response)
    chat = str(data.get("object", "")).startswith("chat.completion")
    comps = []
    for ch in data.get("choices", []):
        if chat:
            text = (ch.get("message") or {}).get("content") or ""
            steps = _steps_from_chat_api(ch.get("logprobs"))
        else:
            text, steps = ch.get("text") or "", _steps_from_completions_api(ch.get("logprobs"))
        token_ids = ch.get("token_ids")  # vLLM adds these when asked (return_token_ids)
        comps.append(Completion(index=ch.get("index", len(comps)), text=text, finish_reason=ch.get("finish_reason"),
                                token_ids=list(token_ids) if token_ids is not None else None,
                                stop_reason=ch.get("stop_reason"), steps=steps))
    return Generation(source="openai-chat" if chat else "openai-completions", completions=comps, prompt=prompt,
                      request_id=data.get("id"), usage=dict(data.get("usage") or {}))


def from_openai_stream(chunks: Iterable[Any], prompt: str | None = None) -> Generation:
    """Join streamed OpenAI chunks (dicts or SDK objects, completions or chat) into one Generation."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, Any] = {}
    chat, request_id, usage = False, None, {}
    for chunk in chunks:
        data = _as_dict(chunk)
        chat = chat or str(data.get("object", "")).startswith("chat.completion")
        request_id = request_id or data.get("id")
        usage = dict(data.get("usage") or usage)
        for ch in data.get("choices", []):
            i = ch.get("index", 0)
            piece = ((ch.get("delta") or {}).get("content") if "delta" in ch else ch.get("text")) or ""
            texts.setdefault(i, []).append(piece)
            if ch.get("finish_reason") is not None:
                finish[i] = ch["finish_reason"]
    comps = [Completion(index=i, text="".join(parts), finish_reason=finish.get(i))
             for i, parts in sorted(texts.items())]
    return Generation(source="openai-chat" if chat else "openai-completions", completions=comps, prompt=prompt,
                      request_id=request_id, usage=usage)


def _openai_body(model: str | None, server: Any, api_key: str | None, **params: Any) -> dict[str, Any]:
    """An OpenAI request body: ``model`` (asked from the server if not given) and the non-None params."""
    return {"model": model or served_model(server, api_key), **{k: v for k, v in params.items() if v is not None}}


def openai_completion(server: Any, prompt: str, *, model: str | None = None, max_tokens: int | None = 64,
                      api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT, **params: Any) -> Generation:
    """``POST /v1/completions`` with requests (raw text continuation); ``params``: temperature, n, logprobs…"""
    body = _openai_body(model, server, api_key, prompt=prompt, max_tokens=max_tokens, **params)
    return from_openai(post_json(server, "/v1/completions", body, api_key=api_key, timeout=timeout).json(), prompt)


def chat_messages(prompt: str | Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """A prompt string as one user message; a message list passes through."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def openai_chat(server: Any, prompt: str | Sequence[Mapping[str, str]], *, model: str | None = None,
                max_tokens: int | None = 64, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                **params: Any) -> Generation:
    """``POST /v1/chat/completions`` with requests (the server applies the chat template)."""
    messages = chat_messages(prompt)
    body = _openai_body(model, server, api_key, messages=messages, max_tokens=max_tokens, **params)
    reply = post_json(server, "/v1/chat/completions", body, api_key=api_key, timeout=timeout).json()
    return from_openai(reply, prompt if isinstance(prompt, str) else messages[-1]["content"])


def openai_stream(server: Any, prompt: str | Sequence[Mapping[str, str]], *, chat: bool = False,
                  model: str | None = None, max_tokens: int | None = 64, api_key: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT, **params: Any) -> Iterator[dict[str, Any]]:
    """Stream completions (or chat, ``chat=True``) with requests: yields each chunk as a dict."""
    if chat:
        body = _openai_body(model, server, api_key, messages=chat_messages(prompt), max_tokens=max_tokens,
                            stream=True, **params)
        path = "/v1/chat/completions"
    else:
        body = _openai_body(model, server, api_key, prompt=prompt, max_tokens=max_tokens, stream=True, **params)
        path = "/v1/completions"
    yield from sse_events(post_json(server, path, body, api_key=api_key, timeout=timeout, stream=True))


def chunk_text(chunk: Any) -> str:
    """The new text in one streamed chunk (completions ``text`` or chat ``delta.content``), first choice."""
    data = _as_dict(chunk)
    choices = data.get("choices") or [{}]
    ch = choices[0]
    return ((ch.get("delta") or {}).get("content") if "delta" in ch else ch.get("text")) or ""


def openai_client(server: Any, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT, max_retries: int = 0):
    """An ``openai.OpenAI`` client for the server's ``/v1`` API (the key defaults to the handle's, or "EMPTY")."""
    from openai import OpenAI

    key = api_key or (None if isinstance(server, str) else getattr(server, "api_key", None)) or "EMPTY"
    return OpenAI(base_url=base_url(server) + "/v1", api_key=key, timeout=timeout, max_retries=max_retries)


# --------------------------------------------------------------------------------------------------
# SGLang's native API
# --------------------------------------------------------------------------------------------------
def _steps_from_sglang(token_lps: Sequence[Sequence[Any]] | None,
                       top_lps: Sequence[Sequence[Sequence[Any]] | None] | None) -> list[Step] | None:
    """SGLang's ``[logprob, token_id, text]`` triples (and per-position top lists) as Steps."""
    if not token_lps:
        return None
    tops = list(top_lps or [])
    steps = []
    for pos, (lp, tid, text) in enumerate(token_lps):
        top = sorted(tops[pos] or [], key=lambda c: -_logprob(c[0])) if pos < len(tops) else []
        cands = tuple(TokenLogprob(c[2] or "", _logprob(c[0]), c[1], r) for r, c in enumerate(top, 1))
        rank = next((c.rank for c in cands if c.token_id == tid), None)
        steps.append(Step(TokenLogprob(text or "", _logprob(lp), tid, rank), cands))
    return steps


def _sglang_completion(item: Mapping[str, Any], index: int) -> Completion:
    """One SGLang result dict as a Completion."""
    meta = item.get("meta_info") or {}
    fr = meta.get("finish_reason")
    finish = fr.get("type") if isinstance(fr, dict) else fr
    stop = fr.get("matched") if isinstance(fr, dict) else None
    ids = item.get("output_ids")
    return Completion(index=item.get("index", meta.get("index", index)), text=item.get("text", ""),
                      finish_reason=finish, token_ids=list(ids) if ids is not None else None, stop_reason=stop,
                      steps=_steps_from_sglang(meta.get("output_token_logprobs"), meta.get("output_top_logprobs")))


def from_sglang(reply: Mapping[str, Any] | Sequence[Mapping[str, Any]], prompt: str | None = None) -> Generation:
    """Normalize SGLang's ``/generate`` answer: one dict, or a list of them (n > 1) for one prompt."""
    items = [reply] if isinstance(reply, Mapping) else list(reply)
    comps = [_sglang_completion(item, i) for i, item in enumerate(items)]
    metas = [item.get("meta_info") or {} for item in items]
    usage = {"prompt_tokens": metas[0].get("prompt_tokens") if metas else None,
             "completion_tokens": sum(m.get("completion_tokens") or 0 for m in metas),
             "cached_tokens": sum(m.get("cached_tokens") or 0 for m in metas)}
    return Generation(source="sglang", completions=comps, prompt=prompt,
                      request_id=metas[0].get("id") if metas else None, usage=usage)


def sglang_body(prompt: str | Sequence[str], *, max_new_tokens: int = 64, logprobs: int | None = None,
                **sampling: Any) -> dict[str, Any]:
    """The native ``/generate`` body: text, sampling_params, and logprob switches."""
    body: dict[str, Any] = {"text": prompt,
                            "sampling_params": {"max_new_tokens": max_new_tokens,
                                                **{k: v for k, v in sampling.items() if v is not None}}}
    if logprobs is not None:
        body.update(return_logprob=True, top_logprobs_num=logprobs, return_text_in_logprobs=True)
    return body


def sglang_generate(server: Any, prompt: str | Sequence[str], *, max_new_tokens: int = 64,
                    logprobs: int | None = None, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                    **sampling: Any) -> Generation | list[Generation]:
    """SGLang's native ``POST /generate``; ``sampling``: temperature, top_p, top_k, n, stop… A list of
    prompts (a batch) returns one Generation per prompt."""
    body = sglang_body(prompt, max_new_tokens=max_new_tokens, logprobs=logprobs, **sampling)
    reply = post_json(server, "/generate", body, api_key=api_key, timeout=timeout).json()
    if isinstance(prompt, str):
        return from_sglang(reply, prompt)
    items = [reply] if isinstance(reply, Mapping) else list(reply)
    per = max(1, len(items) // max(1, len(prompt)))  # SGLang returns prompt-major: all samples of prompt 0 first
    return [from_sglang(items[i * per:(i + 1) * per], p) for i, p in enumerate(prompt)]
