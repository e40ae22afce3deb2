#!/usr/bin/env bash
# Set up etf_plugin in whatever environment `python3` (or $PYTHON) is: the
# system interpreter, an activated virtualenv or a conda env, CPU or GPU.
#
#   bash tools/install.sh                    # install
#   bash tools/install.sh --plan             # print what it would do, change
#                                            # nothing
#   bash tools/install.sh --check-build-env  # only show which torch the mmcv
#                                            # build would compile against
#
# A guest in your environment (tools/install_plan.py decides, and the log
# says why; docs/install.md has the table):
# - torch: an installed torch >= 2.0 is kept, and a torchvision built for it;
#   only where none imports are torch 2.14.1 + torchvision 0.29.1 installed.
#   Every later pip call pins the torch it found, so nothing replaces it.
# - mmcv: an installed mmcv in the accepted range whose ops run (on the GPU
#   too where CUDA ops are wanted) is kept. Otherwise mmcv 2.1.0 is built
#   against your torch, with CUDA ops when torch sees a GPU and nvcc matches
#   torch's CUDA (FORCE_CUDA=1/0 decides instead), and cached in
#   $ETF_PLUGIN_WHEEL_CACHE/<key> (default ~/.cache/etf_plugin/wheels), the
#   key naming Python, platform, torch build and ops, so a wheel is reused
#   only where it fits.
# - then this package in editable mode with its test extras.
# Environment: PYTHON (interpreter, default python3), MAX_JOBS (compile
# jobs), FORCE_CUDA, TORCH_CUDA_ARCH_LIST (GPU architectures of a CUDA build).
set -euo pipefail

PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PLANNER=$ROOT/tools/install_plan.py
CACHE=${ETF_PLUGIN_WHEEL_CACHE:-$HOME/.cache/etf_plugin/wheels}
export ETF_PLUGIN_WHEEL_CACHE=$CACHE

log() { echo "[install] $*"; }
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
scratch_dir() { mktemp -d "$SCRATCH/XXXX"; }
die() { echo "[install] error: $*" >&2; exit 1; }

# Sets TORCH_ACTION, MMCV_ACTION, CACHE_KEY, CACHED_WHEEL, PIP_TORCH, ...
# (tools/install_plan.py shell_lines); the plan itself goes to the log.
plan() {
  local lines
  lines=$("$PY" "$PLANNER" plan --shell --cache "$CACHE") || exit 1
  eval "$lines"
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
  # Builds mmcv $MMCV_VERSION with $MMCV_OPS ops and caches it under
  # $CACHE_KEY (set by plan).
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
  # mmcv's setup.py compiles CUDA ops whenever torch sees a GPU: a CPU build
  # hides the GPUs; a CUDA build names its architectures (the cache key's).
  local -a build_env=(MMCV_WITH_OPS=1 "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
  if [ "$MMCV_OPS" = cuda ]; then
    build_env+=(FORCE_CUDA=1)
    [ -z "$MMCV_CUDA_ARCH" ] || build_env+=("TORCH_CUDA_ARCH_LIST=$MMCV_CUDA_ARCH")
    log "building mmcv $MMCV_VERSION with CUDA $MMCV_CUDA ops (arch ${MMCV_CUDA_ARCH:-torch default}) against torch $TORCH_VERSION"
  else
    build_env+=(FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=)
    log "building mmcv $MMCV_VERSION with CPU ops against torch $TORCH_VERSION (11-30 min on 2 cores)"
  fi
  mkdir -p "$work/dist"
  (cd "$work/mmcv-$MMCV_VERSION" && env "${build_env[@]}" \
     "$work/venv/bin/python" -m pip wheel -q --no-build-isolation --no-deps \
     . -w "$work/dist")
  local built
  built=$(ls "$work"/dist/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  "$PY" "$PLANNER" store-wheel --cache "$CACHE" "$built" "$CACHE_KEY"
}

PLAN_ONLY=
case "${1:-}" in
  --check-build-env) check_build_env; exit 0 ;;
  --plan) PLAN_ONLY=1 ;;
  '') ;;
  *) die "unknown argument '$1' (usage: bash tools/install.sh [--plan | --check-build-env])" ;;
esac

log "into $("$PY" -c 'import sys; print(sys.prefix)')"
plan
if [ -n "$PLAN_ONLY" ]; then
  log "--plan: nothing changed"
  exit 0
fi

# setuptools < 82 keeps pkg_resources (removed in 82.0.0), which mmengine
# 0.10.7 needs to resolve `mmdet::` / `mmpretrain::` config bases.
if [ "$TORCH_ACTION" = install ] || [ "$TORCHVISION_ACTION" = install ]; then
  log "pip install ${PIP_TORCH[*]}"
  "$PY" -m pip install -q "${PIP_TORCH[@]}" "setuptools<82"
  plan
  [ "$TORCH_ACTION" = keep ] && [ "$TORCHVISION_ACTION" = keep ] \
    || die "torch/torchvision still do not import and run after installing them; see the plan above"
fi

# Every later pip call keeps this torch: pip fails rather than replace it.
KEEP=$SCRATCH/keep-torch.txt
printf 'torch==%s\n' "$TORCH_DIST" > "$KEEP"

if [ "$MMCV_ACTION" = install ]; then
  if [ -n "$CACHED_WHEEL" ]; then
    log "using cached $CACHED_WHEEL"
  else
    build_mmcv_wheel
    plan
    [ -n "$CACHED_WHEEL" ] || die "no cached wheel under $CACHE/$CACHE_KEY after the build"
  fi
  if [ -n "$MMCV_LITE" ]; then
    log "removing mmcv-lite (it has no ops and shares mmcv's files)"
    "$PY" -m pip uninstall -q -y mmcv-lite
  fi
  # --force-reinstall: an installed ops-less mmcv of the same version would
  # make a plain install a no-op ("already satisfied").
  "$PY" -m pip install -q -c "$KEEP" --force-reinstall --no-deps "$CACHED_WHEEL"
  "$PY" -m pip install -q -c "$KEEP" "$CACHED_WHEEL"
  plan
  [ "$MMCV_ACTION" = keep ] || die "mmcv's ops do not run after installing $CACHED_WHEEL; see the plan above"
fi

log "etf_plugin (editable) with its test extras"
"$PY" -m pip install -q -c "$KEEP" -e "$ROOT[tests]"
"$PY" -c "import etf_plugin, mmpretrain, mmcv.ops, torch; print('[install] ok: etf_plugin', etf_plugin.__version__, 'with torch', torch.__version__)"
