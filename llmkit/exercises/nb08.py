"""Exercises of notebook 08 (SGLang's server): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import exercise, Hint, number, sglang_meta

def _cached_and_prompt(item: Any) -> tuple[int, int | None]:
    """(cached_tokens, prompt_tokens) of a /generate reply, a requests.Response, a Generation, or a bare number."""
    if hasattr(item, "status_code") and hasattr(item, "json"):
        item = item.json()
    if isinstance(getattr(item, "usage", None), dict) and "cached_tokens" in item.usage:
        return int(item.usage["cached_tokens"]), item.usage.get("prompt_tokens")
    meta = sglang_meta(item)
    if meta is not None:
        if meta.get("cached_tokens") is None:
            raise Hint("this reply has no cached_tokens in its meta_info: is it from SGLang's native /generate?")
        return int(meta["cached_tokens"]), meta.get("prompt_tokens")
    return int(number(item)), None


@exercise("08.1", "a pair: (the first reply, the second reply), or their cached_tokens as (first, second)")
def _ex_08_1(answer: Any) -> str:
    """cached_tokens of the same /generate body sent twice: the second finds its prompt cached."""
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise Hint("give both: (first, second), each the reply of /generate or its meta_info[\"cached_tokens\"].")
    (first, prompt), (second, prompt2) = (_cached_and_prompt(a) for a in answer)
    prompt = prompt2 or prompt
    if first < 0 or second < 0:
        raise Hint("cached_tokens counts tokens: it is never negative.")
    if first > second:
        raise Hint("the first has more cached tokens than the second: are they in the order you sent them?")
    if first == second == 0:
        raise Hint("nothing came from the cache either time. Was it the same text both times, sent to the same "
                   "server? (A server started with --disable-radix-cache never reuses a prefix.)")
    if first == second:
        raise Hint("both are the same, so the first was already served from the cache: an earlier request began "
                   "with the same tokens (写一首…). Flush the cache first (POST /flush_cache), then send the pair again.")
    of = f" of its {prompt} prompt tokens" if prompt else ""
    return (f"the second reply took {second}{of} from the cache: RadixAttention kept the first request's KV cache in "
            "its prefix tree and matched the same tokens again. It never reuses the whole prompt: the last prompt "
            "token is computed again, because its logits pick the first new token.")


def _program_variables(state: Any) -> tuple[dict, dict]:
    """(variables, meta_info) of an SGLang frontend ProgramState, after waiting for it to finish."""
    executor = getattr(state, "stream_executor", None)
    if executor is None or not isinstance(getattr(executor, "variables", None), dict):
        raise Hint("pass the state that your function's .run() returned (a ProgramState).")
    state.text()  # waits until the program has run
    return dict(executor.variables), dict(getattr(executor, "meta_info", None) or {})


@exercise("08.2", "the state your @sgl.function's .run() returned")
def _ex_08_2(answer: Any) -> str:
    """A frontend program: a poem (gen), then select between 春 and 秋."""
    if hasattr(answer, "run") and hasattr(answer, "func"):
        raise Hint("that is the function itself: run it (.run()) and pass the state it returns.")
    if isinstance(answer, str):
        raise Hint("that is text; pass the state .run() returned, so the check can see its gen and select.")
    variables, meta = _program_variables(answer)
    selects = {n: v for n, v in variables.items() if "normalized_prompt_logprobs" in (meta.get(n) or {})}
    gens = {n: v for n, v in variables.items() if n not in selects and isinstance(v, str)}
    if not selects:
        if any(str(v).strip() in ("春", "秋") for v in gens.values()):
            raise Hint("the season was generated freely. Let sgl.select choose it from the two choices: it scores "
                       "each choice by its likelihood, so the answer is always one of them.")
        raise Hint("there is no sgl.select in this program: the season should be chosen by select.")
    name, season = next(iter(selects.items()))
    n_choices = len(meta[name]["normalized_prompt_logprobs"])
    if season not in ("春", "秋") or n_choices != 2:
        raise Hint(f"your select chose {season!r} from {n_choices} choices: offer exactly the two seasons of the "
                   "exercise.")
    if not gens:
        raise Hint("there is no sgl.gen: the program should first ask for a poem and generate it.")
    poem_name, poem = next(iter(gens.items()))
    if not poem.strip():
        raise Hint(f"the poem ({poem_name!r}) is empty: give gen enough max_tokens for a poem.")
    text = answer.text()
    if text.find(poem) < 0 or text.find(season, text.find(poem) + len(poem)) < 0:
        raise Hint("the select comes before the poem: put it after the gen, so the choice depends on the poem.")
    return (f"gen wrote the poem into {poem_name!r}; select scored both seasons after it and chose {season!r} "
            f"into {name!r} (state.get_meta_info({name!r}) has the scores). The program ran against the server, which "
            "reused the shared prefix between its calls.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint (SGLang replies recorded from a real server)."""
    from types import SimpleNamespace

    from llmkit.clients import from_sglang
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import ProgramRecord, chatml, choose, sglang_result

    def pair(make, passes=True):
        return Case("08.1", lambda f: (make(f), {}), passes=passes, fixtures=("capture=sglang_capture",))

    # 写一首诗 (4 tokens) sent twice after /flush_cache: nothing cached, then all but the last prompt token.
    first = lambda f: sglang_result(f["capture"], "generate_length", prompt_tokens=4, cached_tokens=0)  # noqa: E731
    second = lambda f: sglang_result(f["capture"], "generate_length", prompt_tokens=4, cached_tokens=3)  # noqa: E731
    reply = lambda result: SimpleNamespace(status_code=200, json=lambda: result)  # noqa: E731
    out = [pair(lambda f: (first(f), second(f))), Case("08.1", (0, 3)),
           pair(lambda f: (reply(first(f)), reply(second(f)))),
           pair(lambda f: (from_sglang(first(f)), from_sglang(second(f)))),
           pair(lambda f: (f["capture"]["generate_single"]["response"], f["capture"]["generate_n2"]["response"]))]
    out += [pair(lambda f: (second(f), second(f)), passes=False), pair(lambda f: (second(f), first(f)), passes=False),
            pair(lambda f: (first(f),), passes=False)]
    out += [Case("08.1", a, passes=False) for a in ((3, 3), (0, 0), 3, "cached_tokens")]

    def poem(f):
        return ("《秋夕》\n银烛秋光冷画屏，轻罗小扇扑流萤。", "poem", f["capture"]["generate_single"]["response"]["meta_info"])

    ask, end = ("<|im_start|>assistant\n", None, None), ("<|im_end|>\n", None, None)

    def program(*pieces, passes=True):
        make = lambda f: (ProgramRecord(*[p(f) if callable(p) else p for p in pieces]), {})  # noqa: E731
        return Case("08.2", make, passes=passes, fixtures=("capture=sglang_capture",))

    full = (chatml("user", "写一首诗"), ask, poem, end, chatml("user", "这首诗写的是哪个季节？"), ask, choose("秋"), end)
    out += [program(*full), program(chatml("user", "写一首诗"), ask, poem, end, ("季节：", None, None), choose("春"))]
    out += [program(chatml("user", "写一首诗"), ask, poem, end, chatml("user", "哪个季节？"), ask,
                    lambda f: ("秋", "season", poem(f)[2]), end, passes=False),
            program(chatml("user", "写一首诗"), ask, poem, end, choose("七言", ("五言", "七言")), passes=False),
            program(chatml("user", "写一首诗"), ask, poem, end, choose("秋", ("春", "夏", "秋")), passes=False),
            program(chatml("user", "写一首关于春或秋的诗"), choose("春"), ask, poem, end, passes=False),
            program(chatml("user", "写一首诗"), ask, lambda f: ("", "poem", poem(f)[2]), end, choose("秋"), passes=False),
            program(chatml("user", "哪个季节？"), ask, choose("秋"), end, passes=False)]
    out += [Case("08.2", SimpleNamespace(func=lambda s: None, bind_arguments={}), passes=False),
            Case("08.2", "<|im_start|>user\n写一首诗<|im_end|>\n", passes=False)]
    return out
