#!/usr/bin/env bash
# GPU test machine: run notebooks under nbval one by one, recording pass/fail and wall time.
#   usage: scripts/gpu/nbval.sh TAG NOTEBOOK...    (after `source /tmp/gpu/vllm.env` or sglang.env)
# Appends one JSON line per notebook to $OUT/gpu-runs.jsonl and keeps each log in $OUT/logs-TAG.txt.
set -u
tag=$1; shift
out=${OUT:-/tmp}
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
engine=$(python3 -c "import importlib.util as u; print('vllm' if u.find_spec('vllm') else 'sglang')")
version=$(python3 -c "import $engine; print($engine.__version__)")
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
for nb in "$@"; do
  t0=$(date +%s.%N)
  LLMKIT_NB_OUTPUT_DIR=$out/outputs-$tag python3 -m pytest -q -p no:cacheprovider --nbval-lax --nbval-kernel-name python3 --nbval-cell-timeout=600 \
    "$nb" > /tmp/nbval.log 2>&1
  rc=$?
  secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
  summary=$(grep -E "passed|failed|error" /tmp/nbval.log | tail -1)
  { echo "===== $nb ($tag) rc=$rc ${secs}s"; grep -vE "^\s*$" /tmp/nbval.log | tail -60; } >> "$out/logs-$tag.txt"
  printf '{"tag": "%s", "notebook": "%s", "engine": "%s %s", "gpu": "%s", "model": "%s", "rc": %d, "seconds": %s, "summary": "%s"}\n' \
    "$tag" "$(basename "$nb")" "$engine" "$version" "$gpu" "${LLMKIT_MODEL:-default}" "$rc" "$secs" "$summary" | tee -a "$out/gpu-runs.jsonl"
done
