#!/usr/bin/env bash
# Run every test: llmkit unit tests, then each notebook under nbval (asserts live inside the cells).
# Notebooks that need a GPU or SGLang are skipped here with the reason printed (see conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# The SGLang environment (GPU machines), for tests and notebooks that start SGLang from the vLLM side.
[ -x .venv-sglang/bin/python ] && export LLMKIT_SGLANG_PYTHON=${LLMKIT_SGLANG_PYTHON:-$PWD/.venv-sglang/bin/python}
exec .venv/bin/python -m pytest -p no:cacheprovider -rs --durations=0 \
  --nbval-lax --nbval-cell-timeout=900 tests notebooks "$@"
