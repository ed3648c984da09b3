"""Exercises of notebook 16 (quantization): the checkers, and beside them the cases that test them.

Expected answers come from Qwen3-0.6B's shapes multiplied out here by hand (16.1) and from the budget, block size
and bytes per token the notebook passes in (16.2); never from ``llmkit.quant``, the module the lesson teaches.
"""

from __future__ import annotations

from typing import Any

from llmkit.exercises.core import Hint, exercise, need, number

# Qwen3-0.6B (config.json): hidden 1024, 28 layers, 16 query heads and 8 KV heads of 128, MLP 3072, vocab 151,936,
# tied embeddings. Weights read per decode step: the layers and the (tied) head, each once.
_H, _LAYERS, _Q, _KV, _MLP, _VOCAB = 1024, 28, 16 * 128, 8 * 128, 3072, 151_936
_LAYER_PARAMS = _H * _Q + 2 * _H * _KV + _Q * _H + 3 * _H * _MLP + 2 * _H + 2 * 128   # attention, MLP, norms
_WEIGHTS_READ = _LAYERS * _LAYER_PARAMS + _VOCAB * _H + _H                          # + the tied head, final norm
_KV_PER_TOKEN = 2 * _LAYERS * _KV                                                    # elements; × bytes each


def _first_batch_kv_wins(context: int = 1024) -> int:
    """Smallest batch where halving the KV bytes saves more than halving the weight bytes."""
    batch = 1
    while batch * context * _KV_PER_TOKEN <= _WEIGHTS_READ:
        batch += 1
    return batch


@exercise("16.1", "a batch size: the smallest one where an fp8 KV cache beats fp8 weights")
def _ex_16_1(answer: Any) -> str:
    """Qwen3-0.6B at context 1,024: the smallest batch where fp8 KV (bf16 weights) gains more than fp8 weights."""
    expected = _first_batch_kv_wins()
    got = number(answer)
    if got == expected:
        return (f"from batch {expected} on the step reads more KV cache than weights, so halving the KV cache saves "
                "more: it is notebook 10's knee, rounded up")
    if got == expected - 1:
        raise Hint("one too small: at that batch the weights are still the larger part of what a step reads.")
    if got < expected:
        raise Hint("at that batch the weights still dominate a step's reads. Compare the weight bytes with batch × "
                   "context × KV bytes per token: the KV cache must be the larger part.")
    raise Hint("the fp8 KV cache already wins at a smaller batch. Look for the first batch where batch × 1,024 × KV "
               "bytes per token exceeds the weight bytes (notebook 10's knee).")


@exercise("16.2", "a number of tokens: the fp8 KV pool for the notebook's budget")
def _ex_16_2(answer: Any, budget: Any = None, block_size: Any = None, bf16_bytes_per_token: Any = None) -> str:
    """The fp8 pool for ``budget`` bytes in whole blocks of ``block_size``, at half the bf16 bytes per token."""
    budget, block = int(need("budget", budget)), int(need("block_size", block_size))
    per_token = int(need("bf16_bytes_per_token", bf16_bytes_per_token)) // 2
    expected = budget // (block * per_token) * block
    got = number(answer)
    if got == expected:
        return f"{expected:,} tokens: one byte per element is half the bytes per token, so twice the tokens in whole blocks"
    if got == expected // 2:
        raise Hint("that is the bf16 pool: an fp8 cache keeps one byte per element instead of two.")
    if got == budget // per_token:
        raise Hint("right bytes, but the pool is cut into whole blocks: round down to a multiple of the block size.")
    if got == 2 * expected:
        raise Hint("too many: fp8 halves the bytes per token once, it does not quarter them.")
    raise Hint("divide the budget by (block size × fp8 bytes per token), round down, and multiply by the block size.")


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    ctx = {"budget": 16 * 2**20, "block_size": 128, "bf16_bytes_per_token": 2048}   # 16 MiB, tiny-poet's 2 KB
    out = [Case("16.1", a) for a in (11, "11", 11.0)]
    out += [Case("16.1", a, passes=False) for a in (10, 1, 5, 12, 128)]
    out += [Case("16.2", a, context=ctx) for a in (16384, "16,384")]
    out += [Case("16.2", a, passes=False, context=ctx) for a in (8192, 32768, 16000, 16383)]
    out += [Case("16.2", 16384, passes=False)]                        # no budget passed: a hint, not a crash
    out += [Case("16.2", 16256, context={**ctx, "budget": 16 * 2**20 - 1})]   # not a whole number of blocks
    return out
