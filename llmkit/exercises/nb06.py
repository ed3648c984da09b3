"""Exercises of notebook 06 (engine parameters and KV-cache memory): the checkers, and beside them the cases that test them."""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import exercise, Hint, need, number

def _llama_shape():
    """The KV shape of Llama-3.1-8B (bf16) from llmkit's reference configs."""
    from llmkit.config import model_shape
    from llmkit.kvcache import REFERENCE_CONFIGS

    return model_shape(REFERENCE_CONFIGS["Llama-3.1-8B"])


@exercise("06.1", "tokens per GiB (a number), or a pair: (per GiB, per GiB per GPU with tensor_parallel_size=2)")
def _ex_06_1(answer: Any) -> str:
    """KV tokens per GiB for Llama-3.1-8B in bf16, and with tp=2."""
    from llmkit.kvcache import bytes_per_token

    shape = _llama_shape()
    one, two = 2**30 // bytes_per_token(shape), 2**30 // bytes_per_token(shape, tp=2)
    pair = isinstance(answer, (list, tuple))
    first = number(answer[0] if pair else answer)
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
    if pair and len(answer) > 1 and number(answer[1]) != two:
        raise Hint("the first number is right. With tensor_parallel_size=2, how many KV heads does each GPU store?")
    return ("2 × 32 layers × 8 KV heads × 128 × 2 bytes = 128 KiB per token. With tensor_parallel_size=2 each GPU "
            "stores half of the KV heads, so it holds twice as many tokens per GiB.")


@exercise("06.2", "how many full 8192-token requests fit at once (a number)")
def _ex_06_2(answer: Any) -> str:
    """Full 8192-token Llama-3.1-8B requests in an 80 GiB GPU at 0.9 utilization."""
    from llmkit.kvcache import bytes_per_token

    per_request_gib = 8192 * bytes_per_token(_llama_shape()) / 2**30
    pool = 0.9 * 80 - 16 - 2
    value = number(answer)
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


@exercise("06.3", "the largest max_model_len that fits (a multiple of 16)")
def _ex_06_3(answer: Any, budget: Any = None, shape: Any = None, block_size: int = 16) -> str:
    """The largest max_model_len that fits a KV budget."""
    from llmkit.kvcache import max_model_len_fits, pool_tokens

    budget, shape = need("budget", budget), need("shape", shape)
    value = int(number(answer))
    if value != number(answer) or value <= 0 or value % 16:
        raise Hint("give a positive whole number of tokens that is a multiple of 16.")
    largest = max((n for n in range(16, pool_tokens(budget, shape, block_size) + block_size + 1, 16)
                   if max_model_len_fits(budget, shape, n, block_size)), default=0)
    if value == largest:
        return (f"the pool holds {pool_tokens(budget, shape, block_size):,} tokens, and one request of that length "
                "fits exactly. vLLM's own estimate in its error message is a little lower: it keeps one block back.")
    if max_model_len_fits(budget, shape, value, block_size):
        raise Hint("that fits, but a larger max_model_len fits too: search upwards.")
    raise Hint("that does not fit: max_model_len_fits(...) is False for it. Search downwards.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.config import model_shape
    from llmkit.exercises.core import Case

    # 4,096 bytes of KV per token (float32), and a budget of 256 tokens of it.
    shape = model_shape({"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                         "hidden_size": 256, "torch_dtype": "float32"})
    kv = {"budget": 256 * 4096, "shape": shape, "block_size": 16}
    out = [Case("06.1", a) for a in (8192, "8,192", (8192, 16384))]
    out += [Case("06.1", a, passes=False) for a in (2048, 16384, 4096, 262144, (8192, 8192), 1000)]
    out += [Case("06.2", a) for a in (54, 54.0)]
    out += [Case("06.2", a, passes=False) for a in (72, 56, 70, 62, 80, 442368, 53)]
    out += [Case("06.3", 256, context=kv)]
    out += [Case("06.3", a, passes=False, context=kv) for a in (240, 272, 250, 0)]
    return out
