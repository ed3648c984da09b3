"""The exercise framework: register a checker, check an answer, and the cases that test each checker.

A checker takes the learner's answer (plus what the notebook cell passes as keyword arguments) and
returns the explanation shown with ✅, or raises ``Hint`` with a nudge that never gives the solution.
Expected answers come from the engine or from numbers computed here independently (published model
shapes, plain arithmetic), never from the llmkit function the lesson teaches: a bug in that function
must not pass its own check.

Each notebook's module (``nb00`` … ``nb11``) holds its checkers and, beside them, ``cases()``: answers
that must pass and answers that must get a hint. ``tests/test_exercises.py`` runs every case.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

ICONS = {"pass": "✅", "hint": "💡", "unanswered": "⏳"}


class Hint(Exception):
    """The answer is not right yet; the message says where to look (it never contains the solution)."""


@dataclass(frozen=True)
class Verdict:
    """The result of one check: ``status`` is "pass", "hint" or "unanswered"; true only for a pass."""

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        """True when the answer passed."""
        return self.status == "pass"

    def __str__(self) -> str:
        """The line ``check`` prints: icon, exercise id, message."""
        return f"{ICONS[self.status]} {self.exercise}: {self.message}"

    def _ipython_display_(self) -> None:
        """Show nothing: ``check`` has printed the verdict already (a cell ending in check() shows it once)."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id ("NN.k"), what the answer looks like, and its checker."""

    id: str
    expects: str
    checker: Callable[..., str]


@dataclass(frozen=True)
class Case:
    """One test of a checker: an answer (and context) that must pass, or must get a hint.

    ``says`` is a fragment the message must contain. ``fixtures`` names pytest fixtures whose values
    join the context under their names, or under ``key`` for ``"key=fixture"`` (a real engine, for checkers that ask the engine for the expected
    answer). ``answer`` may be a function of those values that returns ``(answer, extra_context)``, for
    answers that only a real engine or tokenizer can produce.
    """

    exercise: str
    answer: Any
    passes: bool = True
    context: dict = field(default_factory=dict)
    says: str | None = None
    fixtures: Sequence[str] = ()


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, expects: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a checker for ``exercise_id``; ``expects`` says what kind of answer to give."""
    def register(checker: Callable[..., str]) -> Callable[..., str]:
        EXERCISES[exercise_id] = Exercise(exercise_id, expects, checker)
        return checker
    return register


def evaluate(exercise_id: str, answer: Any, **context: Any) -> Verdict:
    """Check ``answer`` without printing: a Verdict (pass, hint, or unanswered when answer is None)."""
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}")
    ex = EXERCISES[exercise_id]
    if answer is None or answer is Ellipsis:
        return Verdict(exercise_id, "unanswered",
                       f"not answered yet: put {ex.expects} in place of None and run the cell again.")
    try:
        return Verdict(exercise_id, "pass", ex.checker(answer, **context))
    except Hint as hint:
        return Verdict(exercise_id, "hint", str(hint))
    except Exception as err:  # an answer of a surprising type must give a hint, not a traceback
        return Verdict(exercise_id, "hint", f"could not check this answer ({type(err).__name__}: {err}). "
                                            f"Expected {ex.expects}.")


def check(exercise_id: str, answer: Any, *, quiet: bool = False, **context: Any) -> Verdict:
    """Check an exercise answer and print ✅ with why, a 💡 hint, or ⏳ when it is still None.

    ``quiet=True`` prints nothing (the hidden solution cells use it, so "Run All" shows no answers).
    """
    verdict = evaluate(exercise_id, answer, **context)
    if not quiet:
        print(verdict)
    return verdict


# --- helpers for checkers -------------------------------------------------------------------------

def word(answer: Any) -> str:
    """A typed answer as a bare lowercase word: strip spaces and quotes."""
    return str(answer).strip().strip("'\"`").strip().lower()


def number(answer: Any) -> float:
    """A number from an int, a float, or a string such as "8,192"."""
    if isinstance(answer, bool):
        raise Hint("give a number, not True/False.")
    if isinstance(answer, numbers.Real):
        return float(answer)
    if isinstance(answer, str):
        try:
            return float(answer.replace(",", "").replace("_", "").strip())
        except ValueError:
            pass
    raise Hint(f"give a number (got {type(answer).__name__}).")


def need(name: str, value: Any) -> Any:
    """A context value the check needs (the exercise cell passes it as ``name=...``)."""
    if value is None:
        raise Hint(f"this check needs {name}=... (the exercise cell passes it; run the notebook's cells above first).")
    return value


def completions(answer: Any) -> list[Any]:
    """CompletionOutputs found in an answer: one, a RequestOutput, or a list of either."""
    items = answer if isinstance(answer, (list, tuple)) else [answer]
    found = []
    for item in items:
        if hasattr(item, "outputs"):
            found.extend(item.outputs)
        elif hasattr(item, "finish_reason"):
            found.append(item)
    return found


def finish_reason_is_length(answer: Any, max_tokens: int = 8) -> str:
    """Shared by 00.1 and 01.3: an answer cut by max_tokens has finish_reason "length"."""
    why = (f'the answer was cut at max_tokens={max_tokens} before the model ended its turn. "stop" would mean it '
           'ended by itself (its end token, or a stop string).')
    outs = completions(answer)
    if outs:
        reasons = {c.finish_reason for c in outs}
        if any(len(c.token_ids) > max_tokens for c in outs):
            raise Hint(f"some answers have more than {max_tokens} tokens: "
                       f"was max_tokens={max_tokens} in SamplingParams?")
        if reasons != {"length"}:
            raise Hint(f"these outputs do not all agree: an answer that ended by itself within {max_tokens} tokens "
                       "tells you nothing about the limit. What do the cut ones say?")
        return why
    if isinstance(answer, (list, tuple)) and answer and all(isinstance(a, str) for a in answer):
        if {word(a) for a in answer} == {"length"}:
            return why
        raise Hint("not every value in your list is the one a cut answer has.")
    value = word(answer)
    if value == "length":
        return why
    if value == "stop":
        raise Hint('"stop" means the model ended its turn itself. With so few tokens allowed, did it get that far? '
                   "Compare len(token_ids) with max_tokens.")
    if value in ("eos_token", "eos", "end_of_sequence"):
        raise Hint('that is the study note\'s value, which vLLM never returns. Print .finish_reason of the new answer.')
    raise Hint("print .finish_reason of the new answer: it is one of a handful of strings in vLLM.")


def sglang_meta(item: Any) -> dict | None:
    """The ``meta_info`` of an SGLang result dict (or of the first one of a list); None if there is none."""
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], dict):
        item = item[0]
    if isinstance(item, dict) and isinstance(item.get("meta_info"), dict):
        return item["meta_info"]
    return None


def field_name(answer: Any) -> str:
    """The last identifier of a typed field name: 'outputs[0].cumulative_logprob' → 'cumulative_logprob'."""
    names = re.findall(r"[A-Za-z_][\w]*", str(answer))
    return names[-1].lower() if names else ""
