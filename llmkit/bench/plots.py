"""The benchmark's two pictures: the decode roofline with its knee, and throughput against concurrency."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from llmkit.bench.roofline import Config, kv_bytes_per_token, knee, roofline

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _bandwidth_label(bandwidth: float) -> str:
    """1.2e12 → "1.20 TB/s"; 3e10 → "30 GB/s"."""
    return f"{bandwidth / 1e12:.2f} TB/s" if bandwidth >= 1e11 else f"{bandwidth / 1e9:.0f} GB/s"


def plot_roofline(config: Config, bandwidth: float, peak_flops: float | None = None, context_len: int = 0,
                  batches: Sequence[int] = BATCHES, measured: Mapping[str, Mapping[int, float]] | None = None,
                  title: str = ""):
    """Decode tokens/s the hardware allows per batch size (log-log), the knee marked, measured points on top."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    limits = [roofline(config, bandwidth, context_len, b, peak_flops=peak_flops) for b in batches]
    ax.plot(batches, [r["memory_bound_tokens_per_s"] for r in limits], color="grey", ls="--",
            label=f"memory bound ({_bandwidth_label(bandwidth)})")
    if context_len > 0:
        k = knee(config, context_len)
        ceiling = bandwidth / (context_len * kv_bytes_per_token(config))
        ax.axhline(ceiling, color="grey", ls=":", lw=1, label="KV-cache ceiling: bandwidth / KV bytes per sequence")
        ax.axvline(k, color="C3", ls="-.", label=f"knee ≈ {k:.1f} sequences (KV reads = weight reads)")
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


def plot_sweep(sweeps: Mapping[str, Sequence[Mapping[str, Any]]], title: str = ""):
    """Output tokens/s (left) and median TPOT (right) against concurrency: one line per tool run series."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in sweeps.items():
        rows = sorted(rows, key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in rows]
        ax1.plot(xs, [r["output_throughput"] for r in rows], marker="o", label=name)
        ax2.plot(xs, [r["median_tpot_ms"] for r in rows], marker="o", label=name)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests (--max-concurrency)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("output tokens/s (all requests)")
    ax2.set_ylabel("time per output token, median (ms)")
    ax1.set_title("throughput grows with the batch")
    ax2.set_title("…while each request slows down")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
