"""Exercises of notebook 05 (serving with vLLM): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import completions, exercise, Hint, number

def _status_and_body(answer: Any) -> tuple[int | None, dict | None]:
    """(HTTP status, JSON body) from a requests.Response, a JSON dict, or a bare status code."""
    if hasattr(answer, "status_code"):
        try:
            body = answer.json()
        except ValueError:
            body = None
        return answer.status_code, body
    if isinstance(answer, dict):
        return None, answer
    return int(number(answer)), None


@exercise("05.1", "the response to the body with the typo (the requests.Response), or its status code")
def _ex_05_1(answer: Any) -> str:
    """An unknown field ("max_token") is refused, naming the field."""
    status, body = _status_and_body(answer)
    if status is not None and 200 <= status < 300:
        raise Hint(f"{status} means the server accepted the body. Did you post the typo max_token (no s)?")
    if status is not None and status >= 500:
        raise Hint(f"{status} is a server error; a body the server cannot use is the client's error (4xx).")
    if status is not None and status != 422 and body is None:
        raise Hint(f"{status} is a client error, but not the one this server sends for a field it does not know. "
                   "Look at the response's status_code.")
    if body is not None:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            raise Hint("the body should hold {\"error\": {...}}: pass the Response (or resp.json()).")
        if error.get("param") != "max_token":
            raise Hint(f"this error is about {error.get('param')!r}: post the note's body with only the typo changed.")
    return ("422 with error.param = \"max_token\": the server refuses fields it does not know. Ignoring the typo "
            "would silently use the default max_tokens (16), cutting every poem with finish_reason \"length\" "
            "and nothing to tell you why.")


@exercise("05.2", "the answer of client.completions.create (n=3, logprobs=2)")
def _ex_05_2(answer: Any) -> str:
    """n=3 completions with logprobs=2 through the openai client."""
    from llmkit.clients import from_openai

    if isinstance(answer, (str, list, tuple)):
        raise Hint("pass the whole answer of client.completions.create(...), not a part of it.")
    gen = from_openai(answer)
    if gen.source != "openai-completions":
        raise Hint("that is a chat answer: the exercise asks for /v1/completions (client.completions.create).")
    if len(gen.completions) != 3:
        raise Hint(f"{len(gen.completions)} choice(s): how do you ask one request for 3 samples?")
    if any(not c.steps for c in gen.completions):
        raise Hint("no logprobs came back: ask for them in the request.")
    if any(not 2 <= len(c.steps[0].top) <= 3 for c in gen.completions):
        raise Hint("the first token should come with its 2 best candidates: how many logprobs did you ask for?")
    if any(c.finish_reason not in ("stop", "length") for c in gen.completions):
        raise Hint("every choice should have finished with \"stop\" or \"length\".")
    return ("three choices, each with its finish_reason and, per token, the top 2 candidates "
            "(choice.logprobs.top_logprobs[0] for the first token; the sampled token may add a third).")


@exercise("05.3", "a tuple of status codes: (/v1/models without the key, with it, /health without it)")
def _ex_05_3(answer: Any) -> str:
    """A vLLM server with an API key: 401 without it, 200 with it, /health open."""
    if not isinstance(answer, (list, tuple)) or len(answer) != 3:
        raise Hint("give three status codes: (without the key, with the key, /health without a key).")
    without, with_key, health = (int(number(a)) for a in answer)
    if without == 200:
        raise Hint("without the key it still answered 200: was that the server started with api_key=...?")
    if without != 401:
        raise Hint(f"{without} without the key: which status means \"who are you?\" (not \"you may not\")?")
    if with_key != 200:
        raise Hint(f"{with_key} with the key: check the header, exactly `Authorization: Bearer <key>`.")
    if health != 200:
        raise Hint(f"/health answered {health}: did you call it on the same server with GET?")
    return ("401 without the key, 200 with it: vLLM checks the key on every /v1 route. /health stays open (200) "
            "so readiness probes, load balancers and start_vllm_server can poll it without a secret.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from types import SimpleNamespace

    from llmkit.exercises.core import Case

    def response(status: int, param: str | None = "max_token"):
        """A requests.Response-shaped reply of the note server: status and its JSON error body."""
        body = {"error": {"message": "unknown field", "type": "invalid_request_error", "param": param, "code": status}}
        return SimpleNamespace(status_code=status, json=lambda: body if status >= 400 else {"results": ["秋"]})

    def completions_answer(n: int = 3, k: int = 2, logprobs: bool = True, chat: bool = False) -> dict:
        """A /v1/completions (or chat) answer as JSON, with n choices and top-k logprobs per token."""
        lp = {"tokens": ["秋", "风"], "token_logprobs": [-0.5, -1.0],
              "top_logprobs": [{f"t{i}": -0.5 - i for i in range(k)}] * 2} if logprobs else None
        choices = [{"index": i, "text": "秋风", "finish_reason": "length", "logprobs": lp} for i in range(n)]
        if chat:
            choices = [{"index": i, "message": {"content": "秋风"}, "finish_reason": "length"} for i in range(n)]
        return {"object": "chat.completion" if chat else "text_completion", "choices": choices}

    out = [Case("05.1", a) for a in (response(422), 422, {"error": {"param": "max_token"}})]
    out += [Case("05.1", a, passes=False)
            for a in (response(200), 200, 500, 400, response(422, "prompt"), {"results": []})]
    out += [Case("05.2", completions_answer())]
    out += [Case("05.2", a, passes=False) for a in (completions_answer(n=2), completions_answer(logprobs=False),
                                                    completions_answer(k=5), completions_answer(chat=True), "秋风")]
    out += [Case("05.3", (401, 200, 200))]
    out += [Case("05.3", a, passes=False) for a in ((200, 200, 200), (403, 200, 200), (401, 401, 200), (401, 200, 401),
                                                    (401, 200))]
    return out
