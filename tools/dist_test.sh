#!/usr/bin/env bash
# Distributed testing with torchrun, MMPretrain's conventions:
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Environment: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR
# (127.0.0.1), PYTHON (python), as for tools/dist_train.sh. Without GPUs
# tools/test.py uses the gloo backend. If any process fails, torchrun stops
# the others and this script exits non-zero; a hung or frozen process ends
# the job after env_cfg.dist_cfg.timeout seconds (see tools/dist_train.sh).
# TEST_SCRIPT runs another script with the same arguments (tools/dist_nc_eval.sh).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py args]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
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
    "$(dirname "$0")/dist_worker.py" "${TEST_SCRIPT:-$(dirname "$0")/test.py}" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
