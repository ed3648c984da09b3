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

    budget, shape = need("budget", budget), need("shape", shape)
    expected, single = pool_tokens(budget, shape, block_size, tp=2), pool_tokens(budget, shape, block_size, tp=1)
    value = number(answer)
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
