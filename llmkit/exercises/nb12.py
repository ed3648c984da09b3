"""Exercises of notebook 12 (structured outputs): the checkers, and beside them the cases that test them.

The expected answers come from Python's ``re``, the ``jsonschema`` validator and ``json``, not from
``llmkit.structured``, the module the lesson teaches.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, number

# Real 五言 couplets (王之涣《登鹳雀楼》, 孟浩然《春晓》), and near misses with what is wrong with each.
WUYAN_COUPLETS = ("白日依山尽，黄河入海流。", "春眠不觉晓，处处闻啼鸟。")
NEAR_MISSES = {
    "白日依山尽，黄河入海流": "it has no full stop at the end",
    "白日依山尽黄河入海流。": "it has no comma between the halves",
    "远上寒山石径斜，白云生处有人家。": "its halves have seven characters each",
    "白日依山，黄河入海。": "its halves have four characters each",
    "abcde，fghij。": "it is Latin letters, not Han characters",
    "白日依山尽，黄河入海流。白日依山尽，黄河入海流。": "it is two couplets",
}


@exercise("12.1", "a regex string for one 五言 couplet: five Han characters, '，', five Han characters, '。'")
def _ex_12_1(answer: Any, llm: Any = None) -> str:
    """A regex for 五字，五字。, tried on real couplets and near misses, then (with llm=) on the engine's output."""
    if not isinstance(answer, str):
        raise Hint(f"give the regex as a string (got {type(answer).__name__}).")
    try:
        pattern = re.compile(answer)
    except re.error as err:
        raise Hint(f"Python cannot compile it ({err}); the grammar backends would refuse it too.") from None
    for couplet in WUYAN_COUPLETS:
        if not pattern.fullmatch(couplet):
            raise Hint(f"it does not match the whole of {couplet!r}, a real 五言 couplet. The engine matches the "
                       "entire answer, so the regex must describe all of it.")
    for text, why in NEAR_MISSES.items():
        if pattern.fullmatch(text):
            raise Hint(f"it also matches {text!r}, but {why}.")
    said = ""
    if llm is not None:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        params = SamplingParams(n=3, temperature=0.8, seed=0, max_tokens=48,
                                structured_outputs=StructuredOutputsParams(regex=answer))
        try:
            outs = llm.generate("写一首五言绝句", params, use_tqdm=False)[0].outputs
        except Exception as err:  # noqa: BLE001 - the backend's refusal is the hint
            raise Hint(f"Python accepts it, but vLLM's grammar backend refuses it: {err}") from None
        for c in outs:
            if c.finish_reason == "stop" and not pattern.fullmatch(c.text):
                raise Hint(f"the engine wrote {c.text!r} under it, which your regex itself does not match.")
        said = f" Under it tiny-poet (or your model) wrote {outs[0].text!r}."
    return ("five Han characters, the comma, five more and the full stop, nothing before or after: the backend "
            "turns it into a state machine and masks every token that would leave it." + said)


# A 五言绝句 as a document, and documents a 五言 schema must refuse.
WUYAN_POEM = {"title": "登鹳雀楼", "lines": ["白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"]}
WUYAN_WRONG = {
    "a poem whose lines have seven characters": {"title": "山行", "lines": ["远上寒山石径斜", "白云生处有人家",
                                                                  "停车坐爱枫林晚", "霜叶红于二月花"]},
    "three lines": {**WUYAN_POEM, "lines": WUYAN_POEM["lines"][:3]},
    "five lines": {**WUYAN_POEM, "lines": WUYAN_POEM["lines"] + ["白日依山尽"]},
    "no title": {"lines": WUYAN_POEM["lines"]},
    "an empty title": {**WUYAN_POEM, "title": ""},
    "a title of nine characters": {**WUYAN_POEM, "title": "登鹳雀楼登鹳雀楼登"},
    "a line with a comma in it": {**WUYAN_POEM, "lines": ["白日依山，", *WUYAN_POEM["lines"][1:]]},
    "a line of Latin letters": {**WUYAN_POEM, "lines": ["abcde", *WUYAN_POEM["lines"][1:]]},
    "lines that are not strings": {**WUYAN_POEM, "lines": [5, 5, 5, 5]},
}


def schema_of(answer: Any) -> dict:
    """The JSON schema of an answer: a pydantic model class, a pydantic model instance, or a dict."""
    if hasattr(answer, "model_json_schema"):
        return answer.model_json_schema()
    if isinstance(answer, str):
        return json.loads(answer)
    if isinstance(answer, dict):
        return answer
    raise Hint(f"give a pydantic model class or a JSON-schema dict (got {type(answer).__name__}).")


