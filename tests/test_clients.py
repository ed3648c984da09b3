"""llmkit.clients against vLLM's real OpenAI-compatible server (requests and the openai package), plus
the SGLang parser on answers in SGLang's documented shape (SGLang itself needs a GPU; its live tests
run in the GPU notebooks).
"""

from __future__ import annotations

import math

import pytest

from llmkit import clients
from llmkit.outputs import Generation
from llmkit.lifecycle import free_port

NOTE_PROMPT = "写一首七言绝句"
AUTUMN_PROMPT = "写一首关于秋天的诗"


def assert_generation(gen: Generation, source: str, n: int, max_tokens: int) -> None:
    """Structure every normalized answer must have (the text itself is random)."""
    assert gen.source == source and len(gen.completions) == n
    assert sorted(c.index for c in gen.completions) == list(range(n))
    for c in gen.completions:
        assert isinstance(c.text, str) and c.finish_reason in ("stop", "length")
        if c.num_tokens is not None:
            assert 1 <= c.num_tokens <= max_tokens


def assert_steps(gen: Generation, k: int) -> None:
    """Logprobs: one Step per token, logprob ≤ 0, candidates sorted, ranks 1..k among the top."""
    for c in gen.completions:
        assert c.steps, "logprobs were requested"
        for step in c.steps:
            assert step.chosen.logprob <= 0
            lps = [t.logprob for t in step.top]
            assert lps == sorted(lps, reverse=True) and k <= len(step.top) <= k + 1
            assert [t.rank for t in step.top][:k] == list(range(1, k + 1))


# ---------------------------------------------------------------------------------------------- live vLLM server
@pytest.fixture
def server(vllm_server):
    """vLLM's own OpenAI-compatible server on tiny-poet (one per test session, see conftest.py)."""
    return vllm_server


@pytest.mark.engine
def test_served_model_is_the_launched_one(server):
    """/v1/models lists the model the server was started with."""
    assert clients.served_model(server) == server.model


@pytest.mark.engine
def test_completion_with_requests_n_and_logprobs(server):
    """/v1/completions via requests: n samples, logprobs per token, usage counted."""
    gen = clients.openai_completion(server, NOTE_PROMPT, max_tokens=8, n=2, temperature=0.8, logprobs=2)
    assert_generation(gen, "openai-completions", 2, 8)
    assert_steps(gen, 2)
    assert gen.usage["completion_tokens"] == sum(len(c.steps) for c in gen.completions)
    assert gen.prompt == NOTE_PROMPT


@pytest.mark.engine
def test_chat_with_requests_and_logprobs(server):
    """/v1/chat/completions via requests: the server applies the chat template."""
    gen = clients.openai_chat(server, AUTUMN_PROMPT, max_tokens=12, temperature=0.7, logprobs=True, top_logprobs=3)
    assert_generation(gen, "openai-chat", 1, 12)
    assert_steps(gen, 3)
    assert gen.completions[0].text


@pytest.mark.engine
def test_streaming_joins_to_the_greedy_answer(server):
    """Streamed pieces (completions and chat) join to exactly the non-streamed greedy text."""
    for chat in (False, True):
        call = clients.openai_chat if chat else clients.openai_completion
        whole = call(server, AUTUMN_PROMPT, max_tokens=16, temperature=0).texts[0]
        chunks = list(clients.openai_stream(server, AUTUMN_PROMPT, chat=chat, max_tokens=16, temperature=0))
        assert "".join(clients.chunk_text(c) for c in chunks) == whole
        joined = clients.from_openai_stream(chunks)
        assert joined.texts == [whole] and joined.completions[0].finish_reason in ("stop", "length")
        assert joined.source == ("openai-chat" if chat else "openai-completions")


@pytest.mark.engine
def test_openai_package_matches_requests(server):
    """The openai client gives the same greedy answers; from_openai / from_openai_stream normalize them."""
    client = clients.openai_client(server)
    model = clients.served_model(server)
    via_requests = clients.openai_completion(server, NOTE_PROMPT, max_tokens=12, temperature=0).texts
    resp = client.completions.create(model=model, prompt=NOTE_PROMPT, max_tokens=12, temperature=0)
    assert clients.from_openai(resp).texts == via_requests
    chat = client.chat.completions.create(model=model, messages=clients.chat_messages(AUTUMN_PROMPT),
                                          max_tokens=12, temperature=0, n=1)
    gen = clients.from_openai(chat)
    assert_generation(gen, "openai-chat", 1, 12)
    stream = client.chat.completions.create(model=model, messages=clients.chat_messages(AUTUMN_PROMPT),
                                            max_tokens=12, temperature=0, stream=True)
    assert clients.from_openai_stream(stream).texts == gen.texts


