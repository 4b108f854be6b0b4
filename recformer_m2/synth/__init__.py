"""Synthetic Amazon-M2 (KDD Cup 2023) data: the project's embedded default dataset.

Why synthetic: the real data cannot ship with the package, yet every stage (loading, tokenizer,
heuristics, text models, cross-locale transfer, title generation) needs data with the real files'
exact format *and* the structure that makes text useful. The generator draws a latent catalogue of
product lines (brand + series + kind) sold in variants (:mod:`.catalogue`), renders each product in its
locale's language (:mod:`.render`), walks shopping sessions through it (:mod:`.walk`) and writes the
KDD Cup files (:mod:`.write`). A *style* (:data:`STYLES`) chooses the world: ``m2``, the default, is
calibrated to real ES/FR/IT sessions (:mod:`.stats`, ``bench/bench_calibration.py``); ``classic`` is the
generator as it was before styles, byte for byte; ``bazaar`` is another world for robustness checks.
"""

from __future__ import annotations

from .config import DEFAULT_STYLE, SCALES, STYLES, SynthScale, SynthStyle, get_style
from .write import _prev_repr_10, generate, numpy_str_repr

__all__ = ["DEFAULT_STYLE", "SCALES", "STYLES", "SynthScale", "SynthStyle", "generate", "get_style",
           "numpy_str_repr", "_prev_repr_10"]
