#!/usr/bin/env bash
# GPU test machine: several streams of notebooks at once, each in its engine's site (vLLM and SGLang pin
# conflicting packages, so each stream sources one of them).
#   usage: scripts/gpu/streams.sh [DELAY:]SITE:TAG:NOTEBOOK[,NOTEBOOK...] [[DELAY:]SITE:TAG:...] ...
#   e.g.   scripts/gpu/streams.sh vllm:a:notebooks/00_setup_check.ipynb,notebooks/01_vllm_quickstart.ipynb \
#                                 sglang:b:notebooks/07_sglang_engine.ipynb,notebooks/08_sglang_server.ipynb
# SITE is vllm or sglang; TAG names the stream's files (scripts/gpu/nbval.sh). With LLMKIT_SMALL=1 every engine
# and server takes 0.15 of the GPU (llmkit.models.SMALL_GPU_SHARE), so three streams fit on one GPU. Notebooks
# that start both engines (09, 10, 11) run in a vLLM-site stream; never run two of them at the same time.
# Results: $OUT/gpu-runs-TAG.jsonl per stream, printed together at the end; the exit code is 0 only if every
# notebook of every stream passed.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
sites=${LLMKIT_GPU_SITES:-/tmp/gpu}
export OUT=${OUT:-$here/gpu-out} LLMKIT_SMALL=${LLMKIT_SMALL:-1} VLLM_USE_FLASHINFER_SAMPLER=0
export LLMKIT_SGLANG_ATTENTION_BACKEND=${LLMKIT_SGLANG_ATTENTION_BACKEND:-triton}
export LLMKIT_SGLANG_PYTHON=$here/scripts/gpu/sglang-python
cd "$here"
pids=()
for spec in "$@"; do
  # an optional leading DELAY: (seconds) staggers a stream's start: vLLM 0.26's start-up memory profile fails when
  # a neighbour allocates or frees GPU memory during it (docs/gpu-run.md)
  delay=0
  if [[ $spec =~ ^([0-9]+):(.*)$ ]]; then delay=${BASH_REMATCH[1]}; spec=${BASH_REMATCH[2]}; fi
  IFS=: read -r site tag list <<< "$spec"
  case "$site" in vllm|sglang) ;; *) echo "streams.sh: SITE must be vllm or sglang, not '$site'" >&2; exit 2;; esac
  # $LLMKIT_GPU_EXTRA_SITE: packages carried beside the staged sites (nest_asyncio, peft), added after the site's env
  ( sleep "$delay"; source "$sites/$site.env" && export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}${LLMKIT_GPU_EXTRA_SITE:-/tmp/site} \
      && bash scripts/gpu/nbval.sh "$tag" ${list//,/ } ) &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
cat "$OUT"/gpu-runs-*.jsonl 2>/dev/null
grep -h '"rc": [1-9]' "$OUT"/gpu-runs-*.jsonl >/dev/null 2>&1 && rc=1
exit $rc
