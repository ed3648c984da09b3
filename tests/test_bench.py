"""llmkit.bench: the roofline and knee against hand-computed Qwen3-0.6B numbers and models transformers builds;
vLLM's own `vllm bench serve` really run against a real vLLM server on tiny-poet, its JSON read into rows; the
streaming client's figures against its own timestamps; offline runners on real engines; records and plots.

Timing *values* are never asserted (they depend on the machine's load); token counts, structure and the
relations that always hold are. The numbers themselves are recorded by notebook 10 and docs/bench-results.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit import bench
from llmkit.config import as_config, model_shape
from llmkit.kvcache import bytes_per_token

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench-results"
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, vocab_size=300)
# Qwen3-0.6B by hand, from its published numbers (not from llmkit): 596,049,920 parameters in bf16, the
# embedding tied to the LM head (so a step reads every parameter once); 28 layers × 8 KV heads × head_dim 128.
QWEN3_WEIGHT_BYTES = 2 * 596_049_920                   # 1,192,099,840
QWEN3_KV_PER_TOKEN = 2 * 28 * 8 * 128 * 2              # K and V, bf16: 114,688


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


# ------------------------------------------------------------------------------------ the roofline and its knee
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


def test_qwen3_roofline_and_knee_by_hand():
    """Qwen3-0.6B: 1.19 GB per step, 114,688 KV bytes per token; the knee at context 1024 is ≈ 10 sequences."""
    assert bench.weight_bytes_read(bench.QWEN3_0_6B) == QWEN3_WEIGHT_BYTES
    assert bench.kv_bytes_per_token(bench.QWEN3_0_6B) == QWEN3_KV_PER_TOKEN
    assert bench.roofline(bench.QWEN3_0_6B, 3.35e12)["tokens_per_s"] == pytest.approx(3.35e12 / QWEN3_WEIGHT_BYTES)
    knee = bench.knee(bench.QWEN3_0_6B, 1024)
    assert knee == pytest.approx(QWEN3_WEIGHT_BYTES / (1024 * QWEN3_KV_PER_TOKEN)) == pytest.approx(10.1507, abs=1e-4)
    assert bench.knee(bench.QWEN3_0_6B, 4096) == pytest.approx(knee / 4)
    # At the knee a step reads the weights twice over, and the bound is half the KV-cache ceiling.
    at = bench.roofline(bench.QWEN3_0_6B, 3.35e12, 1024, batch=1)
    step = QWEN3_WEIGHT_BYTES + knee * 1024 * QWEN3_KV_PER_TOKEN
    assert step == pytest.approx(2 * at["weight_bytes"])
    assert knee * 3.35e12 / step == pytest.approx(0.5 * 3.35e12 / (1024 * QWEN3_KV_PER_TOKEN))


@pytest.mark.parametrize("bad", [dict(bandwidth=0), dict(bandwidth=1e9, batch=0), dict(bandwidth=1e9, context_len=-1)])
def test_roofline_rejects_impossible_input(bad):
    with pytest.raises(ValueError):
        bench.roofline(bench.QWEN3_0_6B, **bad)


def test_knee_needs_a_context():
    with pytest.raises(ValueError, match="no knee"):
        bench.knee(bench.QWEN3_0_6B, 0)


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
    with pytest.raises(ValueError):
        bench.measure_bandwidth("cpu", megabytes=0)


# ------------------------------------------------------------------------------------ workload
def test_workload_validates_and_prompts_are_exact_seeded_and_ordinary():
    for bad in ((4, 0, 8), (0, 4, 8), (4, 4, 2.5), (True, 4, 8)):
        with pytest.raises(ValueError):
            bench.Workload(*bad)
    with pytest.raises(ValueError, match="seed"):
        bench.Workload(4, 4, 4, seed=-1)
    w = bench.Workload(5, 7, 3, seed=1)
    prompts = bench.prompt_token_ids(w, 50, special_ids={0, 1, 2})
    assert len(prompts) == 5 and all(len(p) == 7 for p in prompts)
    assert not {0, 1, 2} & {t for p in prompts for t in p} and max(max(p) for p in prompts) < 50
    assert prompts == bench.prompt_token_ids(w, 50, special_ids={0, 1, 2})
    assert prompts != bench.prompt_token_ids(bench.Workload(5, 7, 3, seed=2), 50, {0, 1, 2})
    with pytest.raises(ValueError, match="no ordinary tokens"):
        bench.prompt_token_ids(w, 3, special_ids={0, 1, 2})


def test_model_prompts_use_the_tokenizer(tiny_poet_dir):
    size, special = bench.vocabulary(str(tiny_poet_dir))
    built = json.loads((tiny_poet_dir / "build_info.json").read_text(encoding="utf-8"))
    assert size == built["vocab_size"] and special
    prompts = bench.model_prompts(str(tiny_poet_dir), bench.Workload(3, 10, 4))
    assert all(0 <= t < size and t not in special for p in prompts for t in p)


# ------------------------------------------------------------------------------------ the tools' arguments and JSON
def test_tool_arguments_describe_the_same_workload():
    w = bench.Workload(32, 64, 128, seed=3)
    v = bench.vllm_bench_serve_args("http://h:1", "/m", w, 8, "/r", "f.json", served_model="served")
    pairs = dict(zip(v[2::2], v[3::2]))
    assert v[:2] == ["bench", "serve"] and "--ignore-eos" in v and "--save-result" in v
    assert (pairs["--random-input-len"], pairs["--random-output-len"], pairs["--num-prompts"],
            pairs["--max-concurrency"], pairs["--random-range-ratio"], pairs["--model"], pairs["--tokenizer"]) == \
        ("64", "128", "32", "8", "0", "served", "/m")
    assert v[v.index("--percentile-metrics") + 1] == "ttft,tpot,itl,e2el", "E2EL too: decode_speed reads it"
    assert v[v.index("--request-rate") + 1] == "inf"
    paced = bench.vllm_bench_serve_args("http://h:1", "/m", w, 8, "/r", "f.json", request_rate=4.0)
    assert paced[paced.index("--request-rate") + 1] == "4.0"
    s = bench.sglang_bench_serving_args("http://h:1", "/m", w, 8, "/r/out.jsonl")
    assert s[:2] == ["-m", "sglang.bench_serving"]
    s_pairs = dict(zip(s[2::2], s[3::2]))
    assert s_pairs["--dataset-name"] == "random-ids", "random would download ShareGPT"
    assert s_pairs["--random-range-ratio"] == "1.0", "SGLang's ratio 1.0 means exact lengths"
    assert s_pairs["--backend"] == "sglang-oai", "the same /v1/completions endpoint as vllm bench serve"
    assert (s_pairs["--random-input-len"], s_pairs["--random-output-len"], s_pairs["--max-concurrency"]) == ("64", "128", "8")


@pytest.mark.parametrize("bad", [dict(concurrency=0), dict(concurrency=2.5), dict(concurrency=True),
                                 dict(request_rate=0), dict(request_rate=-1.0)])
def test_tool_arguments_refuse_impossible_load(bad):
    kwargs = {"concurrency": 1, **bad}
    rate = {"request_rate": kwargs.pop("request_rate")} if "request_rate" in kwargs else {}
    with pytest.raises(ValueError):
        bench.vllm_bench_serve_args("http://h:1", "/m", bench.Workload(), kwargs["concurrency"], "/r", "f", **rate)
    with pytest.raises(ValueError):
        bench.sglang_bench_serving_args("http://h:1", "/m", bench.Workload(), kwargs["concurrency"], "/r/o", **rate)


def committed(name_part: str) -> dict:
    """The committed record whose file name contains ``name_part``."""
    found = [r for r in bench.committed_results(RESULTS) if name_part in Path(r["file"]).name]
    if not found:
        pytest.skip(f"no record matching {name_part!r} under docs/bench-results")
    return found[0]


def test_tool_row_reads_sglang_bench_serving_json():
    """A real sglang.bench_serving result (H100 run): SGLang's own names map onto the common row."""
    raw = committed("h100")["engines"]["sglang"]["validation"]["theirs"][0]
    row = bench.tool_row(bench.SGLANG_TOOL, raw, 256, raw["command"])
    assert row["mean_e2el_ms"] == raw["mean_e2e_latency_ms"] and row["p99_e2el_ms"] == raw["p99_e2e_latency_ms"]
    assert row["total_token_throughput"] == raw["total_throughput"] and row["median_tpot_ms"] == raw["median_tpot_ms"]
    assert row["concurrency"] == raw["max_concurrency"] == 64, "the cap, not SGLang's measured mean concurrency"
    assert row["failed"] == 256 - raw["completed"] and row["raw"] == raw
    with pytest.raises(ValueError, match="tool must be"):
        bench.tool_row("ab", raw, 1)


