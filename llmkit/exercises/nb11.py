"""Exercises of notebook 11 (tensor parallelism): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

def _tp_sizes(answer: Any) -> set[int]:
    """TP sizes from a list, tuple, set, or a string such as "1, 2, 4"."""
    if isinstance(answer, str):
        answer = [a for a in answer.replace(",", " ").split() if a]
    if not isinstance(answer, (list, tuple, set, frozenset)):
        raise Hint("give the accepted sizes as a list of numbers, e.g. [1, 2].")
    sizes = {int(number(a)) for a in answer}
    if any(s < 1 for s in sizes):
        raise Hint("tensor_parallel_size counts GPUs: every size is 1 or more.")
    return sizes


def _accepted_24_8() -> set[int]:
    """TP sizes for 24 query heads and 8 KV heads: the heads split whole; the KV heads split or are copied."""
    return {tp for tp in range(1, 25) if 24 % tp == 0 and (8 % tp == 0 if tp <= 8 else tp % 8 == 0)}


@exercise("11.1", "the accepted tensor_parallel_size values from 1 to 24, as a list of numbers")
def _ex_11_1(answer: Any) -> str:
    """TP sizes vLLM accepts for 24 query heads and 8 KV heads."""
    accepted = _accepted_24_8()
    sizes = _tp_sizes(answer)
    if sizes == accepted:
        return ("the 24 query heads split over 1, 2, 3, 4, 6, 8, 12 or 24 GPUs, and the 8 KV heads either split "
                "evenly (tp 1, 2, 4, 8) or are copied: with tp=24 each GPU holds 1 KV head and 3 GPUs share each one. "
                "3, 6 and 12 split the query heads but not the KV heads, so vLLM refuses them.")
    if extra := sorted(s for s in sizes - accepted if 24 % s):
        raise Hint(f"{extra[0]}: can 24 query heads be split evenly over {extra[0]} GPUs?")
    if extra := sorted(sizes - accepted):
        raise Hint(f"{extra[0]} splits the 24 query heads evenly, but what happens to the 8 KV heads on "
                   f"{extra[0]} GPUs?")
    if max(accepted) not in sizes:
        raise Hint("one more size works: what does vLLM do when there are more GPUs than KV heads?")
    raise Hint("some sizes that split both head counts evenly are missing: try every size from 1 upwards.")


# Llama-3.1-8B on 80 GiB GPUs at gpu_memory_utilization=0.9, activations left out, from its published numbers:
# 8,030,261,248 parameters in bf16, of which 266,240 are norms (copied to every GPU); KV 131,072 bytes per token
# (2 × 32 layers × 8 KV heads × 128 × 2 bytes), halved per GPU at TP=2. The checks use these, not llmkit.parallel.
LLAMA_PARAMS, LLAMA_NORMS, POOL = 8_030_261_248, 32 * 2 * 4096 + 4096, int(0.9 * 80 * 2**30)
LLAMA_WEIGHTS = {1: LLAMA_PARAMS * 2, 2: ((LLAMA_PARAMS - LLAMA_NORMS) // 2 + LLAMA_NORMS) * 2}
LLAMA_KV_TOKENS = {1: (POOL - LLAMA_WEIGHTS[1]) // 131_072, 2: (POOL - LLAMA_WEIGHTS[2]) // 65_536}


@exercise("11.2", "the ratio (KV tokens per GPU with TP=2) / (with TP=1), or the pair of token counts (TP=1, TP=2)")
def _ex_11_2(answer: Any) -> str:
    """How much the per-GPU KV capacity of Llama-3.1-8B grows from TP=1 to TP=2 on 80 GiB GPUs."""
    one, two = LLAMA_KV_TOKENS[1], LLAMA_KV_TOKENS[2]
    ratio = two / one
    if isinstance(answer, (list, tuple)):
        if len(answer) != 2:
            raise Hint("give two token counts: (TP=1, TP=2).")
        a, b = (number(x) for x in answer)
        if abs(a - one) / one > 0.01:
            raise Hint("the TP=1 count is off: KV pool = 0.9 × 80 GiB − the weights, divided by the KV bytes per token.")
        if abs(b - two) / two > 0.01:
            raise Hint("the TP=1 count is right. With TP=2, which two things does each GPU hold only half of?")
        value = b / a
    else:
        value = number(answer)
    if abs(value - ratio) / ratio <= 0.02:
        return ("more than twice: each GPU stores half of the KV heads per token (×2), and half of the weights, so "
                "its KV pool itself grows too. The smaller the GPU next to the model, the bigger this second effect.")
    if abs(value - 2) < 0.02:
        raise Hint("2 is the KV-head split alone. What else does each GPU no longer hold in full?")
    if value < 1:
        raise Hint("TP=2 holds more tokens per GPU, not fewer: divide the TP=2 figure by the TP=1 figure.")
    if abs(value - 1) < 0.02:
        raise Hint("with TP=2 each GPU stores only kv_heads / 2 heads of every token.")
    weights_only = (POOL - LLAMA_WEIGHTS[2]) / (POOL - LLAMA_WEIGHTS[1])
    if abs(value - weights_only) / weights_only < 0.03:
        raise Hint("you split the weights; the KV heads split too, so each token needs half the bytes per GPU.")
    raise Hint("use tp_rows(REFERENCE_CONFIGS[\"Llama-3.1-8B\"], tps=(1, 2)) and compare its \"KV tokens/GPU\" column, "
               "or compute (0.9 × 80 GiB − weights per GPU) / KV bytes per token per GPU for both.")


@exercise("11.3", "the KV capacity in tokens that vLLM will report with tensor_parallel_size=2 (a number)")
def _ex_11_3(answer: Any, budget: Any = None, shape: Any = None, block_size: int = 16) -> str:
    """The KV pool vLLM allocates with TP=2 and the same kv_cache_memory_bytes per GPU."""
    budget, shape = int(need("budget", budget)), need("shape", shape)
    per_token = {tp: 2 * shape.layers * max(1, shape.kv_heads // tp) * shape.head_dim * shape.dtype_bytes
                 for tp in (1, 2)}
    expected, single = ((budget // (block_size * per_token[tp])) * block_size for tp in (2, 1))
    value = number(answer)
    if value == expected:
        return (f"each GPU stores {max(1, shape.kv_heads // 2)} of the {shape.kv_heads} KV heads of every token, and "
                "kv_cache_memory_bytes is per GPU, so the same budget holds "
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


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.config import model_shape
    from llmkit.exercises.core import Case

    # Llama-3.1-8B on 80 GiB GPUs at 0.9: KV tokens per GPU with TP=1 and TP=2 (counted in tests/test_parallel.py).
    tp = (467_291, 1_057_111)
    shape = model_shape({"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                         "hidden_size": 256, "torch_dtype": "float32"})
    kv = {"budget": 256 * 4096, "shape": shape, "block_size": 16}
    right = {"11.1": [[1, 2, 4, 8, 24], (24, 8, 4, 2, 1), {1, 2, 4, 8, 24}, "1, 2, 4, 8, 24"],
             "11.2": [tp[1] / tp[0], round(tp[1] / tp[0], 2), tp], "11.3": [512, "512"]}
    wrong = {"11.1": [[1, 2, 4, 8], [1, 2, 3, 4, 6, 8, 12, 24], [1, 2, 4, 8, 12, 24], [1, 2, 4, 5, 8, 24],
                      [2, 4, 8, 24], [0, 1, 2, 4, 8, 24], 8],
             "11.2": [2, 2.0, 1, tp[0] / tp[1], 1.13, 4.5, (tp[0], 2 * tp[0]), (500_000, 1_057_111), (1, 2, 3)],
             "11.3": [256, 128, 500, 1024]}
    ctx = {"11.3": kv}
    return ([Case(e, a, context=ctx.get(e, {})) for e, answers in right.items() for a in answers]
            + [Case(e, a, passes=False, context=ctx.get(e, {})) for e, answers in wrong.items() for a in answers])
