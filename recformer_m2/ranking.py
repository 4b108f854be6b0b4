"""Turning scored candidates into top-k lists, vectorised over many sessions at once.

Every recommender ends the same way: candidates from one or more sources, in order of preference,
minus the items already in the session (the next item is never one of them in Amazon-M2), cut to k.
"""

from __future__ import annotations

import numpy as np

from .data.m2 import Sessions


def rank_candidates(
    n_rows: int,
    k: int,
    rows: np.ndarray,
    codes: np.ndarray,
    priority: np.ndarray,
    exclude_rows: np.ndarray,
    exclude_codes: np.ndarray,
) -> np.ndarray:
    """Top-k codes per row: lowest ``priority`` first, duplicates kept once, excluded pairs removed.

    ``rows``/``codes``/``priority`` are flat candidate triples; ``exclude_*`` flat (row, code) pairs.
    Ties break by smaller code, so results are deterministic. Returns (n_rows, k) int32, -1 padded.
    """
    rows = np.asarray(rows, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    n_codes = int(max(codes.max(initial=0), np.max(exclude_codes, initial=0))) + 1
    keys = rows * n_codes + codes
    if len(exclude_rows):
        keep = ~np.isin(keys, np.asarray(exclude_rows, dtype=np.int64) * n_codes + exclude_codes)
        rows, codes, keys, priority = rows[keep], codes[keep], keys[keep], np.asarray(priority)[keep]
    # Best priority per (row, code): sort by key then priority, keep the first of each key.
    order = np.lexsort((priority, keys))
    keys, rows, codes, priority = keys[order], rows[order], codes[order], np.asarray(priority)[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    rows, codes, priority = rows[first], codes[first], priority[first]
    # Rank within each row by priority, then code.
    order = np.lexsort((codes, priority, rows))
    rows, codes = rows[order], codes[order]
    row_start = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - row_start[rows]
    top = rank < k
    out = np.full((n_rows, k), -1, dtype=np.int32)
    out[rows[top], rank[top]] = codes[top]
    return out


def session_pairs(sessions: Sessions) -> tuple[np.ndarray, np.ndarray]:
    """Flat (row, code) pairs of every session item: what must never be recommended back."""
    return sessions.session_index, sessions.items.astype(np.int64)


def recency_weights(sessions: Sessions, decay: float) -> np.ndarray:
    """Weight of each session item: ``decay ** steps_before_end`` (the last item weighs 1)."""
    position = np.arange(len(sessions.items)) - np.repeat(sessions.offsets[:-1], sessions.lengths)
    steps_back = np.repeat(sessions.lengths, sessions.lengths) - 1 - position
    return decay ** steps_back.astype(np.float64)
