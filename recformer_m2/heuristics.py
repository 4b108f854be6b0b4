"""Non-learned recommenders: the baselines every learned model has to beat.

- ``Popularity``: the locale's most frequent training items (the Amazon-M2 paper's strongest task-1/2
  baseline), minus the session's items.
- ``CoVisitation``: items that appeared near the session's items in training sessions, weighted by how
  close they appeared and how recent the session item is, backfilled by popularity.
- ``LastTitle``: the title of the session's last product (task 3; it beat mT5 in the paper).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .constants import LOCALES, TOP_K
from .data.m2 import Catalog, Sessions
from .ranking import rank_candidates, recency_weights, session_pairs

logger = logging.getLogger(__name__)

CHUNK = 20_000
"""Sessions scored at once: bounds memory of the candidate arrays at full Amazon-M2 scale."""


class SessionRecommender:
    """The contract of every next-item method: ``fit`` on training sessions, ``recommend`` top-k codes."""

    name = "base"

    def fit(self, catalog: Catalog, train: Sessions) -> "SessionRecommender":
        raise NotImplementedError

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat (row, code, priority) candidates for a chunk of sessions; lower priority is better."""
        raise NotImplementedError

    def recommend(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        """Top-k item codes per session (n, k), best first, never an item of the session; -1 padded."""
        out = np.full((len(sessions), k), -1, dtype=np.int32)
        starts = range(0, len(sessions), CHUNK)
        for start in tqdm(starts, desc=f"{self.name}: recommend", disable=not progress or len(starts) < 2):
            chunk = sessions.select(np.arange(start, min(start + CHUNK, len(sessions))))
            rows, codes, priority = self._candidates(chunk, k)
            ex_rows, ex_codes = session_pairs(chunk)
            out[start:start + len(chunk)] = rank_candidates(len(chunk), k, rows, codes, priority, ex_rows, ex_codes)
        return out


def occurrence_counts(train: Sessions, num_ids: int) -> np.ndarray:
    """(locales, ids) counts of each item's occurrences, previous items and targets alike."""
    locale_of_item = np.repeat(train.locale, train.lengths).astype(np.int64)
    keys = np.concatenate([locale_of_item * num_ids + train.items, train.locale.astype(np.int64) * num_ids + train.next_item])
    return np.bincount(keys, minlength=len(LOCALES) * num_ids).reshape(len(LOCALES), num_ids)


class Popularity(SessionRecommender):
    """Most frequent items of the session's locale in the training sessions."""

    name = "popularity"

    def fit(self, catalog: Catalog, train: Sessions) -> "Popularity":
        counts = occurrence_counts(train, catalog.num_ids)
        # Per locale: codes seen in training and sold in the locale, most frequent first (ties: smaller code).
        self.ranked = []
        for loc in range(len(LOCALES)):
            seen = np.flatnonzero((counts[loc] > 0) & (catalog.rows(np.arange(catalog.num_ids), loc) >= 0))
            self.ranked.append(seen[np.lexsort((seen, -counts[loc, seen]))].astype(np.int64))
        return self

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.popular_candidates(sessions, k)

    def popular_candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each session, the k + len(session) most popular items of its locale (enough to fill k
        after removing the session's items), priority = popularity rank."""
        rows, codes, priority = [], [], []
        for loc in np.unique(sessions.locale):
            members = np.flatnonzero(sessions.locale == loc)
            ranked = self.ranked[loc]
            need = np.minimum(k + sessions.lengths[members], len(ranked))
            rank = np.arange(need.sum()) - np.repeat(np.cumsum(need) - need, need)
            rows.append(np.repeat(members, need))
            codes.append(ranked[rank])
            priority.append(rank.astype(np.float64))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(rows), np.concatenate(codes), np.concatenate(priority)


@dataclass
class CoVisitation(SessionRecommender):
    """Items seen within ``window`` steps of the session's items in training sessions of the locale
    (and sold in it).

    A pair (a then b, ``g`` steps apart) adds ``1/g`` to a->b and ``backward_weight/g`` to b->a; each item
    keeps its ``max_neighbors`` strongest neighbours (rows optionally normalised to sum to one so a
    very popular session item does not drown the others). A session scores candidates by summing
    its items' neighbour weights times ``decay ** steps_before_end``. Empty slots are filled by popularity.
    """

    window: int = 3
    backward_weight: float = 0.5
    decay: float = 0.6
    max_neighbors: int = 200
    normalize: bool = True
    name: str = "covisitation"

    def fit(self, catalog: Catalog, train: Sessions) -> "CoVisitation":
        self.num_ids = catalog.num_ids
        self.popularity = Popularity().fit(catalog, train)
        # Full sequences: previous items then the target.
        lengths = train.lengths + 1
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        seq = np.empty(offsets[-1], dtype=np.int64)
        is_target = np.zeros(offsets[-1], dtype=bool)
        is_target[offsets[1:] - 1] = True
        seq[is_target] = train.next_item
        seq[~is_target] = train.items
        owner = np.repeat(np.arange(len(train)), lengths)
        row_base = train.locale.astype(np.int64)[owner] * self.num_ids
        src, dst, weight = [], [], []
        for gap in range(1, self.window + 1):
            a, b = np.arange(len(seq) - gap), np.arange(gap, len(seq))
            ok = (owner[a] == owner[b]) & (seq[a] != seq[b])
            a, b = a[ok], b[ok]
            # Only pairs whose recommended item is sold in the session's locale.
            locale = row_base[a] // self.num_ids
            forward = catalog.rows(seq[b], locale) >= 0
            backward = catalog.rows(seq[a], locale) >= 0
            src += [(row_base[a] + seq[a])[forward], (row_base[b] + seq[b])[backward]]
            dst += [seq[b][forward], seq[a][backward]]
            weight += [np.full(forward.sum(), 1.0 / gap), np.full(backward.sum(), self.backward_weight / gap)]
        shape = (len(LOCALES) * self.num_ids, self.num_ids)
        matrix = sp.coo_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))), shape=shape).tocsr()
        matrix.sum_duplicates()
        self.matrix = _keep_top_per_row(matrix, self.max_neighbors, self.normalize)
        logger.info("covisitation: %d item pairs kept from %d sessions", self.matrix.nnz, len(train))
        return self

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows_in, cols_in = session_pairs(sessions)
        cols_in = sessions.locale.astype(np.int64)[rows_in] * self.num_ids + cols_in
        query = sp.csr_matrix(
            (recency_weights(sessions, self.decay), (rows_in, cols_in)), shape=(len(sessions), self.matrix.shape[0])
        )
        scores = (query @ self.matrix).tocoo()  # (n, L*N) x (L*N, N) -> (n, N)
        pop_rows, pop_codes, pop_rank = self.popularity.popular_candidates(sessions, k)
        # Co-visited items come first (by score); popularity fills what is left, behind all of them.
        return (
            np.concatenate([scores.row, pop_rows]),
            np.concatenate([scores.col, pop_codes]),
            np.concatenate([-scores.data, 1.0 + pop_rank]),
        )


