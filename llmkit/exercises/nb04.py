"""Exercises of notebook 04 (sampling): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import math
from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

@exercise("04.1", "a temperature (a number)")
def _ex_04_1(answer: Any, llm: Any = None, prompt: Any = None) -> str:
    """A temperature that makes the top token at least 50% likely (asked from the engine itself)."""
    from vllm import SamplingParams

    t = number(answer)
    if t <= 0:
        raise Hint("temperature 0 is greedy: there is no distribution left to look at. Find a temperature above 0.")
    llm, prompt = need("llm", llm), need("prompt", prompt)
    out = llm.generate([prompt], SamplingParams(max_tokens=1, logprobs=20, temperature=t, seed=0), use_tqdm=False)
    logprobs = sorted((lp.logprob for lp in out[0].outputs[0].logprobs[0].values()), reverse=True)
    p = math.exp(logprobs[0])
    # Tokens with the top token's logit (ties are common in bf16 on a nearly flat, untrained model) split it evenly.
    tied = [math.exp(x) for x in logprobs if x >= logprobs[0] - 1e-3]
    if p < 0.5 and len(tied) > 1 and sum(tied) > 0.99:
        return (f"at temperature {t:g} the top {len(tied)} tokens hold {sum(tied):.1%} of the probability, p={p:.3f} "
                f"each: their logits are equal, so no temperature gives one of them more than 1/{len(tied)}. "
                "Lowering T was the right move: it squeezed out every other token.")
    if p < 0.5:
        raise Hint(f"at temperature {t:g} the top token has p={p:.3f}, under 50%. "
                   "Which way must the temperature move to sharpen the distribution?")
    return (f"at temperature {t:g} the top token has p={p:.3f}. Dividing the logits by T < 1 widens the gaps "
            "between them, so the favourite takes more of the probability.")


@exercise("04.2", "a top_p (a number between 0 and 1)")
def _ex_04_2(answer: Any, base: Any = None) -> str:
    """The largest top_p that keeps exactly 3 tokens."""
    from llmkit.logprobs import to_prob

    base = need("base", base)
    p = number(answer)
    if not 0 < p <= 1:
        raise Hint("top_p is a probability: above 0, at most 1.")
    probs = [to_prob(c.logprob) for c in base.candidates]
    cumulative = [sum(probs[:i + 1]) for i in range(len(probs))]
    kept = next((str(i + 1) for i, c in enumerate(cumulative) if c >= p - 1e-9), f"more than {len(probs)}")
    cum2, cum3 = cumulative[1], cumulative[2]
    if p > cum3 + 1e-4:
        raise Hint(f"top_p={p:g} keeps {kept} tokens: lower it.")
    if p <= cum2:
        raise Hint(f"top_p={p:g} keeps only {kept} token(s): raise it.")
    if p < cum3 - 0.05:
        raise Hint(f"top_p={p:g} keeps 3 tokens, but a larger top_p still would: how far can you go?")
    return (f"top_p keeps the smallest set of most likely tokens whose probability reaches top_p. The top 3 add up "
            f"to {cum3:.4f} (the top 2 to {cum2:.4f}), so every top_p in ({cum2:.4f}, {cum3:.4f}] keeps exactly 3.")


@exercise("04.3", "your preset: a dict of SamplingParams keyword arguments")
def _ex_04_3(answer: Any, llm: Any = None, prompt: Any = None) -> str:
    """A poem preset, compared with greedy by mean_repeat_fraction."""
    if not isinstance(answer, dict):
        raise Hint("a preset is a dict of SamplingParams keyword arguments; start from preset('creative', ...).")
    if "n" in answer:
        raise Hint("leave n out of the preset: the comparison asks for 8 samples itself.")
    from vllm import SamplingParams

    try:
        SamplingParams(**answer)
    except Exception as err:
        raise Hint(f"SamplingParams rejects it: {err}") from None
    if answer.get("temperature", 1.0) == 0:
        raise Hint("temperature 0 is greedy: 8 samples would all be the same poem (and vLLM refuses n > 1).")
    if answer.get("max_tokens", 16) < 32:
        raise Hint("a 七言绝句 has four lines of seven characters plus punctuation. How many tokens does your preset "
                   "allow (vLLM's default is 16)?")
    message = "a valid sampling preset with room for a whole poem."
    if llm is not None and prompt is not None:
        from llmkit.sampling import mean_repeat_fraction

        mine = llm.generate([prompt], SamplingParams(**{**answer, "n": 8}), use_tqdm=False)
        greedy = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=answer["max_tokens"]), use_tqdm=False)
        message += (f" Over 8 samples it repeats {mean_repeat_fraction(mine):.1%} of its tokens; greedy repeats "
                    f"{mean_repeat_fraction(greedy):.1%}. Greedy tends to loop; sampling (and a mild penalty) "
                    "breaks loops.")
    return message


# The position notebook 04 studies, as raw text (any model continues it; tiny-poet was trained on poems).
PROMPT = "写一首关于秋天的诗\n《秋夕》\n银烛秋光冷画屏，"


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import logprob
    from llmkit.logprobs import distribution
    from llmkit.sampling import preset

    base = distribution({tid: logprob(math.log(p), tid + 1) for tid, p in enumerate([0.4, 0.25, 0.15, 0.1, 0.05, 0.05])}, 0)
    engine = {"fixtures": ("llm=processed_llm",), "context": {"prompt": PROMPT}}
    out = [Case("04.1", 0.05, **engine), Case("04.1", 1.5, passes=False, **engine),
           Case("04.1", 3.0, passes=False, **engine), Case("04.1", 0.0, passes=False, **engine)]
    out += [Case("04.2", a, context={"base": base}) for a in (round(0.8 - 1e-4, 6), 0.76, 0.8)]
    out += [Case("04.2", a, passes=False, context={"base": base}) for a in (0.9, 0.6, 0.7, 1.5)]
    out += [Case("04.3", a) for a in (preset("creative", repetition_penalty=1.1, max_tokens=64, seed=0),
                                      {"temperature": 0.9, "max_tokens": 48})]
    out += [Case("04.3", a, passes=False) for a in (preset("creative"), {"temperature": 0, "max_tokens": 64},
                                                    {"n": 8, "max_tokens": 64}, {"temperature": -1.0, "max_tokens": 64},
                                                    "creative")]
    out += [Case("04.3", preset("creative", max_tokens=40, seed=0), says="greedy repeats",
                 fixtures=("llm",), context={"prompt": PROMPT})]
    return out
