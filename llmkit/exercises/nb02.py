"""Exercises of notebook 02 (the output tree): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import numbers
from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number, word

@exercise("02.1", "all the texts as one flat list of strings (or how many CompletionOutputs there are)")
def _ex_02_1(answer: Any) -> str:
    """n=3 for three prompts: how many CompletionOutputs, and one flat list of texts."""
    why = ("3 prompts × n=3 = 9 CompletionOutputs. A comprehension over both levels (for each RequestOutput, "
           "for each of its outputs) gives one flat list.")
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
        if answer == 9:
            return why
        if answer == 3:
            raise Hint("that counts RequestOutputs, one per prompt. Each of them holds n samples in .outputs.")
        raise Hint("count prompts and samples per prompt.")
    if not isinstance(answer, (list, tuple)):
        raise Hint("give a list of the texts.")
    if any(isinstance(a, (list, tuple)) for a in answer):
        raise Hint("that is a list per prompt; the exercise asks for one flat list of texts.")
    if any(hasattr(a, "outputs") for a in answer):
        raise Hint("those are RequestOutputs: go one level down to the samples and take their text.")
    if any(hasattr(a, "text") for a in answer):
        raise Hint("those are CompletionOutputs: take each one's .text.")
    if not all(isinstance(a, str) for a in answer):
        raise Hint("every item should be a string (a sample's .text).")
    if len(answer) == 3:
        raise Hint("3 texts: one per prompt. Each RequestOutput has n samples, not one.")
    if len(answer) != 9:
        raise Hint(f"{len(answer)} texts; with three prompts and n=3, how many samples are there?")
    return why


@exercise("02.2", "the CompletionOutput you generated with a stop string (or its stop_reason), with natural= "
                  "section 5's answer")
def _ex_02_2(answer: Any, natural: Any = None) -> str:
    """stop_reason when a stop string fires: it names the string, and the text ends just before it."""
    natural_text = getattr(need("natural", natural), "text", natural)
    if isinstance(answer, int) and not isinstance(answer, bool):
        raise Hint("a token id shows up when a stop *token* fired (stop_token_ids); here a stop *string* fires.")
    if isinstance(answer, str):
        said = word(answer)
        if said == "stop":
            raise Hint('"stop" is the finish_reason. stop_reason says *which* stop fired.')
        if said == "none":
            raise Hint("None means no stop string fired (the end token, or max_tokens). Make sure the stop string "
                       "fires: pick one that section 5's answer contains.")
        if said == "length":
            raise Hint('"length" is a finish_reason, and it means the answer was cut before the stop string.')
        text = answer.encode().decode("unicode_escape") if "\\" in answer else answer
        text = text.strip("'\"") or text
        if text not in natural_text:
            raise Hint("section 5's answer never contains that string, so it could not have fired.")
        return (f"stop_reason is the stop string that fired ({text!r}) and finish_reason is \"stop\"; the string "
                "itself is not in the text (include_stop_str_in_output=True would keep it).")
    if not hasattr(answer, "stop_reason"):
        raise Hint("give the CompletionOutput (outputs[0].outputs[0] of your call), or its stop_reason.")
    if answer.finish_reason == "length":
        raise Hint("it ran out of max_tokens before the stop string: give it more tokens.")
    if answer.stop_reason is None:
        raise Hint("it ended with its end token, and no stop string fired: did you pass stop=[...]? Pick a string "
                   "that section 5's answer contains, with the same seed.")
    if not isinstance(answer.stop_reason, str):
        raise Hint(f"stop_reason is the token id {answer.stop_reason}: a stop *token* fired, not a string.")
    stop = answer.stop_reason
    if stop in natural_text and answer.text != natural_text[:natural_text.index(stop)]:
        raise Hint("the text differs from section 5's answer before the stop string: use the same chat, seed and "
                   "settings, so the draws are the same.")
    return (f"finish_reason is \"stop\" and stop_reason names the string that fired ({stop!r}). The same seed gave "
            "the same draws, so the text is section 5's answer cut just before its first occurrence, and the "
            "string itself is not included (include_stop_str_in_output=True would keep it).")


@exercise("02.3", "the field's name as a string, or the total for output=outputs[0] as a number")
def _ex_02_3(answer: Any, output: Any = None) -> str:
    """Total tokens of a request: there is no single field."""
    why = ("RequestOutput has no total: add the prompt's len(prompt_token_ids) to each sample's len(token_ids) "
           "(the prompt is counted once however many samples share it).")
    if isinstance(answer, str):
        said = word(answer)
        if said in ("none", "no", "no field", "no single field", "there is none", "there is no single field",
                    "nothing", "no such field"):
            return why
        if said == "n_generated_tokens":
            raise Hint("n_generated_tokens is the study note's invention; vLLM has no such field.")
        raise Hint(f"is {answer!r} really a field of RequestOutput with that meaning? Look at dir(outputs[0]) "
                   "and at what each field counts.")
    value = number(answer)
    output = need("output", output)
    prompt = len(output.prompt_token_ids)
    answers = [len(c.token_ids) for c in output.outputs]
    if value in {prompt + a for a in answers} or value == prompt + sum(answers):
        return why
    if value == prompt:
        raise Hint("that is the prompt alone: add what the model generated.")
    if value in answers or value == sum(answers):
        raise Hint("that is the generated part alone: the prompt's tokens were processed too.")
    if value in {len(output.prompt or "") + len(c.text) for c in output.outputs}:
        raise Hint("that counts characters; tokens are not characters. Count token ids.")
    raise Hint("combine what the RequestOutput knows about the prompt with what each CompletionOutput knows "
               "about its answer, counting tokens.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import completion, request

    output = request([completion(10), completion(12)], n_prompt=5)
    right = {"02.1": [[f"poem {i}" for i in range(9)], 9],
             "02.2": ["\n", "\\n", completion(4, "stop", "\n", text="秋风起")],
             "02.3": [15, 17, 27, "there is no single field", "None"]}
    wrong = {"02.1": [[f"poem {i}" for i in range(3)], [[f"poem {i}"] * 3 for i in range(3)], 3,
                      [completion()] * 9, [request([completion()] * 3)] * 3],
             "02.2": ["stop", "None", "length", 151645, "雪", completion(200, "length"), completion(9, "stop", None),
                      completion(4, "stop", "\n", text="秋雨落")],
             "02.3": [5, 10, 22, "n_generated_tokens", "usage"]}
    ctx = {"02.2": {"natural": completion(20, "stop", text="秋风起\n落叶飞。")}, "02.3": {"output": output}}
    return ([Case(e, a, context=ctx.get(e, {})) for e, answers in right.items() for a in answers]
            + [Case(e, a, passes=False, context=ctx.get(e, {})) for e, answers in wrong.items() for a in answers])
