"""Benchmarks: offline throughput, the engines' own load tools, one request's latencies, and the roofline.

One module per job:

- ``workload``: what every request looks like (``Workload``, ``SharedPrefixWorkload``, ``model_prompts``);
- ``offline``: offline throughput of vLLM, SGLang and plain transformers (``run_offline`` in a fresh process);
- ``tools``: the engines' own load generators, ``vllm bench serve`` and ``sglang.bench_serving``, read into
  one row shape (``run_vllm_bench_serve``, ``run_sglang_bench_serving``, ``sweep``);
- ``stream``: ONE streamed request, timed chunk by chunk, to show what TTFT, TPOT and ITL are (``time_request``);
- ``roofline``: the memory-bandwidth speed limit of decoding and its knee (``roofline``, ``knee``);
- ``results`` and ``plots``: records (save, load, ``committed_results``, ``summary_table``) and the pictures;
- ``suite`` (and ``python -m llmkit.bench``): the full GPU run, engine after engine.
"""

from llmkit.bench.offline import (load_transformers, offline_sglang, offline_transformers, offline_vllm,
                                  run_offline, throughput)
from llmkit.bench.plots import plot_roofline, plot_sweep
from llmkit.bench.results import (committed_results, decode_speed, environment, label, load, save, summary_table,
                                  tool_runs, tool_sweeps)
from llmkit.bench.roofline import (GPU_SPECS, QWEN3_0_6B, gpu_spec, knee, kv_bytes_per_token, measure_bandwidth,
                                   parameter_count, roofline, weight_bytes_read)
from llmkit.bench.stream import StreamTiming, time_request
from llmkit.bench.suite import merge, suite
from llmkit.bench.tools import (SGLANG_TOOL, VLLM_TOOL, run_sglang_bench_serving, run_vllm_bench_serve,
                                sglang_bench_serving_args, sweep, tool_row, vllm_bench_serve_args)
from llmkit.bench.workload import SharedPrefixWorkload, Workload, model_prompts, prompt_token_ids, vocabulary

__all__ = ["GPU_SPECS", "QWEN3_0_6B", "SGLANG_TOOL", "VLLM_TOOL", "SharedPrefixWorkload", "StreamTiming", "Workload",
           "committed_results", "decode_speed", "environment", "gpu_spec", "knee", "kv_bytes_per_token", "label", "load",
           "load_transformers", "measure_bandwidth", "merge", "model_prompts", "offline_sglang",
           "offline_transformers", "offline_vllm", "parameter_count", "plot_roofline", "plot_sweep",
           "prompt_token_ids", "roofline", "run_offline", "run_sglang_bench_serving", "run_vllm_bench_serve", "save",
           "sglang_bench_serving_args", "suite", "summary_table", "sweep", "throughput", "time_request", "tool_row",
           "tool_runs", "tool_sweeps", "vllm_bench_serve_args", "vocabulary", "weight_bytes_read"]
