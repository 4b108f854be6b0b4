"""Lexical fusion: a model's retrieval score plus a weight times the title similarity textknn scores by.

Why: a session encoder trained on one world of titles reads unseen templates, brands and typos less
sharply than character n-grams do, and on such data a Recformer alone trailed TF-IDF neighbours of the
session's last titles. Fusing the two inside retrieval keeps what each sees: the model's reading of every
attribute, item and transition, and the n-gram overlap of titles. The item's score is

    score(session, item) = cosine(query, item) + prior(item) + lexical_weight * text(session, item)

with ``text`` :class:`~recformer_m2.textknn.TextKNN`'s score without its popularity term: the
recency-weighted sum of the title TF-IDF cosines between the item and the session's last catalog
products. ``RecformerConfig.lexical_weight`` holds the weight; finetuning chooses it on validation
(``FinetuneConfig.lexical_grid``), 0 turns fusion off. The search is exact: every product of the
session's locale is scored, in blocks of sessions (:func:`fused_top_k`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.m2 import Catalog
from .textknn import TextKNN

_BLOCK_ENTRIES = 1 << 24
"""Entries of one dense (sessions, items) score block: bounds its memory (64 MiB of float32)."""


def session_tails(session_codes: list[np.ndarray], last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (session, code, steps_back) of each session's last ``last`` codes (the newest is 0 steps back)."""
    lengths = np.array([len(c) for c in session_codes], dtype=np.int64)
    if not lengths.sum():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = np.concatenate([np.asarray(c, dtype=np.int64) for c in session_codes])
    rows = np.repeat(np.arange(len(session_codes)), lengths)
    ends = np.repeat(np.cumsum(lengths), lengths)
    steps_back = ends - 1 - np.arange(len(codes))
    keep = steps_back < last
    return rows[keep], codes[keep], steps_back[keep]


@dataclass
class TitleSimilarity:
    """Title TF-IDF similarity of a session's last catalog products to every product of its locale."""

    text: TextKNN

    @classmethod
    def fit(cls, catalog: Catalog, locales: tuple[int, ...] | None = None) -> "TitleSimilarity":
        """Vectorise the titles of ``locales`` (None: all), with textknn's n-gram settings and no popularity."""
        return cls(TextKNN(popularity_weight=0.0, backfill=False).fit_titles(catalog, locales=locales))

    def scores(self, session_codes: list[np.ndarray], locale: int, item_codes: np.ndarray) -> np.ndarray:
        """(n, len(item_codes)) dense text scores of sessions of ``locale`` against the products ``item_codes``
        (0 for a product the locale's titles do not cover)."""
        rows, codes, steps_back = session_tails(session_codes, self.text.last_items)
        sparse = self.text.tail_scores(rows, codes, steps_back, len(session_codes), locale).tocoo()
        column = np.full(self.text.num_ids, -1, dtype=np.int64)
        column[item_codes] = np.arange(len(item_codes))
        target = column[self.text.codes[locale][sparse.col]]
        out = np.zeros((len(session_codes), len(item_codes)), dtype=np.float32)
        found = target >= 0
        out[sparse.row[found], target[found]] = sparse.data[found]
        return out


def fused_top_k(queries: np.ndarray, locales: np.ndarray, session_codes: list[np.ndarray],
                item_embeddings: np.ndarray, item_codes: np.ndarray, item_locales: np.ndarray,
                bias: np.ndarray | None, lexical: TitleSimilarity | None, weight: float, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k codes ``(n, k)`` (-1 padded) and scores ``(n, k)`` (-inf padded) of every product of each
    session's locale by ``queries @ item + bias + weight * text``, never one of ``session_codes[i]``
    (the session's own products); exact (every product scored), a list in order of score, then item row."""
    n = len(queries)
    out_codes = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    for loc in np.unique(locales):
        members = np.flatnonzero(locales == loc)
        mine = np.flatnonzero(item_locales == loc)
        if not len(mine):
            continue
        codes = np.asarray(item_codes[mine], dtype=np.int64)
        vectors = np.asarray(item_embeddings[mine], dtype=np.float32)
        prior = None if bias is None else np.asarray(bias[mine], dtype=np.float32)
        column = {int(c): j for j, c in enumerate(codes)}
        block = max(1, _BLOCK_ENTRIES // len(codes))
        keep = min(k, len(codes))
        for start in range(0, len(members), block):
            rows = members[start:start + block]
            scores = np.asarray(queries[rows], dtype=np.float32) @ vectors.T  # (b, D) x (D, N) -> (b, N)
            if prior is not None:
                scores += prior
            if lexical is not None and weight:
                scores += weight * lexical.scores([session_codes[i] for i in rows], int(loc), codes)
            for r, i in enumerate(rows):
                seen = [column[c] for c in np.asarray(session_codes[i]).tolist() if c in column]
                scores[r, seen] = -np.inf
            best = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            best_scores = np.take_along_axis(scores, best, axis=1)
            order = np.lexsort((best, -best_scores), axis=1)  # by score, then by item row
            best = np.take_along_axis(best, order, axis=1)
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            valid = np.isfinite(best_scores)
            out_codes[rows, :keep] = np.where(valid, codes[best], -1)
            out_scores[rows, :keep] = np.where(valid, best_scores, -np.inf)
    return out_codes, out_scores
