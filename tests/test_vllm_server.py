"""servers/vllm_server.py, the study note's server, run for real on the course model (no mocks).

One server for the whole module, started with an API key so that every request also exercises
authentication. Covers the note's exact call, the optional fields, streaming, every bad input the
server must refuse (with /health still 200 afterwards), 64 concurrent clients, a fuzz run from the
server's own OpenAPI schema, and a clean SIGTERM shutdown (last test).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytest.importorskip("vllm", reason="vLLM is not installed in this environment")

from llmkit import clients  # noqa: E402
from llmkit.lifecycle import port_in_use, start_note_server  # noqa: E402

pytestmark = pytest.mark.engine
NOTE_PROMPT = "写一首七言绝句"
AUTUMN_PROMPT = "写一首关于秋天的诗"
API_KEY = "course-test-key"
TIMEOUT = 300


@pytest.fixture(scope="module")
def server(tiny_poet_dir):
    """One note server on tiny-poet for this module."""
    handle = start_note_server(str(tiny_poet_dir), api_key=API_KEY, timeout=TIMEOUT)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def limits(server):
    """The server's own limits, from GET /info."""
    return clients.get_json(server, "/info")


def post(server, body, *, raw: bytes | None = None, headers: dict | None = None, timeout: float = TIMEOUT):
    """POST /generate with the server's key; ``raw`` sends bytes as they are."""
    h = {**server.headers, **(headers or {})}
    if raw is not None:
        return requests.post(server.url + "/generate", data=raw, headers={"Content-Type": "application/json", **h},
                             timeout=timeout)
    return requests.post(server.url + "/generate", json=body, headers=h, timeout=timeout)


