#!/usr/bin/env bash
# The GPU checks of the head/loss changes (issue 23), as one short script:
#
#   OUT=/path/to/results [OLD_TREE=/path/to/old/checkout] [FP16=1] \
#       bash benchmarks/gpu_check.sh
#
# Run from the repository root on a machine with a CUDA GPU, where python3
# imports torch, mmengine, mmpretrain and mmcv. Every step has its own
# timeout and tees its output to $OUT/<step>.txt. Without OLD_TREE it
# should take about 3-4 minutes on one H200 (the compile step is the last
# and longest); OLD_TREE adds about a minute, FP16=1 (the head benchmark
# under fp16 AMP too, as tools/train.py --amp on a GPU) half a minute per
# tree. A failed step does not stop the others; the exit status is that of
# the last failed step (0 if none failed).
#
# - head_overhead_{fp32,bf16[,fp16]}.txt: benchmarks/head_overhead.py with the
#   ImageNet preset at batch 128 (the setting): full train step and
#   heads alone, ETF/Linear ratios and kernels per step.
# - old_head_overhead_*.txt (only with OLD_TREE): the same script measuring
#   the package of another checkout (e.g. the commit before these changes),
#   for before/after numbers with the same timing and launch counting. The
#   old tree's own benchmarks/head_overhead.py (fp32 only, no --amp) also
#   runs unchanged with the same --preset/--device/--batch flags.
# - amp_overflow.txt: benchmarks/amp_overflow_check.py, MMEngine's fp16
#   AmpOptimWrapper with a forced overflow: the step is skipped, the scale
#   halves, the next step trains; without AMP NonFiniteLossHook stops.
# - fused_head_{fp32,bf16}.txt: benchmarks/fused_head_check.py, the heads'
#   fused path (their default on CUDA) against the eager one: which path
#   ran, differences of loss, gradients and BatchNorm running statistics.
# - compile.txt: benchmarks/compile_check.py, cfg.compile (inductor) against
#   eager, fp32 and fp16 AMP.
set -u
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
REPO=$(pwd)
status=0

step() {  # step NAME SECONDS COMMAND...
    local name=$1 seconds=$2
    shift 2
    echo "== $name: $*" | tee "$OUT/$name.txt"
    timeout "$seconds" "$@" 2>&1 | grep -v -e '^USDT:' -e 'SyncActivityProfiler' \
        | tee -a "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc" | tee -a "$OUT/$name.txt"
    [ "$rc" -eq 0 ] || status=$rc
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c 'import torch, mmengine, mmpretrain; print("torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__, "mmpretrain", mmpretrain.__version__)'
    git -C "$REPO" log -1 --oneline
} 2>&1 | tee "$OUT/environment.txt"

BENCH=(python3 -u "$REPO/benchmarks/head_overhead.py" --preset imagenet
       --device cuda --batch 128)
head_overhead() {  # head_overhead PREFIX PACKAGE_ROOT
    local prefix=$1 path=$2
    step "${prefix}head_overhead_fp32" 120 env \
        PYTHONPATH="$path:${PYTHONPATH:-}" "${BENCH[@]}"
    step "${prefix}head_overhead_bf16" 120 env \
        PYTHONPATH="$path:${PYTHONPATH:-}" "${BENCH[@]}" --amp \
        --amp-dtype bfloat16
    if [ -n "${FP16:-}" ]; then
        step "${prefix}head_overhead_fp16" 120 env \
            PYTHONPATH="$path:${PYTHONPATH:-}" "${BENCH[@]}" --amp \
            --amp-dtype float16
    fi
}

head_overhead '' "$REPO"

step fused_head_fp32 120 env PYTHONPATH="$REPO:${PYTHONPATH:-}" \
    python3 -u "$REPO/benchmarks/fused_head_check.py" --device cuda
step fused_head_bf16 120 env PYTHONPATH="$REPO:${PYTHONPATH:-}" \
    python3 -u "$REPO/benchmarks/fused_head_check.py" --device cuda --amp

step amp_overflow 120 env PYTHONPATH="$REPO:${PYTHONPATH:-}" \
    python3 -u "$REPO/benchmarks/amp_overflow_check.py"

if [ -n "${OLD_TREE:-}" ]; then
    head_overhead old_ "$OLD_TREE"
fi

# cfg.compile with inductor, fp32 and fp16 AMP: losses against eager, graph
# breaks (MMEngine 0.10.7's autocast in train_step was reported to fail).
step compile 150 env PYTHONPATH="$REPO:${PYTHONPATH:-}" \
    python3 -u "$REPO/benchmarks/compile_check.py" --backend inductor

# (nc helper: add the NeuralCollapseHook benchmark step here.)

exit $status
