#!/usr/bin/env bash
# Distributed neural-collapse analysis, the conventions of tools/dist_test.sh
# (whose launcher it uses, environment included):
#   tools/dist_nc_eval.sh CONFIG CHECKPOINT GPUS [nc_eval.py args]
# Without GPUs the gloo backend is used. Each rank measures its share of
# every split and the statistics are all-reduced, so the result equals a
# one-process run.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [nc_eval.py args]" >&2
  exit 2
fi
TEST_SCRIPT="$(dirname "$0")/analysis/nc_eval.py" \
  exec "$(dirname "$0")/dist_test.sh" "$@"
