"""Tensor parallelism: what each GPU holds when a model is split ``tp`` ways, the rules the engines enforce,
and a record of TP runs that a later run (on more GPUs) can be compared with.

Tensor parallelism (Megatron-style, as vLLM and SGLang do it) splits every transformer layer:

- attention: the q/k/v projection is column-parallel, so each GPU owns ``heads / tp`` query heads and
  ``kv_heads / tp`` KV heads and runs attention for them alone; the output projection is row-parallel and
  ends in an **all-reduce**;
- MLP: gate and up projections are column-parallel (``intermediate_size / tp`` columns each), the down
  projection row-parallel, and a second **all-reduce** ends the layer;
- the embedding and the LM head are split by vocabulary (vLLM pads it to a multiple of 64 first); norms
  are replicated.

When ``tp`` exceeds the KV heads, each GPU keeps one KV head and ``tp / kv_heads`` GPUs hold copies of it
(``QKVParallelLinear`` in vllm/model_executor/layers/linear.py, and SGLang's copy of it). Dense models
only: mixture-of-experts layers split differently.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmkit.config import ModelShape, layer_params, model_shape, param_count
from llmkit.kvcache import bytes_per_token, gpu_budget_bytes, human

VOCAB_PADDING = 64  # vLLM's DEFAULT_VOCAB_PADDING_SIZE: the vocabulary is padded to a multiple of it
RESULTS_ENV = "LLMKIT_TP_RESULTS"  # a JSON file where notebook 11 adds its measurements
# NVLink multicast (NVLS) off: on shared multi-GPU hosts (the course's 2-GPU machines) a program that
# uses it can take every GPU of the host out of service. Engines started from Python inherit these.
SAFE_MULTI_GPU_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def kv_replicas(shape: ModelShape, tp: int) -> int:
    """How many GPUs hold a copy of each KV head: ``tp / kv_heads`` when tp exceeds the KV heads, else 1."""
    if tp < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tp}")
    return tp // shape.kv_heads if tp > shape.kv_heads else 1


def tp_problem(shape: ModelShape, tp: int) -> str | None:
    """Why vLLM refuses ``tensor_parallel_size=tp`` for this model (its own wording), or None if it accepts it."""
    if tp < 1:
        return f"tensor_parallel_size must be >= 1, got {tp}"
    if shape.heads % tp:
        return (f"Total number of attention heads ({shape.heads}) must be divisible by tensor parallel size "
                f"({tp}).")
    if tp >= shape.kv_heads and tp % shape.kv_heads:
        return f"{tp} is not divisible by {shape.kv_heads} (tp must be a multiple of the KV heads to replicate them)"
    if tp < shape.kv_heads and shape.kv_heads % tp:
        return f"{shape.kv_heads} is not divisible by {tp} (the KV heads must split evenly)"
    if shape.intermediate_size is not None and shape.intermediate_size % tp:
        return f"{shape.intermediate_size} is not divisible by {tp} (the MLP columns must split evenly)"
    return None


def _padded_vocab(shape: ModelShape) -> int:
    """The vocabulary vLLM allocates: padded up to a multiple of VOCAB_PADDING."""
    return -(-shape.vocab_size // VOCAB_PADDING) * VOCAB_PADDING


def params_per_gpu(shape: ModelShape, tp: int = 1) -> int:
    """Parameters one GPU holds under tensor parallelism (vocabulary padded and split, norms replicated)."""
    shape.require_layers()
    if problem := tp_problem(shape, tp):
        raise ValueError(f"tensor_parallel_size={tp} is refused: {problem}")
    vocab = _padded_vocab(shape) // tp
    embeddings = vocab * shape.hidden_size * (1 if shape.tied_embeddings else 2)
    kv = max(1, shape.kv_heads // tp)
    layer = layer_params(shape, shape.heads // tp, kv, shape.intermediate_size // tp)
    return embeddings + shape.layers * layer + shape.hidden_size


def weight_bytes_per_gpu(shape: ModelShape, tp: int = 1) -> int:
    """Weight bytes on one GPU: params_per_gpu × bytes per element."""
    return params_per_gpu(shape, tp) * shape.dtype_bytes


TP_COLUMNS = ("q heads/GPU", "KV heads/GPU", "KV copies", "weights/GPU", "weight bytes/GPU", "KV bytes/token/GPU",
              "KV tokens/GiB/GPU", "KV tokens/GPU")


def tp_rows(model: str | Path | dict, tps: Sequence[int] = (1, 2, 4, 8), gpu_bytes: int = 80 * 2**30,
            utilization: float = 0.9) -> list[dict]:
    """Per TP size: what vLLM says, heads, KV replicas, weights and KV per GPU, and KV tokens per GPU.

    "KV tokens/GPU" is vLLM's GPU rule with activations left out: utilization × gpu_bytes − weights/GPU,
    divided by the KV bytes one token needs on one GPU.
    """
    shape = model if isinstance(model, ModelShape) else model_shape(model)
    rows = []
    for tp in tps:
        problem = tp_problem(shape, tp)
        row: dict[str, Any] = {"tp": tp, "vLLM": "refused" if problem else "ok", "why": problem or ""}
        row.update(dict.fromkeys(TP_COLUMNS, "—"))
        if not problem:
            weights = weight_bytes_per_gpu(shape, tp)
            per_token = bytes_per_token(shape, tp)
            row.update({"q heads/GPU": shape.heads // tp, "KV heads/GPU": max(1, shape.kv_heads // tp),
                        "KV copies": kv_replicas(shape, tp), "weights/GPU": human(weights),
                        "weight bytes/GPU": weights, "KV bytes/token/GPU": per_token,
                        "KV tokens/GiB/GPU": 2**30 // per_token,
                        "KV tokens/GPU": max(0, gpu_budget_bytes(gpu_bytes, utilization, weights, 0)) // per_token})
        rows.append(row)
    return rows


def plot_tp(tables: Mapping[str, Sequence[Mapping[str, Any]]]):
    """Bar charts per model: weights per GPU and KV bytes per token per GPU against the TP size; the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tables), 2, figsize=(10, 2.8 * len(tables)), squeeze=False)
    for (name, rows), (left, right) in zip(tables.items(), axes):
        labels = [f"TP={r['tp']}" for r in rows]
        ok = [r["vLLM"] == "ok" for r in rows]
        weights = [r["weight bytes/GPU"] / 2**20 if good else 0 for r, good in zip(rows, ok)]
        kv = [r["KV bytes/token/GPU"] / 2**10 if good else 0 for r, good in zip(rows, ok)]
        for ax, values, unit, color in ((left, weights, "MiB", "#4c72b0"), (right, kv, "KiB", "#55a868")):
            bars = ax.bar(labels, values, color=[color if good else "#cccccc" for good in ok])
            for bar, good, value in zip(bars, ok, values):
                ax.annotate(f"{value:,.1f}" if good else "refused", (bar.get_x() + bar.get_width() / 2, value),
                            ha="center", va="bottom", fontsize=8)
            ax.set_ylabel(unit)
        left.set_title(f"{name}: weights per GPU")
        right.set_title(f"{name}: KV cache per token per GPU")
    fig.tight_layout()
    return fig


