"""ID-based session recommenders of the Amazon-M2 paper (GRU4Rec++, NARM, STAMP, SR-GNN, CORE).

One contract (``SessionModel``), one trainer (``training.fit``, Lightning), one registry (``MODELS``):

    from id_baselines import train_baseline, load_baseline
    out = train_baseline("narm", "data/small", task=2, mode="finetune", out_dir="runs/narm-t2")
    ranked = load_baseline(out, data.catalog).recommend(data.test(2), k=100)  # (n, 100) catalog codes
"""

from .api import BaselineRecommender, load_baseline, train_baseline, train_on_sessions, transfer_weights
from .base import SessionModel
from .config import BaselineConfig
from .registry import MODELS, build_model

__all__ = [
    "MODELS", "BaselineConfig", "BaselineRecommender", "SessionModel", "build_model", "load_baseline",
    "train_baseline", "train_on_sessions", "transfer_weights",
]
