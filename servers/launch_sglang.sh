#!/usr/bin/env bash
# Start SGLang's server with the course's defaults, in the foreground. Needs an NVIDIA GPU.
#
#   servers/launch_sglang.sh                    # the course model on 127.0.0.1:30000
#   servers/launch_sglang.sh --port 30001       # any extra SGLang flag is passed through (last wins)
#
# Defaults: host 127.0.0.1, port $PORT or 30000 (SGLang's own default), model from
# `python -m llmkit model`, interpreter $PYTHON, else $LLMKIT_SGLANG_PYTHON or .venv-sglang's. With
# LLMKIT_SMALL=1 it adds --context-length 1024 --mem-fraction-static 0.15 --max-running-requests 16
# --disable-cuda-graph (a quick start, a small KV pool). It prints the plain command first. Ready when
# `curl -s 127.0.0.1:30000/health` answers 200 (SGLang's /v1/models answers earlier, before warm-up
# ends). Stop it with Ctrl-C.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }; then
  echo "launch_sglang.sh: SGLang cannot run here: this machine has no NVIDIA GPU, and SGLang's PyPI wheel is built for CUDA (its CPU backend needs a source build for Xeon CPUs with AMX); use servers/launch_vllm.sh instead." >&2
  exit 1
fi
# The interpreter: $PYTHON, else the first that has SGLang of $LLMKIT_SGLANG_PYTHON (`make lab` and
# `make test` set it; llmkit.lifecycle reads it too), .venv-sglang, .venv and python3.
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in ${LLMKIT_SGLANG_PYTHON:+"$LLMKIT_SGLANG_PYTHON"} "$ROOT/.venv-sglang/bin/python" \
           "$ROOT/.venv/bin/python" python3; do
    if "$c" -c "import sglang" 2>/dev/null; then PY=$c; break; fi
  done
fi
if [ -z "$PY" ] || ! "$PY" -c "import sglang" 2>/dev/null; then
  echo "launch_sglang.sh: SGLang is not installed${PY:+ for $PY}; run 'make setup' in $ROOT on this GPU machine (it builds .venv-sglang), or set LLMKIT_SGLANG_PYTHON to an interpreter that has sglang." >&2
  exit 1
fi

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-30000}
MODEL=$(cd "$ROOT" && "$PY" -m llmkit model | tail -n 1)
small=${LLMKIT_SMALL:-0}
case "$small" in 0|false|False|"") small=0 ;; *) small=1 ;; esac

ARGS=(--model-path "$MODEL" --host "$HOST" --port "$PORT" --random-seed 0)
if [ "$small" = 1 ]; then
  ARGS+=(--context-length 1024 --mem-fraction-static 0.15 --max-running-requests 16 --disable-cuda-graph)
fi

CMD=(python -m sglang.launch_server "${ARGS[@]}" "$@")
printf 'launch_sglang.sh: equivalent plain command:\n  %s\n' "$(printf '%q ' "${CMD[@]}")"
exec "$PY" -m sglang.launch_server "${ARGS[@]}" "$@"
