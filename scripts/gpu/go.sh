#!/usr/bin/env bash
# GPU test machine, one `run` call: the streams of scripts/gpu/streams.sh under a time limit (a call may last 600 s),
# then the clean-up of what a cut stream left, a short report, and every log packed into one file under $OUT.
#   usage: bash scripts/gpu/go.sh LIMIT_SECONDS [DELAY:]SITE:TAG:NOTEBOOK[,NOTEBOOK...] ...
# The model folder (tiny-poet, its draft, the adapters) is carried as .gpu/model (docs/gpu-run.md, "How to reproduce").
set -u
cd "$(dirname "$0")/../.."
export LLMKIT_CACHE=$PWD/.gpu/model LLMKIT_GPU_EXTRA_SITE=/tmp/site
export OUT=${OUT:-$PWD/gpu-out}
work=/tmp/gpu-work-$$; mkdir -p $work
limit=$1; shift
OUT=$work timeout -k 15 "$limit" bash scripts/gpu/streams.sh "$@"
echo "streams rc=$?"
# leftovers of a stream cut by the limit (patterns not in this script's own command line)
pkill -9 -f "sglang[.]launch_server" ; pkill -9 -f "[E]ngineCore" ; pkill -9 -f "[V]llmWorker"; pkill -9 -f "vllm[.]entrypoints"
sleep 2
nvidia-smi --query-gpu=memory.used --format=csv,noheader
cat $work/gpu-runs-*.jsonl 2>/dev/null
for f in $work/logs-*/*.log; do echo "== $f"; grep -E "^(FAILED|ERROR)|Error|assert" "$f" | grep -v Warning | head -8; done
tar czf "$OUT/results-$(date +%H%M%S).tgz" -C $work .
