#!/usr/bin/env bash
# The neural-collapse part of the GPU check (run from the repository root on
# the GPU machine; $OUT is the folder whose files come back):
#   bash benchmarks/gpu_check_nc.sh
# NeuralCollapseHook at interval 1 on the ResNet-50 ImageNet-LT config, the
# one-pass hook against the two-pass one, side by side. 2048 images (on a
# GPU the forward passes of 320 would be hidden by the per-measurement cost
# of compute, record and figure), about a minute with the Runner's start-up.
# The previous release's benchmark takes the same arguments but --device
# (it uses the GPU when one is visible).
set -uo pipefail
OUT=${OUT:-/tmp}
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} timeout 90 \
    python benchmarks/nc_hook_overhead.py --device cuda --num-samples 2048 \
    --batch-size 64 --epochs 2 2>&1 | tee "$OUT/nc_hook.txt"
