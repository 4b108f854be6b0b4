"""bench/gpu_check.sh cannot rot: CI runs its tiny CPU version, and the MFU lookup is checked."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_every_row(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECFORMER_M2_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(tmp_path / "rows.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    table = done.stdout
    for check in ("pretrain small", "pretrain base", "pretrain base, longformer attention", "finetune small",
                  "finetune base", "encode catalog, base",
                  "finetune small, collation inline", "finetune small, DataLoader", "exact torch.topk",
                  "faiss flat (cpu)", "torch flat (cpu)", "faiss ivf (cpu)"):
        assert f"| {check}" in table, check
    assert "failed" not in table and "DRY RUN" in table
    assert table.count("Recall@100 1.0000") == 2  # flat search is exact, in faiss and in torch


def test_peak_lookup_and_model_flops():
    gpu_check = load_gpu_check()
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.peak_tflops("NVIDIA L40S") == 362.0  # not L40's or L4's
    assert gpu_check.peak_tflops("Some Future Accelerator") is None

    class Config:  # base: D 768, 12 layers, I 3072, window 64
        hidden_size, num_hidden_layers, intermediate_size, attention_window = 768, 12, 3072, [64] * 12

    per_layer = 6 * 768 * 768 + 2 * 768 * 3072
    assert gpu_check.flops_per_token(Config) == 6 * 12 * per_layer + 12 * 12 * 768 * 65
