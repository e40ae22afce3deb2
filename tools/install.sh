#!/usr/bin/env bash
# One-command set-up of etf_plugin on a fresh Python 3.11 machine (CPU or GPU).
#
#   bash tools/install.sh
#
# Installs torch 2.14.1 + torchvision 0.29.1, mmcv 2.1.0 *with* its compiled
# ops (built from the PyPI sdist, since no wheel exists for this torch), then
# this package in editable mode with its pinned requirements and test extras.
#
# The mmcv wheel is cached in $ETF_PLUGIN_WHEEL_CACHE (default
# ~/.cache/etf_plugin/wheels) so only the first install pays the ~11 min build.
# Environment: PYTHON (interpreter, default python3), MAX_JOBS (compile jobs).
set -euo pipefail

PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ETF_PLUGIN_WHEEL_CACHE:-$HOME/.cache/etf_plugin/wheels}
MMCV_VERSION=2.1.0

log() { echo "[install] $*"; }

log "torch 2.14.1 + torchvision 0.29.1"
# setuptools < 81 keeps pkg_resources, which mmengine 0.10.7 needs to resolve
# `mmdet::` / `mmpretrain::` config bases.
"$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1 "setuptools<81"

have_mmcv_ops() {
  "$PY" - <<PYEOF 2>/dev/null
import mmcv, mmcv.ops  # mmcv.ops fails to import without the compiled _ext
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
PYEOF
}

build_mmcv_wheel() {
  # mmcv 2.1.0's setup.py hard-codes -std=c++14/17, but torch >= 2.6 headers
  # require C++20; setuptools >= 70 also breaks its build. Build in a throw-away
  # venv that sees the installed torch (--system-site-packages) but has its own
  # old setuptools, so the user's environment is left untouched.
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  "$PY" -m venv --system-site-packages "$work/venv"
  "$work/venv/bin/python" -m pip install -q "setuptools<70" wheel ninja
  log "downloading the mmcv $MMCV_VERSION sdist"
  "$work/venv/bin/python" -m pip download -q --no-deps --no-binary :all: \
    --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
  tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
    "$work/mmcv-$MMCV_VERSION/setup.py"
  log "building mmcv $MMCV_VERSION with CPU ops (about 11 min on 2 cores)"
  mkdir -p "$CACHE"
  (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} \
     MAX_JOBS=${MAX_JOBS:-$(nproc)} "$work/venv/bin/python" -m pip wheel -q \
     --no-build-isolation --no-deps . -w "$CACHE")
}

if have_mmcv_ops; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel=$(ls "$CACHE"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    build_mmcv_wheel
    wheel=$(ls "$CACHE"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  else
    log "using cached $wheel"
  fi
  "$PY" -m pip install -q "$wheel"
  have_mmcv_ops || { echo "mmcv.ops does not import after install" >&2; exit 1; }
fi

log "etf_plugin (editable) with pinned requirements"
"$PY" -m pip install -q -e "$ROOT[tests]"
"$PY" -c "import etf_plugin, mmdet, mmpretrain, mmcv.ops; print('[install] ok: etf_plugin', etf_plugin.__version__)"
