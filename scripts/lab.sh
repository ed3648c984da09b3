#!/usr/bin/env bash
# Start JupyterLab for the course on 127.0.0.1 (never 0.0.0.0), opened at the first notebook.
# PORT=8888 by default; Jupyter moves to the next free port if it is taken and prints the URL it got.
# JUPYTER_TOKEN=... fixes the login token (default: a random one, printed in the URL). Arguments go to
# `jupyter lab`, e.g. `--ServerApp.port_retries=0` to fail instead of moving when PORT is taken.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8888}
# The SGLang environment (GPU machines), for tests and notebooks that start SGLang from the vLLM side.
[ -x .venv-sglang/bin/python ] && export LLMKIT_SGLANG_PYTHON=${LLMKIT_SGLANG_PYTHON:-$PWD/.venv-sglang/bin/python}
echo
echo "  Course: start with notebooks/00_setup_check.ipynb, then 01, 02, ... in order."
echo "  Kernels: 'Python (vLLM course)' and 'Python (SGLang course)'; each notebook picks its own."
echo "  JupyterLab prints its URL (with a login token) below. Stop it with Ctrl-C."
echo
# Jupyter refuses to start as root unless told; containers and CI machines often run as root.
ROOT_FLAG=()
[ "$(id -u)" = 0 ] && ROOT_FLAG=(--allow-root)
exec .venv/bin/jupyter lab "${ROOT_FLAG[@]}" --no-browser --ip 127.0.0.1 --port "$PORT" \
  --ServerApp.root_dir="$PWD" \
  --LabApp.default_url=/lab/tree/notebooks/00_setup_check.ipynb "$@"
