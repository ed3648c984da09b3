#!/usr/bin/env bash
# GPU test machine: the full benchmark behind notebook 10 (python -m llmkit.bench suite), one engine after the other.
#   usage: scripts/gpu/bench.sh MODEL_DIR ENGINES RESULT.json [extra suite flags, e.g. --concurrency 1,4,16,64]
#   e.g.   scripts/gpu/bench.sh /tmp/qwen3shape vllm,transformers $OUT/bench-vllm.json
# Per engine: offline throughput in a fresh process, then one server and the engines' own load tools against
# it (vllm bench serve; for SGLang also sglang.bench_serving, through scripts/gpu/sglang-python). Every
# process is started and stopped by llmkit.lifecycle. CUDA graphs stay on (LLMKIT_SMALL=0): this is a benchmark,
# not a smoke test. The record is rewritten after every step, so a timeout keeps what ran.
# Where the GPU machine keeps its environments (docs/gpu-run.md): GPU_VLLM_ENV (a file to source) and
# GPU_SITE (extra packages carried as wheels), defaulting to the course's GPU run layout.
set -u
[ $# -ge 3 ] || { echo "usage: $0 MODEL_DIR ENGINES RESULT.json [suite flags]" >&2; exit 2; }
model=$1 engines=$2 out=$3; shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
env_file=${GPU_VLLM_ENV:-/tmp/gpu/vllm.env}
site=${GPU_SITE:-/tmp/site}
[ -f "$env_file" ] && source "$env_file"
export PYTHONPATH=$here:$site:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1
export LLMKIT_SMALL=0 VLLM_USE_FLASHINFER_SAMPLER=0 LLMKIT_SGLANG_ATTENTION_BACKEND=${LLMKIT_SGLANG_ATTENTION_BACKEND:-triton}
export LLMKIT_SGLANG_PYTHON=${LLMKIT_SGLANG_PYTHON:-$here/scripts/gpu/sglang-python}
cd "$here" && exec python3 -m llmkit.bench suite --engines "$engines" --model "$model" --out "$out" "$@"