def vllm_refusal(model: str, tp: int) -> str | None:
    """vLLM's own verdict on ``tensor_parallel_size=tp`` for ``model``: its config error, or None.

    Builds only vLLM's configuration (no weights, no GPUs needed); ``distributed_executor_backend="mp"``
    keeps it from checking how many GPUs this machine has, so only the model's rules are tested.
    """
    from llmkit.engine import config_refusal

    return config_refusal(model, tensor_parallel_size=tp, enforce_eager=True,
                          distributed_executor_backend="mp" if tp > 1 else None)


def tp_unavailable(tp: int, engine: str = "vllm") -> str | None:
    """Why a ``tp``-GPU run of ``engine`` ("vllm" or "sglang") cannot happen here, in one line; None if it can."""
    from llmkit.models import gpu_count

    if engine == "sglang":
        from llmkit.system import sglang_server_unavailable

        if why := sglang_server_unavailable():
            return why
    elif engine != "vllm":
        raise ValueError(f"engine must be 'vllm' or 'sglang', got {engine!r}")
    if tp > 1 and gpu_count() < tp:
        return f"tensor parallelism over {tp} GPUs needs {tp} NVIDIA GPUs; this machine has {gpu_count()}"
    return None


def safe_multi_gpu_env(environ: dict | None = None) -> dict[str, str]:
    """Turn NVLink multicast off for engines started from this process (values already set are kept)."""
    env = os.environ if environ is None else environ
    for key, value in SAFE_MULTI_GPU_ENV.items():
        env.setdefault(key, value)
    return {key: env[key] for key in SAFE_MULTI_GPU_ENV}


