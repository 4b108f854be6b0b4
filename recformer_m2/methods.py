"""Every next-item and next-title method by name, for ``predict`` and the main job.

Heuristics fit on the training sessions at once; model methods load a trained folder (``--model``).
``hybrid`` takes any number of trained folders (a list, or paths joined by commas) as extra candidate
sources: a Recformer folder (``config.json`` of model type ``recformer``) or an ID baseline's
``train-baseline`` output (``model.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .constants import LOCALES, TASK_LOCALES, TOP_K
from .data import M2Data, Sessions, locale_split
from .heuristics import RANKING_METHODS, TITLE_METHODS

logger = logging.getLogger(__name__)

MODEL_METHODS = ("recformer", "recformer-alone", "gru4rec", "narm", "stamp", "srgnn", "core")
"""Next-item methods that need a trained model folder (Recformer, or an ID baseline's train-baseline output).
``recformer-alone`` serves a Recformer folder by the model's scores only, without the title similarity its
``lexical_weight`` fuses in (an ablation of :mod:`recformer_m2.lexical`)."""

TEXT_METHODS = ("textknn", "recformer", "recformer-alone")
"""Next-item methods that read product text: refused with MissingTextError on an ID-only data folder (every
title method reads titles too). The hybrid drops its text sources by itself."""


def _heuristics() -> dict:
    from .hybrid import Hybrid
    from .textknn import TextKNN

    return {**RANKING_METHODS, "textknn": TextKNN, "hybrid": Hybrid}


class _RecformerRanker:
    """Recformer behind the ``recommend(sessions, k)`` contract of the heuristics."""

    name = "recformer"

    def __init__(self, model: str | Path, data: M2Data, lexical: bool = True):
        from .recommender import Recommender

        self.recommender = Recommender.from_pretrained(model, data, lexical=lexical)

    def recommend(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        return self.recommender.recommend_codes(sessions, k, progress)

    def recommend_with_scores(self, sessions: Sessions, k: int = TOP_K,
                              progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k codes (n, k) and their cosine scores (n, k), -1 / -inf padded; never a session item."""
        return self.recommender.recommend_codes_with_scores(sessions, k, progress)


def model_folders(model: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """Trained folders from ``--model``: one path, paths joined by commas, or a list of them."""
    if model is None:
        return []
    items = [model] if isinstance(model, (str, Path)) else list(model)
    return [Path(part.strip()) for item in items for part in str(item).split(",") if part.strip()]


def load_model_source(folder: str | Path, data: M2Data):
    """A trained folder as a hybrid ``ModelSource``: Recformer (``config.json`` with model type
    ``recformer``) or an ID baseline (``model.json``), with its locales and its never-trained-on sessions.

    Those sessions are recomputed from the folder's saved config over ``data``'s training sessions, which
    assumes the model was trained on this data folder; a folder without a finetuning config (e.g. a
    pretraining ``final``) has unknown unseen sessions (the hybrid then warns that it is optimistic)."""
    from .config import load_config
    from .hybrid import ModelSource

    folder = Path(folder)
    if (folder / "model.json").exists():
        from id_baselines.api import load_baseline
        from id_baselines.config import BaselineConfig

        info = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        config = load_config(BaselineConfig, folder / "config.json")
        locales = info.get("locales") or list(TASK_LOCALES[int(info["task"])])
        _, unseen = locale_split(data.train, locales, config.valid_fraction, config.seed, config.max_valid_per_locale)
        return ModelSource(load_baseline(folder, data.catalog), str(info["model"]),
                           [LOCALES.index(x) for x in locales], unseen)
    config_file = folder / "config.json"
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type") if config_file.exists() else None
    if model_type != "recformer":
        raise ValueError(f"{folder} is neither a Recformer folder (config.json with model_type 'recformer') "
                         f"nor an ID baseline folder (model.json)")
    from .finetuning import FinetuneConfig

    name = "recformer"
    data.require_text(f"hybrid with {folder}")
    ranker = _RecformerRanker(folder, data)
    if not (folder / "finetune_config.json").exists():
        logger.warning("%s has no finetune_config.json: its training sessions are unknown", folder)
        return ModelSource(ranker, name)
    config = load_config(FinetuneConfig, folder / "finetune_config.json")
    locales = TASK_LOCALES[config.task]
    _, unseen = locale_split(data.train, locales, config.valid_fraction, config.split_seed,
                             config.max_valid_per_locale)
    return ModelSource(ranker, name, [LOCALES.index(x) for x in locales], unseen)


def model_sources(model: str | Path | Sequence[str | Path] | None, data: M2Data) -> dict:
    """Name -> ``ModelSource`` of every trained folder in ``model``: the model's name (``recformer``,
    ``narm``, ...), then ``_2``, ``_3`` for repeats."""
    sources: dict = {}
    for folder in model_folders(model):
        source = load_model_source(folder, data)
        name, n = source.name, 2
        while name in sources:
            name, n = f"{source.name}_{n}", n + 1
        sources[name] = source
    return sources


def ranking_method(name: str, data: M2Data, model: str | Path | Sequence[str | Path] | None = None,
                   train: Sessions | None = None):
    """A ready next-item method: heuristics fitted on ``train`` (default: all training sessions).

    ``hybrid`` with ``model`` (one folder, comma-joined folders or a list) adds each trained model as a
    candidate source next to the heuristic ones."""
    heuristics = _heuristics()
    if name in TEXT_METHODS:
        data.require_text(name)
    if name == "hybrid" and model_folders(model):
        from .hybrid import Hybrid, default_sources

        hybrid = Hybrid(sources={**default_sources(), **model_sources(model, data)})
        return hybrid.fit(data.catalog, data.train if train is None else train)
    if name in heuristics:
        return heuristics[name]().fit(data.catalog, data.train if train is None else train)
    if name in MODEL_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs --model DIR (a trained model folder)")
        if name in ("recformer", "recformer-alone"):
            return _RecformerRanker(model, data, lexical=name == "recformer")
        from id_baselines.api import load_baseline

        return load_baseline(model, data.catalog)
    raise ValueError(f"unknown next-item method {name!r}; choose from {sorted(heuristics) + list(MODEL_METHODS)}")


def title_method(name: str, data: M2Data, model: str | Path | None = None, train: Sessions | None = None):
    """A ready next-title method (task 3)."""
    from . import titles

    heuristics = {**TITLE_METHODS, **titles.TITLE_METHODS}
    if name in heuristics or name in titles.MODEL_TITLE_METHODS:
        data.require_text(name)
    if name in heuristics:
        return heuristics[name]().fit(data.catalog, data.train if train is None else train)
    if name in titles.MODEL_TITLE_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs --model DIR (a train-titles output folder)")
        return titles.TitleGenerator.from_pretrained(model).fit(data.catalog)
    raise ValueError(f"unknown title method {name!r}; choose from {sorted(heuristics) + list(titles.MODEL_TITLE_METHODS)}")
