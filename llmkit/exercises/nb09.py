"""Exercises of notebook 09 (vLLM and SGLang side by side): the checkers, and beside them the cases that test them."""

from __future__ import annotations

import re
from typing import Any

from llmkit.exercises.core import exercise, field_name, Hint

@exercise("09.1", 'the request-level keys as a list of names (or what vllm_to_sglang returned)')
def _ex_09_1(answer: Any) -> str:
    """The request-level keys vllm_to_sglang gives for prompt_logprobs (SGLang's own names for them)."""
    sampling = {"max_new_tokens": 16}
    request = {"return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 1}
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
    field = field_name(sglang)
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


def cases() -> list:
    """Answers that must pass, and answers that must get a hint."""
    from llmkit.exercises.core import Case

    right_1 = [["return_logprob", "logprob_start_len", "top_logprobs_num"],
               ({"max_new_tokens": 16}, {"return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 1}),
               {"return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 1},
               {"top_logprobs_num", "logprob_start_len", " 'return_logprob' "}]
    wrong_1 = [["max_new_tokens"], "return_logprob", ["return_logprob", "top_logprobs_num"], {"max_new_tokens": 16},
               ["return_logprob", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs"],
               ["return_logprob", "logprob_start_len", "top_logprobs_num", "max_tokens"], ["prompt_logprobs"],
               ({"max_new_tokens": 16}, {"return_logprob": True, "top_logprobs_num": 1, "return_text_in_logprobs": True})]
    right_2 = [("cached_tokens", "num_cached_tokens"), ('meta_info["cached_tokens"]', "RequestOutput.num_cached_tokens"),
               ("cached_tokens", "usage.prompt_tokens_details.cached_tokens"), ("cached_tokens", "/metrics"),
               ("cached_tokens", "vllm:prefix_cache_hits")]
    wrong_2 = ["cached_tokens", ("prompt_tokens", "num_cached_tokens"), ("cached_tokens_details", "num_cached_tokens"),
               ("cached_tokens", "cached_tokens"), ("cached_tokens", "cumulative_logprob"), ("e2e_latency", "/metrics"),
               ("cached_tokens",), ("cached_tokens", 3)]
    return ([Case("09.1", a) for a in right_1] + [Case("09.1", a, passes=False) for a in wrong_1]
            + [Case("09.2", a) for a in right_2] + [Case("09.2", a, passes=False) for a in wrong_2])