def test_tool_row_reads_vllm_bench_serve_json():
    """A real `vllm bench serve` result (H100 run): the common row keeps vLLM's own names."""
    raw = committed("h100")["engines"]["vllm"]["validation"]["theirs"][0]
    row = bench.tool_row(bench.VLLM_TOOL, raw, 256)
    assert all(row[k] == raw[k] for k in ("completed", "failed", "output_throughput", "total_token_throughput",
                                           "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms"))
    assert row["concurrency"] == 64 and row["p90_ttft_ms"] is None, "that run asked for p99 only"


# ------------------------------------------------------------------------------------ against real vLLM
@pytest.fixture(scope="module")
def load_rows(vllm_server):
    """`vllm bench serve` at concurrency 1 and 2 against the real tiny-poet server (one sweep for the module)."""
    return bench.sweep(vllm_server, bench.Workload(4, 16, 10), [1, 2])


@pytest.mark.engine
def test_vllm_bench_serve_really_runs_and_its_json_is_read(load_rows, vllm_server):
    """The tool's own figures, read from the JSON it saved: every request, every token, consistent totals."""
    assert [r["concurrency"] for r in load_rows] == [1, 2] and [r["num_prompts"] for r in load_rows] == [4, 8]
    for row in load_rows:
        raw = row["raw"]
        assert row["tool"] == bench.VLLM_TOOL and row["command"].startswith("vllm bench serve --backend openai")
        assert raw["max_concurrency"] == row["concurrency"] and raw["num_prompts"] == row["num_prompts"]
        assert (row["completed"], row["failed"], row["total_output_tokens"]) == (row["num_prompts"], 0,
                                                                                  10 * row["num_prompts"])
        assert row["output_throughput"] == pytest.approx(row["total_output_tokens"] / row["duration"])
        assert 0 < row["mean_ttft_ms"] < row["mean_e2el_ms"] and row["p99_itl_ms"] >= row["median_itl_ms"] >= 0
        assert vllm_server.url in row["command"] and "RESULT_DIR" in row["command"]


