"""llmkit.mapping: the one vLLM ↔ SGLang table, and converters that follow it."""

from __future__ import annotations

import pytest

from llmkit import mapping


def test_max_tokens_and_logprobs_map_to_sglang():
    sampling, request = mapping.vllm_to_sglang({"max_tokens": 64, "temperature": 0.7, "top_k": 0, "logprobs": 5,
                                                "seed": 3, "n": 2, "stop": ["。"]}, deterministic_server=True)
    assert sampling == {"max_new_tokens": 64, "temperature": 0.7, "top_k": -1, "sampling_seed": 3, "n": 2,
                        "stop": ["。"]}
    assert request == {"return_logprob": True, "top_logprobs_num": 5, "return_text_in_logprobs": True}


def test_a_seed_is_flagged_unless_the_server_is_deterministic():
    """SGLang reads sampling_seed only under --enable-deterministic-inference (sglang 0.5.17,
    srt/sampling/sampling_batch_info.py): the table says so, and the converter warns."""
    seed = next(p for p in mapping.PARAMS if p.vllm == "seed")
    assert seed.sglang == "sampling_seed" and "--enable-deterministic-inference" in seed.note
    with pytest.warns(mapping.SeedIgnored, match="--enable-deterministic-inference"):
        sampling, _ = mapping.vllm_to_sglang({"seed": 7, "temperature": 1.0})
    assert sampling["sampling_seed"] == 7
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mapping.vllm_to_sglang({"seed": 7}, deterministic_server=True)
        mapping.vllm_to_sglang({"temperature": 1.0})


def test_round_trip_is_identity_for_every_sampling_parameter():
    params = {p.vllm: 1 for p in mapping.PARAMS if p.where == "sampling_params"}
    sampling, request = mapping.vllm_to_sglang(params, deterministic_server=True)
    assert mapping.sglang_to_vllm(sampling, request) == params


def test_prompt_logprobs_need_start_len_zero():
    _, request = mapping.vllm_to_sglang({"prompt_logprobs": 2})
    assert request["logprob_start_len"] == 0 and request["return_logprob"] is True
    assert mapping.sglang_to_vllm({}, request) == {"logprobs": 2, "prompt_logprobs": 2}


def test_unknown_names_are_refused():
    with pytest.raises(mapping.UnmappedParameter, match="best_of"):
        mapping.vllm_to_sglang({"best_of": 2})
    with pytest.raises(mapping.UnmappedParameter):
        mapping.sglang_to_vllm({"json_schema": "{}"})


def test_finish_reason_dict_becomes_string():
    assert mapping.finish_reason({"type": "length", "length": 64}) == "length"
    assert mapping.finish_reason("stop") == "stop" and mapping.finish_reason(None) is None


def test_table_is_generated_from_the_mapping():
    df = mapping.table()
    assert len(df) == len(mapping.PARAMS)
    row = df[df["vLLM"] == "max_tokens"].iloc[0]
    assert row["SGLang"] == "max_new_tokens"
    assert len(mapping.table(mapping.RESULTS)) == len(mapping.RESULTS)


def test_the_vllm_names_exist_in_the_installed_vllm():
    vllm = pytest.importorskip("vllm")
    fields = set(vllm.SamplingParams.__struct_fields__) if hasattr(vllm.SamplingParams, "__struct_fields__") \
        else set(vars(vllm.SamplingParams()))
    for p in mapping.PARAMS:
        if p.where == "sampling_params" or p.vllm in ("logprobs", "prompt_logprobs"):
            assert p.vllm in fields, p.vllm
