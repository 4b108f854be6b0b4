"""Copy-and-edit title heuristics for task 3, with the ``fit(catalog, train)`` / ``generate(sessions)``
contract of ``LastTitle``.

``TrimmedTitle`` follows the KDD Cup 2023 task-3 solutions that trimmed words from the last product's
title: a word is dropped when it rarely survives into the next product's title in the training
sessions (variant words such as colours and sizes, rare model codes). The survival threshold is tuned
for BLEU on a validation split carved from the training sessions; a threshold of 0 keeps every word,
so the tuned heuristic is never worse than ``LastTitle`` on that split.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..constants import LOCALES
from ..data import Catalog, Sessions, validation_split
from ..metrics import title_bleu

logger = logging.getLogger(__name__)


def last_titles(catalog: Catalog, sessions: Sessions) -> list[str]:
    """The title of each session's last product with a row in its locale (``""`` when none has one)."""
    owner = sessions.session_index
    rows = catalog.rows(sessions.items, sessions.locale[owner])
    titled = rows >= 0
    last = np.full(len(sessions), -1, dtype=np.int64)
    np.maximum.at(last, owner[titled], np.flatnonzero(titled))  # latest titled position per session
    titles = catalog.table["title"].to_numpy()
    return [titles[rows[p]] if p >= 0 else "" for p in last]


@dataclass
class WordSurvival:
    """Per (locale, word): how often a word of the last title reappears in the next product's title."""

    prior_weight: float = 3.0
    """Pseudo-counts of the locale's overall survival rate mixed into every word's rate."""
    seen: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    locale_rate: np.ndarray = field(default_factory=lambda: np.ones(len(LOCALES)))

    def fit(self, last: list[str], nxt: list[str], locales: np.ndarray) -> "WordSurvival":
        seen_loc, kept_loc = np.zeros(len(LOCALES)), np.zeros(len(LOCALES))
        for a, b, loc in zip(last, nxt, locales.tolist()):
            if not a or not b:
                continue
            target = set(b.split())
            for word in set(a.split()):
                hit = word in target
                self.seen[loc, word] += 1
                self.kept[loc, word] += hit
                seen_loc[loc] += 1
                kept_loc[loc] += hit
        self.locale_rate = np.where(seen_loc > 0, kept_loc / np.maximum(seen_loc, 1), 1.0)
        return self

    def rate(self, locale: int, word: str) -> float:
        """Smoothed survival rate; a word never seen gets its locale's overall rate."""
        prior = float(self.locale_rate[locale])
        if self.seen[locale, word] == 0:
            return prior
        return (self.kept[locale, word] + self.prior_weight * prior) / (self.seen[locale, word] + self.prior_weight)


    def words_rate(self, locale: int, words: list[str]) -> float:
        """The highest survival rate among ``words`` (1 when there are none): how likely keeping them is right."""
        return max((self.rate(locale, w) for w in words), default=1.0)

    def to_dict(self) -> dict:
        """JSON-ready counts, for saving next to a model."""
        return {"prior_weight": self.prior_weight, "locale_rate": self.locale_rate.tolist(),
                "counts": [[loc, word, n, self.kept[loc, word]] for (loc, word), n in self.seen.items()]}

    @classmethod
    def from_dict(cls, values: dict) -> "WordSurvival":
        out = cls(float(values["prior_weight"]), locale_rate=np.asarray(values["locale_rate"], dtype=float))
        for loc, word, n, kept in values["counts"]:
            out.seen[int(loc), word] = int(n)
            out.kept[int(loc), word] = int(kept)
        return out


def trim(title: str, locale: int, survival: WordSurvival, min_rate: float) -> str:
    """``title`` without the words whose survival rate is below ``min_rate``."""
    if min_rate <= 0:
        return title
    return " ".join(w for w in title.split() if survival.rate(locale, w) >= min_rate)


@dataclass
class TrimmedTitle:
    """The last product's title minus the words that rarely survive into the next product's title."""

    min_rate: float | None = None
    """Drop words whose survival rate is below this; None tunes it on a validation split."""
    grid: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
    prior_weight: float = 3.0
    valid_fraction: float = 0.1
    max_valid_per_locale: int = 2000
    seed: int = 0
    name: str = "trimmed-title"

    def fit(self, catalog: Catalog, train: Sessions) -> "TrimmedTitle":
        """Count word survival on ``train``; tune ``min_rate`` (when None) on a held-out part of it first."""
        self.catalog = catalog
        if self.min_rate is None:
            self.min_rate, self.tuning = self.tune(catalog, train)
        self.survival = self._survival(catalog, train)
        return self

    def _survival(self, catalog: Catalog, sessions: Sessions) -> WordSurvival:
        nxt = catalog.titles(sessions.next_item, sessions.locale)
        return WordSurvival(self.prior_weight).fit(last_titles(catalog, sessions), nxt, sessions.locale)

    def tune(self, catalog: Catalog, train: Sessions) -> tuple[float, dict[float, float]]:
        """The grid value with the best validation BLEU (ties: the smaller, i.e. less trimming)."""
        fit_idx, valid_idx = validation_split(train, self.valid_fraction, self.seed, self.max_valid_per_locale)
        survival = self._survival(catalog, train.select(fit_idx))
        valid = train.select(valid_idx)
        refs = catalog.titles(valid.next_item, valid.locale)
        keep = np.array([bool(r) for r in refs])
        valid, refs = valid.select(keep), [r for r in refs if r]
        last = last_titles(catalog, valid)
        locales = [LOCALES[x] for x in valid.locale]
        scores = {}
        for rate in sorted(self.grid):
            hyps = [trim(t, loc, survival, rate) for t, loc in zip(last, valid.locale.tolist())]
            scores[rate] = float(title_bleu(hyps, refs, locales).loc["overall", "BLEU"])
        best = max(scores, key=lambda r: (scores[r], -r))
        logger.info("trimmed-title: validation BLEU by min_rate %s -> min_rate %.2f",
                    {r: round(s, 4) for r, s in scores.items()}, best)
        return best, scores

    def generate(self, sessions: Sessions) -> list[str]:
        last = last_titles(self.catalog, sessions)
        return [trim(t, loc, self.survival, self.min_rate) for t, loc in zip(last, sessions.locale.tolist())]
