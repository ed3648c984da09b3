"""Exercises of notebook 07 (SGLang's offline engine): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import math
import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, field_name, need, number, sglang_meta, word

@exercise("07.1", 'meta_info["finish_reason"] of the answer (or the whole result dict)')
def _ex_07_1(answer: Any) -> str:
    """finish_reason of an SGLang answer cut by max_new_tokens=5."""
    meta = sglang_meta(answer)
    if meta is not None:
        answer = meta.get("finish_reason")
    if isinstance(answer, str):
        said = word(answer)
        if said == "length":
            raise Hint('"length" is what vLLM says. In SGLang finish_reason is not a string: give the whole '
                       'value of meta_info["finish_reason"].')
        if said in ("eos_token", "eos", "end_of_sequence"):
            raise Hint("that is the study note's value, which neither engine returns. Print "
                       'meta_info["finish_reason"] of the new answer.')
        raise Hint('print meta_info["finish_reason"] of the new answer and give that value.')
    if not isinstance(answer, dict) or "type" not in answer:
        raise Hint('give meta_info["finish_reason"] of the result dict llm.generate returned (or the result dict).')
    kind = answer.get("type")
    if kind == "stop":
        raise Hint("this answer ended by itself before the limit (\"matched\" says what stopped it). Was "
                   "max_new_tokens=5 in the sampling dict? If it was, the model was just quick: generate again.")
    if kind != "length":
        raise Hint(f"type {kind!r}: the request did not finish normally. Read the message and generate again.")
    if answer.get("length") == 128:
        raise Hint("this answer was cut at SGLang's default of 128 new tokens: the limit goes in the sampling dict.")
    if answer.get("length") != 5:
        raise Hint(f"this answer was cut at {answer.get('length')} tokens: which max_new_tokens does the exercise "
                   "ask for?")
    return ('a dict: "type" is "length", as vLLM\'s finish_reason string would be, and "length" is the limit that '
            'cut it. An answer that stops by itself has {"type": "stop", "matched": ...}: the stop string or token '
            "id that matched, which vLLM keeps apart in stop_reason.")


@exercise("07.2", "a pair: (the sum of the chosen-token logprobs, the name of vLLM's field with the same number)")
def _ex_07_2(answer: Any, meta: Any = None) -> str:
    """The sum of SGLang's chosen-token logprobs is vLLM's cumulative_logprob."""
    meta = sglang_meta(meta) or need("meta", meta)
    triples = meta.get("output_token_logprobs")
    if not triples:
        raise Hint("meta has no output_token_logprobs: pass meta= the meta_info of section 5 (return_logprob=True).")
    total = sum(t[0] for t in triples)
    if isinstance(answer, str):
        raise Hint("give both parts as a pair: (the sum, the field's name).")
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise Hint("give both parts as a pair: (the sum, the name of the vLLM field that holds the same number).")
    value, name = answer
    value = number(value)
    if not math.isclose(value, total, rel_tol=1e-4, abs_tol=1e-3):
        if math.isclose(value, math.exp(total), rel_tol=1e-3):
            raise Hint("that is a probability; the exercise asks for the sum of the logprobs themselves.")
        if math.isclose(value, sum(math.exp(t[0]) for t in triples), rel_tol=1e-3):
            raise Hint("you added probabilities; add the logprobs.")
        if math.isclose(value, sum(t[1] for t in triples), rel_tol=1e-6):
            raise Hint("you added the token ids: each triple is [logprob, token_id, text].")
        if value > 0:
            raise Hint("logprobs are ≤ 0, and so is their sum.")
        tops = meta.get("output_top_logprobs") or []
        if tops and all(tops) and math.isclose(value, sum(top[0][0] for top in tops), rel_tol=1e-4, abs_tol=1e-3):
            raise Hint("that adds each position's best candidate; the sampled token is not always the best one. "
                       "Use output_token_logprobs.")
        raise Hint("add the first slot of every triple in meta[\"output_token_logprobs\"] (one per generated token).")
    field = field_name(name)
    if field == "cumulative_logprob":
        return ("vLLM's CompletionOutput.cumulative_logprob is the same sum: the log-probability of the whole "
                "answer (notebook 05). SGLang returns only the per-token triples; the total is yours to add.")
    if field == "cumulative_logprobs":
        raise Hint("almost: check the exact spelling on vLLM's CompletionOutput (notebook 05).")
    if field == "output_token_logprobs":
        raise Hint("that is SGLang's field. Which field of vLLM's CompletionOutput holds the total?")
    if field == "logprobs":
        raise Hint("vLLM's logprobs holds one dict per token, like SGLang's triples. Which field holds their total?")
    raise Hint("the sum is right. Look at the fields of vLLM's CompletionOutput (notebook 05): which one is "
               "the log-probability of the whole answer?")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint (SGLang replies recorded from a real server)."""
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import sglang_result

    def rec(eid, make, passes=True):
        return Case(eid, make, passes=passes, fixtures=("capture=sglang_capture",))

    def answer_07_1(name=None, cut=None, value=None, first=False):
        def make(f):
            if value is not None:
                return value, {}
            result = sglang_result(f["capture"], name, cut=cut)
            return ([result] if first else result), {}
        return make

    def meta_07_2(answer, meta_of=lambda m: m, given=lambda m: m):
        def make(f):
            meta = given(f["capture"]["generate_logprobs"]["response"]["meta_info"])
            total = sum(t[0] for t in meta["output_token_logprobs"])
            return answer(meta, total), {"meta": meta_of(meta)}
        return make

    right_1 = [answer_07_1(value={"type": "length", "length": 5}), answer_07_1("generate_length", cut=5),
               answer_07_1("generate_batch", cut=5, first=True)]
    wrong_1 = [answer_07_1(value="length"), answer_07_1(value="stop"), answer_07_1(value="eos_token"),
               answer_07_1("generate_single"), answer_07_1("generate_stop"),
               answer_07_1(value={"type": "length", "length": 128}),
               lambda f: (f["capture"]["generate_length"]["response"], {})]
    out = [rec("07.1", m) for m in right_1] + [rec("07.1", m, passes=False) for m in wrong_1]
    def not_always_best(m: dict) -> dict:
        """The meta with a better candidate, another token, put first at the first step."""
        tops = [list(map(list, top)) for top in m["output_top_logprobs"]]
        chosen = m["output_token_logprobs"][0]
        tops[0] = [[min(0.0, chosen[0] + 0.5), chosen[1] + 1, "另"], *tops[0]][:len(tops[0])]
        return {**m, "output_top_logprobs": tops}

    offline = lambda m: {**m, "output_token_logprobs": [[a, b, None] for a, b, _ in m["output_token_logprobs"]]}  # noqa: E731
    right_2 = [meta_07_2(lambda m, t: (t, "cumulative_logprob")),
               meta_07_2(lambda m, t: [round(t, 3), "outputs[0].cumulative_logprob"]),
               meta_07_2(lambda m, t: (t, "cumulative_logprob"), meta_of=offline)]
    wrong_2 = [meta_07_2(lambda m, t: t), meta_07_2(lambda m, t: "cumulative_logprob"),
               meta_07_2(lambda m, t: (math.exp(t), "cumulative_logprob")), meta_07_2(lambda m, t: (-t, "x")),
               meta_07_2(lambda m, t: (sum(math.exp(x[0]) for x in m["output_token_logprobs"]), "cumulative_logprob")),
               # a reply where the sampled token was not the best candidate at one step (in a short recorded
               # reply it may be the best at every step, and then the sum of the best ones is the right answer)
               meta_07_2(lambda m, t: (sum(top[0][0] for top in m["output_top_logprobs"]), "cumulative_logprob"),
                         given=not_always_best),
               meta_07_2(lambda m, t: (sum(x[1] for x in m["output_token_logprobs"]), "cumulative_logprob")),
               meta_07_2(lambda m, t: (t, "logprobs")), meta_07_2(lambda m, t: (t, "output_token_logprobs")),
               meta_07_2(lambda m, t: (t, "cumulative_logprobs")), meta_07_2(lambda m, t: (t, "n_generated_tokens")),
               meta_07_2(lambda m, t: (t, "cumulative_logprob"), meta_of=lambda m: None)]
    out += [rec("07.2", m) for m in right_2] + [rec("07.2", m, passes=False) for m in wrong_2]
    return out
