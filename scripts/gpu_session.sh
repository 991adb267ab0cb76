#!/usr/bin/env bash
# The one prepared run for a GPU machine (issue: GPUs for real): the default study on GunPoint with
# one worker per GPU, then 4 and 8 workers per GPU, then the same study on the CPU, each for
# $SECONDS_EACH seconds. About 4 x (SECONDS_EACH + 20) s in all; it stops after the first study
# if that one fails. Arguments are passed on to each study as Hydra overrides.
#   pip install torch==<CUDA build> && pip install -e ".[gpu]" && bash scripts/gpu_session.sh
set -uo pipefail
check="$(cd "$(dirname "$0")" && pwd)/gpu_check.py"
cd "$(mktemp -d)"  # the studies' folders and Hydra's outputs go to a scratch folder
SECONDS_EACH=${SECONDS_EACH:-90}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, lightning, optuna; print('torch', torch.__version__, 'lightning', lightning.__version__, 'optuna', optuna.__version__)"
for per_gpu in 1 4 8; do
  python3 "$check" --seconds "$SECONDS_EACH" --workers-per-gpu "$per_gpu" "$@"
  status=$?
  if [ "$per_gpu" = 1 ] && [ "$status" != 0 ]; then exit "$status"; fi
done
python3 "$check" --seconds "$SECONDS_EACH" --cpu "$@"
