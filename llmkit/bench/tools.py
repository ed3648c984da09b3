"""The engines' own load generators, run against a server and read into one row shape.

- ``vllm bench serve`` drives any OpenAI-compatible server (vLLM's, SGLang's) through ``/v1/completions``;
  ``--save-result`` writes its figures as JSON (vllm/benchmarks/serve.py).
- ``python -m sglang.bench_serving`` is SGLang's; ``--output-file`` appends one JSON line per run.

Both run as child programs in their own process group (``llmkit.lifecycle.run_group``), with the workload of
``llmkit.bench.Workload``: random prompts of exactly ``input_len`` tokens, ``output_len`` tokens each with
``ignore_eos``, at most ``concurrency`` requests in flight. ``tool_row`` maps either tool's JSON to the same
keys (TTFT, TPOT, ITL and end-to-end latency in ms; throughputs in per-second figures). The numbers are the
tools' own; nothing here re-measures them.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from llmkit.bench.workload import SharedPrefixWorkload, Workload

VLLM_TOOL = "vllm bench serve"
SGLANG_TOOL = "sglang.bench_serving"
METRICS = ("ttft", "tpot", "itl", "e2el")
STATS = ("mean", "median", "p90", "p99")
TOTALS = ("duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
          "output_throughput", "total_token_throughput")
LATENCIES = tuple(f"{stat}_{metric}_ms" for metric in METRICS for stat in STATS)
# Where SGLang's JSON names a figure differently from vLLM's (sglang/benchmark/serving.py, the result dict).
SGLANG_KEYS = {"total_token_throughput": "total_throughput",
               **{f"{stat}_e2el_ms": f"{stat}_e2e_latency_ms" for stat in STATS}}


def _check_load(concurrency: int, request_rate: float) -> None:
    """Refuse a concurrency that is not a positive integer and a request rate that is not > 0."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not request_rate > 0:
        raise ValueError(f"request_rate must be > 0 requests/s (or inf), got {request_rate!r}")


def _rate(request_rate: float) -> str:
    """A request rate as both tools' ``--request-rate`` takes it ("inf" sends everything at once)."""
    return "inf" if math.isinf(request_rate) else repr(float(request_rate))


def vllm_dataset_args(workload: Workload) -> list[str]:
    """``vllm bench serve``'s dataset flags: random prompts, or its ``prefix_repetition`` set for shared prefixes."""
    if isinstance(workload, SharedPrefixWorkload):
        return ["--dataset-name", "prefix_repetition", "--prefix-repetition-prefix-len", str(workload.prefix_len),
                "--prefix-repetition-suffix-len", str(workload.suffix_len),
                "--prefix-repetition-num-prefixes", str(workload.num_prefixes),
                "--prefix-repetition-output-len", str(workload.output_len)]
    return ["--dataset-name", "random", "--random-input-len", str(workload.input_len),
            "--random-output-len", str(workload.output_len), "--random-range-ratio", "0"]


