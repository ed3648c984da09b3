"""Exercises of notebook 03 (logprobs): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import math
from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

@exercise("03.1", "the probability of the whole answer (a number), with completion= that answer")
def _ex_03_1(answer: Any, completion: Any = None) -> str:
    """The probability of a whole sampled answer."""
    from llmkit.logprobs import chosen_logprobs, perplexity

    completion = need("completion", completion)
    value = number(answer)
    total = completion.cumulative_logprob
    if math.isclose(value, math.exp(total), rel_tol=1e-3, abs_tol=1e-300):
        return ("exp(cumulative_logprob): the product of every chosen token's probability. Each factor is below 1, "
                "so it shrinks exponentially with length. Perplexity = exp(−mean logprob) is per token, so it "
                "compares answers of different lengths.")
    if math.isclose(value, total, rel_tol=1e-3):
        raise Hint("that is a log-probability (it is negative). Turn it into a probability.")
    if not 0 <= value <= 1:
        raise Hint("a probability lies between 0 and 1.")
    chosen = chosen_logprobs(completion)
    if math.isclose(value, sum(math.exp(x) for x in chosen), rel_tol=1e-3):
        raise Hint("you added the probabilities. The probability of a sequence is their product.")
    if math.isclose(value, 1 / perplexity(chosen), rel_tol=1e-3):
        raise Hint("that is a per-token average; the question asks for the whole answer.")
    raise Hint("the whole answer's log-probability is already in one field of the CompletionOutput.")


@exercise("03.2", "the most surprising token as a string (or a pair: most surprising, easiest)")
def _ex_03_2(answer: Any, table: Any = None) -> str:
    """The most and least surprising token of the scored poem."""
    table = need("table", table)
    rows = table.dropna(subset=["logprob"])
    lowest, highest = rows["logprob"].min(), rows["logprob"].max()
    most = set(rows.loc[rows["logprob"] <= lowest + 1e-6, "token"])
    easiest = set(rows.loc[rows["logprob"] >= highest - 1e-3, "token"])
    pair = isinstance(answer, (list, tuple))
    first = answer[0] if pair else answer
    if not isinstance(first, str):
        raise Hint("give the token as text, as the table's token column shows it.")
    if first not in set(rows["token"]):
        raise Hint(f"{first!r} is not one of the scored tokens: pick from table['token'].")
    if first not in most:
        if first in easiest:
            raise Hint("that is the one the model found easiest. The biggest surprise has the lowest logprob.")
        raise Hint("a surprise is a low logprob: is there a token with a lower one?")
    if pair and len(answer) > 1 and answer[1] not in easiest:
        raise Hint("the surprise is right. The easiest token has the logprob closest to 0.")
    return ("the lowest logprob is the biggest surprise. The easiest tokens are punctuation and line breaks: a poem's "
            "shape (5 or 7 characters, then a comma or full stop) is far easier to learn than its words.")


def _per_token_perplexity(llm: Any, texts: Any) -> list[float]:
    """exp(−mean logprob) of each text's tokens after the first, asked from the engine (prompt_logprobs)."""
    from vllm import SamplingParams

    outs = llm.generate(list(texts), SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    values = []
    for out in outs:
        lps = [position[tid].logprob for tid, position in zip(out.prompt_token_ids[1:], out.prompt_logprobs[1:])]
        values.append(math.exp(-sum(lps) / len(lps)))
    return values


@exercise("03.3", "the text the model finds more likely per token (one of texts=), with llm= the engine")
def _ex_03_3(answer: Any, llm: Any = None, texts: Any = None) -> str:
    """Which of two texts has the lower per-token perplexity, scored by the engine itself."""
    texts = tuple(need("texts", texts))
    if not isinstance(answer, str):
        raise Hint("answer with one of the two texts (the string itself).")
    if answer not in texts:
        raise Hint("that is neither of the two texts: answer with real_line or shuffled.")
    ppl = _per_token_perplexity(need("llm", llm), texts)
    best = texts[ppl.index(min(ppl))]
    if answer != best:
        raise Hint("the model finds the other text more likely per token: compare the mean logprob of each "
                   "text's tokens (prompt_logprobs), not the totals of the first few.")
    other = ppl[1 - texts.index(answer)]
    return (f"per-token perplexity {min(ppl):.1f} against {other:.1f}. prompt_logprobs scores text you already "
            "have, without generating; dividing by the token count makes texts of any length comparable. "
            "A trained model prefers the real line; an untrained one has no reason to.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    import pandas as pd

    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import completion, logprob

    real, shuffled = "《秋夕》\n银烛秋光冷画屏，", "《秋夕》\n冷光画烛屏银秋，"
    chosen = [-0.1, -1.2, -0.5, -2.0]
    scored = completion(4, logprobs=[{i: logprob(v, 1)} for i, v in enumerate(chosen)], cumulative_logprob=sum(chosen))
    table = pd.DataFrame({"token": ["《", "秋", "夕", "》", "\n", "银", "烛"],
                          "logprob": [None, -3.0, -5.5, -0.01, -0.02, -7.1, -4.0]})
    right = {"03.1": [math.exp(sum(chosen))], "03.2": ["银", ("银", "》")]}
    wrong = {"03.1": [sum(chosen), sum(math.exp(v) for v in chosen), math.exp(sum(chosen) / 4), 0.5, 2.0],
             "03.2": ["》", "秋", "x", ("银", "秋"), 7]}
    ctx = {"03.1": {"completion": scored}, "03.2": {"table": table}}
    out = ([Case(e, a, context=ctx[e]) for e, answers in right.items() for a in answers]
           + [Case(e, a, passes=False, context=ctx[e]) for e, answers in wrong.items() for a in answers])

    def scored_by_engine(pick_best: bool):
        def make(f):
            ppl = _per_token_perplexity(f["llm"], (real, shuffled))
            best = (real, shuffled)[ppl.index(min(ppl))]
            return (best if pick_best else ({real, shuffled} - {best}).pop()), {"llm": f["llm"], "texts": (real, shuffled)}
        return make

    out += [Case("03.3", scored_by_engine(True), fixtures=("llm",)),
            Case("03.3", scored_by_engine(False), passes=False, fixtures=("llm",)),
            Case("03.3", "秋风", passes=False, context={"texts": (real, shuffled)}),
            Case("03.3", 1, passes=False, context={"texts": (real, shuffled)})]
    return out
