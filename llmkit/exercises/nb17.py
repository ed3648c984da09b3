"""Exercises of notebook 17 (speculative decoding): the checkers, and beside them the cases that test them.

Expected answers are summed here term by term (17.1) or computed from the counters the notebook passes in (17.2);
never from ``llmkit.spec``, the module the lesson teaches.
"""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import Hint, exercise, need, number


@exercise("17.1", "a number: the expected tokens per target step at alpha 0.6 and k = 4")
def _ex_17_1(answer: Any) -> str:
    """1 + a + a^2 + a^3 + a^4 for a = 0.6: the step's own token plus each guess kept with all those before it."""
    terms = [0.6 ** i for i in range(5)]
    expected = sum(terms)
    got = number(answer)
    if abs(got - expected) < 0.006:
        return (f"{expected:.3f} tokens: the bonus token always, the first guess with probability 0.6, the second "
                "only if the first was kept (0.36), and so on: a geometric series")
    if abs(got - (1 + 4 * 0.6)) < 0.006:
        raise Hint("that counts every guess as independent of the others. A guess is only kept if every guess "
                   "before it was kept too.")
    if abs(got - (expected - 1)) < 0.006:
        raise Hint("close: the step also yields the target's own token at the first rejection (the bonus token).")
    if abs(got - 5) < 0.006:
        raise Hint("that is the most a step can yield (all four guesses kept). On average fewer are kept.")
    raise Hint("sum the probability that each of the k + 1 tokens is produced: 1 for the bonus token, 0.6 for the "
               "first guess, 0.6 × 0.6 for the second…")


@exercise("17.2", "a number: the mean acceptance length from the counters")
def _ex_17_2(answer: Any, drafts: Any = None, accepted: Any = None) -> str:
    """1 + accepted / drafts, as vLLM logs it."""
    drafts, accepted = int(need("drafts", drafts)), int(need("accepted", accepted))
    if drafts <= 0:
        raise Hint("these counters saw no draft at all: re-run the measurements above.")
    expected = 1 + accepted / drafts
    got = number(answer)
    if abs(got - expected) < 0.006:
        return (f"{expected:.2f} tokens per step that had a draft: the accepted guesses per draft, plus the target's "
                "own token")
    if abs(got - accepted / drafts) < 0.006:
        raise Hint("you left out one token: every verification step also yields the target's own next token.")
    raise Hint("the mean acceptance length counts the tokens one draft's verification yields: accepted tokens "
               "per draft, plus one.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    out = [Case("17.1", a) for a in (2.3056, "2.31", 2.31, 2.306)]
    out += [Case("17.1", a, passes=False) for a in (3.4, 1.31, 5, 2.5, 1.0)]
    ctx = {"drafts": 58, "accepted": 26}
    out += [Case("17.2", a, context=ctx) for a in (1 + 26 / 58, "1.45", 1.448)]
    out += [Case("17.2", a, passes=False, context=ctx) for a in (26 / 58, 58, 1.0, 2.0)]
    out += [Case("17.2", 1.45, passes=False)]                                # no counters passed: a hint
    out += [Case("17.2", 1.0, passes=False, context={"drafts": 0, "accepted": 0})]
    return out