def sglang_dataset_args(workload: Workload) -> list[str]:
    """``sglang.bench_serving``'s dataset flags: random token ids, or ``generated-shared-prefix`` for shared prefixes.

    SGLang's shared-prefix set writes its prompts to ~/.cache/sglang/benchmark, keyed by the sizes, the seed and
    the tokenizer's class (not the model): delete that folder after changing models with the same tokenizer class.
    """
    if isinstance(workload, SharedPrefixWorkload):
        return ["--dataset-name", "generated-shared-prefix", "--gsp-num-groups", str(workload.num_prefixes),
                "--gsp-prompts-per-group", str(workload.num_prompts // workload.num_prefixes),
                "--gsp-system-prompt-len", str(workload.prefix_len), "--gsp-question-len", str(workload.suffix_len),
                "--gsp-output-len", str(workload.output_len)]
    return ["--dataset-name", "random-ids", "--random-input-len", str(workload.input_len),
            "--random-output-len", str(workload.output_len), "--random-range-ratio", "1.0"]


def vllm_bench_serve_args(base_url: str, tokenizer: str, workload: Workload, concurrency: int, result_dir: str,
                          result_file: str, *, served_model: str | None = None,
                          request_rate: float = math.inf) -> list[str]:
    """The arguments of ``vllm bench serve`` (after ``vllm``) for ``workload`` at ``concurrency``."""
    _check_load(concurrency, request_rate)
    return ["bench", "serve", "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
            "--model", served_model or tokenizer, "--tokenizer", tokenizer, *vllm_dataset_args(workload),
            "--num-prompts", str(workload.num_prompts),
            "--max-concurrency", str(concurrency), "--request-rate", _rate(request_rate), "--ignore-eos",
            "--seed", str(workload.seed), "--temperature", "1.0", "--num-warmups", "1",
            "--percentile-metrics", ",".join(METRICS), "--metric-percentiles", "50,90,99",
            "--save-result", "--result-dir", result_dir, "--result-filename", result_file, "--disable-tqdm"]


def sglang_bench_serving_args(base_url: str, tokenizer: str, workload: Workload, concurrency: int, output_file: str,
                              *, served_model: str | None = None, backend: str = "sglang-oai",
                              request_rate: float = math.inf) -> list[str]:
    """The arguments of ``python -m sglang.bench_serving`` for ``workload`` at ``concurrency``.

    ``random-ids`` makes random token prompts without a dataset download; a range ratio of 1.0 means exact
    lengths in SGLang (0 does in vLLM). ``sglang-oai`` sends to ``/v1/completions`` like ``vllm bench serve``;
    ``sglang`` would use the native ``/generate``.
    """
    _check_load(concurrency, request_rate)
    return ["-m", "sglang.bench_serving", "--backend", backend, "--base-url", base_url,
            "--model", served_model or tokenizer, "--tokenizer", tokenizer, *sglang_dataset_args(workload),
            "--num-prompts", str(workload.num_prompts),
            "--max-concurrency", str(concurrency), "--request-rate", _rate(request_rate),
            "--seed", str(workload.seed), "--temperature", "1.0", "--warmup-requests", "1",
            "--output-file", output_file, "--disable-tqdm"]


def tool_row(tool: str, raw: Mapping[str, Any], num_prompts: int, command: str = "") -> dict:
    """One tool's result JSON as the common row: totals, throughputs, latency statistics, the command, the raw JSON."""
    if tool not in (VLLM_TOOL, SGLANG_TOOL):
        raise ValueError(f"tool must be {VLLM_TOOL!r} or {SGLANG_TOOL!r}, got {tool!r}")
    keys = SGLANG_KEYS if tool == SGLANG_TOOL else {}
    row: dict[str, Any] = {"tool": tool, "backend": raw.get("backend"), "concurrency": raw.get("max_concurrency"),
                           "request_rate": raw.get("request_rate"), "num_prompts": num_prompts}
    row.update({key: raw.get(keys.get(key, key)) for key in (*TOTALS, *LATENCIES)})
    if row["failed"] is None and row["completed"] is not None:
        row["failed"] = num_prompts - row["completed"]                     # SGLang reports completed only
    row["command"] = command
    row["raw"] = dict(raw)
    return row


def server_target(server: Any) -> tuple[str, str, str, dict[str, str]]:
    """(base URL, served model name, tokenizer, env with the API key) of a llmkit server handle or a URL."""
    from llmkit.clients import base_url, served_model

    url = base_url(server)
    served = served_model(server)
    tokenizer = getattr(server, "model", None) or served
    key = None if isinstance(server, str) else getattr(server, "api_key", None)
    return url, served, tokenizer, ({"OPENAI_API_KEY": key} if key else {})


def _run_tool(cmd: Sequence[str], result: Path, what: str, timeout: float, env: Mapping[str, str]) -> dict:
    """Run a tool to completion; its last JSON record from ``result``, or a RuntimeError with its output's tail."""
    from llmkit.lifecycle import run_group

    done = run_group(cmd, timeout, env=env)
    lines = result.read_text(encoding="utf-8").splitlines() if result.exists() else []
    lines = [line for line in lines if line.strip()]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stdout.splitlines()[-25:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}{'' if lines else ', no result written'}). "
                           f"Its last lines:\n{tail}")
    return json.loads(lines[-1])


def run_vllm_bench_serve(server: Any, workload: Workload, concurrency: int, *, request_rate: float = math.inf,
                         python: str | None = None, timeout: float = 1800) -> dict:
    """Run vLLM's ``vllm bench serve`` against ``server`` (vLLM's or SGLang's) and return its figures as a row."""
    url, served, tokenizer, env = server_target(server)
    with tempfile.TemporaryDirectory(prefix="llmkit-vllm-bench-") as tmp:
        args = vllm_bench_serve_args(url, tokenizer, workload, concurrency, tmp, "result.json", served_model=served,
                                     request_rate=request_rate)
        cmd = [python or sys.executable, "-m", "llmkit.vllm_cli", *args]      # `vllm ...`, on CPU wheels too
        raw = _run_tool(cmd, Path(tmp) / "result.json", VLLM_TOOL, timeout, env)
        command = "vllm " + shlex.join(args).replace(tmp, "RESULT_DIR")
    return tool_row(VLLM_TOOL, raw, workload.num_prompts, command)


def run_sglang_bench_serving(server: Any, workload: Workload, concurrency: int, *, backend: str = "sglang-oai",
                             request_rate: float = math.inf, python: str | None = None,
                             timeout: float = 1800) -> dict:
    """Run SGLang's ``python -m sglang.bench_serving`` against ``server`` and return its figures as a row."""
    from llmkit.lifecycle import sglang_python

    url, served, tokenizer, env = server_target(server)
    with tempfile.TemporaryDirectory(prefix="llmkit-sglang-bench-") as tmp:
        out = str(Path(tmp) / "result.jsonl")
        args = sglang_bench_serving_args(url, tokenizer, workload, concurrency, out, served_model=served,
                                         backend=backend, request_rate=request_rate)
        raw = _run_tool([python or sglang_python(), *args], Path(out), SGLANG_TOOL, timeout,
                        {"HF_HUB_OFFLINE": "1", **env})
        command = "python " + shlex.join(args).replace(tmp, "RESULT_DIR")
    return tool_row(SGLANG_TOOL, raw, workload.num_prompts, command)


def sweep(server: Any, workload: Workload, concurrencies: Iterable[int], *,
          run: Callable[..., dict] = run_vllm_bench_serve, per_slot: int = 4, **kwargs: Any) -> list[dict]:
    """One tool run per concurrency level on the same server, ``per_slot × concurrency`` requests each."""
    levels = list(concurrencies)
    if not levels:
        raise ValueError("no concurrency levels to sweep")
    if isinstance(per_slot, bool) or not isinstance(per_slot, int) or per_slot < 1:
        raise ValueError(f"per_slot must be a positive integer, got {per_slot!r}")
    for c in levels:
        _check_load(c, math.inf)
    return [run(server, replace(workload, num_prompts=per_slot * c), c, **kwargs) for c in levels]
