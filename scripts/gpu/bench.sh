#!/usr/bin/env bash
# GPU test machine: the full benchmark behind notebook 10 (llmkit.bench suite), one engine after the other.
#   usage: scripts/gpu/bench.sh MODEL_DIR ENGINES RESULT.json [extra suite flags]
#   e.g.   scripts/gpu/bench.sh /tmp/qwen3shape vllm,transformers $OUT/bench-vllm.json
# Runs in the vLLM site (the load generator and transformers need nothing else); SGLang's server and its
# bench_serving run through scripts/gpu/sglang-python. CUDA graphs stay on (LLMKIT_SMALL=0): this is a
# benchmark, not a smoke test. The record is rewritten after every step, so a timeout keeps what ran.
set -u
model=$1 engines=$2 out=$3; shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
source /tmp/gpu/vllm.env
export PYTHONPATH=$here:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1
export LLMKIT_SMALL=0 VLLM_USE_FLASHINFER_SAMPLER=0 LLMKIT_SGLANG_ATTENTION_BACKEND=triton
export LLMKIT_SGLANG_PYTHON=$here/scripts/gpu/sglang-python
cd "$here" && python3 -m llmkit.bench suite --engines "$engines" --model "$model" --out "$out" "$@"
