"""vLLM ↔ SGLang: one table of equivalent names, and converters built from it.

The notebooks' comparison table is generated from ``PARAMS`` and ``RESULTS``, so the table, the
converters and their tests can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Pair:
    """One concept with its name in each engine; ``where`` says which object carries it in SGLang."""

    concept: str
    vllm: str | None
    sglang: str | None
    where: str = "sampling_params"
    note: str = ""


PARAMS: tuple[Pair, ...] = (
    Pair("tokens to generate", "max_tokens", "max_new_tokens", note="vLLM's default is 16; SGLang's is 128"),
    Pair("randomness", "temperature", "temperature", note="0 means greedy in both"),
    Pair("nucleus sampling", "top_p", "top_p"),
    Pair("top-k sampling", "top_k", "top_k", note="'off' is 0 in vLLM 0.32 (-1 also accepted), -1 in SGLang"),
    Pair("min-p sampling", "min_p", "min_p"),
    Pair("repetition penalty", "repetition_penalty", "repetition_penalty"),
    Pair("presence penalty", "presence_penalty", "presence_penalty"),
    Pair("frequency penalty", "frequency_penalty", "frequency_penalty"),
    Pair("samples per prompt", "n", "n", note="SGLang returns them as separate result dicts"),
    Pair("stop strings", "stop", "stop"),
    Pair("stop token ids", "stop_token_ids", "stop_token_ids"),
    Pair("keep generating past EOS", "ignore_eos", "ignore_eos"),
    Pair("per-request seed", "seed", "sampling_seed",
         note="SGLang ignores sampling_seed unless its server runs with --enable-deterministic-inference "
              "(then unseeded requests use 42); otherwise sampling draws from one server-wide RNG seeded by "
              "--random-seed (sglang/srt/sampling/sampling_batch_info.py)"),
    Pair("top logprobs per token", "logprobs", "top_logprobs_num", where="request",
         note="SGLang also needs return_logprob=True"),
    Pair("prompt logprobs", "prompt_logprobs", "logprob_start_len", where="request",
         note="SGLang: return_logprob=True and logprob_start_len=0"),
    Pair("streaming", "(AsyncLLM / server stream=True)", "stream", where="request"),
)

RESULTS: tuple[Pair, ...] = (
    Pair("one prompt's result", "RequestOutput", "dict", where="result"),
    Pair("one sample", "CompletionOutput in .outputs", "one dict per sample (n>1: a list)", where="result"),
    Pair("generated text", ".outputs[i].text", '["text"]', where="result"),
    Pair("generated token ids", ".outputs[i].token_ids", '["output_ids"]', where="result"),
    Pair("why it stopped", '.finish_reason: "stop" | "length" | "abort" | "error" | "repetition"',
         '["meta_info"]["finish_reason"]: {"type": "stop"|"length", ...}', where="result"),
    Pair("what stopped it", ".stop_reason", '["meta_info"]["finish_reason"]["matched"]', where="result"),
    Pair("prompt length", "len(.prompt_token_ids)", '["meta_info"]["prompt_tokens"]', where="result"),
    Pair("answer length", "len(.outputs[i].token_ids)", '["meta_info"]["completion_tokens"]', where="result"),
    Pair("tokens served from cache", ".num_cached_tokens", '["meta_info"]["cached_tokens"]', where="result"),
    Pair("chosen-token logprobs", ".logprobs[t][token_id].logprob", '["meta_info"]["output_token_logprobs"][t][0]',
         where="result", note="SGLang: [logprob, token_id, text] triples"),
    Pair("top candidates", ".logprobs[t] (dict of Logprob)", '["meta_info"]["output_top_logprobs"][t]', where="result"),
)


class UnmappedParameter(KeyError):
    """A parameter with no counterpart in the other engine."""


def _index(attr: str) -> dict[str, Pair]:
    """PARAMS keyed by one engine's names."""
    return {getattr(p, attr): p for p in PARAMS if getattr(p, attr) and not getattr(p, attr).startswith("(")}


class SeedIgnored(UserWarning):
    """A per-request seed that SGLang ignores unless its server runs with --enable-deterministic-inference."""


def vllm_to_sglang(params: Mapping[str, Any], deterministic_server: bool = False) -> tuple[dict, dict]:
    """SamplingParams keyword arguments → (SGLang ``sampling_params``, request-level arguments).

    A ``seed`` becomes ``sampling_seed``; unless ``deterministic_server`` says the SGLang server runs with
    ``--enable-deterministic-inference``, a ``SeedIgnored`` warning says that SGLang will ignore it.
    """
    if params.get("seed") is not None and not deterministic_server:
        import warnings

        warnings.warn("SGLang ignores sampling_seed unless the server runs with --enable-deterministic-inference: "
                      "without it the same seed does not reproduce a sample", SeedIgnored, stacklevel=2)
    by_vllm = _index("vllm")
    sampling: dict[str, Any] = {}
    request: dict[str, Any] = {}
    for name, value in params.items():
        if name not in by_vllm:
            raise UnmappedParameter(f"{name!r} has no SGLang counterpart in llmkit.mapping.PARAMS")
        pair = by_vllm[name]
        if name == "top_k" and value in (0, -1):
            value = -1
        if name == "logprobs":
            if value is None:
                continue
            request.update(return_logprob=True, top_logprobs_num=value, return_text_in_logprobs=True)
        elif name == "prompt_logprobs":
            if value is None:
                continue
            request.update(return_logprob=True, logprob_start_len=0, top_logprobs_num=max(value, request.get("top_logprobs_num", 0)))
        else:
            (sampling if pair.where == "sampling_params" else request)[pair.sglang] = value
    return sampling, request


def sglang_to_vllm(sampling: Mapping[str, Any], request: Mapping[str, Any] | None = None) -> dict:
    """SGLang ``sampling_params`` (and request-level logprob switches) → SamplingParams kwargs."""
    by_sglang = _index("sglang")
    out: dict[str, Any] = {}
    for name, value in sampling.items():
        if name not in by_sglang or by_sglang[name].where != "sampling_params":
            raise UnmappedParameter(f"{name!r} has no vLLM counterpart in llmkit.mapping.PARAMS")
        if name == "top_k" and value == -1:
            value = 0
        out[by_sglang[name].vllm] = value
    request = request or {}
    if request.get("return_logprob"):
        out["logprobs"] = request.get("top_logprobs_num", 0)
        if request.get("logprob_start_len") == 0:
            out["prompt_logprobs"] = request.get("top_logprobs_num", 0)
    return out


def finish_reason(value: Any) -> str | None:
    """One finish reason from either engine: SGLang's dict becomes its "type" string."""
    if isinstance(value, Mapping):
        return value.get("type")
    return value


def table(rows: tuple[Pair, ...] = PARAMS):
    """The mapping as a pandas DataFrame (concept, vLLM, SGLang, where, note)."""
    import pandas as pd

    return pd.DataFrame([{"concept": p.concept, "vLLM": p.vllm or "—", "SGLang": p.sglang or "—",
                          "where (SGLang)": p.where, "note": p.note} for p in rows])
