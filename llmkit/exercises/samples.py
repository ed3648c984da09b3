"""Small answers for the checkers' cases, built from the engines' own result types (no engine needed).

vLLM's ``RequestOutput``, ``CompletionOutput`` and ``Logprob`` are plain classes that can be filled in
by hand; a case built from them has exactly the fields a learner's answer has. SGLang's results are
dicts, taken from replies recorded from a real server (``tests/fixtures/sglang``).
"""

from __future__ import annotations

from typing import Any, Sequence


def logprob(value: float, rank: int, token: str = "x"):
    """A vLLM ``Logprob``."""
    from vllm.logprobs import Logprob

    return Logprob(logprob=value, rank=rank, decoded_token=token)


def completion(n_tokens: int = 8, finish_reason: str | None = "length", stop_reason: Any = None,
               text: str = "秋风起", logprobs: Sequence[dict] | None = None,
               cumulative_logprob: float | None = None, index: int = 0):
    """A vLLM ``CompletionOutput`` with ``n_tokens`` token ids."""
    from vllm.outputs import CompletionOutput

    return CompletionOutput(index=index, text=text, token_ids=list(range(n_tokens)),
                            cumulative_logprob=cumulative_logprob, logprobs=list(logprobs) if logprobs else None,
                            finish_reason=finish_reason, stop_reason=stop_reason)


def request(outputs: Sequence[Any], prompt: str = "写一首诗", n_prompt: int = 5):
    """A vLLM ``RequestOutput`` holding ``outputs`` (their indexes renumbered 0, 1, …)."""
    from dataclasses import replace

    from vllm.outputs import RequestOutput

    outs = [replace(c, index=i) for i, c in enumerate(outputs)]
    return RequestOutput(request_id="case", prompt=prompt, prompt_token_ids=list(range(100, 100 + n_prompt)),
                         prompt_logprobs=None, outputs=outs, finished=True)


# --- SGLang -----------------------------------------------------------------------------------------

def sglang_result(capture: dict, name: str, cut: int | None = None, **meta) -> dict:
    """A recorded /generate result dict; ``cut`` shortens it to that many tokens, ``meta`` changes its meta_info."""
    import copy

    result = copy.deepcopy(capture[name]["response"])
    result = result[0] if isinstance(result, list) else result
    if cut is not None:
        result["output_ids"] = (result["output_ids"] * cut)[:cut]
        result["meta_info"].update(finish_reason={"type": "length", "length": cut}, completion_tokens=cut)
    result["meta_info"].update(meta)
    return result


class ProgramRecord:
    """The parts of an SGLang frontend ``ProgramState`` (what an ``@sgl.function``'s ``.run()`` returns) that
    a checker reads: its text, and its executor's variables and meta_info, filled by ``(text, variable,
    meta_info)`` pieces in turn. (The frontend runs only against a live SGLang server.)"""

    def __init__(self, *pieces):
        from types import SimpleNamespace

        self.stream_executor = SimpleNamespace(variables={}, meta_info={})
        self._text = ""
        for text, name, meta in pieces:
            self._text += text
            if name:
                self.stream_executor.variables[name] = text
                self.stream_executor.meta_info[name] = meta

    def text(self) -> str:
        """The whole text of the program so far."""
        return self._text

    def __getitem__(self, name):
        return self.stream_executor.variables[name]


def chatml(role: str, text: str) -> tuple:
    """One chat turn as program text, as the frontend's chatml template writes it."""
    return (f"<|im_start|>{role}\n{text}<|im_end|>\n", None, None)


def choose(season: str, choices=("春", "秋")) -> tuple:
    """An ``sgl.select`` piece: its decision and the meta_info select returns (one score per choice)."""
    scores = [-1.5 + 0.5 * i for i in range(len(choices))]
    meta = {"normalized_prompt_logprobs": scores,
            "input_token_logprobs": [[[s, 1487, c]] for s, c in zip(scores, choices)],
            "output_token_logprobs": [[] for _ in choices]}
    return (season, "season", meta)
