#!/usr/bin/env bash
# The batch script that tools/slurm_train.sh submits (run by Slurm):
#   slurm_train_job.sh CONFIG WORK_DIR [train.py args]
# Environment: ETF_TOOLS (this folder), PYTHON (python), SRUN_ARGS.
# Runs tools/train.py --resume in one srun step. SIGUSR1 (the time-limit
# warning, sent to this script only: --signal=B:...) and SIGTERM are passed
# to the step; when the step then ends with status 75 (PreemptionHook
# saved the current iteration) after a SIGUSR1, the job requeues itself.
set -uo pipefail

CONFIG=$1
WORK_DIR=$2
PREEMPTED=75
TOOLS=${ETF_TOOLS:-$(dirname "$0")}

srun --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$TOOLS/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm --resume "${@:3}" &
STEP=$!
REQUEUE=0
pass_on() {
  [ "$1" = USR1 ] && REQUEUE=1
  kill -s "$1" "$STEP" 2>/dev/null || true
}
trap 'pass_on USR1' USR1
trap 'pass_on TERM' TERM
STATUS=0
wait "$STEP" || STATUS=$?
# a trapped signal interrupts wait (status > 128): wait for the real end
while [ "$STATUS" -gt 128 ] && kill -0 "$STEP" 2>/dev/null; do
  STATUS=0
  wait "$STEP" || STATUS=$?
done
if [ "$STATUS" -eq "$PREEMPTED" ] && [ "$REQUEUE" -eq 1 ]; then
  echo "Saved before the time limit: requeueing job $SLURM_JOB_ID" >&2
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$STATUS"
