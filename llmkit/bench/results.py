"""Benchmark records: where they were measured, saving and loading them, and reading them into one table.

A record (written by ``python -m llmkit.bench suite``) holds the environment, the model's shape, the workload
and, per engine, what was measured. Serving figures are the engines' own tools' rows (``llmkit.bench.tools``).
Records of format 1 (before ``"format": 2``) also hold figures from a hand-written client the course has
since removed, because it read low against the engines' tools (docs/gpu-run.md); only their tool runs
(``validation.theirs``) are read here.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from llmkit.bench.roofline import roofline
from llmkit.bench.tools import SGLANG_TOOL, VLLM_TOOL, tool_row

FORMAT = 2
COLUMNS = ("start-up, offline", "offline tok/s", "start-up, server", "batch-1", "% of roofline", "peak tok/s",
           "at concurrency", "error")  # summary_table's column order, by prefix


def engine_version(engine: str) -> str | None:
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


def _clean(value: Any) -> Any:
    """A value JSON can hold: NaN becomes null and infinity "inf", inside lists and dicts too."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def save(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write a record as JSON (NaN as null, infinity as "inf"); the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(dict(record)), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(path: str | Path) -> dict:
    """A record saved by ``save``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def committed_results(directory: str | Path) -> list[dict]:
    """Every record in ``directory`` (the course keeps them in docs/bench-results), newest file first."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"no benchmark results folder at {folder.resolve()}")
    return [{**load(path), "file": str(path)} for path in sorted(folder.glob("*.json"), reverse=True)]


def label(record: Mapping[str, Any]) -> str:
    """A one-line caption for a record: GPU (or CPU), engine versions, date."""
    env = record.get("environment", {})
    versions = env.get("versions", {})
    parts = [env.get("gpu") or f"CPU ({env.get('cpus')} cores)"]
    engines = {k: (e.get("version") or versions.get(k)) for k, e in record.get("engines", {}).items()}
    parts += [f"{k} {v}" for k, v in engines.items() if v]
    parts.append(env.get("date", "undated"))
    return ", ".join(parts)


def _tool_of(raw: Mapping[str, Any]) -> str:
    """Which tool wrote a result JSON: SGLang's has ``dataset_name`` at its top level, vLLM's ``endpoint_type``."""
    return SGLANG_TOOL if "dataset_name" in raw and "endpoint_type" not in raw else VLLM_TOOL


def tool_runs(entry: Mapping[str, Any], fmt: int = FORMAT) -> list[dict]:
    """Every engine-tool row of one engine's entry: format 2's ``batch1`` and ``sweep``, format 1's tool runs."""
    if fmt < 2:
        v = entry.get("validation") or {}
        n = v.get("workload", {}).get("num_prompts", 0)
        return [tool_row(_tool_of(raw), raw, n, raw.get("command", "")) for raw in v.get("theirs", [])]
    rows = list((entry.get("batch1") or {}).values())
    rows += [row for runs in (entry.get("sweep") or {}).values() for row in runs]
    return rows


def tool_sweeps(record: Mapping[str, Any]) -> dict[str, list[dict]]:
    """The concurrency sweeps of a record, as {"engine · tool": rows sorted by concurrency} (format 2 only)."""
    if record.get("format", 1) < 2:
        return {}
    return {f"{engine} · {tool}": sorted(rows, key=lambda r: r["concurrency"])
            for engine, entry in record.get("engines", {}).items()
            for tool, rows in (entry.get("sweep") or {}).items()}


def decode_speed(row: Mapping[str, Any]) -> float:
    """Tokens/s one request gets: its tokens over its end-to-end time (from a tool's row at concurrency 1)."""
    seconds = float(row["mean_e2el_ms"]) / 1000 * int(row["completed"])
    return int(row["total_output_tokens"]) / seconds


def _config(record: Mapping[str, Any]) -> dict:
    """The model config a record's roofline is computed from (its saved shape; Qwen-style names)."""
    shape = record.get("model_shape") or {}
    return {"model_type": "qwen3", "tie_word_embeddings": True, **{k: v for k, v in shape.items() if v is not None}}


def summary_table(record: Mapping[str, Any]):
    """One row per engine: start-up, offline and batch-1 tokens/s, % of the roofline, each tool's peak tokens/s."""
    import pandas as pd

    bw = record.get("bandwidth", {})
    context = record["workload"]["input_len"] + record["decode_len"] // 2
    limits = {kind: roofline(_config(record), bw[kind], context)["tokens_per_s"]
              for kind in ("spec", "measured") if bw.get(kind)}
    rows = []
    for engine, e in record["engines"].items():
        row: dict[str, Any] = {"engine": engine}
        if "offline" in e:
            row["start-up, offline engine (s)"] = e["offline"].get("startup_s")
            row["offline tok/s"] = e["offline"].get("output_tokens_per_s")
        for key in sorted(k for k in e if k.startswith("offline_bs")):
            row[f"offline tok/s (batch {key[len('offline_bs'):]})"] = e[key].get("output_tokens_per_s")
        if "server_startup_s" in e:
            row["start-up, server (s)"] = e["server_startup_s"]
        runs = tool_runs(e, record.get("format", 1))
        single = [r for r in runs if r["concurrency"] == 1 and r.get("mean_e2el_ms")]
        speed = (decode_speed(single[0]) if single else
                 e["offline_bs1"]["output_tokens_per_s"] if "offline_bs1" in e else None)
        if speed:
            row["batch-1 tok/s"] = speed
            for kind, limit in limits.items():
                row[f"% of roofline ({kind})"] = 100 * speed / limit
        for tool in (VLLM_TOOL, SGLANG_TOOL):
            mine = [r for r in runs if r["tool"] == tool]
            if mine:
                best = max(mine, key=lambda r: r["output_throughput"])
                row[f"peak tok/s ({tool})"] = best["output_throughput"]
                row[f"at concurrency ({tool})"] = best["concurrency"]
        if "error" in e:
            row["error"] = e["error"][:120]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("engine")
    rank = lambda column: next(i for i, p in enumerate(COLUMNS) if column.startswith(p))  # noqa: E731
    return table[sorted(table.columns, key=rank)]