def assert_error_shape(resp, status: int) -> dict:
    """The error body is {"error": {"message", "type", "param", "code"}} with the HTTP status."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]
    return err


def assert_healthy(server) -> None:
    """/health answers 200 (and needs no key)."""
    assert requests.get(server.url + "/health", timeout=30).status_code == 200


# ---------------------------------------------------------------------------------------------- happy path
def test_note_call_returns_exactly_results(server):
    """The note's body and reply shape: {"results": [text, text]} and nothing else."""
    body = {"prompt": NOTE_PROMPT, "max_tokens": 64, "temperature": 0.8, "top_p": 0.95, "n": 2}
    resp = post(server, body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert list(data) == ["results"]
    assert len(data["results"]) == 2 and all(isinstance(t, str) for t in data["results"])


def test_details_and_logprobs_are_added_fields(server):
    """details and logprobs add their own fields; results stays a list of strings."""
    data = post(server, {"prompt": AUTUMN_PROMPT, "max_tokens": 8, "n": 2, "logprobs": 3, "details": True,
                         "chat": True}).json()
    assert set(data) == {"results", "logprobs", "details"}
    det = data["details"]
    assert det["prompt_tokens"] > 0
    assert all(r in ("stop", "length") for r in det["finish_reasons"])
    assert all(1 <= k <= 8 for k in det["num_tokens"])
    for steps, k in zip(data["logprobs"], det["num_tokens"]):
        assert len(steps) == k
        for step in steps:
            ranks = [c["rank"] for c in step["top"]]
            assert ranks == sorted(ranks) and 3 <= len(step["top"]) <= 4  # top 3, plus the sampled token
            assert step["logprob"] <= 0 and step["rank"] >= 1
            assert any(c["token_id"] == step["token_id"] for c in step["top"])


def test_greedy_is_deterministic_and_seed_reproduces(server):
    """temperature=0 gives the same text twice; a fixed seed reproduces a sampled text."""
    greedy = [post(server, {"prompt": NOTE_PROMPT, "max_tokens": 12, "temperature": 0}).json()["results"][0]
              for _ in range(2)]
    assert greedy[0] == greedy[1]
    seeded = [post(server, {"prompt": NOTE_PROMPT, "max_tokens": 12, "temperature": 1.0, "seed": 7}).json()
              for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_stop_and_top_k_and_repetition_penalty(server):
    """Optional sampling fields are accepted and honoured (stop strings are cut from the text)."""
    data = post(server, {"prompt": AUTUMN_PROMPT, "chat": True, "max_tokens": 40, "stop": ["\n"], "top_k": 5,
                         "repetition_penalty": 1.2, "details": True}).json()
    assert "\n" not in data["results"][0]
    assert data["details"]["finish_reasons"][0] in ("stop", "length")


def test_stream_sends_events_then_done(server):
    """stream=true: SSE events per sample, deltas join to the text, each sample ends with a finish_reason."""
    events = list(clients.note_stream(server, AUTUMN_PROMPT, chat=True, max_tokens=10, n=2, temperature=0.8))
    assert {e["index"] for e in events} == {0, 1}
    for i in (0, 1):
        mine = [e for e in events if e["index"] == i]
        assert mine[-1]["finish_reason"] in ("stop", "length")
        assert all(e["finish_reason"] is None for e in mine[:-1])
        assert "".join(e["text"] for e in mine)


def test_stream_with_greedy_matches_non_stream(server):
    """Streaming changes delivery, not content: greedy text is identical both ways."""
    body = {"prompt": NOTE_PROMPT, "max_tokens": 16, "temperature": 0}
    whole = post(server, body).json()["results"][0]
    streamed = "".join(e["text"] for e in clients.note_stream(server, NOTE_PROMPT, max_tokens=16, temperature=0))
    assert streamed == whole


def test_stream_client_disconnect_keeps_server_serving(server):
    """A client that hangs up mid-stream aborts its request; the server keeps serving."""
    resp = post(server, {"prompt": NOTE_PROMPT, "max_tokens": 500, "stream": True, "n": 4}, timeout=60)
    assert resp.status_code == 200
    next(resp.iter_lines())
    resp.close()
    assert_healthy(server)
    assert post(server, {"prompt": NOTE_PROMPT, "max_tokens": 4}).status_code == 200


def test_client_helper_normalizes(server):
    """llmkit.clients.note_generate returns the shared Generation view."""
    gen = clients.note_generate(server, NOTE_PROMPT, max_tokens=8, n=3, temperature=0.8, details=True, logprobs=1)
    assert gen.source == "note-server" and len(gen.completions) == 3
    for c in gen.completions:
        assert c.finish_reason in ("stop", "length") and 1 <= c.num_tokens <= 8
        assert all(s.chosen.logprob <= 0 for s in c.steps)
    assert gen.usage["prompt_tokens"] > 0


# ---------------------------------------------------------------------------------------------- bad input
LONG_PROMPT = "春" * 3000  # one token per character for tiny-poet, far over max_model_len (1024)

BAD_INPUTS = [
    # id, body (dict) or raw bytes, status, param the error must name, fragment of the message
    ("missing-prompt", {"max_tokens": 8}, 422, "prompt", "required"),
    ("empty-prompt", {"prompt": ""}, 422, "prompt", "at least 1"),
    ("prompt-not-string", {"prompt": 123}, 422, "prompt", "valid string"),
    ("prompt-list", {"prompt": ["a", "b"]}, 422, "prompt", "valid string"),
    ("max-tokens-string", {"prompt": "a", "max_tokens": "64"}, 422, "max_tokens", "valid integer"),
    ("max-tokens-float", {"prompt": "a", "max_tokens": 6.5}, 422, "max_tokens", "integer"),
    ("max-tokens-bool", {"prompt": "a", "max_tokens": True}, 422, "max_tokens", "valid integer"),
    ("max-tokens-zero", {"prompt": "a", "max_tokens": 0}, 422, "max_tokens", "greater than or equal to 1"),
    ("max-tokens-negative", {"prompt": "a", "max_tokens": -5}, 422, "max_tokens", "greater than or equal to 1"),
    ("max-tokens-over-context", {"prompt": "a", "max_tokens": 100000}, 422, "max_tokens", "less than or equal"),
    ("prompt-plus-max-tokens-over-context", {"prompt": "a", "max_tokens": 1024}, 400, "max_tokens",
     "max_model_len"),
    ("n-zero", {"prompt": "a", "n": 0}, 422, "n", "greater than or equal to 1"),
    ("n-over-cap", {"prompt": "a", "n": 17}, 422, "n", "less than or equal to 16"),
    ("temperature-negative", {"prompt": "a", "temperature": -0.1}, 422, "temperature", "greater than or equal"),
    ("temperature-string", {"prompt": "a", "temperature": "hot"}, 422, "temperature", "valid number"),
    ("top-p-zero", {"prompt": "a", "top_p": 0}, 422, "top_p", "greater than 0"),
    ("top-p-over-one", {"prompt": "a", "top_p": 1.5}, 422, "top_p", "less than or equal to 1"),
    ("top-k-negative", {"prompt": "a", "top_k": -2}, 422, "top_k", "greater than or equal to -1"),
    ("seed-negative", {"prompt": "a", "seed": -1}, 422, "seed", "greater than or equal to 0"),
    ("logprobs-over-cap", {"prompt": "a", "logprobs": 1000}, 422, "logprobs", "less than or equal"),
    ("stop-empty-string", {"prompt": "a", "stop": [""]}, 422, "stop", "at least 1"),
    ("stream-not-bool", {"prompt": "a", "stream": "yes"}, 422, "stream", "valid boolean"),
    ("unknown-field", {"prompt": "a", "max_token": 64}, 422, "max_token", "unknown field 'max_token'"),
    ("oversized-prompt", {"prompt": LONG_PROMPT}, 400, "prompt", "max_model_len"),
    ("greedy-with-n", {"prompt": "a", "n": 2, "temperature": 0}, 400, None, "n must be 1 when using greedy"),
    ("not-json", b"prompt=hello", 400, None, "not valid JSON"),
    ("truncated-json", b'{"prompt": "a", ', 400, None, "not valid JSON"),
    ("json-array", b'["a", "b"]', 400, None, "JSON object"),
    ("json-string", '"写一首七言绝句"'.encode(), 400, None, "JSON object"),
    ("empty-body", b"", 400, None, "JSON object"),
    ("nan-temperature", b'{"prompt": "a", "temperature": NaN}', 422, "temperature", "finite"),
    ("lone-surrogate", b'{"prompt": "\\ud800"}', 422, "prompt", "Unicode"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_server_keeps_serving(server, case):
    """Each bad request gets its 4xx with a message naming the field; /health is still 200."""
    _, body, status, param, fragment = case
    resp = post(server, None, raw=body) if isinstance(body, bytes) else post(server, body)
    err = assert_error_shape(resp, status)
    assert err["param"] == param
    assert fragment.lower() in err["message"].lower(), err["message"]
    assert_healthy(server)


def test_wrong_or_missing_api_key_is_401(server):
    """With --api-key, /generate needs the bearer token; /health never does."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = requests.post(server.url + "/generate", json={"prompt": "a"}, headers=headers, timeout=30)
        assert_error_shape(resp, 401)
    assert_healthy(server)


def test_oversized_body_is_413(server):
    """A body over --max-body-bytes (1 MiB) is refused before it is parsed, also when sent chunked."""
    resp = post(server, None, raw=json.dumps({"prompt": "a" * (2 << 20)}).encode())
    assert_error_shape(resp, 413)

    def chunked():
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    resp = requests.post(server.url + "/generate", data=chunked(), timeout=60,
                         headers={"Content-Type": "application/json", **server.headers})
    assert_error_shape(resp, 413)

    def small():
        yield b'{"prompt": "'
        yield NOTE_PROMPT.encode()
        yield b'", "max_tokens": 4}'

    resp = requests.post(server.url + "/generate", data=small(), timeout=60,
                         headers={"Content-Type": "application/json", **server.headers})
    assert resp.status_code == 200 and len(resp.json()["results"]) == 1
    assert_healthy(server)


TEN_MB = json.dumps({"prompt": "a" * (10 << 20)}).encode()  # 10 MiB of JSON, ten times the limit


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_10mb_body_gets_the_413_json_not_a_reset(server, framing):
    """A requests client posting 10 MB reads the 413 JSON (the server reads the body, then answers); /health is 200."""
    data = TEN_MB if framing == "content-length" else (TEN_MB[i:i + 65536] for i in range(0, len(TEN_MB), 65536))
    resp = requests.post(server.url + "/generate", data=data, timeout=120,
                         headers={"Content-Type": "application/json", **server.headers})
    err = assert_error_shape(resp, 413)
    assert err["type"] == "request_too_large" and "1048576 bytes" in err["message"]
    assert resp.headers["connection"] == "close"
    assert_healthy(server)


def test_10mb_body_connection_closes_cleanly(server, raw_post):
    """At the socket: the whole 10 MB is accepted, the 413 arrives, and the connection ends with a clean close
    (before the fix the server closed with the body unread: the kernel reset the connection mid-send)."""
    send_error, answer, clean = raw_post(server.url, "/generate", TEN_MB,
                                         {"Content-Type": "application/json", **server.headers})
    assert send_error is None and clean, (send_error, answer[:100])
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"request_too_large"' in answer
    assert_healthy(server)


def test_engine_logs_no_deprecated_prompt_warning(server):
    """The engine gets a TokensInput: no "raw prompts are deprecated" warning (or any other) once serving."""
    post(server, {"prompt": NOTE_PROMPT, "max_tokens": 4, "n": 2})
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    serving = log[log.index("Application startup complete"):]
    assert "POST /generate" in serving
    assert [line for line in serving.splitlines() if "deprecat" in line.lower()] == []


def test_the_notes_command_runs_this_server():
    """`python servers/vllm_server.py --help` is this server: our options and every vLLM engine option."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "servers" / "vllm_server.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for flag in ("--max-body-bytes", "--api-key", "--max-n", "--max-model-len", "--enforce-eager"):
        assert flag in done.stdout


def test_client_raises_server_error_with_status_and_message(server):
    """llmkit.clients turns an error answer into ServerError(status, the server's message)."""
    with pytest.raises(clients.ServerError) as info:
        clients.note_generate(server, NOTE_PROMPT, max_tokens=0)
    assert info.value.status == 422 and "max_tokens" in info.value.message


# ---------------------------------------------------------------------------------------------- load
def test_64_concurrent_requests_all_succeed(server):
    """64 clients at once: every request answers 200; the engine batches them (no lock in the server)."""
    body = {"prompt": NOTE_PROMPT, "max_tokens": 16, "temperature": 0.8}

    def one(_):
        resp = post(server, body)
        return resp.status_code, resp.json()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(one, range(64)))
    elapsed = time.perf_counter() - t0
    assert all(code == 200 and len(data["results"]) == 1 for code, data in answers), answers[:3]
    # How long they took is a figure of the machine, printed, never asserted (benchmarks record speed).
    print(f"64 concurrent requests answered in {elapsed:.2f} s")


# ---------------------------------------------------------------------------------------------- fuzz
def _request_schema(server) -> dict:
    """The /generate body schema from the server's live OpenAPI document."""
    spec = requests.get(server.url + "/openapi.json", timeout=30).json()
    ref = spec["paths"]["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def from_schema(schema: dict):
    """A hypothesis strategy for the JSON Schema subset pydantic writes for flat bodies.

    Covers type (string, integer, number, boolean, null, array, object), anyOf, minimum/maximum,
    exclusiveMinimum/exclusiveMaximum, minLength/maxLength, minItems/maxItems, required and
    additionalProperties: false. Anything else fails loudly, so a schema change cannot go unfuzzed.
    """
    from hypothesis import strategies as st

    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 64))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "integer":
        lo, hi = (None if v is None else int(v) for v in (schema.get("minimum"), schema.get("maximum")))
        return st.one_of(st.integers(lo, hi), *(st.just(v) for v in (lo, hi) if v is not None))
    if kind == "number":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        return st.floats(lo, hi, exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
                         allow_nan=False, allow_infinity=False)
    if kind == "array":
        return st.lists(from_schema(schema["items"]), min_size=schema.get("minItems", 0),
                        max_size=schema.get("maxItems", 8))
    if kind == "object":
        assert schema.get("additionalProperties") is False, "fuzzing assumes no extra fields are allowed"
        required = set(schema.get("required", []))
        props = {k: from_schema(v) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries({k: v for k, v in props.items() if k in required},
                                     optional={k: v for k, v in props.items() if k not in required})
    raise AssertionError(f"from_schema does not handle {schema}")


def vllm_refuses(body: dict) -> bool:
    """True when vLLM's own SamplingParams refuses the body's n and temperature (several greedy samples)."""
    from vllm import SamplingParams

    try:
        SamplingParams(n=body.get("n", 1), temperature=body.get("temperature", 1.0))
    except Exception:  # noqa: BLE001 - ValueError on 0.26, VLLMValidationError on 0.32
        return True
    return False


def test_fuzz_schema_valid_bodies_always_succeed(server):
    """Bodies generated from the live OpenAPI schema (lengths capped to save CPU) are all accepted, except the
    one cross-field rule only vLLM knows (n > 1 needs a temperature above zero): that is a 400 naming it."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings

    schema = json.loads(json.dumps(_request_schema(server)))
    props = schema["properties"]
    props["prompt"]["maxLength"] = 40
    props["max_tokens"]["maximum"] = 4
    props["n"]["maximum"] = 3
    seen = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(from_schema(schema))
    def check(body):
        resp = post(server, body, timeout=120)
        seen.append(resp.status_code)
        if vllm_refuses(body):
            assert resp.status_code == 400 and "greedy" in resp.json()["error"]["message"], (body, resp.text)
            return
        assert resp.status_code == 200, (body, resp.text)
        if body.get("stream"):
            assert resp.text.rstrip().endswith("data: [DONE]")
        else:
            assert len(resp.json()["results"]) == body.get("n", 1)

    check()
    assert len(seen) >= 100
    assert_healthy(server)


def test_fuzz_arbitrary_json_never_5xx(server):
    """Random JSON (right and wrong types, unknown keys, non-objects, junk bytes): only 2xx/4xx, never 5xx."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                        st.text(max_size=20))
    junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                             inner, max_size=3),
                        max_leaves=6)
    small_or_bad_int = st.one_of(st.integers(1, 4), st.integers(max_value=0), st.integers(min_value=1025), junk)
    field_values = {
        "prompt": st.one_of(st.text(max_size=30), junk),
        "max_tokens": small_or_bad_int,
        "n": st.one_of(st.integers(1, 3), st.integers(max_value=0), st.integers(min_value=17), junk),
        "temperature": st.one_of(st.floats(0, 2), st.floats(), junk),
        "top_p": st.one_of(st.floats(0, 1), st.floats(), junk),
        "top_k": st.one_of(st.integers(-3, 4000), junk),
        "repetition_penalty": st.one_of(st.floats(0, 12), junk),
        "seed": st.one_of(st.integers(-2, 2**64), junk),
        "stop": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=20), junk),
        "logprobs": st.one_of(st.integers(-1, 25), junk),
        "details": st.one_of(st.booleans(), junk),
        "chat": st.one_of(st.booleans(), junk),
        "stream": st.one_of(st.booleans(), junk),
    }
    others = {k: v for k, v in field_values.items() if k != "prompt"}
    near_valid = st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=30)}, optional=others)
    wild = st.fixed_dictionaries({}, optional=field_values).flatmap(
        lambda d: st.dictionaries(st.text(max_size=8), junk, max_size=2).map(lambda extra: {**extra, **d}))
    bodies = st.one_of(near_valid, near_valid, wild, junk, st.binary(max_size=40))
    codes = []

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # json.dumps writes NaN/Infinity
        resp = post(server, None, raw=raw, timeout=120)
        codes.append(resp.status_code)
        assert resp.status_code < 500, (raw[:200], resp.text[:300])
        if resp.status_code >= 400:
            assert_error_shape(resp, resp.status_code)

    check()
    assert len(codes) >= 200 and {200, 400, 422} <= set(codes)
    assert_healthy(server)


# ---------------------------------------------------------------------------------------------- shutdown (last)
def test_sigterm_shuts_down_cleanly(server):
    """stop() sends SIGTERM: the server drains, shuts the engine down, exits 0, frees its port."""
    psutil = pytest.importorskip("psutil")
    pids = server.processes()
    assert len(pids) >= 2, "the server and at least one engine process"
    code = server.stop()
    assert code == 0, server.logs()
    assert "stopped by SIGTERM" in server.logs(200)
    assert server.processes() == []

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    assert [p for p in pids if running(p)] == []
    assert not port_in_use(server.port, server.host)
