"""A validation split carved from training sessions by a seeded rule."""

from __future__ import annotations

import numpy as np

from ..constants import LOCALES
from .m2 import Sessions


def validation_split(
    sessions: Sessions, fraction: float = 0.1, seed: int = 0, max_per_locale: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, valid) of a held-out split: each session draws u ~ U(0, 1) from ``seed``;
    it is held out when u < ``fraction``, keeping at most ``max_per_locale`` per locale (lowest u first).

    The rule depends only on the number of sessions and the seed, so the same file always splits the same.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction ({fraction}) must be in (0, 1)")
    u = np.random.default_rng(seed).random(len(sessions))
    valid = u < fraction
    if max_per_locale is not None:
        for loc in range(len(LOCALES)):
            held = np.flatnonzero(valid & (sessions.locale == loc))
            if len(held) > max_per_locale:
                valid[held[np.argsort(u[held], kind="stable")[max_per_locale:]]] = False
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def locale_split(sessions: Sessions, locales, fraction: float, seed: int,
                 max_per_locale: int | None) -> tuple[Sessions, Sessions]:
    """The sessions of ``locales``, split by :func:`validation_split` into (fit, held out). Finetuning and
    the ID baselines hold out their validation sessions this way, so the hybrid can recompute from a
    trained folder's config which sessions that model never trained on."""
    mine = sessions.select(sessions.in_locales(list(locales)))
    fit_idx, valid_idx = validation_split(mine, fraction, seed, max_per_locale)
    return mine.select(fit_idx), mine.select(valid_idx)
