"""Every next-item and next-title method by name, for ``predict`` and the main job.

Heuristics fit on the training sessions at once; model methods load a trained folder (``--model``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .constants import TOP_K
from .data import M2Data, Sessions
from .heuristics import RANKING_METHODS, TITLE_METHODS

MODEL_METHODS = ("recformer",)
"""Next-item methods that need a trained model folder."""


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
    if name in RANKING_METHODS:
        return RANKING_METHODS[name]().fit(data.catalog, data.train if train is None else train)
    if name in MODEL_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs --model DIR (a trained model folder)")
        return _RecformerRanker(model, data)
    raise ValueError(f"unknown next-item method {name!r}; choose from {sorted(RANKING_METHODS) + list(MODEL_METHODS)}")


def title_method(name: str, data: M2Data, model: str | Path | None = None, train: Sessions | None = None):
    """A ready next-title method (task 3)."""
    if name in TITLE_METHODS:
        return TITLE_METHODS[name]().fit(data.catalog, data.train if train is None else train)
    raise ValueError(f"unknown title method {name!r}; choose from {sorted(TITLE_METHODS)}")