@pytest.mark.engine
def test_server_errors_carry_status_and_message(server):
    """A bad parameter is a ServerError with vLLM's 400 and its message; the server keeps serving."""
    with pytest.raises(clients.ServerError) as info:
        clients.openai_completion(server, NOTE_PROMPT, max_tokens=8, temperature=-1)
    assert info.value.status == 400 and "temperature" in info.value.message
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.BadRequestError):
        clients.openai_client(server).completions.create(model=server.model, prompt="a", max_tokens=8, top_p=2)
    assert clients.openai_completion(server, NOTE_PROMPT, max_tokens=4).completions


def test_unreachable_url_is_server_unreachable():
    """No server on the port: ServerUnreachable, a ServerError with status 0."""
    with pytest.raises(clients.ServerUnreachable) as info:
        clients.openai_completion(f"http://127.0.0.1:{free_port()}", "a", model="m")
    assert info.value.status == 0


# ---------------------------------------------------------------------------------------------- parsers
def test_error_message_reads_every_error_shape():
    """vLLM/OpenAI {"error": {...}}, FastAPI {"detail": ...} and SGLang {"message": ...} all give the text."""
    assert clients.error_message({"error": {"message": "bad top_p", "code": 400}}, "") == "bad top_p"
    assert clients.error_message({"detail": "Not Found"}, "") == "Not Found"
    assert clients.error_message({"object": "error", "message": "oops"}, "") == "oops"
    assert clients.error_message("plain", "fallback") == "fallback"


SGLANG_ONE = {
    "text": "秋风起",
    "output_ids": [11, 12, 13],
    "meta_info": {
        "id": "abc", "finish_reason": {"type": "length", "length": 3}, "prompt_tokens": 9,
        "completion_tokens": 3, "cached_tokens": 0,
        "output_token_logprobs": [[-0.1, 11, "秋"], [-1.5, 12, "风"], [-0.7, 13, "起"]],
        "output_top_logprobs": [[[-0.1, 11, "秋"], [-2.5, 20, "春"]], [[-0.9, 21, "雨"], [-1.5, 12, "风"]],
                                [[-0.7, 13, "起"], [-0.8, 22, "落"]]],
    },
}


def test_from_sglang_single_answer():
    """One SGLang dict: text, ids, finish_reason type, usage, and logprob Steps with ranks."""
    gen = clients.from_sglang(SGLANG_ONE, "写")
    assert gen.source == "sglang" and gen.texts == ["秋风起"] and gen.request_id == "abc"
    c = gen.completions[0]
    assert c.finish_reason == "length" and c.num_tokens == 3 and c.token_ids == [11, 12, 13]
    assert gen.usage == {"prompt_tokens": 9, "completion_tokens": 3, "cached_tokens": 0}
    assert [s.chosen.rank for s in c.steps] == [1, 2, 1]
    assert c.steps[1].top[0].token == "雨" and c.steps[1].chosen.token_id == 12


def test_from_sglang_n_samples_and_batches():
    """n > 1 (or a batch) comes back as a list; stop carries the matched token."""
    second = {**SGLANG_ONE, "text": "月", "output_ids": [5],
              "meta_info": {"finish_reason": {"type": "stop", "matched": 151645}, "prompt_tokens": 9,
                            "completion_tokens": 1, "cached_tokens": 9}}
    gen = clients.from_sglang([SGLANG_ONE, second])
    assert gen.texts == ["秋风起", "月"] and gen.usage["cached_tokens"] == 9
    assert gen.completions[1].finish_reason == "stop" and gen.completions[1].stop_reason == 151645
    assert gen.completions[1].steps is None


def test_from_openai_accepts_dicts_with_null_logprobs():
    """A masked candidate's -inf arrives as null; it is read as -inf, not a crash."""
    reply = {"object": "text_completion", "id": "x", "usage": {"completion_tokens": 1},
             "choices": [{"index": 0, "text": "秋", "finish_reason": "length",
                          "logprobs": {"tokens": ["秋"], "token_logprobs": [-0.2],
                                       "top_logprobs": [{"秋": -0.2, "春": None}]}}]}
    step = clients.from_openai(reply).completions[0].steps[0]
    assert step.chosen.rank == 1 and math.isinf(step.top[1].logprob)
