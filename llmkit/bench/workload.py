"""The workload of a benchmark: how many requests, how long each prompt and answer, the same for every engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Workload:
    """What every request of a benchmark looks like: ``num_prompts`` prompts of ``input_len`` tokens, ``output_len`` out."""

    num_prompts: int = 64
    input_len: int = 128
    output_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse sizes that are not positive integers (a zero-length run measures nothing)."""
        for name in ("num_prompts", "input_len", "output_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Workload.{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Workload.seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class SharedPrefixWorkload(Workload):
    """A Workload whose prompts start with one of ``num_prefixes`` prefixes of ``prefix_len`` tokens, shared equally.

    ``input_len`` is the whole prompt (prefix and the unique rest). One prefix: every prompt shares it;
    ``num_prefixes == num_prompts``: no prompt shares anything, the same lengths without the sharing.
    The engines' tools generate these prompts themselves: vLLM's ``prefix_repetition`` dataset and SGLang's
    ``generated-shared-prefix``.
    """

    prefix_len: int = 64
    num_prefixes: int = 1

    def __post_init__(self) -> None:
        """Also refuse a prefix that is not shorter than the prompt, and prefixes that do not divide the prompts."""
        super().__post_init__()
        if isinstance(self.prefix_len, bool) or not isinstance(self.prefix_len, int) or not 0 < self.prefix_len < self.input_len:
            raise ValueError(f"prefix_len must be an integer between 1 and input_len - 1 ({self.input_len - 1}), "
                             f"got {self.prefix_len!r}")
        if isinstance(self.num_prefixes, bool) or not isinstance(self.num_prefixes, int) or self.num_prefixes < 1 \
                or self.num_prompts % self.num_prefixes:
            raise ValueError(f"num_prefixes must be a positive integer that divides num_prompts ({self.num_prompts}), "
                             f"got {self.num_prefixes!r}")

    @property
    def suffix_len(self) -> int:
        """Tokens of each prompt after its prefix."""
        return self.input_len - self.prefix_len


def vocabulary(model: str) -> tuple[int, set[int]]:
    """(vocabulary size, special token ids) of a model's tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return len(tok), set(tok.all_special_ids)


def prompt_token_ids(workload: Workload, vocab_size: int, special_ids: Iterable[int] = ()) -> list[list[int]]:
    """``num_prompts`` seeded prompts of exactly ``input_len`` random ordinary token ids (no tokenizer round trip)."""
    import numpy as np

    special = set(special_ids)
    allowed = np.array([i for i in range(vocab_size) if i not in special])
    if allowed.size == 0:
        raise ValueError("the vocabulary has no ordinary tokens to sample prompts from")
    rng = np.random.default_rng(workload.seed)
    return rng.choice(allowed, size=(workload.num_prompts, workload.input_len)).tolist()


def model_prompts(model: str, workload: Workload) -> list[list[int]]:
    """``prompt_token_ids`` for ``model``'s tokenizer."""
    size, special = vocabulary(model)
    return prompt_token_ids(workload, size, special)
