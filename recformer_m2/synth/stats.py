"""Statistics of generated sessions: the generator's own summary and the calibration against real data.

The calibration statistics are the ones issue 16 compares between real Amazon-M2 ES/FR/IT sessions and a
synthetic folder, at equal session counts per locale (:func:`sample_per_locale`). One definition here
serves ``bench/bench_calibration.py`` and the tests.
"""

from __future__ import annotations

import collections
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

_ID_IN_PREV = re.compile(r"'([^']*)'")

CALIBRATION_TARGETS: dict[str, float] = {
    "mean_length": 3.81,
    "repeat_share": 0.419,
    "repeat_in_row_share": 0.219,
    "distinct_next_share": 0.777,
    "top1pct_next_share": 0.038,
    "shared_pair_share": 0.172,
    "last_title_bleu": 0.268,
}
"""Real Amazon-M2 values (issue 16: ES/FR/IT sessions, 2,000 per locale; BLEU from the Amazon-M2 paper)."""

STAT_LABELS: dict[str, str] = {
    "mean_length": "mean session length",
    "repeat_share": "sessions that repeat a product",
    "repeat_in_row_share": "sessions with a product viewed twice in a row",
    "distinct_next_share": "distinct next items per session",
    "top1pct_next_share": "share of next items taken by the top 1% of next items",
    "shared_pair_share": "sessions whose (last -> next) pair occurs in another session",
    "last_title_bleu": "task-3 Last Product Title BLEU (sacrebleu 13a, every locale)",
}


@dataclass(frozen=True)
class SessionStats:
    """Calibration statistics of a set of sessions (prev items oldest first, and the next item)."""

    n: int
    mean_length: float
    """Mean number of prev items."""
    repeat_share: float
    """Share of sessions whose prev items hold a product twice."""
    repeat_in_row_share: float
    """Share of sessions with the same product at two consecutive positions."""
    distinct_next_share: float
    """Distinct next items / sessions."""
    top1pct_next_share: float
    """Share of sessions whose next item is among the top 1% most frequent next items (at least one)."""
    shared_pair_share: float
    """Share of sessions whose (last prev item, next item) pair is a consecutive pair of another session
    (prev items followed by the next item)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def session_stats(prev: Sequence[Sequence[str]], nxt: Sequence[str]) -> SessionStats:
    """The calibration statistics of sessions ``prev[i] -> nxt[i]`` (ids compared as given, all locales pooled)."""
    n = len(prev)
    if n == 0 or n != len(nxt):
        raise ValueError(f"need as many next items as sessions, and at least one: {n} vs {len(nxt)}")
    lens = np.array([len(p) for p in prev])
    if (lens == 0).any():
        raise ValueError(f"session {int(np.argmin(lens))} has no prev items")
    repeat = sum(len(set(p)) < len(p) for p in prev)
    in_row = sum(any(a == b for a, b in zip(p[:-1], p[1:])) for p in prev)
    counts = np.sort(np.array(list(collections.Counter(nxt).values())))[::-1]
    top = int(counts[:max(1, round(0.01 * len(counts)))].sum())
    pair_sessions: collections.Counter = collections.Counter()
    for p, x in zip(prev, nxt):
        seq = list(p) + [x]
        pair_sessions.update(set(zip(seq[:-1], seq[1:])))
    shared = sum(pair_sessions[(p[-1], x)] > 1 for p, x in zip(prev, nxt))
    return SessionStats(n=n, mean_length=float(lens.mean()), repeat_share=repeat / n, repeat_in_row_share=in_row / n,
                        distinct_next_share=len(counts) / n, top1pct_next_share=top / n, shared_pair_share=shared / n)


def sample_per_locale(locales: Sequence[str], n_per_locale: dict[str, int], seed: int = 0) -> np.ndarray:
    """Row indices of a seeded sample of ``n_per_locale[loc]`` sessions of each locale (sorted)."""
    loc = np.asarray(locales)
    rng = np.random.default_rng(seed)
    out = []
    for name in sorted(n_per_locale):
        rows = np.nonzero(loc == name)[0]
        if len(rows) < n_per_locale[name]:
            raise ValueError(f"{name}: {len(rows)} sessions, fewer than the {n_per_locale[name]} asked for")
        out.append(rng.choice(rows, size=n_per_locale[name], replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def parse_prev_items(raw: str) -> list[str]:
    """The ids of a KDD-file ``prev_items`` cell (a numpy array repr)."""
    return _ID_IN_PREV.findall(raw)


def read_sessions(path: str | Path, locales: Sequence[str] | None = None) -> pd.DataFrame:
    """Sessions (``prev_items`` as lists, ``next_item``, ``locale``) of a parquet file or a data folder's
    ``sessions_train.csv``, keeping ``locales`` only when given."""
    path = Path(path)
    if path.is_dir():
        path = path / "sessions_train.csv"
    if path.suffix == ".parquet":
        df = pd.read_parquet(path, columns=["prev_items", "next_item", "locale"])
        if locales is not None:
            df = df[df["locale"].isin(list(locales))]
        df = df.assign(prev_items=[list(p) for p in df["prev_items"]])
    else:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
        if locales is not None:
            df = df[df["locale"].isin(list(locales))]
        df = df.assign(prev_items=[parse_prev_items(p) for p in df["prev_items"]])
    return df.reset_index(drop=True)


def last_title_bleu(folder: str | Path) -> float:
    """Task-3 Last Product Title corpus BLEU (0-1) of a data folder with ``gt_task3.csv``: the title of each
    session's last prev item against the next item's title, sacrebleu's default '13a' tokenizer on every
    locale (as issue 16 and the Amazon-M2 paper's 0.268 measure it), all locales pooled."""
    from sacrebleu.metrics import BLEU

    folder = Path(folder)
    products = pd.read_csv(folder / "products_train.csv", keep_default_na=False, dtype=str,
                           usecols=["id", "locale", "title"])
    title = dict(zip(zip(products["id"], products["locale"]), products["title"]))
    test = pd.read_csv(folder / "sessions_test_task3.csv", keep_default_na=False, dtype=str)
    gt = pd.read_csv(folder / "gt_task3.csv", keep_default_na=False, dtype=str)
    hyps = [title[(parse_prev_items(p)[-1], loc)] for p, loc in zip(test["prev_items"], test["locale"])]
    return BLEU().corpus_score(hyps, [gt["next_item_title"].tolist()]).score / 100.0


# --------------------------------------------------------------------------------------------------
# the generator's own summary (arrays of a walk)
# --------------------------------------------------------------------------------------------------
def repeat_share(flat: np.ndarray, off: np.ndarray, lens: np.ndarray, sel: np.ndarray) -> float:
    """Share of sessions ``sel`` with a product occurring twice among their prev items."""
    if not len(sel):
        return 0.0
    ln = lens[sel]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(off[sel] - seg, ln) + np.arange(int(ln.sum()))
    sess = np.repeat(np.arange(len(sel)), ln)
    key = np.sort(sess.astype(np.int64) * (int(flat.max()) + 1) + flat[pos])
    dup = key[1:] == key[:-1]
    return len(np.unique(key[1:][dup] // (int(flat.max()) + 1))) / len(sel)


def train_counts(flat: np.ndarray, off: np.ndarray, lens: np.ndarray, nxt: np.ndarray, train: np.ndarray,
                 n_products: int) -> np.ndarray:
    """How often each product of the locale occurs in training sessions (prev and next items)."""
    ln = lens[train]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(off[train] - seg, ln) + np.arange(int(ln.sum()))
    return np.bincount(np.concatenate([flat[pos], nxt[train]]), minlength=n_products)
