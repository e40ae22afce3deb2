#!/usr/bin/env bash
# One-command set-up of etf_plugin on a fresh Python 3.11 machine (CPU or GPU),
# into whatever environment `python3` (or $PYTHON) is: the system interpreter,
# an activated virtualenv, or a conda env.
#
#   bash tools/install.sh                    # install
#   bash tools/install.sh --check-build-env  # only show which torch the mmcv
#                                            # build would compile against
#
# Installs torch 2.14.1 + torchvision 0.29.1, mmcv 2.1.0 *with* its compiled
# ops (built from the PyPI sdist, since no wheel exists for this torch), then
# this package in editable mode with its test extras.
#
# The mmcv wheel is cached in $ETF_PLUGIN_WHEEL_CACHE (default
# ~/.cache/etf_plugin/wheels) so only the first install pays the 11-30 min
# build. A wheel is cached only after it is checked to hold the compiled
# mmcv/_ext; a cached or installed mmcv without it is replaced.
# Environment: PYTHON (interpreter, default python3), MAX_JOBS (compile jobs).
set -euo pipefail

PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ETF_PLUGIN_WHEEL_CACHE:-$HOME/.cache/etf_plugin/wheels}
MMCV_VERSION=2.1.0

log() { echo "[install] $*"; }
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
scratch_dir() { mktemp -d "$SCRATCH/XXXX"; }
die() { echo "[install] error: $*" >&2; exit 1; }

have_mmcv_ops() {
  "$PY" - <<PYEOF 2>/dev/null
import mmcv, mmcv.ops  # mmcv.ops fails to import without the compiled _ext
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
PYEOF
}

wheel_has_ops() {
  # mmcv's setup.py silently falls back to a pure-Python wheel when it cannot
  # import torch, so the file name alone proves nothing.
  "$PY" - "$1" <<'PYEOF'
import re, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(re.fullmatch(r'mmcv/_ext[^/]*\.(so|pyd)', n) for n in names) else 1)
PYEOF
}

make_build_env() {
  # mmcv 2.1.0 must be built against the caller's torch, but with setuptools
  # < 70 (newer ones break its setup.py), which we must not force on the
  # caller. A venv made by "$PY" -m venv --system-site-packages would see the
  # *base* interpreter's packages when "$PY" is itself a venv, not the
  # caller's torch. So: a plain venv holding only the old build tools, with
  # the caller's site directories appended to its sys.path by a .pth file.
  local env=$1
  "$PY" -m venv "$env" || die "'$PY -m venv' failed; install your Python's venv module (e.g. apt install python3-venv)"
  "$PY" - "$env" <<'PYEOF'
import os, subprocess, sys
env = sys.argv[1]
caller_sites = [p for p in sys.path
                if os.path.isdir(p) and os.path.basename(p) in ('site-packages', 'dist-packages')]
build_site = subprocess.check_output(
    [os.path.join(env, 'bin', 'python'), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
    text=True).strip()
with open(os.path.join(build_site, 'zz_caller_site_packages.pth'), 'w') as f:
    f.write(''.join(p + '\n' for p in caller_sites))
PYEOF
  "$env/bin/python" -m pip install -q "setuptools<70" wheel ninja
}

torch_location() {
  "$1" -c 'import torch, os; print(torch.__version__, os.path.dirname(os.path.realpath(torch.__file__)))'
}

check_build_env() {
  local work
  work=$(scratch_dir)
  make_build_env "$work/venv"
  local caller build
  caller=$(torch_location "$PY") || die "'$PY' cannot import torch"
  build=$(torch_location "$work/venv/bin/python") || die "the build environment cannot import torch"
  echo "caller torch: $caller"
  echo "build torch:  $build"
  [ "$caller" = "$build" ] || die "the mmcv build would compile against another torch than '$PY' uses"
}

build_mmcv_wheel() {
  local work
  work=$(scratch_dir)
  make_build_env "$work/venv"
  [ "$(torch_location "$PY")" = "$(torch_location "$work/venv/bin/python")" ] \
    || die "the mmcv build environment does not see the torch of '$PY'"
  log "downloading the mmcv $MMCV_VERSION sdist"
  "$work/venv/bin/python" -m pip download -q --no-deps --no-binary :all: \
    --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
  tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
  # torch >= 2.6 headers need C++20; mmcv 2.1.0 hard-codes c++14/17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
    "$work/mmcv-$MMCV_VERSION/setup.py"
  log "building mmcv $MMCV_VERSION with CPU ops (11-30 min on 2 cores)"
  mkdir -p "$work/dist" "$CACHE"
  (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} \
     MAX_JOBS=${MAX_JOBS:-$(nproc)} "$work/venv/bin/python" -m pip wheel -q \
     --no-build-isolation --no-deps . -w "$work/dist")
  local built
  built=$(ls "$work"/dist/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  wheel_has_ops "$built" || die "the built $(basename "$built") has no compiled mmcv/_ext (not cached)"
  # Copy then rename, so an interrupted install never leaves a partial wheel
  # under a name the next install would trust.
  cp "$built" "$CACHE/.$(basename "$built").part"
  mv "$CACHE/.$(basename "$built").part" "$CACHE/$(basename "$built")"
}

cached_wheel() {
  # Prints the first cached wheel with ops, and nothing else on stdout (it is
  # read by $(...)): the log goes to stderr. Every ops-less wheel is deleted,
  # also one that sorts after a good wheel (the silent pure-Python fallback
  # mmcv-2.1.0-py2.py3-none-any.whl sorts after mmcv-2.1.0-cp311-...).
  local w good=
  for w in "$CACHE"/mmcv-$MMCV_VERSION-*.whl; do
    [ -e "$w" ] || continue
    if wheel_has_ops "$w"; then
      [ -n "$good" ] || good=$w
    else
      log "removing cached $(basename "$w"): it has no compiled ops" >&2
      rm -f "$w"
    fi
  done
  [ -z "$good" ] || echo "$good"
}

if [ "${1:-}" = "--check-build-env" ]; then
  check_build_env
  exit 0
elif [ -n "${1:-}" ]; then
  die "unknown argument '$1' (usage: bash tools/install.sh [--check-build-env])"
fi

log "torch 2.14.1 + torchvision 0.29.1 into $("$PY" -c 'import sys; print(sys.prefix)')"
# setuptools < 82 keeps pkg_resources (removed in 82.0.0), which mmengine
# 0.10.7 needs to resolve `mmdet::` / `mmpretrain::` config bases.
"$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1 "setuptools<82"

if have_mmcv_ops; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel=$(cached_wheel)
  if [ -z "$wheel" ]; then
    build_mmcv_wheel
    wheel=$(cached_wheel)
  else
    log "using cached $wheel"
  fi
  # --force-reinstall: an installed ops-less mmcv of the same version would
  # make a plain install a no-op ("already satisfied").
  "$PY" -m pip install -q --force-reinstall --no-deps "$wheel"
  "$PY" -m pip install -q "$wheel"
  have_mmcv_ops || die "mmcv.ops does not import after installing $wheel"
fi

log "etf_plugin (editable) with its test extras"
"$PY" -m pip install -q -e "$ROOT[tests]"
"$PY" -c "import etf_plugin, mmpretrain, mmcv.ops; print('[install] ok: etf_plugin', etf_plugin.__version__)"
