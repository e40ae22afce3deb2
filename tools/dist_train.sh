#!/usr/bin/env bash
# Distributed training with torchrun, MMPretrain's conventions:
#   tools/dist_train.sh CONFIG GPUS [train.py args]
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR
# (127.0.0.1), PYTHON (python). GPUS is the number of processes on this node;
# for several nodes run the same command on each with NNODES, its NODE_RANK
# and the first node's MASTER_ADDR and PORT. Without GPUs tools/train.py uses
# the gloo backend, so GPUS CPU processes run. If any process fails, torchrun
# stops the others and this script exits non-zero. A process that hangs (or
# is frozen) makes the others' next collective fail after
# env_cfg.dist_cfg.timeout seconds (1800 in our configs; e.g.
# --cfg-options env_cfg.dist_cfg.timeout=300), which ends the job the same
# way. Each process runs under tools/dist_worker.py, which wakes a stopped
# process (SIGCONT) when torchrun stops it, so the job ends within the
# timeout instead of after torchrun's extra 30 s.
#
# Stopping: SIGTERM, SIGINT, SIGHUP or SIGUSR1 to this script (or to its
# process group) reaches every process through torchrun. With
# PreemptionHook (in our configs) each process finishes its iteration, rank
# 0 saves that iteration, and this script exits with status 75
# (PREEMPTED_EXIT_CODE, "try again later"); the same command with --resume
# continues at the next batch. A second signal is ignored while the first
# is acted on. torchrun sends SIGKILL to a process still running
# SHUTDOWN_TIMEOUT seconds (120) after the signal.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG GPUS [train.py args]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
PREEMPTED=75

# Each process's exit status, written by dist_worker.py: torchrun reports a
# signal or a failed process as 1 whatever the processes' own statuses.
STATUS_DIR=$(mktemp -d)
trap 'rm -rf "$STATUS_DIR"' EXIT
export ETF_DIST_STATUS_DIR="$STATUS_DIR"
export TORCHELASTIC_SIGNALS_TO_HANDLE=${TORCHELASTIC_SIGNALS_TO_HANDLE:-SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1}
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-120}

# torchrun in a session of its own: a signal to this script's process group
# reaches it once, through the traps below (twice, torchrun would cut its
# graceful shutdown short).
PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
setsid "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/dist_worker.py" "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}" &
LAUNCHER=$!
# The first signal is passed on; later ones are ignored, so they cannot cut
# the save short (SIGKILL still ends everything at once).
stop() {
  trap '' TERM INT HUP USR1
  kill -s "$1" "$LAUNCHER" 2>/dev/null || true
}
for SIG in TERM INT HUP USR1; do
  trap "stop $SIG" "$SIG"
done
STATUS=0
wait "$LAUNCHER" || STATUS=$?
# a trapped signal interrupts wait (status > 128): wait for the real end
while [ "$STATUS" -gt 128 ] && kill -0 "$LAUNCHER" 2>/dev/null; do
  STATUS=0
  wait "$LAUNCHER" || STATUS=$?
done
if grep -qsx "$PREEMPTED" "$STATUS_DIR"/*; then
  exit "$PREEMPTED"
fi
exit "$STATUS"
