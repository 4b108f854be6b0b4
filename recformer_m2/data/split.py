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
    valid = cap_per_locale(u < fraction, sessions.locale, u, max_per_locale)
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def cap_per_locale(held: np.ndarray, locale: np.ndarray, u: np.ndarray, max_per_locale: int | None) -> np.ndarray:
    """``held`` (a boolean mask over sessions) keeping at most ``max_per_locale`` per locale: those with the
    lowest draws ``u``. None keeps all. Modifies and returns ``held``."""
    if max_per_locale is not None:
        for loc in range(len(LOCALES)):
            idx = np.flatnonzero(held & (locale == loc))
            if len(idx) > max_per_locale:
                held[idx[np.argsort(u[idx], kind="stable")[max_per_locale:]]] = False
    return held


def locale_split(sessions: Sessions, locales, fraction: float, seed: int,
                 max_per_locale: int | None) -> tuple[Sessions, Sessions]:
    """The sessions of ``locales``, split by :func:`validation_split` into (fit, held out). Finetuning and
    the ID baselines hold out their validation sessions this way, so the hybrid can recompute from a
    trained folder's config which sessions that model never trained on."""
    mine = sessions.select(sessions.in_locales(list(locales)))
    fit_idx, valid_idx = validation_split(mine, fraction, seed, max_per_locale)
    return mine.select(fit_idx), mine.select(valid_idx)
