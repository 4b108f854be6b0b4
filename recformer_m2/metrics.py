"""Evaluation metrics of the KDD Cup 2023 (Amazon-M2): MRR/Recall/NDCG@k and title BLEU.

Ranking metrics assume one relevant item per session (the true next item), so
MRR@k = 1/r, Recall@k = 1 and NDCG@k = 1/log2(r + 1) when the target sits at rank
r <= k of the prediction list, and 0 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from sacrebleu.tokenizers.tokenizer_char import TokenizerChar

from recformer_m2.constants import LOCALES, TOP_K

PADDING_ID = -1
"""Integer id that pads short prediction rows; it never matches a target."""

OVERALL = "overall"
"""Index label of the micro-averaged row in the per-locale tables."""

_CHUNK_ROWS = 1 << 16
"""Rows compared at once on the vectorised path: bounds the (rows, k) boolean buffer."""

_CHAR_LOCALES = frozenset({"JP"})
"""Locales written without spaces between words, so BLEU counts characters, not words."""


def _is_missing(value: Any) -> bool:
    """True for a target that can never be hit: None, NaN or the integer padding id."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value) == PADDING_ID
    return False


def _ranks_vectorised(predictions: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """1-based rank of each target in the first k columns (0 if absent), in row chunks."""
    n = predictions.shape[0]
    ranks = np.zeros(n, dtype=np.int64)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        block = predictions[start:stop, :k]  # (B, k)
        target = targets[start:stop, None]  # (B, 1)
        hits = block == target  # (B, k); argmax below takes the first hit
        if targets.dtype.kind == "i":
            hits &= target != PADDING_ID
        found = hits.any(axis=1)
        ranks[start:stop] = np.where(found, hits.argmax(axis=1) + 1, 0)
    return ranks


def _ranks_generic(predictions: Sequence[Sequence[Any]], targets: Sequence[Any], k: int) -> np.ndarray:
    """Same as `_ranks_vectorised` for string ids and ragged rows, one C-level list.index per row."""
    ranks = np.zeros(len(targets), dtype=np.int64)
    for i, (row, target) in enumerate(zip(predictions, targets)):
        if isinstance(row, (str, bytes)):
            raise TypeError(f"prediction row {i} is a single string {row!r}, expected a sequence of ids")
        if _is_missing(target):
            continue
        head = row[:k]
        if not isinstance(head, list):
            head = list(head)
        try:
            ranks[i] = head.index(target) + 1
        except ValueError:
            pass  # target not among the first k predictions: rank stays 0
    return ranks


def target_ranks(predictions: np.ndarray | Sequence[Sequence[Any]], targets: np.ndarray | Sequence[Any],
                 k: int = TOP_K) -> np.ndarray:
    """1-based rank of each row's target among its first k predictions, 0 when absent.

    Integer or unicode 2-D arrays are compared in one vectorised pass; anything else
    (lists of string ids, ragged rows) row by row. A duplicated id counts at its first
    occurrence; the padding value (-1 or None) never matches.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction rows but {len(targets)} targets")
    if isinstance(predictions, np.ndarray) and predictions.ndim == 2:
        target_array = np.asarray(targets)
        kinds = (predictions.dtype.kind, target_array.dtype.kind)
        if kinds in {("i", "i"), ("u", "u"), ("i", "u"), ("u", "i"), ("U", "U")} and target_array.ndim == 1:
            return _ranks_vectorised(predictions, target_array, k)
    return _ranks_generic(predictions, targets, k)


def score_ranks(scores: Any, targets: Any) -> Any:
    """1-based rank of each row's target column among (B, N) ``scores``, 0 when the target cannot be
    recommended (its score is -inf, i.e. masked, or NaN). Ties count against the target: it ranks below
    every item scoring the same, so a model that scores everything alike earns nothing. Takes numpy arrays
    or torch tensors (``targets``: (B,) column indices) and returns the same kind."""
    if isinstance(scores, np.ndarray):
        target_scores = np.take_along_axis(scores, np.asarray(targets, dtype=np.int64)[:, None], axis=1)  # (B, 1)
        ranks = (scores >= target_scores).sum(axis=1)  # (B, N) -> (B,), the target counts itself
        return np.where(target_scores[:, 0] > -np.inf, ranks, 0)
    target_scores = scores.gather(1, targets.unsqueeze(1))  # (B, 1)
    ranks = (scores >= target_scores).sum(1)  # (B, N) -> (B,), the target counts itself
    return ranks.where(target_scores.squeeze(1) > float("-inf"), ranks.new_zeros(()))


def metrics_from_ranks(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-row MRR, Recall and NDCG at k from 1-based ranks (0 = absent)."""
    hit = (ranks > 0) & (ranks <= k)
    safe = np.where(hit, ranks, 1).astype(np.float64)  # avoids 1/0 where there is no hit
    return {
        "mrr": np.where(hit, 1.0 / safe, 0.0),
        "recall": hit.astype(np.float64),
        "ndcg": np.where(hit, 1.0 / np.log2(safe + 1.0), 0.0),
    }


def rank_metrics(predictions: np.ndarray | Sequence[Sequence[Any]], targets: np.ndarray | Sequence[Any],
                 k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per-row ``mrr``, ``recall`` and ``ndcg`` at k for one relevant item per row.

    ``predictions`` is a (n, >=k) integer array (padded with -1) or a sequence of
    id lists of any length (shorter rows simply miss the later ranks); ``targets``
    holds one id per row. Duplicates in a row count at their first occurrence, so
    repeating the target cannot raise a score.
    """
    return metrics_from_ranks(target_ranks(predictions, targets, k), k)


def _locale_masks(locales: Sequence[str], n: int) -> list[tuple[str, np.ndarray]]:
    """Boolean row mask per locale present, in LOCALES order; unknown locales are refused."""
    if len(locales) != n:
        raise ValueError(f"{n} rows but {len(locales)} locales")
    values = np.asarray(locales, dtype=object)
    unknown = sorted({str(v) for v in values.tolist()} - set(LOCALES))
    if unknown:
        raise ValueError(f"unknown locales {unknown}; expected some of {list(LOCALES)}")
    masks = [(loc, values == loc) for loc in LOCALES]
    return [(loc, mask) for loc, mask in masks if mask.any()]


def evaluate_rankings(predictions: np.ndarray | Sequence[Sequence[Any]], targets: np.ndarray | Sequence[Any],
                      locales: Sequence[str], ks: Sequence[int] = (TOP_K,)) -> pd.DataFrame:
    """Per-locale and ``overall`` MRR/Recall/NDCG at each k, plus the session count ``n``.

    ``overall`` averages over all sessions (micro-average), as the KDD Cup scores a task,
    so large locales weigh more than small ones.
    """
    ks = tuple(int(k) for k in ks)
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    ranks = target_ranks(predictions, targets, max(ks))
    groups = _locale_masks(locales, len(ranks)) + [(OVERALL, np.ones(len(ranks), dtype=bool))]
    per_k = {k: metrics_from_ranks(ranks, k) for k in ks}
    rows = []
    for name, mask in groups:
        n = int(mask.sum())
        row: dict[str, float | int] = {}
        for k, metrics in per_k.items():
            for key, label in (("mrr", "MRR"), ("recall", "Recall"), ("ndcg", "NDCG")):
                row[f"{label}@{k}"] = float(metrics[key][mask].mean()) if n else float("nan")
        row["n"] = n
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([name for name, _ in groups], name="locale"))


def _as_text(value: Any) -> str:
    """A title as a string; None or NaN (a missing title) becomes the empty string."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a title string, got {type(value).__name__}: {value!r}")
    return value


def title_bleu(hypotheses: Sequence[str], references: Sequence[str], locales: Sequence[str]) -> pd.DataFrame:
    """Corpus BLEU (0-1 scale, as the KDD Cup task 3 leaderboard) per locale and ``overall``.

    Each sentence is first tokenised for its own locale: sacrebleu's '13a' for the
    Latin-script locales, and single characters (sacrebleu's 'char') for JP, whose titles
    have no spaces between words and would otherwise be one token each ('ja-mecab' needs
    MeCab and a dictionary that are not dependencies here). The tokenised corpus is then
    scored with tokenize='none', so ``overall`` pools the same n-gram counts as the rows.
    Empty or missing hypotheses are allowed and only add no matches.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    groups = _locale_masks(locales, len(hypotheses))

    hyp_tokens = np.array(_bleu_tokens(hypotheses, locales), dtype=object)
    ref_tokens = np.array(_bleu_tokens(references, locales), dtype=object)
    groups.append((OVERALL, np.ones(len(hyp_tokens), dtype=bool)))
    bleu = BLEU(tokenize="none")
    rows = []
    for _name, mask in groups:
        n = int(mask.sum())
        if n == 0:
            rows.append({"BLEU": float("nan"), "n": 0})
            continue
        score = bleu.corpus_score(list(hyp_tokens[mask]), [list(ref_tokens[mask])])
        rows.append({"BLEU": score.score / 100.0, "n": n})
    return pd.DataFrame(rows, index=pd.Index([name for name, _ in groups], name="locale"))


def _bleu_tokens(texts: Sequence[Any], locales: Sequence[str]) -> list[str]:
    """Each text tokenised for its locale, as :func:`title_bleu` scores it (space-joined tokens)."""
    word_tokenizer, char_tokenizer = Tokenizer13a(), TokenizerChar()
    return [(char_tokenizer if loc in _CHAR_LOCALES else word_tokenizer)(_as_text(t).strip())
            for t, loc in zip(texts, locales)]


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str], locales: Sequence[str],
                    max_order: int = 4) -> np.ndarray:
    """Per sentence ``(n, 2 * max_order + 2)`` BLEU sufficient statistics: clipped n-gram matches and
    n-gram counts of orders 1..max_order, then hypothesis and reference lengths. Summed over any subset
    of sentences they give that subset's corpus BLEU (:func:`bleu_from_statistics`), which is what a
    bootstrap over sessions needs."""
    from collections import Counter

    stats = np.zeros((len(hypotheses), 2 * max_order + 2), dtype=np.int64)
    for i, (hyp, ref) in enumerate(zip(_bleu_tokens(hypotheses, locales), _bleu_tokens(references, locales))):
        h, r = hyp.split(), ref.split()
        for n in range(1, max_order + 1):
            hn = Counter(tuple(h[j:j + n]) for j in range(len(h) - n + 1))
            rn = Counter(tuple(r[j:j + n]) for j in range(len(r) - n + 1))
            stats[i, n - 1] = sum(min(c, rn[g]) for g, c in hn.items())
            stats[i, max_order + n - 1] = max(len(h) - n + 1, 0)
        stats[i, -2], stats[i, -1] = len(h), len(r)
    return stats


def bleu_from_statistics(stats: np.ndarray) -> float:
    """Corpus BLEU (0-1) from statistics summed over sentences ``(2 * max_order + 2,)``, computed as
    :func:`title_bleu` does (sacrebleu's formula and its default 'exp' smoothing)."""
    order = (len(stats) - 2) // 2
    score = BLEU.compute_bleu([int(x) for x in stats[:order]], [int(x) for x in stats[order:2 * order]],
                              int(stats[-2]), int(stats[-1]), smooth_method="exp", max_ngram_order=order)
    return score.score / 100.0


def paired_bootstrap(a: np.ndarray, b: np.ndarray, score=np.mean, samples: int = 1000,
                     seed: int = 0) -> dict[str, float]:
    """How sure is "a beats b"? Resamples sessions with replacement ``samples`` times and scores both
    systems on each resample (``score`` of the per-session rows: the mean for MRR values; pass
    :func:`corpus_bleu_of` for BLEU statistics).

    Returns the difference on all sessions, its 95% bootstrap interval and the share of resamples where
    a scores higher than b.
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired_bootstrap needs two equally long, non-empty rows ({len(a)} and {len(b)})")
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for s in range(samples):
        idx = rng.integers(0, len(a), len(a))
        diffs[s] = float(score(a[idx])) - float(score(b[idx]))
    low, high = np.quantile(diffs, [0.025, 0.975])
    return {"difference": float(score(a)) - float(score(b)), "low": float(low), "high": float(high),
            "share_a_better": float((diffs > 0).mean())}


def corpus_bleu_of(stats: np.ndarray) -> float:
    """Corpus BLEU (0-1) of per-sentence statistics (:func:`bleu_statistics`), for :func:`paired_bootstrap`."""
    return bleu_from_statistics(stats.sum(axis=0))
