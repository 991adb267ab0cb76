#!/usr/bin/env bash
# The one prepared run for a GPU machine (issue: GPUs for real): the default study on GunPoint with
# one worker per GPU, then 4 and 8 workers per GPU, then the same study on the CPU, each for
# $SECONDS_EACH seconds. About 4 x (SECONDS_EACH + 30) s in all.
#   pip install torch==<CUDA build> && pip install -e ".[gpu]" && bash scripts/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-90}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
for per_gpu in 1 4 8; do
  python scripts/gpu_check.py --seconds "$SECONDS_EACH" --workers-per-gpu "$per_gpu"
done
python scripts/gpu_check.py --seconds "$SECONDS_EACH" --cpu
