"""Text nearest neighbours: the products whose titles read most like the session's last products.

Each locale gets its own TF-IDF over word-bounded character n-grams of product titles (scikit-learn
``TfidfVectorizer(analyzer="char_wb")``, sublinear tf), so Japanese titles without spaces work as well
as the Latin-script ones. A session's query is the recency-weighted sum of its last few products'
vectors; every product sold in the locale is scored by its dot product with the query (a weighted sum
of cosines), session items excluded; a popularity prior lifts often-bought items among those with some
title overlap and breaks ties, and popularity fills what is left.

Why two prunings: at Amazon-M2 scale an n-gram such as " ca" appears in tens of thousands of titles and
an exact sparse product with it would make every session score almost the whole catalog. n-grams found
in more than ``max_df`` products of a locale are therefore dropped (they say little about which product
line a title belongs to), and each title keeps its ``max_ngrams`` strongest n-grams; the vectors are
L2-normalised again afterwards. Search over these vectors is exact up to the order of items tied at the
k-th score (tested against dense brute force).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .constants import LOCALES
from .data.m2 import Catalog, Sessions
from .heuristics import Popularity, SessionRecommender, occurrence_counts
from .ranking import session_pairs

logger = logging.getLogger(__name__)

_PADDED_ENTRIES = 1 << 23
"""Entries of the padded (rows, width) score block used for per-row top-k: bounds its memory."""


def title_tfidf(
    titles: list[str], ngram_range: tuple[int, int], max_df: int, max_ngrams: int
) -> sp.csr_matrix:
    """(len(titles), V) float32 TF-IDF of character n-grams: rare-enough n-grams only, at most
    ``max_ngrams`` per title, rows L2-normalised (an empty title is a zero row)."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # imported here: the CLI starts without it
    from sklearn.preprocessing import normalize

    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=tuple(ngram_range), sublinear_tf=True, dtype=np.float32,
        max_df=max(int(max_df), 1),
    )
    try:
        matrix = vectorizer.fit_transform(titles).tocsr()
    except ValueError as err:  # every n-gram pruned, or no titles at all: no text to compare
        logger.warning("textknn: no usable title n-grams among %d titles (%s)", len(titles), err)
        return sp.csr_matrix((len(titles), 1), dtype=np.float32)
    return normalize(keep_top_per_row(matrix, max_ngrams)).astype(np.float32)


def keep_top_per_row(matrix: sp.csr_matrix, top: int) -> sp.csr_matrix:
    """Each row's ``top`` largest entries (ties: smaller column), in a new CSR matrix."""
    coo = matrix.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows, cols, data = coo.row[order], coo.col[order], coo.data[order]
    keep = (np.arange(len(rows)) - np.searchsorted(rows, rows)) < top
    out = sp.csr_matrix((data[keep], (rows[keep], cols[keep])), shape=matrix.shape, dtype=matrix.dtype)
    out.sort_indices()
    return out


def top_per_row(scores: sp.csr_matrix, quota: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (row, column, value) of each row's ``quota`` largest stored entries (all of them in rows with
    fewer); rows are padded into dense blocks of bounded size and cut with ``argpartition``."""
    counts = np.diff(scores.indptr)
    out_rows, out_entries = [], []
    start = 0
    while start < scores.shape[0]:
        # As many rows as fit the padded-block budget (at least one).
        width = np.maximum.accumulate(counts[start:])
        fits = np.flatnonzero((np.arange(1, len(width) + 1) * np.maximum(width, 1)) <= _PADDED_ENTRIES)
        stop = start + (int(fits[-1]) + 1 if len(fits) else 1)
        lo, hi = scores.indptr[start], scores.indptr[stop]
        block_counts = counts[start:stop]
        if block_counts.max(initial=0) <= quota:
            out_rows.append(np.repeat(np.arange(start, stop), block_counts))
            out_entries.append(np.arange(lo, hi))
        else:
            rows = np.repeat(np.arange(stop - start), block_counts)
            position = np.arange(hi - lo) - np.repeat(scores.indptr[start:stop] - lo, block_counts)
            padded = np.full((stop - start, block_counts.max()), np.inf, dtype=np.float32)
            padded[rows, position] = -scores.data[lo:hi]
            best = np.argpartition(padded, quota - 1, axis=1)[:, :quota]  # (B, quota) positions, unordered
            found = np.take_along_axis(padded, best, axis=1) < np.inf
            block_rows = np.broadcast_to(np.arange(stop - start)[:, None], best.shape)[found]
            out_rows.append(start + block_rows)
            out_entries.append(scores.indptr[start + block_rows] + best[found])
        start = stop
    if not out_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    entries = np.concatenate(out_entries)
    return np.concatenate(out_rows).astype(np.int64), scores.indices[entries].astype(np.int64), scores.data[entries]


def last_items(sessions: Sessions, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat (session, code, steps_back) of each session's last ``n`` items (the last item is 0 steps back)."""
    steps_back = np.repeat(sessions.offsets[1:], sessions.lengths) - 1 - np.arange(len(sessions.items))
    recent = steps_back < n
    return sessions.session_index[recent], sessions.items[recent].astype(np.int64), steps_back[recent]


