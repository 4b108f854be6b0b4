"""Next-product title generation (Amazon-M2 task 3): copy-and-edit heuristics and an mT5 generator.

    from recformer_m2.titles import TitleGenerator, train_titles
    folder = train_titles("data/small", "runs/titles")           # at most 4 minutes (max_minutes) on 2 CPU cores
    generator = TitleGenerator.from_pretrained(folder).fit(data.catalog)
    titles = generator.generate(data.test(3))                    # one title per session
    result = title_stage(data, fit, test, targets, "runs/titles", TitleConfig())  # K = 1, 2, 3 ablation

Heavy modules (torch, transformers, lightning) load on first use of the model symbols, so the
heuristics and the config import quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import MODEL_SIZES, TitleConfig
from .grid import GridTitle
from .heuristics import TrimmedTitle

_LAZY = {"TitleGenerator": ".generator", "fit_title_model": ".train", "train_titles": ".train",
         "title_stage": ".ablation", "TitleStageResult": ".ablation"}

TITLE_METHODS: dict[str, type] = {"trimmed-title": TrimmedTitle, "grid-title": GridTitle}
"""Next-title heuristics of this package by name, fitted with ``fit(catalog, train)`` like ``LastTitle``."""

MODEL_TITLE_METHODS: tuple[str, ...] = ("mt5",)
"""Next-title methods that load a trained model folder (``--model DIR``): ``TitleGenerator.from_pretrained``."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GridTitle", "MODEL_SIZES", "MODEL_TITLE_METHODS", "TITLE_METHODS", "TitleConfig", "TitleGenerator", "TitleStageResult",
           "TrimmedTitle", "fit_title_model", "title_stage", "train_titles"]
