"""Chat templates and the thinking switch: one place for how the course talks to chat models.

Hybrid reasoning models such as Qwen3 (the course's GPU default, and tiny-poet, whose template follows
the same pattern) *think* by default: their chat template opens the answer with a ``<think>`` block that
can run for hundreds of tokens before the answer starts. The lessons before the reasoning notebook want
the answer itself, so every lesson chat call turns thinking off with the template's own switch::

    llm.chat(messages, params, chat_template_kwargs=NO_THINKING)                  # offline (vllm.LLM)
    requests.post(url + "/v1/chat/completions", json={..., "chat_template_kwargs": NO_THINKING})
    client.chat.completions.create(..., extra_body={"chat_template_kwargs": NO_THINKING})   # openai SDK

A template without the switch ignores the extra variable (Jinja templates ignore variables they do not
use), so the same call works for Llama, Mistral or Gemma models.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

NO_THINKING: dict[str, Any] = {"enable_thinking": False}
THINKING: dict[str, Any] = {"enable_thinking": True}


def has_thinking_switch(tokenizer: Any) -> bool:
    """True when the tokenizer's chat template reads ``enable_thinking`` (Qwen3-style hybrid thinking)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # several named templates
        template = " ".join(template.values())
    return "enable_thinking" in template


def user(text: str) -> list[dict[str, str]]:
    """One user turn, as a message list."""
    return [{"role": "user", "content": text}]


def render(tokenizer: Any, messages: str | Sequence[Mapping[str, str]], thinking: bool = False,
           answer_prefix: str = "") -> str:
    """The text the model reads for ``messages`` (thinking off by default), plus the start of the answer."""
    turns = user(messages) if isinstance(messages, str) else [dict(m) for m in messages]
    text = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=thinking)
    return text + answer_prefix


def chat_prompt(llm: Any, question: str, answer_prefix: str = "", thinking: bool = False) -> str:
    """``render`` with the tokenizer of a running ``vllm.LLM``: one user turn, then the start of the answer."""
    return render(llm.get_tokenizer(), question, thinking=thinking, answer_prefix=answer_prefix)
