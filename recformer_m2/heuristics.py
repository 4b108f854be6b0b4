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

    A pair (a then b, ``g`` steps apart) adds ``1/g**gap_power`` to a->b and ``backward_weight`` times that
    to b->a, times ``1 + position_weight * p`` where ``p`` in [0, 1] is how late in its session the pair
    sits (the pairs nearest the session's end are the ones most like a next-item transition). Entries are
    divided by the popularity of the recommended item to the power ``lift`` (lift normalisation: a very
    popular product is near everything), each item keeps its ``max_neighbors`` strongest neighbours (rows
    optionally normalised to sum to one so a very popular session item does not drown the others). A session
    scores candidates by summing its items' neighbour weights times ``decay ** steps_before_end``. Empty
    slots are filled by popularity.

    ``cross_locale``: pairs are learned from the sessions of every locale into one table (the same product
    id is sold in several locales: on real task-2 sessions ES, FR and IT share 1.5-1.9k of their 9-11k ids,
    and the small locales share about 40% of their products with DE), and served only where the recommended
    item is sold in the session's locale. ``query_evidence``: the prev_items of the sessions being ranked
    add their own pairs with this weight (their inputs, never their next items: a test label never reaches
    the table); the evidence is that of one ``recommend`` chunk (up to ``CHUNK`` sessions), and the
    unpruned training table is kept for it (more memory). On real ES/FR/IT sessions this is the strongest
    variant: 1.059x co-visitation's test MRR@100 alone (``bench/README.md``). The variants are the
    candidate sources of the KDD Cup 2023 task-2 solutions.
    """

    window: int = 3
    backward_weight: float = 0.5
    decay: float = 0.6
    max_neighbors: int = 200
    normalize: bool = True
    gap_power: float = 1.0
    position_weight: float = 0.0
    lift: float = 0.0
    cross_locale: bool = False
    query_evidence: float = 0.0
    name: str = "covisitation"

    def fit(self, catalog: Catalog, train: Sessions) -> "CoVisitation":
        self.num_ids = catalog.num_ids
        self.catalog = catalog
        self.popularity = Popularity().fit(catalog, train)
        counts = occurrence_counts(train, catalog.num_ids)
        self._item_counts = (counts.sum(axis=0, keepdims=True) if self.cross_locale else counts).astype(np.float64)
        # Full sequences: previous items then the target.
        lengths = train.lengths + 1
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        seq = np.empty(offsets[-1], dtype=np.int64)
        is_target = np.zeros(offsets[-1], dtype=bool)
        is_target[offsets[1:] - 1] = True
        seq[is_target] = train.next_item
        seq[~is_target] = train.items
        raw = self._pair_matrix(seq, offsets, train.locale)
        if self.query_evidence > 0:
            self.raw = raw  # kept whole: the ranked sessions' pairs are added to it before pruning
        self.matrix = self._prune(raw)
        logger.info("%s: %d item pairs kept from %d sessions", self.name, self.matrix.nnz, len(train))
        return self

    @property
    def blocks(self) -> int:
        """Row blocks of the tables: one per locale, or one for all (``cross_locale``)."""
        return 1 if self.cross_locale else len(LOCALES)

    def row_keys(self, locale: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Table rows of (session locale, session item) pairs."""
        block = np.zeros_like(locale, dtype=np.int64) if self.cross_locale else np.asarray(locale, dtype=np.int64)
        return block * self.num_ids + np.asarray(codes, dtype=np.int64)

    def _pair_matrix(self, seq: np.ndarray, offsets: np.ndarray, locale: np.ndarray) -> sp.csr_matrix:
        """(blocks * N, N) summed pair weights of flat sequences ``seq`` split at ``offsets``."""
        lengths = np.diff(offsets)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        position = np.arange(len(seq)) - offsets[:-1][owner]
        relative = position / np.maximum(lengths[owner] - 1, 1)
        seq_locale = np.asarray(locale, dtype=np.int64)[owner]
        src, dst, weight = [], [], []
        for gap in range(1, self.window + 1):
            a, b = np.arange(len(seq) - gap), np.arange(gap, len(seq))
            ok = (owner[a] == owner[b]) & (seq[a] != seq[b])
            a, b = a[ok], b[ok]
            w = (1.0 / gap ** self.gap_power) * (1.0 + self.position_weight * relative[b])
            if self.cross_locale:  # served only where sold, at recommendation time
                forward = backward = np.ones(len(a), dtype=bool)
            else:  # only pairs whose recommended item is sold in the session's locale
                forward = self.catalog.rows(seq[b], seq_locale[a]) >= 0
                backward = self.catalog.rows(seq[a], seq_locale[a]) >= 0
            src += [self.row_keys(seq_locale[a], seq[a])[forward], self.row_keys(seq_locale[b], seq[b])[backward]]
            dst += [seq[b][forward], seq[a][backward]]
            weight += [w[forward], self.backward_weight * w[backward]]
        shape = (self.blocks * self.num_ids, self.num_ids)
        matrix = sp.coo_matrix((np.concatenate(weight), (np.concatenate(src), np.concatenate(dst))), shape=shape)
        matrix = matrix.tocsr()
        matrix.sum_duplicates()
        matrix.eliminate_zeros()  # backward_weight 0 (forward-only) leaves explicit zeros
        return matrix

    def _prune(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """Lift-normalise, keep each row's strongest neighbours, normalise rows."""
        if self.lift > 0:
            coo = matrix.tocoo()
            popularity = self._item_counts[coo.row // self.num_ids, coo.col] + 1.0
            matrix = sp.csr_matrix((coo.data / popularity ** self.lift, (coo.row, coo.col)), shape=matrix.shape)
        return _keep_top_per_row(matrix, self.max_neighbors, self.normalize)

    def _query_table(self, sessions: Sessions, rows_needed: np.ndarray) -> sp.csr_matrix:
        """The table with the pairs of ``sessions``' own items added (weight ``query_evidence``), pruned,
        for the rows the sessions ask about (others empty). Their next items are never read."""
        queries = self._pair_matrix(sessions.items.astype(np.int64), sessions.offsets, sessions.locale)
        rows = np.unique(rows_needed)
        sub = (self.raw[rows] + self.query_evidence * queries[rows]).tocoo()  # only the rows asked about
        table = sp.csr_matrix((sub.data, (rows[sub.row], sub.col)), shape=self.raw.shape)
        return self._prune(table)

    def table(self, sessions: Sessions | None = None) -> sp.csr_matrix:
        """The item-to-item table used for ``sessions`` (the same for all unless ``query_evidence``)."""
        if self.query_evidence > 0 and sessions is not None:
            return self._query_table(sessions, np.unique(self.row_keys(sessions.locale[sessions.session_index],
                                                                       sessions.items)))
        return self.matrix

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows_in, cols_in = session_pairs(sessions)
        cols_in = self.row_keys(sessions.locale[rows_in], cols_in)
        table = self.table(sessions)
        query = sp.csr_matrix(
            (recency_weights(sessions, self.decay), (rows_in, cols_in)), shape=(len(sessions), table.shape[0])
        )
        scores = (query @ table).tocoo()  # (n, B*N) x (B*N, N) -> (n, N)
        rows, cols, data = scores.row, scores.col, scores.data
        if self.cross_locale:  # learned in every locale: keep what the session's locale sells
            sold = self.catalog.rows(cols, sessions.locale[rows].astype(np.int64)) >= 0
            rows, cols, data = rows[sold], cols[sold], data[sold]
        pop_rows, pop_codes, pop_rank = self.popularity.popular_candidates(sessions, k)
        # Co-visited items come first (by score); popularity fills what is left, behind all of them.
        return (
            np.concatenate([rows, pop_rows]),
            np.concatenate([cols, pop_codes]),
            np.concatenate([-data, 1.0 + pop_rank]),
        )

    def weights(self, locale: np.ndarray, sources: np.ndarray, targets: np.ndarray,
                table: sp.csr_matrix | None = None) -> np.ndarray:
        """Weight from each source item to each target item in a session of ``locale`` (0 if none), in
        ``table`` (default: the training table; pass ``self.table(sessions)`` for the ranked sessions' one)."""
        table = self.matrix if table is None else table
        return np.asarray(table[self.row_keys(locale, sources), targets]).ravel()


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
