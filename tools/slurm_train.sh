#!/usr/bin/env bash
# Training on a Slurm cluster, MMPretrain's arguments, as a batch job that
# survives preemption and the time limit:
#   [GPUS=8] [GPUS_PER_NODE=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS (8, processes in all), GPUS_PER_NODE (8), CPUS_PER_TASK
# (5), SRUN_ARGS, SBATCH_ARGS, PYTHON (python), WARNING_SIGNAL (USR1@120:
# the signal Slurm sends, and how many seconds before the time limit).
#
# It submits tools/slurm_train_job.sh with sbatch and returns; the job's
# output is appended to WORK_DIR/slurm-JOBID.out (--open-mode=append: a
# requeued job keeps one log). The job runs tools/train.py with srun, one
# process per GPU (--kill-on-bad-exit ends the step when one fails), and
# always with --resume, so a requeued job continues from the latest
# checkpoint in WORK_DIR (a first run starts from scratch):
# * WARNING_SIGNAL seconds before the time limit the job gets SIGUSR1
#   (--signal=B:...), passes it to the processes, whose PreemptionHook saves
#   the current iteration and exits with status 75; the job then requeues
#   itself (scontrol requeue, --requeue) and continues there.
# * On preemption Slurm sends SIGTERM: the same save, and Slurm requeues the
#   job if the partition preempts by requeueing. scancel: the same save,
#   no requeue.
set -eo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SBATCH_ARGS=${SBATCH_ARGS:-""}
WARNING_SIGNAL=${WARNING_SIGNAL:-USR1@120}
TOOLS=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$WORK_DIR"
# sbatch passes this environment (PYTHON, SRUN_ARGS, ...) to the job; it
# runs a copy of the job script, which finds the tools through ETF_TOOLS.
export ETF_TOOLS="$TOOLS"
export PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}"
set -x
sbatch -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --requeue \
    --signal=B:"$WARNING_SIGNAL" \
    --open-mode=append \
    --output="$WORK_DIR/slurm-%j.out" \
    ${SBATCH_ARGS} \
    "$TOOLS/slurm_train_job.sh" "$CONFIG" "$WORK_DIR" "${@:5}"
