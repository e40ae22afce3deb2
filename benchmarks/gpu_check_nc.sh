#!/usr/bin/env bash
# The neural-collapse part of the GPU check (run from the repository root on
# the GPU machine; $OUT is the folder whose files come back):
#   bash benchmarks/gpu_check_nc.sh
# NeuralCollapseHook at interval 1 on the ResNet-50 ImageNet-LT config, the
# one-pass hook against the two-pass one, side by side (about 30 s on an
# H200, with the Runner's start-up).
set -uo pipefail
OUT=${OUT:-/tmp}
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout 90 \
    python benchmarks/nc_hook_overhead.py --device cuda 2>&1 \
    | tee "$OUT/nc_hook.txt"
