#!/usr/bin/env bash
# The main job on the embedded default: synthetic Amazon-M2 data through every stage built so far,
# a per-locale table on stdout and a report with plots in runs/main (extra arguments go to `pipeline`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
recformer-m2 pipeline --out runs/main "$@"
