"""The full benchmark behind notebook 10 (the GPU run): engine after engine, the record saved after every step.

Per engine: offline throughput in a fresh process (``run_offline``); then one server, started once, and the
engines' own load tools against it: batch 1 (a few long answers at concurrency 1) and a concurrency sweep.
vLLM is measured with ``vllm bench serve``; SGLang with ``sglang.bench_serving`` and with ``vllm bench serve``
(it speaks to any OpenAI-compatible server). ``transformers`` is the no-engine baseline, offline only.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from llmkit.bench.offline import run_offline
from llmkit.bench.results import FORMAT, engine_version, environment, save
from llmkit.bench.roofline import gpu_spec, measure_bandwidth
from llmkit.bench.tools import SGLANG_TOOL, VLLM_TOOL, run_sglang_bench_serving, run_vllm_bench_serve, sweep
from llmkit.bench.workload import Workload
from llmkit.config import as_config, model_shape

SUITE_ENGINES = ("vllm", "sglang", "transformers")


def tools_for(engine: str) -> dict[str, Callable[..., dict]]:
    """The load tools run against an engine's server: its own first, then vLLM's (which drives any server)."""
    if engine == "vllm":
        return {VLLM_TOOL: run_vllm_bench_serve}
    if engine == "sglang":
        return {SGLANG_TOOL: run_sglang_bench_serving, VLLM_TOOL: run_vllm_bench_serve}
    raise ValueError(f"no server benchmark for {engine!r}: choose vllm or sglang")


def _transformers(entry: dict, model: str, workload: Workload, decode_len: int, step: Callable[[], None],
                  log: Callable[[str], None]) -> None:
    """The no-engine baseline: batch 1 on long answers, then a static batch of 16."""
    for bs, w in ((1, Workload(2, workload.input_len, decode_len)), (16, Workload(16, workload.input_len, 128))):
        entry[f"offline_bs{bs}"] = run_offline("transformers", model, w, batch_size=bs)
        log(f"   batch {bs}: {entry[f'offline_bs{bs}']['output_tokens_per_s']:.0f} tok/s")
        step()


def _served(entry: dict, engine: str, model: str, workload: Workload, decode_len: int,
            concurrencies: Sequence[int], step: Callable[[], None], log: Callable[[str], None]) -> None:
    """One server, started once: each tool at batch 1 and over the concurrency sweep."""
    from llmkit.lifecycle import start_sglang_server, start_vllm_server

    start = start_vllm_server if engine == "vllm" else start_sglang_server
    t0 = time.perf_counter()
    with start(model, timeout=900) as server:
        entry["server_startup_s"] = round(time.perf_counter() - t0, 1)
        log(f"   server ready in {entry['server_startup_s']} s")
        entry["batch1"], entry["sweep"] = {}, {}
        for tool, run in tools_for(engine).items():
            entry["batch1"][tool] = run(server, Workload(4, workload.input_len, decode_len, workload.seed), 1)
            log(f"   {tool}, batch 1: median TPOT {entry['batch1'][tool]['median_tpot_ms']:.2f} ms")
            step()
            entry["sweep"][tool] = sweep(server, workload, concurrencies, run=run)
            log(f"   {tool}: " + ", ".join(f"c={r['concurrency']}: {r['output_throughput']:.0f} tok/s"
                                          for r in entry["sweep"][tool]))
            step()


def suite(engines: Sequence[str], model: str, out: str | Path, *, concurrencies: Sequence[int] = (1, 4, 16, 64, 256),
          workload: Workload = Workload(256, 128, 256), decode_len: int = 512, offline: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Everything notebook 10 shows, at full size, for each engine in turn; written to ``out`` as it goes."""
    unknown = set(engines) - set(SUITE_ENGINES)
    if unknown:
        raise ValueError(f"unknown engine(s) {sorted(unknown)}: choose from {', '.join(SUITE_ENGINES)}")
    env = environment()
    spec = gpu_spec(env["gpu"] or "")
    record: dict[str, Any] = {
        "format": FORMAT, "environment": env, "model": model, "model_shape": as_config(model_shape(model)),
        "workload": asdict(workload), "decode_len": decode_len, "concurrencies": list(concurrencies),
        "bandwidth": {"spec": spec[0] if spec else None, "peak_flops": spec[1] if spec else None,
                      "measured": measure_bandwidth()},
        "engines": {}}
    step = lambda: save(out, record)  # noqa: E731 - the record on disk is never older than one step
    step()
    for engine in engines:
        log(f"== {engine}")
        entry: dict[str, Any] = record["engines"].setdefault(engine, {"version": engine_version(engine)})
        try:
            if engine == "transformers":
                _transformers(entry, model, workload, decode_len, step, log)
                continue
            if offline:
                entry["offline"] = run_offline(engine, model, workload)
                log(f"   offline: {entry['offline']['output_tokens_per_s']:.0f} tok/s, "
                    f"start {entry['offline']['startup_s']} s")
                step()
            _served(entry, engine, model, workload, decode_len, concurrencies, step, log)
        except Exception as exc:  # noqa: BLE001 - keep what was measured, record what failed
            entry["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
            log(f"   FAILED: {entry['error']}")
        step()
    return record


def merge(records: Sequence[Mapping[str, Any]]) -> dict:
    """One record from several ``suite`` runs of the same model and workload (e.g. one engine per call)."""
    if not records:
        raise ValueError("nothing to merge")
    first = dict(records[0])
    for other in records[1:]:
        for key in ("format", "model_shape", "workload", "decode_len"):
            if other.get(key) != first.get(key):
                raise ValueError(f"cannot merge runs with different {key}: {first.get(key)} vs {other.get(key)}")
    merged = {**first, "engines": {}}
    for record in records:
        merged["engines"].update(record["engines"])
    merged["environment"] = {**first["environment"], "runs": [r["environment"]["date"] for r in records]}
    return merged
