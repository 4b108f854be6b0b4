"""Every next-item and next-title method by name, for ``predict`` and the main job.

Heuristics fit on the training sessions at once; model methods load a trained folder (``--model``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .constants import TOP_K
from .data import M2Data, Sessions
from .heuristics import RANKING_METHODS, TITLE_METHODS

MODEL_METHODS = ("recformer", "gru4rec", "narm", "stamp", "srgnn", "core")
"""Next-item methods that need a trained model folder (Recformer, or an ID baseline's train-baseline output)."""


def _heuristics() -> dict:
    from .hybrid import Hybrid
    from .textknn import TextKNN

    return {**RANKING_METHODS, "textknn": TextKNN, "hybrid": Hybrid}


class _RecformerRanker:
    """Recformer behind the ``recommend(sessions, k)`` contract of the heuristics."""

    name = "recformer"

    def __init__(self, model: str | Path, data: M2Data):
        from .recommender import Recommender

        self.recommender = Recommender.from_pretrained(model, data)

    def recommend(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        return self.recommender.recommend_codes(sessions, k, progress)


def ranking_method(name: str, data: M2Data, model: str | Path | None = None, train: Sessions | None = None):
    """A ready next-item method: heuristics fitted on ``train`` (default: all training sessions)."""
    heuristics = _heuristics()
    if name in heuristics:
        return heuristics[name]().fit(data.catalog, data.train if train is None else train)
    if name in MODEL_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs --model DIR (a trained model folder)")
        if name == "recformer":
            return _RecformerRanker(model, data)
        from id_baselines.api import load_baseline

        return load_baseline(model, data.catalog)
    raise ValueError(f"unknown next-item method {name!r}; choose from {sorted(heuristics) + list(MODEL_METHODS)}")


def title_method(name: str, data: M2Data, model: str | Path | None = None, train: Sessions | None = None):
    """A ready next-title method (task 3)."""
    from . import titles

    heuristics = {**TITLE_METHODS, **titles.TITLE_METHODS}
    if name in heuristics:
        return heuristics[name]().fit(data.catalog, data.train if train is None else train)
    if name in titles.MODEL_TITLE_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs --model DIR (a train-titles output folder)")
        return titles.TitleGenerator.from_pretrained(model).fit(data.catalog)
    raise ValueError(f"unknown title method {name!r}; choose from {sorted(heuristics) + list(titles.MODEL_TITLE_METHODS)}")
