"""Record real responses of an SGLang server, for llmkit's parsing tests on machines without a GPU.

Run on a GPU machine in the SGLang environment (the course's GPU run does this):

    python scripts/gpu/capture_sglang.py OUT_DIR

It starts `python -m sglang.launch_server` on the course model through llmkit.lifecycle, sends the
requests the course teaches (native /generate: single, batch, n=2, logprobs, streaming; the same
sampling_seed twice; /health; /model_info and /server_info; OpenAI completions and chat; a bad request),
and writes them to OUT_DIR/sglang_capture.json together with the SGLang version. Copy it to
tests/fixtures/sglang/ to re-record.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import requests

from llmkit import default_model, sglang_kwargs
from llmkit.lifecycle import start_sglang_server

CHAT = "<|im_start|>user\n写一首关于秋天的诗<|im_end|>\n<|im_start|>assistant\n"


def main(out: Path) -> None:
    """Start the server, record every case, stop the server."""
    import sglang
    from sglang.srt.sampling.sampling_params import SamplingParams

    out.mkdir(parents=True, exist_ok=True)
    model = default_model()
    t0 = time.time()
    with start_sglang_server(model, **sglang_kwargs()) as server:
        ready = time.time() - t0
        url = server.url
        cases = {
            "generate_single": {"text": CHAT, "sampling_params": {"temperature": 0.7, "max_new_tokens": 48, "sampling_seed": 1}},
            "generate_batch": {"text": ["写一首七言绝句", "写一首关于秋天的诗"],
                               "sampling_params": {"temperature": 0.7, "max_new_tokens": 32}},
            "generate_n2": {"text": CHAT, "sampling_params": {"temperature": 0.8, "max_new_tokens": 24, "n": 2}},
            "generate_logprobs": {"text": CHAT, "sampling_params": {"temperature": 1.0, "max_new_tokens": 8},
                                  "return_logprob": True, "top_logprobs_num": 5, "return_text_in_logprobs": True},
            "generate_stop": {"text": CHAT, "sampling_params": {"temperature": 0.7, "max_new_tokens": 64, "stop": ["。"]}},
            "generate_length": {"text": CHAT, "sampling_params": {"temperature": 0.7, "max_new_tokens": 4}},
        }
        record = {"sglang_version": sglang.__version__, "model": Path(model).name, "ready_seconds": round(ready, 1),
                  # a msgspec Struct in 0.5.17 (sglang/srt/sampling/sampling_params.py), a dataclass before
                  "sampling_params_fields": sorted(getattr(SamplingParams, "__struct_fields__", None)
                                                   or (f.name for f in __import__("dataclasses").fields(SamplingParams)))}
        for name, body in cases.items():
            r = requests.post(url + "/generate", json=body, timeout=120)
            record[name] = {"request": body, "status": r.status_code, "response": r.json()}
        r = requests.post(url + "/generate", json={"text": CHAT, "sampling_params": {"max_new_tokens": 24}, "stream": True},
                          stream=True, timeout=120)
        record["generate_stream"] = {"status": r.status_code, "lines": [ln for ln in r.iter_lines(decode_unicode=True) if ln]}
        for name, body in {"bad_temperature": {"text": CHAT, "sampling_params": {"temperature": -1}},
                           "bad_max_new_tokens": {"text": CHAT, "sampling_params": {"max_new_tokens": -5}}}.items():
            r = requests.post(url + "/generate", json=body, timeout=60)
            record[name] = {"request": body, "status": r.status_code, "response": r.text[:2000]}
        record["health_after_bad"] = requests.get(url + "/health", timeout=10).status_code
        record["model_info"] = requests.get(url + "/model_info", timeout=10).json()
        info = requests.get(url + "/server_info", timeout=10).json()
        record["server_info"] = {k: info.get(k) for k in ("max_total_num_tokens", "page_size", "schedule_policy",
                                                          "random_seed", "enable_deterministic_inference",
                                                          "incremental_streaming_output", "version")}
        seeded = {"text": CHAT, "sampling_params": {"temperature": 1.0, "max_new_tokens": 24, "sampling_seed": 7}}
        record["same_seed_twice"] = {"request": seeded, "texts": [
            requests.post(url + "/generate", json=seeded, timeout=120).json()["text"] for _ in range(2)]}
        served = requests.get(url + "/v1/models", timeout=10).json()
        record["v1_models"] = served
        name = served["data"][0]["id"]
        record["openai_completion"] = requests.post(url + "/v1/completions", timeout=60, json={
            "model": name, "prompt": "写一首七言绝句", "max_tokens": 32, "temperature": 0.7, "n": 2, "logprobs": 3}).json()
        record["openai_chat"] = requests.post(url + "/v1/chat/completions", timeout=60, json={
            "model": name, "messages": [{"role": "user", "content": "写一首关于秋天的诗"}], "max_tokens": 48,
            "temperature": 0.7, "logprobs": True, "top_logprobs": 3}).json()
    (out / "sglang_capture.json").write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"recorded {len(record)} entries from SGLang {sglang.__version__}; server ready in {ready:.0f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/sglang"))
