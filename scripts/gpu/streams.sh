#!/usr/bin/env bash
# GPU test machine: two streams of notebooks at once, one per engine site (they pin conflicting packages).
#   usage: scripts/gpu/streams.sh "VLLM_NOTEBOOK..." "SGLANG_NOTEBOOK..."
#   e.g.   scripts/gpu/streams.sh "notebooks/00_setup_check.ipynb notebooks/06_engine_parameters.ipynb" \
#                                 "notebooks/07_sglang_engine.ipynb notebooks/08_sglang_server.ipynb"
# With LLMKIT_SMALL=1 each engine takes at most 0.3 of the GPU, so one vLLM-site notebook and one SGLang-site
# notebook fit side by side. Notebooks that start both engines (09, 10, 11) belong to the vLLM stream: never run
# two of those at the same time. Results: $OUT/gpu-runs-vllm.jsonl and $OUT/gpu-runs-sglang.jsonl (nbval.sh).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
export OUT=${OUT:-$here/gpu-out} LLMKIT_SMALL=${LLMKIT_SMALL:-1} VLLM_USE_FLASHINFER_SAMPLER=0
export LLMKIT_SGLANG_ATTENTION_BACKEND=${LLMKIT_SGLANG_ATTENTION_BACKEND:-triton}
export LLMKIT_SGLANG_PYTHON=$here/scripts/gpu/sglang-python
cd "$here"
( source "${LLMKIT_GPU_SITES:-/tmp/gpu}/vllm.env" && [ -n "$1" ] && bash scripts/gpu/nbval.sh vllm $1 ) &
vllm_pid=$!
( source "${LLMKIT_GPU_SITES:-/tmp/gpu}/sglang.env" && [ -n "$2" ] && bash scripts/gpu/nbval.sh sglang $2 ) &
sglang_pid=$!
wait $vllm_pid; rc1=$?
wait $sglang_pid; rc2=$?
cat "$OUT"/gpu-runs-*.jsonl 2>/dev/null
exit $(( rc1 || rc2 ))
