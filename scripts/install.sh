#!/usr/bin/env bash
# Installs recformer-m2 and what it needs on a fresh machine. torch is pinned to the 2.13.0 CPU build
# first (plain `torch` would pull a multi-GB CUDA build); everything else comes from setup.py.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
# DeepSpeed's CPU backend JIT-compiles a small shared-memory op on first use; build it now, not inside a test.
DS_ACCELERATOR=cpu python -c "from deepspeed.comm.torch import build_shm_op; build_shm_op()" >/dev/null 2>&1 || \
  echo "note: DeepSpeed shm op not prebuilt; it will be compiled on first use" >&2
