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
    test_servers.py check that no server of theirs is left running, so none may outlive its module)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.lifecycle import start_vllm_server

    handle = start_vllm_server(str(tiny_poet_dir), timeout=300)
    yield handle
    handle.stop()
