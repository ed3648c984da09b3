"""Exercises of notebook 06 (engine parameters and KV-cache memory): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import re
from typing import Any

from llmkit.exercises.core import Hint, exercise, need, number

# Llama-3.1-8B's published shape (its config.json on the hub): the checks compute from these numbers, not from
# llmkit.kvcache, the module the lesson teaches.
LLAMA_LAYERS, LLAMA_HEADS, LLAMA_KV_HEADS, LLAMA_HEAD_DIM, LLAMA_HIDDEN, BF16 = 32, 32, 8, 128, 4096, 2
LLAMA_BYTES_PER_TOKEN = 2 * LLAMA_LAYERS * LLAMA_KV_HEADS * LLAMA_HEAD_DIM * BF16  # 131,072


@exercise("06.1", "tokens per GiB (a number), or a pair: (per GiB, per GiB per GPU with tensor_parallel_size=2)")
def _ex_06_1(answer: Any) -> str:
    """KV tokens per GiB for Llama-3.1-8B in bf16, and with tp=2."""
    one, two = 2**30 // LLAMA_BYTES_PER_TOKEN, 2**30 // (LLAMA_BYTES_PER_TOKEN // 2)
    pair = isinstance(answer, (list, tuple))
    first = number(answer[0] if pair else answer)
    if first != one:
        if first == 2**30 // (2 * LLAMA_LAYERS * LLAMA_HEADS * LLAMA_HEAD_DIM * BF16):
            raise Hint("you counted all 32 attention heads. Llama-3.1-8B uses grouped-query attention: "
                       "which heads does the KV cache store?")
        if first == 2**30 // (LLAMA_LAYERS * LLAMA_KV_HEADS * LLAMA_HEAD_DIM * BF16):
            raise Hint("twice too many: each layer stores a key and a value vector per KV head.")
        if first == 2**30 // (LLAMA_BYTES_PER_TOKEN * 2):
            raise Hint("half too few: bf16 takes 2 bytes per element, not 4.")
        if first == 2**30 // LLAMA_HIDDEN:
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
    per_request_gib = 8192 * LLAMA_BYTES_PER_TOKEN / 2**30
    pool = 0.9 * 80 - 16 - 2
    value = number(answer)
    if value == int(pool // per_request_gib):
        return ("0.9 × 80 − 16 − 2 = 54 GiB of KV pool, and one full request needs 8192 × 128 KiB = 1 GiB. "
                "Requests that are shorter than 8192 tokens leave room for many more: the pool is shared.")
    if value == pool * 2**30 // LLAMA_BYTES_PER_TOKEN:
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


ESTIMATE = re.compile(r"estimated maximum model length is (\d+)")


@exercise("06.3", "the estimated maximum model length (a number of tokens), with refusal= section 6's error")
def _ex_06_3(answer: Any, refusal: Any = None, budget: Any = None, bytes_per_token: Any = None,
             block_size: Any = None) -> str:
    """vLLM's own estimate of the longest request a KV budget admits, worked out beforehand."""
    found = ESTIMATE.search(str(need("refusal", refusal)))
    if not found:
        raise Hint("this refusal has no estimate in it: pass refusal= the text section 6 printed.")
    estimate = int(found.group(1))
    block = int(number(need("block_size", block_size)))
    blocks = int(number(need("budget", budget))) // (block * int(number(need("bytes_per_token", bytes_per_token))))
    value = number(answer)
    if value == estimate:
        kept = blocks - estimate // block
        return (f"the budget holds {blocks} whole blocks of {block} tokens; vLLM {'keeps ' + str(kept) + ' block back (its null block), so it estimates' if kept else 'counts all of them:'} "
                f"{estimate // block} × {block} = {estimate} tokens. Only whole blocks count, and one request "
                "needs ceil(max_model_len / block_size) of them.")
    if value == blocks * block and estimate == (blocks - 1) * block:
        raise Hint("you counted every block of the pool. The block pool keeps one block for itself (its null "
                   "block), and this vLLM leaves it out of the check.")
    if value % block:
        raise Hint(f"the pool is made of whole blocks of {block} tokens: the estimate is a multiple of that.")
    if value * 4 == estimate or value == estimate * 4:
        raise Hint("compare with the max_model_len section 6 asked for: the budget was a quarter of it.")
    raise Hint("divide the budget by the bytes one block takes (block_size × bytes per token), keep whole blocks, "
               "and think about whether vLLM can use every one of them.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    # A refusal as vLLM 0.32's CPU build prints it: a budget of 8 blocks of 128 tokens, one held back.
    refusal = ("ValueError: To serve at least one request with the model's max seq len (4096), (0.01 GiB KV cache "
               "is needed, which is larger than the available KV cache memory (0.0 GiB). Based on the available "
               "memory, the estimated maximum model length is 896. Try increasing `gpu_memory_utilization` ...")
    kv = {"refusal": refusal, "budget": 8 * 128 * 2048 + 100, "bytes_per_token": 2048, "block_size": 128}
    out = [Case("06.1", a) for a in (8192, "8,192", (8192, 16384))]
    out += [Case("06.1", a, passes=False) for a in (2048, 16384, 4096, 262144, (8192, 8192), 1000)]
    out += [Case("06.2", a) for a in (54, 54.0)]
    out += [Case("06.2", a, passes=False) for a in (72, 56, 70, 62, 80, 442368, 53)]
    out += [Case("06.3", 896, context=kv, says="null block")]
    out += [Case("06.3", a, passes=False, context=kv) for a in (1024, 900, 224, 3584, 0)]
    out += [Case("06.3", 896, passes=False, context={**kv, "refusal": "RuntimeError: Engine core initialization failed"})]
    return out