@dataclass
class TextKNN(SessionRecommender):
    """Products of the session's locale whose titles are nearest (cosine of char n-gram TF-IDF) to the
    session's last ``last_items`` products, weighted ``decay ** steps_back``; popularity fills the rest."""

    ngram_range: tuple[int, int] = (3, 5)
    """Character n-gram lengths, within word boundaries (``char_wb``)."""
    max_df: int = 1000
    """n-grams found in more products than this (per locale) are dropped; bounds search time."""
    max_ngrams: int = 64
    """Strongest n-grams kept per title."""
    last_items: int = 3
    """How many of the session's latest items form the query."""
    decay: float = 0.4
    """Weight of an item ``s`` steps before the session's end: ``decay ** s``."""
    popularity_weight: float = 0.3
    """Added to a text candidate's score times log(1 + count) / log(1 + the locale's top count); the
    default was chosen on a validation split of synthetic ``small`` training sessions."""
    backfill: bool = True
    """Fill the list to k with the locale's popular items, behind every text candidate."""
    batch: int = 2048
    """Sessions scored per sparse product (memory of the (batch, products) score matrix)."""
    name: str = "textknn"

    def fit(self, catalog: Catalog, train: Sessions) -> "TextKNN":
        """Vectorise every locale's titles (all catalog products, seen in training or not) and count
        training occurrences for the popularity prior and backfill."""
        self.popularity = Popularity().fit(catalog, train)
        counts = occurrence_counts(train, catalog.num_ids)
        top = np.log1p(counts.max(axis=1, keepdims=True).clip(min=1))
        self.prior = (np.log1p(counts) / top).astype(np.float32)  # (locales, ids) in [0, 1]
        return self.fit_titles(catalog, self.prior)

    def fit_titles(self, catalog: Catalog, prior: np.ndarray | None = None,
                   locales: tuple[int, ...] | None = None) -> "TextKNN":
        """Vectorise the titles of ``locales`` (None: every locale) only; ``prior`` (locales, ids) in [0, 1] or
        None (no popularity: the pure text score that :mod:`recformer_m2.lexical` fuses into a model's retrieval)."""
        self.num_ids = catalog.num_ids
        self.prior = prior if prior is not None else np.zeros((len(LOCALES), catalog.num_ids), np.float32)
        titles = catalog.table["title"].to_numpy()
        self.codes: list[np.ndarray] = []
        self.local_prior: list[np.ndarray] = []  # prior of each locale's products, in vector-row order
        self.vectors: list[sp.csr_matrix] = []
        self.transposed: list[sp.csr_matrix] = []
        self.local = np.full((len(LOCALES), catalog.num_ids), -1, dtype=np.int32)  # code -> row of vectors
        for loc in range(len(LOCALES)):
            codes = catalog.locale_codes(loc) if locales is None or loc in locales else np.zeros(0, np.int64)
            self.local[loc, codes] = np.arange(len(codes))
            if len(codes):
                matrix = title_tfidf(list(titles[catalog.rows(codes, loc)]), self.ngram_range, self.max_df,
                                     self.max_ngrams)
            else:
                matrix = sp.csr_matrix((0, 1), dtype=np.float32)
            self.codes.append(codes.astype(np.int64))
            self.local_prior.append(self.prior[loc, codes])
            self.vectors.append(matrix)
            self.transposed.append(matrix.T.tocsr())  # (V, N) for query @ items.T
            if len(codes):
                logger.info("textknn %s: %d products, %d n-grams, %.1f per title", LOCALES[loc], matrix.shape[0],
                            matrix.shape[1], matrix.nnz / max(matrix.shape[0], 1))
        return self

    def similarity(self, locale: np.ndarray, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        """Cosine of the title vectors of pairs (a, b) in the pairs' locales; 0 where either is not sold there.

        Computed a batch of distinct ``a`` at a time as one sparse product with every product of the
        locale, then read at the pairs' entries (far faster than copying both rows of every pair)."""
        locale = np.asarray(locale, dtype=np.int64)
        out = np.zeros(len(locale), dtype=np.float32)
        for loc in np.unique(locale):
            idx = np.flatnonzero(locale == loc)
            a, b = self.local[loc, codes_a[idx]], self.local[loc, codes_b[idx]]
            ok = (a >= 0) & (b >= 0)
            idx, a, b = idx[ok], a[ok], b[ok]
            distinct, which = np.unique(a, return_inverse=True)
            order = np.argsort(which, kind="stable")
            bounds = np.searchsorted(which[order], np.arange(0, len(distinct) + self.batch, self.batch))
            for i, start in enumerate(range(0, len(distinct), self.batch)):
                part = order[bounds[i]:bounds[i + 1]]
                block = (self.vectors[loc][distinct[start:start + self.batch]] @ self.transposed[loc]).tocsr()
                block.sort_indices()  # (batch, V) x (V, N) -> (batch, N)
                out[idx[part]] = np.asarray(block[which[part] - start, b[part]]).ravel()
        return out

    def scores(self, sessions: Sessions, locale: int) -> sp.csr_matrix:
        """(n, products of ``locale``) sparse text scores of sessions that all belong to ``locale``:
        sum over the last items of weight x cosine, plus the popularity prior where the text score is positive."""
        rows, codes, steps_back = last_items(sessions, self.last_items)
        return self.tail_scores(rows, codes, steps_back, len(sessions), locale)

    def tail_scores(self, rows: np.ndarray, codes: np.ndarray, steps_back: np.ndarray, n: int,
                    locale: int) -> sp.csr_matrix:
        """:meth:`scores` of ``n`` sessions given as flat (session, code, steps_back) of their latest items
        (rows with ``steps_back >= last_items`` are ignored); columns are ``self.codes[locale]``."""
        vectors = self.vectors[locale]
        weight = self.decay ** steps_back.astype(np.float64)
        local = self.local[locale, codes]
        ok = (local >= 0) & (steps_back < self.last_items)  # items not sold in the locale have no title there
        pick = sp.csr_matrix((weight[ok], (rows[ok], local[ok])), shape=(n, vectors.shape[0]))
        query = (pick @ vectors).astype(np.float32)  # (n, N) x (N, V) -> (n, V)
        scores = (query @ self.transposed[locale]).tocsr()  # (n, V) x (V, N) -> (n, N)
        scores.eliminate_zeros()
        if self.popularity_weight:
            scores.data += self.popularity_weight * self.local_prior[locale][scores.indices]
        return scores

    def _without_session_items(self, scores: sp.csr_matrix, sessions: Sessions, locale: int) -> sp.csr_matrix:
        """``scores`` with the sessions' own items removed, so that the top k are all recommendable."""
        rows, codes = session_pairs(sessions)
        local = self.local[locale, codes]
        rows, local = rows[local >= 0], local[local >= 0]
        if len(rows):
            stored = np.asarray(scores[rows, local]).ravel() != 0  # (an empty selection would come back sparse)
            scores[rows[stored], local[stored]] = 0  # stored entries only: the sparsity structure is unchanged
            scores.eliminate_zeros()
        return scores

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out_rows, out_codes, out_priority = [], [], []
        for loc in np.unique(sessions.locale):
            members = np.flatnonzero(sessions.locale == loc)
            for start in range(0, len(members), self.batch):
                batch = members[start:start + self.batch]
                chunk = sessions.select(batch)
                scores = self.scores(chunk, int(loc))
                rows, cols, values = top_per_row(self._without_session_items(scores, chunk, int(loc)), k)
                out_rows.append(batch[rows])
                out_codes.append(self.codes[loc][cols])
                out_priority.append(-values.astype(np.float64))
        if self.backfill:
            found = np.bincount(np.concatenate(out_rows or [np.zeros(0, np.int64)]), minlength=len(sessions))
            short = np.flatnonzero(found < k)  # sessions popularity has to fill up
            pop_rows, pop_codes, pop_rank = self.popularity.popular_candidates(sessions.select(short), k)
            out_rows.append(short[pop_rows])
            out_codes.append(pop_codes)
            out_priority.append(1.0 + pop_rank)  # behind every text candidate (their priority is < 0)
        if not out_rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(out_rows), np.concatenate(out_codes), np.concatenate(out_priority)