def _keep_top_per_row(matrix: sp.csr_matrix, top: int, normalize: bool) -> sp.csr_matrix:
    """Keep each row's ``top`` largest entries (ties: smaller column), optionally scaled to sum to one."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    row_start = np.searchsorted(rows, rows, side="left")
    keep = (np.arange(len(rows)) - row_start) < top
    rows, cols, data = rows[keep], cols[keep], data[keep]
    if normalize:
        data = data / np.bincount(rows, weights=data, minlength=matrix.shape[0])[rows]
    return sp.csr_matrix((data, (rows, cols)), shape=matrix.shape)


class LastTitle:
    """Task 3: the title of the session's last product that has a title in the session's locale."""

    name = "last-title"

    def fit(self, catalog: Catalog, train: Sessions) -> "LastTitle":
        self.catalog = catalog
        return self

    def generate(self, sessions: Sessions) -> list[str]:
        from .titles.heuristics import last_titles  # the one implementation, shared with the title methods

        return last_titles(self.catalog, sessions)


RANKING_METHODS: dict[str, type[SessionRecommender]] = {"popularity": Popularity, "covisitation": CoVisitation}
"""Next-item methods by name (tasks 1 and 2); later model families register here too."""

TITLE_METHODS: dict[str, type] = {"last-title": LastTitle}
"""Next-title methods by name (task 3)."""
