#!/usr/bin/env bash
# The test suite, as CI runs it: install, then pytest (quiet, with a summary of skips).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
python -m pytest -q "$@"
