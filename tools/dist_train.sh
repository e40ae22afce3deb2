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

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/dist_worker.py" "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
