#!/usr/bin/env bash
# Start vLLM's OpenAI-compatible server, `vllm serve`, with the course's defaults, in the foreground.
#
#   servers/launch_vllm.sh                      # the course model on 127.0.0.1:8000
#   servers/launch_vllm.sh --port 8001          # any extra vLLM flag is passed through (last wins)
#   LLMKIT_MODEL=Qwen/Qwen3-0.6B servers/launch_vllm.sh
#
# Defaults: host 127.0.0.1 (vLLM itself binds 0.0.0.0: every machine on the network could call it),
# port $PORT or 8000, model from `python -m llmkit model`, engine flags from `python -m llmkit vllm-flags`
# (llmkit.llm_kwargs). On a small machine (LLMKIT_SMALL=1, or no NVIDIA GPU) those are --enforce-eager
# --max-model-len 1024 --max-num-seqs 16, and on CPU an explicit KV-cache budget (--kv-cache-memory-bytes),
# because vLLM's CPU build reads --gpu-memory-utilization as a share of the machine's RAM. The same
# `vllm serve` runs on CPU and GPU (on CPU, `make setup` points the environment's `vllm` command at
# llmkit.vllm_cli). It prints the command first, so you can run it yourself. Stop it with Ctrl-C.
# Ready when `curl -s 127.0.0.1:8000/health` answers (HTTP 200).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VLLM=$(dirname "$(command -v "$PY")")/vllm
[ -x "$VLLM" ] || VLLM=$(command -v vllm || true)
if [ -z "$VLLM" ] || ! "$PY" -c "import vllm" 2>/dev/null; then
  echo "launch_vllm.sh: vLLM is not installed for $PY; run 'make setup' in $ROOT first (or set PYTHON=...)." >&2
  exit 1
fi

MODEL=$(cd "$ROOT" && "$PY" -m llmkit model | tail -n 1)
FLAG_LINE=$(cd "$ROOT" && "$PY" -m llmkit vllm-flags)
read -ra FLAGS <<< "$FLAG_LINE"
ARGS=(serve "$MODEL" --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" "${FLAGS[@]}" "$@")
printf 'launch_vllm.sh: equivalent plain command:\n  %s\n' "$(printf '%q ' vllm "${ARGS[@]}")"
exec "$VLLM" "${ARGS[@]}"
