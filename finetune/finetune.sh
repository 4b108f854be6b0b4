#!/usr/bin/env bash
# Two-stage finetuning of a pretrained Recformer on a task's locales (default task 2: ES, FR, IT).
#   bash finetune/finetune.sh DATA_DIR PRETRAINED_DIR OUT_DIR [extra args, e.g. --config finetune/configs/small.json]
# PRETRAINED_DIR is a pretraining OUT/final folder, or `none` to train from scratch (supervised only).
# The best model lands in OUT_DIR/best; rerunning the same command after a crash resumes.
# Several GPUs (Lightning DDP): torchrun --nproc_per_node N finetune/finetune.py ... --devices N --strategy ddp
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: bash finetune/finetune.sh DATA_DIR PRETRAINED_DIR OUT_DIR [extra args]" >&2
  exit 2
fi
DATA="$1"; PRETRAINED="$2"; OUT="$3"; shift 3
HERE="$(cd "$(dirname "$0")" && pwd)"
exec python "$HERE/finetune.py" --data "$DATA" --pretrained "$PRETRAINED" --out "$OUT" "$@"
