"""Every ID baseline by name, so ``--model narm`` is discoverable: add a model here and nowhere else."""

from __future__ import annotations

from .base import SessionModel
from .config import BaselineConfig
from .core import CORE
from .gru4rec import GRU4Rec
from .narm import NARM
from .srgnn import SRGNN
from .stamp import STAMP

MODELS: dict[str, type[SessionModel]] = {
    "gru4rec": GRU4Rec,
    "narm": NARM,
    "stamp": STAMP,
    "srgnn": SRGNN,
    "core": CORE,
}
"""Model classes by the name used on the command line."""


def build_model(name: str, num_items: int, config: BaselineConfig) -> SessionModel:
    """A freshly initialised model of a registered name."""
    if name not in MODELS:
        raise ValueError(f"unknown ID baseline {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](num_items, config)