@pytest.mark.engine
def test_a_failing_tool_and_a_dead_server_are_clear_errors(vllm_server):
    from llmkit.clients import ServerUnreachable
    from llmkit.lifecycle import free_port

    with pytest.raises(ServerUnreachable):
        bench.run_vllm_bench_serve(f"http://127.0.0.1:{free_port()}", bench.Workload(1, 4, 4), 1)
    with pytest.raises(RuntimeError, match=r"vllm bench serve failed \(exit 1, no result written\)"):
        bench.run_vllm_bench_serve(vllm_server, bench.Workload(1, 4, 4), 1, python=shutil.which("false"))
    with pytest.raises(ValueError, match="no concurrency levels"):
        bench.sweep(vllm_server, bench.Workload(1, 4, 4), [])


def test_sglang_bench_serving_runs_where_sglang_does():
    from llmkit.system import sglang_server_unavailable

    reason = sglang_server_unavailable()
    if reason:
        pytest.skip(reason)
    from llmkit.lifecycle import start_sglang_server

    with start_sglang_server() as server:
        row = bench.run_sglang_bench_serving(server, bench.Workload(4, 16, 10), 2)
        other = bench.run_vllm_bench_serve(server, bench.Workload(4, 16, 10), 2)
    assert (row["completed"], row["failed"], row["total_output_tokens"]) == (4, 0, 40)
    assert (other["completed"], other["total_output_tokens"]) == (4, 40)


@pytest.mark.engine
def test_one_streamed_request_figures_follow_from_its_own_timestamps(vllm_server, tiny_poet_dir):
    prompt = bench.model_prompts(str(tiny_poet_dir), bench.Workload(1, 8, 12))[0]
    one = bench.time_request(vllm_server, prompt, max_tokens=12)
    t = one.chunk_times
    assert (one.output_tokens, one.prompt_tokens, one.finish_reason) == (12, 8, "length")
    assert 1 <= len(t) <= 12 and all(a < b for a, b in zip(t, t[1:])), "one reading per chunk, in order"
    assert one.ttft == t[0] > 0 and one.e2el == t[-1]
    assert one.itl == pytest.approx([b - a for a, b in zip(t, t[1:])])
    assert one.tpot == pytest.approx((t[-1] - t[0]) / 11)
    s = one.summary()
    assert s["ttft_ms"] == pytest.approx(1000 * t[0]) and s["chunks"] == len(t) and s["output_tokens"] == 12
    assert one.text, "the streamed text was kept"


def test_stream_timing_of_few_tokens_and_of_merged_chunks():
    single = bench.StreamTiming((0.05,), 1, 4, "秋", "length")
    assert single.itl == [] and math.isnan(single.tpot) and math.isnan(single.summary()["mean_itl_ms"])
    merged = bench.StreamTiming((0.2, 0.3, 0.6), 5, 4, "秋风起", "length")   # the last chunk held 3 tokens
    assert merged.tpot == pytest.approx(0.1) and merged.itl == pytest.approx([0.1, 0.3])


