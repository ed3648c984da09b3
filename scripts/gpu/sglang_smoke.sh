#!/usr/bin/env bash
# GPU test machine: does SGLang load MODEL and answer the note's prompt? Records ready time and one reply.
#   usage: scripts/gpu/sglang_smoke.sh MODEL     (after `source /tmp/gpu/sglang.env`)
set -u
model=$1; out=${OUT:-/tmp}; port=30123
t0=$(date +%s)
python3 -m sglang.launch_server --model-path "$model" --host 127.0.0.1 --port $port \
  --attention-backend triton --disable-cuda-graph --mem-fraction-static 0.3 > "$out/sglang-server.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$port/health" >/dev/null; then ready=$(( $(date +%s) - t0 )); break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 2
done
echo "sglang ready after: ${ready:-never} s"
if [ -n "$ready" ]; then
  curl -s "http://127.0.0.1:$port/generate" -H 'Content-Type: application/json' -d '{"text": "<|im_start|>user\n写一首关于秋天的诗<|im_end|>\n<|im_start|>assistant\n", "sampling_params": {"temperature": 0.7, "max_new_tokens": 64}}' | tee "$out/sglang-reply.json"
  echo
fi
kill $pid; sleep 5; kill -9 $pid 2>/dev/null; pkill -9 -f sglang.launch_server 2>/dev/null
tail -5 "$out/sglang-server.log"
