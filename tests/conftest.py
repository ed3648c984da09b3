"""Fixtures shared by the unit tests: the built tiny-poet model and one real vLLM engine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_poet_dir():
    """The built tiny-poet folder (built on first use, as `make test` does in setup)."""
    from llmkit import tiny_poet

    return tiny_poet.ensure(log=lambda m: None)


@pytest.fixture(scope="session")
def llm(tiny_poet_dir):
    """One real vLLM engine on tiny-poet for the whole session (CPU build here, CUDA on a GPU)."""
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.engine import close_llm
    from llmkit.models import llm_kwargs

    engine = vllm.LLM(model=str(tiny_poet_dir), **llm_kwargs())
    yield engine
    close_llm(engine)


@pytest.fixture(scope="session")
def processed_llm(tiny_poet_dir):
    """A second real engine, with logprobs_mode="processed_logprobs" (after temperature, top-k, top-p)."""
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.engine import close_llm
    from llmkit.models import llm_kwargs

    engine = vllm.LLM(model=str(tiny_poet_dir), **llm_kwargs(logprobs_mode="processed_logprobs"))
    yield engine
    close_llm(engine)


@pytest.fixture(scope="module")
def vllm_server(tiny_poet_dir):
    """vLLM's own OpenAI-compatible server on tiny-poet, one per test module that asks for it (modules such as
    test_lifecycle.py check that no server of theirs is left running, so none may outlive its module)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.lifecycle import start_vllm_server

    handle = start_vllm_server(str(tiny_poet_dir), timeout=300)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def parser_server(tiny_poet_dir):
    """vLLM's server on tiny-poet with the reasoning and tool parsers (tiny_poet.VLLM_PARSER_FLAGS), and compact
    forced JSON (notebook 12's whitespace trap): notebook 13's parser server. One per module that asks for it."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit import tiny_poet
    from llmkit.lifecycle import start_vllm_server

    handle = start_vllm_server(str(tiny_poet_dir), timeout=300, **tiny_poet.VLLM_PARSER_FLAGS,
                               structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True})
    yield handle
    handle.stop()


def _raw_post(url: str, path: str, body: bytes, headers: dict[str, str],
              send_body: bool = True) -> tuple[str | None, bytes, bool]:
    """POST over a bare socket: (the errno name if sending failed, every byte of the answer, whether it ended in
    a clean close). A server that closes with part of the body unread resets the connection instead."""
    import errno
    import socket

    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, "Content-Length": str(len(body)), **headers}.items())
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        send_error = None
        try:
            if send_body:
                sock.sendall(body)
        except OSError as exc:
            send_error = errno.errorcode.get(exc.errno or 0, str(exc))
        answer, clean = b"", False
        try:
            while chunk := sock.recv(65536):
                answer += chunk
            clean = True
        except OSError:
            pass
    return send_error, answer, clean


@pytest.fixture
def raw_post():
    """``raw_post(url, path, body, headers, send_body=True)``: see ``_raw_post``."""
    return _raw_post
