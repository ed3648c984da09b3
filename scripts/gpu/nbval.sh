#!/usr/bin/env bash
# GPU test machine: run notebooks under nbval one by one, recording pass/fail and wall time.
#   usage: scripts/gpu/nbval.sh TAG NOTEBOOK...      (after `source /tmp/gpu/vllm.env` or sglang.env)
# Everything goes under $OUT (default: ./gpu-out), named by TAG, so two runs with different tags can go at
# once (one per engine site, see scripts/gpu/streams.sh) without sharing a file:
#   $OUT/gpu-runs-TAG.jsonl      one JSON line per notebook (engine, GPU, model, exit code, seconds, summary)
#   $OUT/logs-TAG/NOTEBOOK.log   the whole pytest output of that notebook
#   $OUT/outputs-TAG/            what each notebook's cells printed (conftest.py, LLMKIT_NB_OUTPUT_DIR)
set -u
tag=$1; shift
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out/logs-$tag"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
engine=$(python3 -c "import importlib.util as u; print('vllm' if u.find_spec('vllm') else 'sglang')")
version=$(python3 -c "import $engine; print($engine.__version__)")
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
for nb in "$@"; do
  log="$out/logs-$tag/$(basename "$nb" .ipynb).log"
  t0=$(date +%s.%N)
  LLMKIT_NB_OUTPUT_DIR=$out/outputs-$tag python3 -m pytest -q -p no:cacheprovider --nbval-lax \
    --nbval-kernel-name python3 --nbval-cell-timeout=600 "$nb" > "$log" 2>&1
  rc=$?
  secs=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
  summary=$(grep -E "passed|failed|error" "$log" | tail -1)
  printf '{"tag": "%s", "notebook": "%s", "engine": "%s %s", "gpu": "%s", "model": "%s", "rc": %d, "seconds": %s, "summary": "%s"}\n' \
    "$tag" "$(basename "$nb")" "$engine" "$version" "$gpu" "${LLMKIT_MODEL:-default}" "$rc" "$secs" "$summary" \
    | tee -a "$out/gpu-runs-$tag.jsonl"
done
