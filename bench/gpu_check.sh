#!/usr/bin/env bash
# The one GPU check: pretraining (small, base; bf16, MFU), finetuning, catalog encoding at base, and faiss-gpu
# flat/IVF against exact search on 1.41M x 768, printed as one table (bench/gpu_check.py says what each row is).
# Needs no internet: run after `bash scripts/install.sh` and `pip install -e .[gpu]` (faiss-gpu; without it the
# faiss rows say so). Under 8 minutes on one GPU.
#
#   bash bench/gpu_check.sh [--out rows.json]   # on a GPU machine
#   bash bench/gpu_check.sh --dry-run           # a tiny CPU version of every row, well under a minute (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --dry-run "* ]] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
fi
PYTHON=$(command -v python || command -v python3)  # GPU images often have only python3
exec "$PYTHON" bench/gpu_check.py "$@"
