"""Exercises of notebook 01 (vLLM quick start): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import Hint, exercise, finish_reason_is_length, need, number

@exercise("01.1", "a pair: (the result for 16 copies with n=1, the result for one prompt with n=16), "
                  "with block_size= the engine's KV block size")
def _ex_01_1(answer: Any, block_size: Any = None) -> str:
    """16 copies of a prompt versus n=16 samples of one: why their times are close (the evidence)."""
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise Hint("pass both results as a pair: (copies, samples), each what llm.generate returned.")
    copies, samples = answer
    if not all(hasattr(o, "outputs") for o in list(copies) + list(samples)):
        raise Hint("each half of the pair should be what llm.generate returned: a list of RequestOutputs.")
    if len(copies) == 1 and len(samples) == 16:
        raise Hint("the two results look swapped: copies first, then the n=16 one.")
    if len(copies) != 16 or any(len(o.outputs) != 1 for o in copies):
        raise Hint(f"the first call should send 16 prompts with n=1 (one RequestOutput each); it has {len(copies)}.")
    if len(samples) != 1:
        raise Hint(f"the second call should send one prompt; it returned {len(samples)} RequestOutputs.")
    if len(samples[0].outputs) != 16:
        raise Hint(f"the second call has {len(samples[0].outputs)} samples: where does n go?")
    block = int(number(need("block_size", block_size)))
    prompt = len(samples[0].prompt_token_ids)
    cached = [getattr(o, "num_cached_tokens", None) or 0 for o in list(copies) + list(samples)]
    full_blocks = (prompt - 1) // block  # the last prompt token is always computed, so it never counts
    if full_blocks == 0 and any(cached):
        raise Hint("some requests report cached prompt tokens although the prompt fills no block: "
                   "was the prompt longer than the one in the exercise?")
    shared = (f"its first {full_blocks * block} tokens (full blocks) could come from the cache"
              if full_blocks else f"it fills no block of {block} tokens, so nothing is shared: num_cached_tokens "
                                  f"is {max(cached)} everywhere")
    return (f"both calls decode the same 16 sequences in one batch, so their times are close. vLLM's V1 engine "
            f"runs n=16 as 16 child requests (vllm/v1/engine/parallel_sampling.py); siblings share a prompt's KV "
            f"cache only through prefix caching, which caches full blocks. This prompt has {prompt} tokens: "
            f"{shared}.")


@exercise("01.2", "the rendered text (a string), with messages= the conversation you rendered")
def _ex_01_2(answer: Any, messages: Any = None) -> str:
    """The chat template for user, assistant, user."""
    if isinstance(answer, (list, tuple)) and answer and all(isinstance(t, int) for t in answer):
        raise Hint("those are token ids: ask apply_chat_template for text (tokenize=False).")
    if not isinstance(answer, str):
        raise Hint("give the text apply_chat_template returns (a string).")
    if messages is None:
        raise Hint("also pass messages=<your conversation>, so the check can find each turn in the text.")
    roles = [m.get("role") for m in messages]
    if roles != ["user", "assistant", "user"]:
        raise Hint(f"the conversation has roles {roles}; the exercise asks for user, assistant, user.")
    position = 0
    for m in messages:
        found = answer.find(m["content"], position)
        if found < 0:
            raise Hint(f"the {m['role']} message {m['content'][:20]!r} is not in the text (after the turns before it): "
                       "render the same messages you pass here.")
        position = found + len(m["content"])
    if "assistant" not in answer[position:]:
        raise Hint("the text ends with the last user turn: the model would not know it is its turn to answer. "
                   "Ask the template to open the assistant's turn.")
    return ("every turn is wrapped in the template's role markers, in order, and the text ends by opening the "
            "assistant's turn: the new answer is written there, after the whole conversation.")


@exercise("01.3", "the finish_reason you saw, as a string (or the outputs)")
def _ex_01_3(answer: Any) -> str:
    """finish_reason with max_tokens=8 in section 2."""
    return finish_reason_is_length(answer, 8)


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case
    from llmkit.exercises.samples import completion, request

    one = lambda: request([completion()])  # noqa: E731
    sixteen = lambda: request([completion() for _ in range(16)])  # noqa: E731
    out = [Case("01.1", ([one() for _ in range(16)], [sixteen()]), context={"block_size": 128}, says="no block")]
    out += [Case("01.1", a, passes=False, context={"block_size": 128})
            for a in (([sixteen()], [one() for _ in range(16)]), ([one() for _ in range(8)], [sixteen()]),
                      ([one() for _ in range(16)], [one()]), "n=16")]
    out += [Case("01.1", ([one() for _ in range(16)], [sixteen()]), passes=False, says="block_size")]
    turns = [{"role": "user", "content": "写一首七言绝句"}, {"role": "assistant", "content": "《春晓》\n春眠不觉晓"},
             {"role": "user", "content": "再写一首关于秋天的诗"}]

    def rendered(generation_prompt: bool, messages=turns, passed=turns):
        return lambda f: (f["tokenizer"].apply_chat_template(messages, tokenize=False,
                                                              add_generation_prompt=generation_prompt),
                          {"messages": passed})

    out += [Case("01.2", rendered(True), fixtures=("tokenizer",))]
    out += [Case("01.2", rendered(False), passes=False, fixtures=("tokenizer",)),
            Case("01.2", rendered(True, passed=turns[:1] + turns[2:]), passes=False, fixtures=("tokenizer",)),
            Case("01.2", rendered(True, passed=None), passes=False, fixtures=("tokenizer",)),
            Case("01.2", [1, 2, 3], passes=False, context={"messages": turns})]
    out += [Case("01.3", a) for a in ("length", [request([completion(8)]), request([completion(8)])])]
    out += [Case("01.3", a, passes=False)
            for a in ("stop", [request([completion(8)]), request([completion(3, "stop")])])]
    return out
