"""ID-based session recommenders of the Amazon-M2 paper (GRU4Rec++, NARM, STAMP, SR-GNN, CORE).

One contract (``SessionModel``), one trainer (``training.fit``, Lightning), one registry (``MODELS``):

    from id_baselines import train_baseline, load_baseline
    out = train_baseline("narm", "data/small", task=2, mode="finetune", out_dir="runs/narm-t2")
    ranked = load_baseline(out, data.catalog).recommend(data.test(2), k=100)  # (n, 100) catalog codes

The names below are imported on first use (PEP 562), so that ``id_baselines.config`` (the typed config
the command line builds its options from) loads without torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaselineRecommender": "api", "load_baseline": "api", "pipeline_baselines": "api", "train_baseline": "api",
    "train_on_sessions": "api", "transfer_weights": "api", "SessionModel": "base", "BaselineConfig": "config",
    "MODELS": "registry", "build_model": "registry",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