def test_time_request_refuses_bad_input():
    from llmkit.clients import ServerUnreachable
    from llmkit.lifecycle import free_port

    with pytest.raises(ValueError, match="max_tokens"):
        bench.time_request("http://127.0.0.1:9", [1, 2], max_tokens=0, model="m")
    with pytest.raises(ServerUnreachable):
        bench.time_request(f"http://127.0.0.1:{free_port()}", [1, 2], max_tokens=4, model="m")


@pytest.mark.engine
def test_offline_vllm_generates_exactly_the_workload(llm, tiny_poet_dir):
    w = bench.Workload(6, 9, 7)
    r = bench.offline_vllm(llm, bench.model_prompts(str(tiny_poet_dir), w), w.output_len)
    assert (r["requests"], r["input_tokens"], r["output_tokens"]) == (6, 54, 42)
    assert r["output_tokens_per_s"] == pytest.approx(42 / r["seconds"], rel=1e-3)
    text = bench.offline_vllm(llm, ["写一首诗"] * 3, 5)                  # text prompts work too
    assert (text["requests"], text["output_tokens"]) == (3, 15) and text["input_tokens"] > 0


def test_offline_transformers_generates_exactly_the_workload(tiny_poet_dir):
    model = bench.load_transformers(str(tiny_poet_dir))
    w = bench.Workload(5, 6, 9)
    r = bench.offline_transformers(model, bench.model_prompts(str(tiny_poet_dir), w), w.output_len, batch_size=2)
    assert (r["requests"], r["input_tokens"], r["output_tokens"], r["batch_size"]) == (5, 30, 45, 2)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            bench.offline_transformers(model, [[1]], 2, batch_size=bad)
    with pytest.raises(ValueError, match="no prompts"):
        bench.offline_transformers(model, [], 2)


def test_run_offline_reports_startup_and_a_bad_model_clearly(tiny_poet_dir, tmp_path):
    r = bench.run_offline("transformers", str(tiny_poet_dir), bench.Workload(2, 4, 5), batch_size=2)
    assert r["output_tokens"] == 10 and r["startup_s"] >= 0 and r["workload"]["output_len"] == 5
    with pytest.raises(RuntimeError, match="transformers benchmark process failed"):
        bench.run_offline("transformers", str(tmp_path), bench.Workload(1, 2, 2))
    with pytest.raises(ValueError, match="engine must be"):
        bench.run_offline("tgi")


