"""Item embeddings learned from sessions alone, as a candidate source: no text, no trained model folder.

Two ways to learn them (``ItemEmbeddings.method``), picked by validation MRR@100 on real sessions
(``bench/bench_real_m2.py --evaluate-on validation``):

- ``"svd"``: a truncated SVD of the item-item co-occurrence matrix (pairs within ``window`` steps,
  weighted 1/gap, log-damped), item2vec's matrix-factorisation view; scipy only.
- ``"als"``: implicit ALS (the ``implicit`` package) on the session x item matrix; its item factors.

Products share one code space over every locale, so an id sold in several locales gets one vector learned
from all their sessions. A session's query is the recency-weighted sum of its newest items' (unit) vectors;
items sold in the session's locale and seen in training are scored by cosine, session items excluded.
Why it helps beside co-visitation: on real sessions only 17% of (last -> next) pairs recur, and a vector
generalises across neighbours of neighbours where an exact pair count is zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .constants import LOCALES
from .data.m2 import Catalog, Sessions
from .heuristics import Popularity, SessionRecommender, occurrence_counts

logger = logging.getLogger(__name__)

SCORE_BLOCK = 1024
"""Sessions scored against a locale's items at once: bounds the dense (block, items) score matrix."""


def full_sequences(train: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """(flat items, offsets) of prev_items followed by next_item for every training session."""
    lengths = train.lengths + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seq = np.empty(offsets[-1], dtype=np.int64)
    is_target = np.zeros(offsets[-1], dtype=bool)
    is_target[offsets[1:] - 1] = True
    seq[is_target], seq[~is_target] = train.next_item, train.items
    return seq, offsets


@dataclass
class ItemEmbeddings(SessionRecommender):
    """Nearest items to the session in a vector space learned from co-occurrence in sessions."""

    method: str = "svd"
    factors: int = 64
    window: int = 3
    iterations: int = 15
    regularization: float = 0.05
    decay: float = 0.6
    recent: int = 5
    """Newest session items summed into the query."""
    seed: int = 0
    name: str = "embeddings"

    def fit(self, catalog: Catalog, train: Sessions) -> "ItemEmbeddings":
        if self.method not in ("svd", "als"):
            raise ValueError(f"method ({self.method!r}) must be 'svd' or 'als'")
        self.catalog = catalog
        self.popularity = Popularity().fit(catalog, train)
        seq, offsets = full_sequences(train)
        vectors = self._svd(seq, offsets, catalog.num_ids) if self.method == "svd" else self._als(seq, offsets,
                                                                                              catalog.num_ids)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)  # (N, F)
        seen = occurrence_counts(train, catalog.num_ids) > 0  # (locales, N)
        self.locale_items = [np.flatnonzero(seen[loc] & (catalog.rows(np.arange(catalog.num_ids), loc) >= 0))
                             for loc in range(len(LOCALES))]
        logger.info("%s: %d-dimensional %s vectors of %d items", self.name, vectors.shape[1], self.method,
                    int((norms[:, 0] > 0).sum()))
        return self

    def _svd(self, seq: np.ndarray, offsets: np.ndarray, num_ids: int) -> np.ndarray:
        """Item vectors U * sqrt(S) of the symmetric, log-damped co-occurrence matrix."""
        from scipy.sparse.linalg import svds

        owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        src, dst, weight = [], [], []
        for gap in range(1, self.window + 1):
            a, b = np.arange(len(seq) - gap), np.arange(gap, len(seq))
            ok = (owner[a] == owner[b]) & (seq[a] != seq[b])
            src += [seq[a][ok], seq[b][ok]]
            dst += [seq[b][ok], seq[a][ok]]
            w = np.full(ok.sum(), 1.0 / gap)
            weight += [w, w]
        matrix = sp.coo_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))),
                               shape=(num_ids, num_ids)).tocsr()
        matrix.sum_duplicates()
        matrix.data = np.log1p(matrix.data)
        k = max(1, min(self.factors, min(matrix.shape) - 1))
        v0 = np.random.default_rng(self.seed).random(num_ids)
        u, s, _ = svds(matrix.astype(np.float64), k=k, v0=v0)
        return u * np.sqrt(s)[None, :]

    def _als(self, seq: np.ndarray, offsets: np.ndarray, num_ids: int) -> np.ndarray:
        """implicit's ALS item factors of the (sessions, items) matrix."""
        from implicit.cpu.als import AlternatingLeastSquares

        owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        user_items = sp.csr_matrix((np.ones(len(seq), dtype=np.float32), (owner, seq)),
                                   shape=(len(offsets) - 1, num_ids))
        user_items.sum_duplicates()
        model = AlternatingLeastSquares(factors=self.factors, iterations=self.iterations,
                                        regularization=self.regularization, random_state=self.seed,
                                        num_threads=1, calculate_training_loss=False)
        model.fit(user_items, show_progress=False)
        return np.asarray(model.item_factors)

    def queries(self, sessions: Sessions) -> np.ndarray:
        """(n, F) recency-weighted sums of each session's newest ``recent`` item vectors."""
        position = np.arange(len(sessions.items)) - np.repeat(sessions.offsets[:-1], sessions.lengths)
        steps_back = np.repeat(sessions.lengths, sessions.lengths) - 1 - position
        use = steps_back < self.recent
        out = np.zeros((len(sessions), self.vectors.shape[1]), dtype=np.float32)
        np.add.at(out, sessions.session_index[use],
                  self.vectors[sessions.items[use]] * (self.decay ** steps_back[use])[:, None].astype(np.float32))
        return out

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        query = self.queries(sessions)
        rows, codes, priority = [], [], []
        for loc in np.unique(sessions.locale):
            items = self.locale_items[loc]
            members = np.flatnonzero(sessions.locale == loc)
            if not len(items):
                continue
            table = self.vectors[items]  # (I, F)
            take = min(len(items), k + int(sessions.lengths[members].max(initial=0)))
            for start in range(0, len(members), SCORE_BLOCK):
                block = members[start:start + SCORE_BLOCK]
                scores = query[block] @ table.T  # (B, F) x (F, I) -> (B, I)
                top = np.argpartition(-scores, take - 1, axis=1)[:, :take] if take < len(items) else \
                    np.broadcast_to(np.arange(len(items)), (len(block), len(items)))
                top_scores = np.take_along_axis(scores, top, axis=1)
                useful = top_scores > 0
                rows.append(np.repeat(block, useful.sum(axis=1)))
                codes.append(items[top[useful]])
                priority.append(-top_scores[useful].astype(np.float64))
        pop_rows, pop_codes, pop_rank = self.popularity.popular_candidates(sessions, k)
        # Embedded neighbours first (cosine in [-1, 1], only positive ones); popularity behind them.
        return (np.concatenate([*rows, pop_rows]), np.concatenate([*codes, pop_codes]),
                np.concatenate([*priority, 2.0 + pop_rank]))
