"""Turning scored candidates into top-k lists, vectorised over many sessions at once.

Every recommender ends the same way: candidates from one or more sources, in order of preference,
minus the items already in the session (the next item is never one of them in Amazon-M2), cut to k.
"""

from __future__ import annotations

import numpy as np

from .data.m2 import Sessions


def top_candidates(
    n: int,
    rows: np.ndarray,
    codes: np.ndarray,
    priority: np.ndarray,
    exclude_rows: np.ndarray,
    exclude_codes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``n`` best candidates as flat (row, code, rank, -priority), sorted by row then rank.

    ``rows``/``codes``/``priority`` are flat candidate triples (lower priority is better); ``exclude_*``
    flat (row, code) pairs that are removed. A code proposed twice for a row keeps its best priority; ties
    break by smaller code, so results are deterministic. The one top-k of every recommender and source.
    """
    rows, codes = np.asarray(rows, dtype=np.int64), np.asarray(codes, dtype=np.int64)
    priority = np.asarray(priority, dtype=np.float64)
    base = int(max(codes.max(initial=0), np.max(exclude_codes, initial=0))) + 1
    keys = rows * base + codes
    excluded = np.sort(np.asarray(exclude_rows, dtype=np.int64) * base + np.asarray(exclude_codes, dtype=np.int64))
    if len(excluded):
        at = np.minimum(np.searchsorted(excluded, keys), len(excluded) - 1)
        keep = excluded[at] != keys
        rows, codes, keys, priority = rows[keep], codes[keep], keys[keep], priority[keep]
    order = np.lexsort((priority, keys))  # best priority of each (row, code) first
    keys, rows, codes, priority = keys[order], rows[order], codes[order], priority[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    rows, codes, priority = rows[first], codes[first], priority[first]
    order = np.lexsort((codes, priority, rows))  # within a row: priority, then smaller code
    rows, codes, priority = rows[order], codes[order], priority[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    top = rank < n
    return rows[top], codes[top], rank[top], -priority[top]


def rank_candidates(
    n_rows: int,
    k: int,
    rows: np.ndarray,
    codes: np.ndarray,
    priority: np.ndarray,
    exclude_rows: np.ndarray,
    exclude_codes: np.ndarray,
) -> np.ndarray:
    """:func:`top_candidates` as a (n_rows, k) int32 matrix of codes, best first, -1 padded."""
    rows, codes, rank, _ = top_candidates(k, rows, codes, priority, exclude_rows, exclude_codes)
    out = np.full((n_rows, k), -1, dtype=np.int32)
    out[rows, rank] = codes
    return out


def session_pairs(sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """Flat (row, code) pairs of every session item: what must never be recommended back."""
    return sessions.session_index, sessions.items.astype(np.int64)


def recency_weights(sessions: Sessions, decay: float) -> np.ndarray:
    """Weight of each session item: ``decay ** steps_before_end`` (the last item weighs 1)."""
    position = np.arange(len(sessions.items)) - np.repeat(sessions.offsets[:-1], sessions.lengths)
    steps_back = np.repeat(sessions.lengths, sessions.lengths) - 1 - position
    return decay ** steps_back.astype(np.float64)