def test_the_command_line_refuses_an_unknown_engine():
    done = subprocess.run([sys.executable, "-m", "llmkit.bench", "offline", "--engine", "tgi", "--model", "m"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "invalid choice: 'tgi'" in done.stderr


# ------------------------------------------------------------------------------------ records, tables and plots
def test_save_and_load_keep_nan_and_inf_as_json_can(tmp_path):
    path = bench.save(tmp_path / "r" / "x.json", {"a": float("nan"), "b": [float("inf")], "c": {"d": 1.5}})
    assert json.loads(path.read_text()) == {"a": None, "b": ["inf"], "c": {"d": 1.5}} == bench.load(path)


def test_committed_results_load_label_and_summarize():
    """Every committed record has the environment and a summary row per engine; a missing folder is an error."""
    records = bench.committed_results(RESULTS)
    assert records, "docs/bench-results holds the course's records"
    for record in records:
        assert record["environment"]["date"] and record["workload"]["num_prompts"] > 0
        assert record["environment"]["date"] in bench.label(record) and Path(record["file"]).is_file()
        assert set(bench.summary_table(record).index) == set(record["engines"])
    with pytest.raises(FileNotFoundError):
        bench.committed_results(RESULTS / "missing")


def test_the_gpu_record_shows_only_what_engines_and_their_tools_measured():
    """Format 1 (the H100 run): the tools' runs at concurrency 64, offline and start-up; not the old client."""
    record = committed("h100")
    table = bench.summary_table(record)
    assert {"vllm", "sglang", "transformers"} <= set(table.index), "the GPU run covers all three engines"
    theirs = {e: [raw["output_throughput"] for raw in record["engines"][e]["validation"]["theirs"]]
              for e in ("vllm", "sglang")}
    assert table.loc["vllm", "peak tok/s (vllm bench serve)"] == max(theirs["vllm"])
    assert table.loc["sglang", "peak tok/s (sglang.bench_serving)"] == max(theirs["sglang"])
    assert table.loc["vllm", "offline tok/s"] == record["engines"]["vllm"]["offline"]["output_tokens_per_s"]
    assert math.isnan(table.loc["vllm", "batch-1 tok/s"]), "the removed client's batch-1 run is not shown"
    assert bench.tool_sweeps(record) == {}, "format 1 has no tool sweep"


@pytest.mark.engine
def test_a_format_2_record_reads_the_tools_rows(load_rows, tiny_poet_dir):
    """summary_table and tool_sweeps on a record built from real tool rows: figures straight from their JSON."""
    record = {"format": 2, "environment": {"date": "today", "cpus": 2}, "model_shape": as_config(model_shape(tiny_poet_dir)),
              "workload": {"num_prompts": 4, "input_len": 16, "output_len": 10, "seed": 0}, "decode_len": 10,
              "bandwidth": {"measured": 3e10},
              "engines": {"vllm": {"batch1": {bench.VLLM_TOOL: load_rows[0]}, "sweep": {bench.VLLM_TOOL: load_rows}}}}
    table = bench.summary_table(record)
    raw = [r["raw"] for r in load_rows]
    assert table.loc["vllm", "peak tok/s (vllm bench serve)"] == max(r["output_throughput"] for r in raw)
    first = raw[0]
    by_hand = first["total_output_tokens"] / (first["mean_e2el_ms"] / 1000 * first["completed"])
    assert table.loc["vllm", "batch-1 tok/s"] == pytest.approx(by_hand)
    assert list(bench.tool_sweeps(record)) == ["vllm · vllm bench serve"]


def test_plots_draw_the_knee_and_the_sweep(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = bench.plot_roofline(bench.QWEN3_0_6B, 3.35e12, 989e12, context_len=1024)
    knee_lines = [ln for ln in fig.axes[0].lines if "knee" in ln.get_label()]
    assert len(knee_lines) == 1 and knee_lines[0].get_xdata()[0] == pytest.approx(
        QWEN3_WEIGHT_BYTES / (1024 * QWEN3_KV_PER_TOKEN))
    assert len(fig.axes[0].lines) == 4, "memory bound, KV ceiling, knee, compute bound"
    flat = bench.plot_roofline(bench.QWEN3_0_6B, 3.35e12, measured={"a": {1: 500.0, 8: 3000.0}})
    assert [ln.get_label() for ln in flat.axes[0].lines][1:] == ["a (measured)"], "no knee at context 0"
    rows = [{"concurrency": c, "output_throughput": 100.0 * c, "median_tpot_ms": 10.0 + c} for c in (4, 1, 2)]
    fig = bench.plot_sweep({"a": rows, "b": rows}, title="t")
    assert len(fig.axes[0].lines) == 2 and list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 4]
    fig.savefig(tmp_path / "sweep.png")
    plt.close("all")


def test_suite_records_every_engine_it_ran(tiny_poet_dir, tmp_path):
    """The suite writes its record as it goes: format 2, the model's shape, the last engine's results."""
    out = tmp_path / "record.json"
    bench.suite(["transformers"], str(tiny_poet_dir), out, workload=bench.Workload(2, 4, 8), decode_len=8,
                log=lambda m: None)
    record = bench.load(out)
    runs = record["engines"]["transformers"]
    assert record["format"] == 2 and record["model_shape"]["torch_dtype"] == "bfloat16"
    assert runs["offline_bs1"]["output_tokens"] == 2 * 8 and runs["offline_bs16"]["batch_size"] == 16
    assert record["environment"]["date"] and record["bandwidth"]["measured"] > 0
    assert "transformers" in bench.summary_table(record).index
    with pytest.raises(ValueError, match="unknown engine"):
        bench.suite(["tgi"], str(tiny_poet_dir), tmp_path / "x.json")


def test_merge_joins_engines_and_refuses_different_workloads():
    def run(engine, workload):
        return {"format": 2, "environment": {"date": engine}, "model_shape": {}, "workload": workload, "decode_len": 8,
                "engines": {engine: {"version": "1"}}}

    merged = bench.merge([run("vllm", {"n": 1}), run("sglang", {"n": 1})])
    assert set(merged["engines"]) == {"vllm", "sglang"} and merged["environment"]["runs"] == ["vllm", "sglang"]
    with pytest.raises(ValueError, match="different workload"):
        bench.merge([run("vllm", {"n": 1}), run("sglang", {"n": 2})])
    with pytest.raises(ValueError, match="nothing to merge"):
        bench.merge([])