def device_name() -> str:
    """The accelerator the runs use: "2 × NVIDIA H200" or "CPU (2 cores)"."""
    from llmkit.system import gpus

    found = gpus()
    return f"{len(found)} × {found[0][0]}" if found else f"CPU ({os.cpu_count()} cores)"


def kv_tokens_from_server_info(info: Any) -> int | None:
    """SGLang's KV pool size in tokens (``max_total_num_tokens``) from its server-info JSON, wherever it sits."""
    if isinstance(info, Mapping):
        if isinstance(info.get("max_total_num_tokens"), int):
            return info["max_total_num_tokens"]
        values = info.values()
    elif isinstance(info, (list, tuple)):
        values = info
    else:
        return None
    for value in values:
        if (found := kv_tokens_from_server_info(value)) is not None:
            return found
    return None


def sglang_kv_tokens(server) -> int | None:
    """Ask a running SGLang server how many tokens its KV pool holds (per GPU); None if it does not say.

    ``/server_info`` carries it as ``max_total_num_tokens`` (``/get_server_info`` is its deprecated name).
    """
    from llmkit.clients import get_json

    return kv_tokens_from_server_info(get_json(server, "/server_info"))


def result_row(engine: str, tp: int, *, model: str, startup_s: float, kv_tokens: int | None,
               tokens_per_s: float | None, predicted_kv_tokens: int | None = None, device: str | None = None) -> dict:
    """One measured run, in the shape save_results keeps and compare_to_tp1 reads."""
    name = Path(model).name if Path(model).is_absolute() else model
    return {"engine": engine, "tp": tp, "model": name, "device": device or device_name(),
            "startup_s": round(startup_s, 1), "kv_tokens": kv_tokens, "predicted_kv_tokens": predicted_kv_tokens,
            "tokens_per_s": None if tokens_per_s is None else round(tokens_per_s, 1),
            "date": time.strftime("%Y-%m-%d")}


def compare_to_tp1(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Each row with its KV tokens, throughput and start-up as multiples of the TP=1 run of the same engine and
    model (from the same device where there is one)."""
    out = []
    for row in rows:
        base = [r for r in rows if r["tp"] == 1 and r["engine"] == row["engine"] and r["model"] == row["model"]]
        base.sort(key=lambda r: r.get("device") != row.get("device"))
        ratios = {}
        for key, label in (("kv_tokens", "KV tokens × TP=1"), ("tokens_per_s", "tokens/s × TP=1"),
                           ("startup_s", "start-up × TP=1")):
            mine, ref = row.get(key), base[0].get(key) if base else None
            ratios[label] = round(mine / ref, 2) if mine and ref else None
        out.append({**row, **ratios})
    return out


def load_results(path: str | Path) -> list[dict]:
    """The runs saved in a results file (an empty list if there is none yet)."""
    path = Path(path).expanduser()
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def save_results(rows: Sequence[Mapping[str, Any]], path: str | Path) -> list[dict]:
    """Add ``rows`` to the JSON file at ``path`` (a run replaces an earlier one of the same engine, TP size, model
    and device) and return everything the file now holds."""
    path = Path(path).expanduser()
    key = lambda r: (r["engine"], r["tp"], r["model"], r.get("device"))  # noqa: E731
    merged = {key(r): dict(r) for r in load_results(path)}
    merged.update({key(r): dict(r) for r in rows})
    everything = sorted(merged.values(), key=lambda r: (r["engine"], r["model"], r["tp"], str(r.get("device"))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(everything, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return everything
