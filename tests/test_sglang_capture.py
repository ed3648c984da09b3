"""llmkit's SGLang parsing and mapping against real responses of SGLang 0.5.17.

tests/fixtures/sglang/sglang_capture.json was recorded from a real `python -m sglang.launch_server` on
an H100 (tiny-poet, --attention-backend triton) by scripts/gpu/capture_sglang.py. To re-record, run that
script on a GPU machine in the SGLang environment and copy its output over the file (docs/gpu-run.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmkit import mapping
from llmkit.clients import from_openai, from_sglang

CAPTURE = json.loads((Path(__file__).parent / "fixtures" / "sglang" / "sglang_capture.json").read_text(encoding="utf-8"))


def test_capture_is_from_the_pinned_sglang():
    assert CAPTURE["sglang_version"] == "0.5.17"


def test_single_result_dict():
    g = from_sglang(CAPTURE["generate_single"]["response"], prompt="秋")
    c = g.completions[0]
    assert g.source == "sglang" and c.text and c.finish_reason in ("stop", "length")
    assert c.num_tokens == CAPTURE["generate_single"]["response"]["meta_info"]["completion_tokens"]
    assert g.usage["prompt_tokens"] > 0


def test_n2_is_two_dicts_and_batch_is_prompt_major():
    g = from_sglang(CAPTURE["generate_n2"]["response"])
    assert len(g.completions) == 2 and all(c.finish_reason == "length" and c.num_tokens == 24 for c in g.completions)
    batch = CAPTURE["generate_batch"]["response"]
    assert isinstance(batch, list) and len(batch) == 2 and all("text" in r for r in batch)


def test_finish_reason_dicts():
    length = CAPTURE["generate_length"]["response"]["meta_info"]["finish_reason"]
    assert length == {"type": "length", "length": 4} and mapping.finish_reason(length) == "length"
    stop = CAPTURE["generate_stop"]["response"]["meta_info"]["finish_reason"]
    assert mapping.finish_reason(stop) in ("stop", "length")
    if stop["type"] == "stop":
        assert from_sglang(CAPTURE["generate_stop"]["response"]).completions[0].stop_reason == stop.get("matched")


def test_logprob_triples():
    resp = CAPTURE["generate_logprobs"]["response"]
    g = from_sglang(resp)
    steps = g.completions[0].steps
    assert len(steps) == len(resp["output_ids"]) == 8
    for step, tid in zip(steps, resp["output_ids"]):
        assert step.chosen.token_id == tid and step.chosen.logprob <= 0
        assert len(step.top) == 5 and [c.rank for c in step.top] == [1, 2, 3, 4, 5]
        assert [c.logprob for c in step.top] == sorted((c.logprob for c in step.top), reverse=True)
        assert step.chosen.token  # return_text_in_logprobs=True fills the text slot


def test_stream_is_cumulative_server_sent_events():
    lines = CAPTURE["generate_stream"]["lines"]
    assert lines[-1] == "data: [DONE]"
    texts = [json.loads(line[len("data: "):])["text"] for line in lines[:-1]]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), "each event holds the whole text so far"


def test_bad_requests_are_4xx_and_the_server_kept_serving():
    for case in ("bad_temperature", "bad_max_new_tokens"):
        assert 400 <= CAPTURE[case]["status"] < 500
        assert "error" in json.loads(CAPTURE[case]["response"])
    assert CAPTURE["health_after_bad"] == 200


def test_openai_api_parses_with_the_same_client_code():
    comp = from_openai(CAPTURE["openai_completion"])
    assert len(comp.completions) == 2 and all(c.text for c in comp.completions)
    chat = from_openai(CAPTURE["openai_chat"])
    assert chat.completions[0].text and chat.completions[0].steps


@pytest.mark.parametrize("pair", [p for p in mapping.PARAMS if p.where == "sampling_params"], ids=lambda p: p.sglang)
def test_mapped_sglang_names_exist_in_sglang(pair):
    assert pair.sglang in CAPTURE["sampling_params_fields"]


def test_model_info_names_the_model():
    info = CAPTURE.get("model_info") or CAPTURE["get_model_info"]   # /get_model_info: the deprecated name
    assert info["model_path"].endswith(CAPTURE["model"])


def test_server_info_reports_the_kv_pool():
    if "server_info" not in CAPTURE:
        pytest.skip("this capture predates /server_info (re-record with scripts/gpu/capture_sglang.py)")
    from llmkit.parallel import kv_tokens_from_server_info

    assert kv_tokens_from_server_info(CAPTURE["server_info"]) == CAPTURE["server_info"]["max_total_num_tokens"] > 0


def test_sampling_seed_is_ignored_without_deterministic_inference():
    """The same sampling_seed twice, on a server without --enable-deterministic-inference: two different samples
    (the mapping table says so, and vllm_to_sglang warns)."""
    if "same_seed_twice" not in CAPTURE:
        pytest.skip("this capture predates the seed check (re-record with scripts/gpu/capture_sglang.py)")
    assert CAPTURE["server_info"]["enable_deterministic_inference"] is False
    first, second = CAPTURE["same_seed_twice"]["texts"]
    assert first != second, "the seed did not fix the sample"