@exercise("12.2", "a pydantic model class (or a JSON-schema dict) for a 五言绝句")
def _ex_12_2(answer: Any) -> str:
    """A 五言绝句 schema, run by the jsonschema validator on a real poem and on near misses."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    schema = schema_of(answer)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        raise Hint(f"this is not a valid JSON schema: {err.message}") from None
    validator = Draft202012Validator(schema)
    if not validator.is_valid(WUYAN_POEM):
        error = next(validator.iter_errors(WUYAN_POEM))
        raise Hint(f"it refuses 王之涣's 《登鹳雀楼》, a real 五言绝句: {error.message}")
    for what, doc in WUYAN_WRONG.items():
        if validator.is_valid(doc):
            extra = {"a poem whose lines have seven characters": " A JSON-schema pattern matches anywhere in the "
                                                                 "string unless you anchor it.",
                     "a title of nine characters": " Is the title's pattern anchored at both ends?",
                     "a line with a comma in it": " Which characters does the line's pattern allow?",
                     "a line of Latin letters": " Which characters does the line's pattern allow?"}.get(what, "")
            raise Hint(f"it accepts {what}.{extra}")
    return ("it takes the real poem and refuses each near miss. The backends enforce the same keywords (pattern, "
            "minItems, maxItems, required) while the model writes, so a valid answer needs no second check.")


def _first_choice(answer: Any) -> tuple[str | None, str]:
    """(finish_reason, text) of the first choice of a Generation, a chat JSON body, a Response or an SDK object."""
    if hasattr(answer, "completions"):
        first = answer.completions[0]
        return first.finish_reason, first.text
    if hasattr(answer, "status_code") and hasattr(answer, "json"):
        answer = answer.json()
    if hasattr(answer, "model_dump"):
        answer = answer.model_dump()
    if isinstance(answer, dict) and answer.get("choices"):
        choice = answer["choices"][0]
        text = (choice.get("message") or {}).get("content") if "message" in choice else choice.get("text")
        return choice.get("finish_reason"), text or ""
    raise Hint("pass the whole answer: the Generation of openai_chat(...), or the JSON body of the request.")


@exercise("12.3", "the server's answer to the Poem schema, cut by a small max_tokens")
def _ex_12_3(answer: Any) -> str:
    """An answer constrained to the Poem schema and cut by max_tokens: finish_reason "length", no JSON."""
    finish, text = _first_choice(answer)
    if not text.lstrip().startswith("{"):
        raise Hint("the answer does not start like JSON: was the Poem schema in response_format?")
    if finish == "stop":
        raise Hint("this answer ended by itself: the limit was large enough. Make max_tokens smaller.")
    if finish != "length":
        raise Hint(f"finish_reason is {finish!r}; the exercise wants an answer that max_tokens cut.")
    try:
        json.loads(text)
    except ValueError:
        return ("finish_reason \"length\" and a JSON document cut in the middle: the grammar keeps every prefix "
                "valid, but it cannot make the model finish before the token budget ends. Check finish_reason "
                "before you parse.")
    raise Hint("this cut answer still parses: make max_tokens smaller, so the document is cut before its end.")


@exercise("12.4", "a percentage (a number): xgrammar's mask per token over one unconstrained decode step per token")
def _ex_12_4(answer: Any, costs: Any = None, overhead: Any = None) -> str:
    """The mask's time per token as a share of a decode step's time per token, from the notebook's two tables."""
    from llmkit.exercises.core import need

    mask_us = float(need("costs", costs).loc["xgrammar", "mask_us_per_token"])
    step_ms = float(need("overhead", overhead)["unconstrained_ms_per_token"])
    expected = 100 * mask_us / (1000 * step_ms)
    value = number(answer)

    def near(x: float) -> bool:
        return abs(value - x) <= 0.02 * abs(x) + 1e-9

    if near(expected):
        return (f"{mask_us:.1f} µs of mask work against {step_ms:.3f} ms per token: about {expected:.1f}%. The "
                "constrained run's own overhead is larger, because the engine also moves the bitmask and applies "
                "it to the logits at every step.")
    if near(expected * 1000) or near(expected / 1000):
        raise Hint("check the units: the mask is in microseconds (µs), the decode step in milliseconds (ms).")
    if near(expected / 100):
        raise Hint("that is a fraction; the question asks for a percentage.")
    if near(float(overhead["overhead_percent"])):
        raise Hint("that is the whole constrained run's extra time, measured end to end; the question asks for the "
                   "mask alone, from costs.")
    raise Hint("divide costs.loc['xgrammar', 'mask_us_per_token'] (µs) by overhead['unconstrained_ms_per_token'] "
               "(ms), minding the units, and give it in percent.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    import pandas as pd
    from pydantic import BaseModel

    from llmkit.exercises.core import Case

    han = "一-鿿"
    right = f"[{han}]{{5}}，[{han}]{{5}}。"
    out = [Case("12.1", right), Case("12.1", r"[\u4e00-\u9fff]{5}，[\u4e00-\u9fff]{5}。"),
           Case("12.1", right, fixtures=("llm",), says="wrote")]
    out += [Case("12.1", a, passes=False) for a in (
        f"[{han}]{{5}}，[{han}]{{5}}", f"[{han}]{{7}}，[{han}]{{7}}。", ".{5}，.{5}。", f"([{han}]{{5}}，[{han}]{{5}}。)+",
        f"[{han}]{{5}}[，]?[{han}]{{5}}。", "([", 5, f"[{han}]+，[{han}]+。")]
    out += [Case("12.1", r"(\w)\1{4}，[一-鿿]{5}。", passes=False)]

    def model(line: str, title: str = f"^[{han}]{{1,8}}$", count: tuple[int, int] | None = (4, 4)):
        """A case answer: a pydantic 绝句 model class with the given line pattern, title pattern and line count."""
        from typing import Annotated

        from pydantic import Field, StringConstraints

        lines = list[Annotated[str, StringConstraints(pattern=line)]]
        if count:
            lines = Annotated[lines, Field(min_length=count[0], max_length=count[1])]
        cls = type("Wuyan", (BaseModel,), {"__annotations__": {"title": Annotated[str, StringConstraints(pattern=title)],
                                                               "lines": lines}})
        return lambda fixtures: (cls, {})  # a Case calls a callable answer; a model class is one, so wrap it

    right_schema = {"type": "object", "required": ["title", "lines"],
                    "properties": {"title": {"type": "string", "pattern": f"^[{han}]{{1,8}}$"},
                                   "lines": {"type": "array", "minItems": 4, "maxItems": 4,
                                             "items": {"type": "string", "pattern": f"^[{han}]{{5}}$"}}}}
    out += [Case("12.2", model(f"^[{han}]{{5}}$")), Case("12.2", right_schema), Case("12.2", json.dumps(right_schema))]
    out += [Case("12.2", a, passes=False) for a in (
        model(f"^[{han}]{{7}}$"), model(f"[{han}]{{5}}"), model(f"^[{han}]{{5}}$", count=None),
        model(f"^[{han}]{{5}}$", count=(3, 5)), model(f"^[{han}]{{5}}$", title=".*"),
        {**right_schema, "required": ["lines"]}, {"type": "objekt"}, "五言", 5)]
    out += [Case("12.2", model("^.{5}$"), passes=False, says="comma")]

    def reply(finish: str, text: str) -> dict:
        """A chat-completions JSON body with one choice."""
        return {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": finish,
                                                          "message": {"role": "assistant", "content": text}}]}

    out += [Case("12.3", reply("length", '{"title":"秋思","lines":["寒山')),
            Case("12.3", reply("length", '{\n\n\n\n')),
            Case("12.3", reply("length", '{"title":"秋思","lines":["寒山秋水远孤城"'), says="finish_reason")]
    out += [Case("12.3", a, passes=False) for a in (
        reply("stop", '{"title":"秋思","lines":["寒山秋水远孤城","落日西风照客行","一夜霜飞千树老","雁声先到故园城"]}'),
        reply("length", "《秋思》\n寒山秋水"), reply("length", '{"title":"秋"}'), reply("abort", "{"), "length", 3)]

    costs = pd.DataFrame({"mask_us_per_token": [2.5, 13.0]}, index=["xgrammar", "guidance"])
    timing = {"unconstrained_ms_per_token": 0.5, "overhead_percent": 19.0}
    ctx = {"costs": costs, "overhead": timing}
    out += [Case("12.4", a, context=ctx) for a in (0.5, "0.5", 0.501)]
    out += [Case("12.4", a, passes=False, context=ctx) for a in (500, 0.0005, 0.005, 19.0, 2.6, 5)]
    out += [Case("12.4", 0.5, passes=False, context={"costs": costs})]
    return out
