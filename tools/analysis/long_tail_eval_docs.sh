#!/usr/bin/env bash
# Regenerate docs/data/long_tail_eval/: the numbers and figures of
# docs/long_tail_eval.md. Trains the CE baseline of the digits demo (about
# a minute; bit-reproducible on one thread, kept out of the repository),
# then writes the long-tail report of it and of the shipped ETF + DR
# checkpoint, the second one overlaying the first:
#
#   bash tools/analysis/long_tail_eval_docs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=docs/data/long_tail_eval
ETF_CHECKPOINT=checkpoints/resnet32_digitslt_etf_20261201-4a17b88b.pth
export OMP_NUM_THREADS=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

nice -n 15 python tools/train.py configs/resnet32_digitslt_ce.py \
    --work-dir "$WORK/ce"
python tools/analysis/per_class_report.py configs/resnet32_digitslt_ce.py \
    "$WORK/ce/epoch_60.pth" --work-dir "$WORK/ce_report" --out-dir "$OUT/ce" \
    --title 'linear + CE' --logit-adjust train
python tools/analysis/per_class_report.py configs/resnet32_digitslt_etf.py \
    "$ETF_CHECKPOINT" --work-dir "$WORK/etf_report" --out-dir "$OUT/etf" \
    --title 'ETF + DR' --logit-adjust train --compare "$OUT/ce"
