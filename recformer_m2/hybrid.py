"""Hybrid: candidates from several recommenders, re-ordered by a learned LightGBM LambdaRank ranker.

Each source (by default co-visitation, title nearest neighbours and popularity; any ``SessionRecommender``
can be added, e.g. a Recformer retriever or an ID baseline) proposes its top ``per_source`` items for a
session. Every proposed item becomes a row of features: each source's score and rank (missing when it
did not propose the item), the item's popularity in the locale, whether it shares the brand of the last
session item, its price relative to it, its title similarity to the last items and how far back the most
similar one is, the session's length and locale. The ranker orders the candidates; popularity fills the
list to k.

Where the ranker's labels come from: ``fit`` sees the catalog and the training sessions only. A seeded
validation split (``validation_split``) holds some training sessions out; the sources are fitted on the
rest, candidates and features are built for the held-out sessions, and a candidate is positive when it is
the held-out session's next item. Test files and their ground truth are never read. Held-out sessions
whose next item no source proposed teach nothing and are dropped (counted in ``training_summary``).
After training, the sources are fitted again on all training sessions (``refit=True``, the default:
predictions then use every training session, as the baselines do; popularity is counted per 1000
sessions of the locale so that its scale does not move with the number of sessions).

The hybrid fits its sources itself, through ``SessionRecommender.fit``, except those named in ``fitted``
and the ``ModelSource`` ones (trained models, used as given). A trained model has seen most training
sessions: its scores on them are better than on test sessions, and a ranker that learned from them would
over-trust it. So, by default (``model_holdout``), in the locales a model serves the ranker learns only
from sessions that model never trained on: its own validation split, recomputed from its folder
(``ModelSource.unseen``); elsewhere the held-out split is the usual one. Those sessions still served the
model's early stopping, a small optimism that remains. A model source whose unseen sessions are unknown
(e.g. a pretraining folder) is used anyway, with a warning, and its features are then optimistic in
training: the ranker weights it more than its test behaviour deserves.

Two source sets. ``default_sources()`` (co-visitation, textknn, popularity) is the hybrid's default.
``id_sources()`` is the wide set of the KDD Cup 2023 task-2 solutions, which needs product ids only:
co-visitation variants (consecutive, forward windows 3 and 5, position-weighted, lift-normalised),
cross-locale co-visitation, co-visitation that also counts the pairs among the prev_items of the sessions
being ranked (``covis-queries``: inputs of the test sessions, never their next items), item embeddings
learned from sessions, popularity (and textknn with ``text=True``). On a catalog without product text
(real sessions' ids only) text sources and text features are skipped. Features added for them: popularity
across locales, as a next item, among the ranked sessions' prev_items; best rank over sources; each
co-visitation table's weight from the last and the best of the latest items; session distinct items and
repeats; mean session price. ``folds`` pools the examples of several disjoint held-out splits.

Cost at full Amazon-M2 scale (synthetic, 4.6M training sessions, defaults, no model source; measured
with ``bench/bench_textknn.py --methods hybrid`` on a shared 2-core machine): fit 440 s of CPU, 100
items for the 324k test sessions of tasks 1 and 2 906 s of CPU, peak RSS 7.2 GiB (data included).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .constants import LOCALES
from .data.m2 import Catalog, Sessions
from .data.split import cap_per_locale, validation_split
from .embeddings_sources import ItemEmbeddings
from .heuristics import CHUNK, CoVisitation, Popularity, SessionRecommender, occurrence_counts
from .ranking import session_pairs, top_candidates
from .textknn import TextKNN, last_items

logger = logging.getLogger(__name__)

RELATED_ITEMS = 3
"""Latest session items compared with each candidate for the 'most related item' features."""


def session_keys(sessions: Sessions) -> np.ndarray:
    """(n,) uint64 content hash of each session (locale, items in order, next item): the same session in
    two ``Sessions`` objects (e.g. a model's validation split and the hybrid's training sessions) gets the
    same key; distinct sessions collide with probability about n^2 / 2^64."""
    with np.errstate(over="ignore"):
        position = np.arange(len(sessions.items), dtype=np.uint64) - np.repeat(
            sessions.offsets[:-1], sessions.lengths).astype(np.uint64)
        mixed = _mix((sessions.items.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
                     + _mix(position + np.uint64(1)))
        summed = np.zeros(len(sessions), dtype=np.uint64)
        np.add.at(summed, sessions.session_index, mixed)
        tail = (sessions.next_item.astype(np.int64) + 2).astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        tail += sessions.locale.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        return _mix(summed ^ _mix(tail + sessions.lengths.astype(np.uint64)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of uint64 values."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class ModelSource(SessionRecommender):
    """A trained model as a hybrid source: its top items with their scores, in the locales it serves.

    ``model``: anything with ``recommend(sessions, k, progress) -> (n, k)`` codes (a Recformer ranker, an
    ID baseline); when it also has ``recommend_with_scores(sessions, k, progress) -> (codes, scores)`` its
    scores become the ``{name}_score`` feature, else minus the rank. ``locales``: locale indices it serves
    (None: all); sessions of other locales get no proposal from it. ``unseen``: training sessions the model
    never trained on (its validation split), which the hybrid's ranker may learn from; None when unknown.
    The model is trained elsewhere: ``fit`` does nothing.
    """

    def __init__(self, model, name: str, locales: Iterable[int] | None = None, unseen: Sessions | None = None):
        self.model, self.name = model, name
        self.locales = None if locales is None else np.asarray(sorted(set(int(x) for x in locales)), dtype=np.int64)
        self.unseen = unseen

    def fit(self, catalog: Catalog, train: Sessions) -> "ModelSource":
        return self

    def serves(self, sessions: Sessions) -> np.ndarray:
        """(n,) bool: sessions of a locale this model serves."""
        return np.ones(len(sessions), dtype=bool) if self.locales is None else np.isin(sessions.locale, self.locales)

    def unseen_mask(self, train: Sessions) -> np.ndarray | None:
        """(n,) bool: sessions of ``train`` whose features from this model are honest (it never trained on
        them, or it proposes nothing for their locale); None when the model's training sessions are unknown."""
        if self.unseen is None:
            return None
        return ~self.serves(train) | np.isin(session_keys(train), session_keys(self.unseen))

    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        served = np.flatnonzero(self.serves(sessions))
        if not len(served):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        subset = sessions.select(served)
        if hasattr(self.model, "recommend_with_scores"):
            ranked, scores = self.model.recommend_with_scores(subset, k, progress=False)  # (B, k), (B, k)
        else:
            ranked = self.model.recommend(subset, k=k, progress=False)  # (B, k), -1 padded
            scores = -np.broadcast_to(np.arange(ranked.shape[1], dtype=np.float64), ranked.shape)
        rows, rank = np.nonzero(ranked >= 0)
        return served[rows], ranked[rows, rank].astype(np.int64), -np.asarray(scores, dtype=np.float64)[rows, rank]


def held_out_split(
    train: Sessions, fraction: float, seed: int, max_per_locale: int | None, eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``validation_split`` restricted to ``eligible`` sessions (all when None, then identical to it).

    Per locale, the held-out share is raised to ``fraction * n / eligible`` (at most all of them), so that a
    locale where few sessions are eligible still holds out about ``fraction`` of its sessions when it can;
    the same seeded draws and the same per-locale cap (lowest draws kept) as ``validation_split``."""
    if eligible is None or eligible.all():
        return validation_split(train, fraction, seed, max_per_locale)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction ({fraction}) must be in (0, 1)")
    u = np.random.default_rng(seed).random(len(train))
    n = np.bincount(train.locale, minlength=len(LOCALES))
    n_eligible = np.bincount(train.locale, weights=eligible, minlength=len(LOCALES))
    threshold = np.minimum(1.0, fraction * n / np.maximum(n_eligible, 1))
    valid = cap_per_locale(eligible & (u < threshold[train.locale]), train.locale, u, max_per_locale)
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def fold_splits(train: Sessions, folds: int, fraction: float, seed: int,
                max_per_locale: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` disjoint (fit, held out) splits: fold f holds out the sessions whose seeded draw u lies in
    [f * fraction, (f + 1) * fraction), at most ``max_per_locale`` per locale (lowest u); fold 0 is
    exactly ``validation_split(train, fraction, seed, max_per_locale)``."""
    u = np.random.default_rng(seed).random(len(train))
    splits = []
    for fold in range(folds):
        held = (u >= fold * fraction) & (u < (fold + 1) * fraction)
        held = cap_per_locale(held, train.locale, u, max_per_locale)
        splits.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return splits


def default_sources(without: Iterable[str] = ()) -> dict[str, SessionRecommender]:
    """The three heuristic sources, by name, minus those in ``without`` (for ablations)."""
    sources = {"covisitation": CoVisitation(), "textknn": TextKNN(), "popularity": Popularity()}
    unknown = set(without) - set(sources)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; default sources are {sorted(sources)}")
    return {name: source for name, source in sources.items() if name not in set(without)}


SOURCE_GROUPS: dict[str, tuple[str, ...]] = {
    "variants": ("covis-consecutive", "covis-forward3", "covis-forward5", "covis-position", "covis-lift"),
    "cross-locale": ("covis-cross",),
    "queries": ("covis-queries",),
    "embeddings": ("embeddings",),
    "text": ("textknn",),
}
"""Source groups ablated together (``bench_real_m2.py`` / ``bench_hybrid.py``): co-visitation variants,
cross-locale co-visitation, the ranked sessions' own prev_items, session-learned embeddings, text."""


def id_sources(without_group: str | None = None, text: bool = False, query_evidence: float = 1.0,
               embeddings: str = "svd", query_windows: tuple[int, ...] = (3,)) -> dict[str, SessionRecommender]:
    """The wide source set of the KDD Cup 2023 task-2 solutions that needs product ids only (plus textknn
    when ``text``), by name, minus one group of ``SOURCE_GROUPS`` (for ablations). ``query_evidence``:
    weight of the ranked sessions' own pairs in ``covis-queries``; ``embeddings``: ``ItemEmbeddings.method``;
    ``query_windows``: one ``covis-queries`` source per window (``covis-queries`` for 3, ``covis-queries-wN`` else)."""
    if without_group is not None and without_group not in SOURCE_GROUPS:
        raise ValueError(f"unknown source group {without_group!r}; groups are {sorted(SOURCE_GROUPS)}")
    sources: dict[str, SessionRecommender] = {
        "covisitation": CoVisitation(),
        "covis-consecutive": CoVisitation(window=1, name="covis-consecutive"),
        "covis-forward3": CoVisitation(window=3, backward_weight=0.0, name="covis-forward3"),
        "covis-forward5": CoVisitation(window=5, backward_weight=0.0, name="covis-forward5"),
        "covis-position": CoVisitation(window=5, position_weight=2.0, name="covis-position"),
        "covis-lift": CoVisitation(lift=0.5, name="covis-lift"),
        "covis-cross": CoVisitation(cross_locale=True, name="covis-cross"),
        "embeddings": ItemEmbeddings(method=embeddings),
        "popularity": Popularity(),
    }
    for window in query_windows:
        name = "covis-queries" if window == 3 else f"covis-queries-w{window}"
        sources[name] = CoVisitation(window=window, cross_locale=True, query_evidence=query_evidence, name=name)
    if text:
        sources["textknn"] = TextKNN()
    dropped = {name for name in sources if name in SOURCE_GROUPS.get(without_group, ())
               or (without_group == "queries" and name.startswith("covis-queries"))}
    return {name: source for name, source in sources.items() if name not in dropped}


def catalog_has_text(catalog: Catalog) -> bool:
    """Whether any product has a title: without one, text sources and text features are skipped."""
    return bool(catalog.table["title"].fillna("").astype(str).str.strip().ne("").any())


def source_candidates(
    source: SessionRecommender, sessions: Sessions, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A source's top-``n`` items per session as flat (row, code, rank, score): rank 0 is its best item,
    score is minus its priority (higher is better); session items excluded, as ``recommend`` would.

    A source with only ``recommend(sessions, k)`` (no ``_candidates``, e.g. a trained-model wrapper) is
    asked for its ranked lists instead, and its score is minus the rank."""
    if getattr(type(source), "_candidates", SessionRecommender._candidates) is SessionRecommender._candidates:
        ranked = source.recommend(sessions, k=n, progress=False)  # (B, n), -1 padded
        rows, rank = np.nonzero(ranked >= 0)
        codes, priority = ranked[rows, rank], rank.astype(np.float64)
    else:
        rows, codes, priority = source._candidates(sessions, n)
    return top_candidates(n, rows, codes, priority, *session_pairs(sessions))


@dataclass
class RankerData:
    """What the ranker learns from: one group of candidate rows per held-out training session, in order."""

    features: pd.DataFrame
    labels: np.ndarray
    """(rows,) 1 where the candidate is the held-out session's next item, else 0."""
    groups: np.ndarray
    """(sessions,) candidate rows of each session."""
    sessions: np.ndarray
    """(sessions,) index of each session in the training sessions ``fit`` was given."""
    codes: np.ndarray
    """(rows,) item code of each candidate."""


@dataclass
class RankerParams:
    """LightGBM LambdaRank settings (chosen on the validation split of synthetic ``small`` data)."""

    n_estimators: int = 500
    """Boosting rounds at most; early stopping on held-out validation sessions picks the number."""
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 100
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    lambdarank_truncation_level: int = 20
    """Pairs are formed with the ranker's current top items only (MRR@100 is decided near the top)."""
    negative_fraction: float = 0.2
    """Share of negative candidates kept for training (every positive is kept): as good, five times cheaper."""
    early_stopping_rounds: int = 50
    eval_fraction: float = 0.2
    """Share of the ranker's training sessions kept aside to early-stop on (their MAP@100 = MRR@100)."""
    n_jobs: int = 1
    """LightGBM threads. One by default: on a busy 2-core machine OpenMP threads mostly wait for each other."""


ID_ONLY_FOLDS = 5
"""Held-out folds of the default hybrid on a catalog without text (validation on real sessions: 1 fold
1.076x co-visitation, 4 folds 1.091x, 5 folds 1.092x)."""


class Hybrid(SessionRecommender):
    """Candidates from ``sources`` ordered by a LightGBM LambdaRank model trained on held-out training sessions.

    Features of a (session, candidate) row: ``{source}_rank`` and ``{source}_score`` per source (missing:
    rank ``per_source``, score NaN), ``n_sources``; ``popularity`` (occurrences per 1000 sessions of the
    locale) and ``log_popularity``; ``same_brand`` and ``price_ratio`` against the last item;
    ``title_sim_last``, ``title_sim_max`` and ``related_steps_back`` (title TF-IDF cosine with the last item,
    the best over the last three, and how many steps back that one is); with a ``covisitation`` source,
    ``covis_last``, ``covis_max`` and ``covis_steps_back`` likewise from its item-to-item weights;
    ``session_length`` and ``locale`` (categorical).
    """

    name = "hybrid"

    def __init__(
        self,
        sources: dict[str, SessionRecommender] | None = None,
        per_source: int = 100,
        valid_fraction: float = 0.2,
        max_valid_per_locale: int | None = 10_000,
        seed: int = 0,
        refit: bool = True,
        ranker: RankerParams | None = None,
        text: TextKNN | None = None,
        fitted: Iterable[str] = (),
        model_holdout: bool = True,
        folds: int = 1,
        per_locale: bool = False,
    ):
        """``sources``: name -> unfitted recommender (default: ``default_sources()``); ``per_source``: items
        each proposes per session; ``valid_fraction``/``max_valid_per_locale``/``seed``: the held-out split of
        the training sessions the ranker learns from; ``refit``: fit the sources again on all training
        sessions before predicting; ``text``: title vectors for the similarity features (default: the
        ``textknn`` source when there is one, else a TextKNN fitted for features only); ``fitted``: names of
        sources used as given, never fitted here (they must not have been trained on the held-out sessions;
        ``ModelSource`` sources always are); ``model_holdout``: in a model source's locales, learn only from
        sessions the model never trained on (see the module docstring); ``folds``: disjoint held-out
        splits of ``valid_fraction`` each, the sources refitted without each in turn, their examples pooled
        (more sessions for the ranker where training data is scarce; needs ``folds * valid_fraction <= 1``
        and no model source with known unseen sessions); ``per_locale``: one ranker per locale instead of
        one for all (the locale a feature), chosen on validation."""
        self.sources = default_sources() if sources is None else dict(sources)
        self.default_sources = sources is None  # left to the default: a catalog without text switches to id_sources()
        if not self.sources:
            raise ValueError("Hybrid needs at least one source")
        if per_source < 1:
            raise ValueError(f"per_source ({per_source}) must be positive")
        self.per_source = per_source
        self.valid_fraction = valid_fraction
        self.max_valid_per_locale = max_valid_per_locale
        self.seed = seed
        self.refit = refit
        self.params = ranker or RankerParams()
        self.text = text
        self.fitted = set(fitted) | {name for name, src in self.sources.items() if isinstance(src, ModelSource)}
        self.model_holdout = model_holdout
        if folds < 1 or folds * valid_fraction > 1.0 + 1e-9:
            raise ValueError(f"folds ({folds}) must be >= 1 with folds * valid_fraction ({valid_fraction}) <= 1")
        self.folds = folds
        self.per_locale = per_locale
        unknown = self.fitted - set(self.sources)
        if unknown:
            raise ValueError(f"fitted names {sorted(unknown)} are not sources ({sorted(self.sources)})")

    # --- fitting ----------------------------------------------------------------------------------
    def fit(self, catalog: Catalog, train: Sessions) -> "Hybrid":
        """Train the ranker on a held-out split of ``train``, then (``refit``) fit the sources on all of it.
        Only the catalog and the training sessions are seen: no test file, no ground truth.

        With the default sources and a catalog without text (real Amazon-M2 sessions without product text),
        the hybrid uses ``id_sources()`` and ``ID_ONLY_FOLDS`` held-out folds, the set and folds chosen on a
        validation split of the real ES/FR/IT sessions (bench/README.md, ``bench_real_m2.py``)."""
        if self.default_sources and not catalog_has_text(catalog):
            self.sources = id_sources()
            self.folds = max(self.folds, ID_ONLY_FOLDS)
            logger.info("hybrid: no product text; id sources %s with %d folds", sorted(self.sources), self.folds)
        self._fit_ranker(self.training_data(catalog, train))
        if self.refit:
            self.fit_sources(catalog, train)
        return self

    def training_data(self, catalog: Catalog, train: Sessions) -> RankerData:
        """The ranker's examples from held-out training sessions, the sources being fitted on the other
        training sessions (once per fold). Sessions whose next item is not among the candidates are
        dropped (counted)."""
        eligible = self._eligible(train)
        if self.folds > 1 and eligible is not None:
            raise ValueError("folds > 1 cannot be combined with model sources' unseen sessions")
        splits = [held_out_split(train, self.valid_fraction, self.seed, self.max_valid_per_locale, eligible)]
        if self.folds > 1:
            splits = fold_splits(train, self.folds, self.valid_fraction, self.seed, self.max_valid_per_locale)
        frames, labels, groups, sessions, codes = [], [], [], [], []
        held_out_total = 0
        for fit_idx, valid_idx in splits:
            held_out = train.select(valid_idx)
            held_out_total += len(held_out)
            self.fit_sources(catalog, train.select(fit_idx))
            for start in range(0, len(held_out), CHUNK):
                chunk = held_out.select(np.arange(start, min(start + CHUNK, len(held_out))))
                # The chunk's targets are read here only, as labels; features see a copy without them.
                unlabelled = Sessions(chunk.items, chunk.offsets, chunk.locale,
                                      np.full(len(chunk), -1, dtype=chunk.next_item.dtype), chunk.source)
                rows, cand, features = self.features(unlabelled)
                label = cand == chunk.next_item[rows]
                has_positive = np.bincount(rows, weights=label, minlength=len(chunk)) > 0
                keep = has_positive[rows]
                frames.append(features[keep])
                labels.append(label[keep])
                codes.append(cand[keep])
                groups.append(np.bincount(rows[keep], minlength=len(chunk))[has_positive])
                sessions.append(valid_idx[start + np.flatnonzero(has_positive)])
        data = RankerData(
            features=pd.concat(frames, ignore_index=True), labels=np.concatenate(labels).astype(np.int32),
            groups=np.concatenate(groups), sessions=np.concatenate(sessions), codes=np.concatenate(codes),
        )
        self.training_summary = {
            "held_out_sessions": held_out_total,
            "folds": len(splits),
            "optimistic_model_sources": len(self.optimistic_sources),
            "sessions_with_target_in_candidates": len(data.groups),
            "sessions_dropped": held_out_total - len(data.groups),
            "candidate_rows": len(data.labels),
        }
        logger.info("hybrid: %d held-out training sessions, %d kept (target among candidates: %.1f%%), %d rows",
                    held_out_total, len(data.groups), 100 * len(data.groups) / max(held_out_total, 1),
                    len(data.labels))
        return data

    def _eligible(self, train: Sessions) -> np.ndarray | None:
        """Sessions the ranker may learn from: those no model source trained on (None: all of them)."""
        eligible = None
        self.optimistic_sources = []
        for name, source in self.sources.items():
            mask = source.unseen_mask(train) if isinstance(source, ModelSource) else None
            if isinstance(source, ModelSource) and (mask is None or not self.model_holdout):
                self.optimistic_sources.append(name)
                logger.warning("hybrid: model source %s %s; the ranker learns its features on sessions it "
                               "trained on, so it will over-trust it", name,
                               "has no known unseen sessions" if mask is None else "is used without model_holdout")
            elif mask is not None:
                eligible = mask if eligible is None else eligible & mask
                logger.info("hybrid: %s never trained on %d of %d training sessions (%d in its locales); the ranker "
                            "learns from those there", name, mask.sum(), len(mask), (mask & source.serves(train)).sum())
        return eligible

    def fit_sources(self, catalog: Catalog, train: Sessions) -> None:
        """Fit every source on ``train`` and the tables the features read (popularity, brands, prices).
        Without product text (no title anywhere) text sources and text features are skipped."""
        self.catalog = catalog
        self.has_text = catalog_has_text(catalog)
        self.active = {name: src for name, src in self.sources.items()
                       if self.has_text or not isinstance(src, TextKNN)}
        if len(self.active) < len(self.sources):
            logger.warning("hybrid: the catalog has no product text; skipping text source(s) %s",
                           sorted(set(self.sources) - set(self.active)))
        if not self.active:
            raise ValueError("Hybrid has no source that works without product text")
        for name, source in self.active.items():
            if name not in self.fitted:
                logger.info("hybrid: fitting source %s on %d sessions", name, len(train))
                source.fit(catalog, train)
        self._text = None
        if self.has_text:
            text = self.text or self.sources.get("textknn")
            if not isinstance(text, TextKNN):
                text = TextKNN(backfill=False)
            if text is not self.sources.get("textknn"):
                text.fit(catalog, train)
            self._text = text
        counts = occurrence_counts(train, catalog.num_ids)
        sessions_per_locale = np.bincount(train.locale, minlength=len(LOCALES)).clip(min=1)
        self._popularity = (1000.0 * counts / sessions_per_locale[:, None]).astype(np.float32)  # per 1k sessions
        self._popularity_all = (1000.0 * counts.sum(axis=0) / len(train)).astype(np.float32) if len(train) else \
            np.zeros(catalog.num_ids, np.float32)
        as_next = np.bincount(train.locale.astype(np.int64) * catalog.num_ids + train.next_item,
                              minlength=len(LOCALES) * catalog.num_ids).reshape(len(LOCALES), catalog.num_ids)
        self._next_popularity = (1000.0 * as_next / sessions_per_locale[:, None]).astype(np.float32)
        self._popular = Popularity().fit(catalog, train)
        table = catalog.table
        brand = table["brand"].fillna("").str.strip().str.lower()
        self._brand = np.where(brand == "", -1, pd.factorize(brand)[0]).astype(np.int64)
        self._price = pd.to_numeric(table["price"], errors="coerce").to_numpy(np.float64)

    def _fit_ranker(self, data: RankerData) -> None:
        """One locale-agnostic ranker (``locale`` a categorical feature); with ``per_locale`` also one per
        locale that has training sessions, the agnostic one serving the others."""
        if not len(data.groups):
            raise ValueError("no held-out training session has its next item among the candidates; "
                             "cannot train the ranker (more training sessions or a larger per_source needed)")
        self.feature_names = list(data.features.columns)
        self.rankers = {None: self._train_ranker(data.features, data.labels, data.groups)}
        self.training_summary["ranker_rounds"] = self.rankers[None].best_iteration_ or self.params.n_estimators
        if self.per_locale:
            starts = np.concatenate([[0], np.cumsum(data.groups)[:-1]])
            group_locale = data.features["locale"].to_numpy()[starts].astype(np.int64)
            row_locale = np.repeat(group_locale, data.groups)
            for loc in np.unique(group_locale):
                keep = row_locale == loc
                self.rankers[int(loc)] = self._train_ranker(
                    data.features[keep].reset_index(drop=True), data.labels[keep], data.groups[group_locale == loc])
        logger.info("hybrid: %d ranker(s), %d boosting rounds (agnostic); gain importance: %s", len(self.rankers),
                    self.training_summary["ranker_rounds"],
                    ", ".join(f"{k} {v:.0f}" for k, v in self.feature_importance().head(10).items()))

    def _train_ranker(self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray):
        """A LightGBM LambdaRank model early-stopped on a seeded share of the groups."""
        import lightgbm as lgb

        p = self.params
        rng = np.random.default_rng(self.seed)
        session = np.repeat(np.arange(len(groups)), groups)
        is_eval = np.zeros(len(groups), dtype=bool)
        n_eval = int(round(p.eval_fraction * len(groups)))
        if 0 < n_eval < len(groups):
            is_eval[rng.permutation(len(groups))[:n_eval]] = True
        row_eval = is_eval[session]
        # Training rows: every positive, a seeded share of the negatives; early stopping sees every row.
        row_train = ~row_eval & ((labels > 0) | (rng.random(len(labels)) < p.negative_fraction))
        ranker = lgb.LGBMRanker(
            objective="lambdarank", n_estimators=p.n_estimators, learning_rate=p.learning_rate,
            num_leaves=p.num_leaves, min_child_samples=p.min_child_samples, subsample=p.subsample,
            subsample_freq=1, colsample_bytree=p.colsample_bytree, random_state=self.seed, n_jobs=p.n_jobs,
            deterministic=True, force_row_wise=True, lambdarank_truncation_level=p.lambdarank_truncation_level,
            verbose=-1,
        )
        fit_kwargs: dict = {"categorical_feature": ["locale"]}
        if is_eval.any():
            eval_X, eval_y = features[row_eval], labels[row_eval]
            if "eval_X" in inspect.signature(lgb.LGBMRanker.fit).parameters:  # LightGBM >= 4.7
                fit_kwargs.update(eval_X=(eval_X,), eval_y=(eval_y,))
            else:
                fit_kwargs.update(eval_set=[(eval_X, eval_y)])
            fit_kwargs.update(
                eval_group=[groups[is_eval]], eval_at=[100], eval_metric="map",
                callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
            )
        train_groups = np.bincount(session[row_train], minlength=len(groups))[~is_eval]
        ranker.fit(features[row_train], labels[row_train], group=train_groups, **fit_kwargs)
        self.training_summary["ranker_training_rows"] = int(row_train.sum())
        return ranker

    @property
    def ranker(self):
        """The locale-agnostic ranker."""
        return self.rankers[None]

    def feature_importance(self) -> pd.Series:
        """Total split gain of each feature over the trained ranker(s), largest first."""
        total = None
        for ranker in self.rankers.values():
            gain = pd.Series(ranker.booster_.feature_importance(importance_type="gain"),
                             index=ranker.booster_.feature_name())
            total = gain if total is None else total.add(gain, fill_value=0.0)
        return total.sort_values(ascending=False)

    # --- candidates and features --------------------------------------------------------------------
    def features(self, sessions: Sessions) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Candidates of every source for a chunk of sessions: flat (row, code) sorted by row, and their
        features. Reads the sessions' items and locales only, never their next items."""
        proposals = {name: source_candidates(src, sessions, self.per_source) for name, src in self.active.items()}
        num = self.catalog.num_ids
        keys = np.sort(np.concatenate([r * num + c for r, c, _, _ in proposals.values()]))
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys  # union, by row
        rows, codes = keys // num, keys % num
        locale = sessions.locale.astype(np.int64)[rows]
        columns: dict[str, np.ndarray] = {}
        n_sources = np.zeros(len(keys), dtype=np.float32)
        best_rank = np.full(len(keys), self.per_source, dtype=np.float32)
        for name, (r, c, rank, score) in proposals.items():
            at = np.searchsorted(keys, r * num + c)
            # Missing: rank one past the last, score NaN (LightGBM's own missing value).
            columns[f"{name}_rank"] = np.full(len(keys), self.per_source, dtype=np.float32)
            columns[f"{name}_rank"][at] = rank
            columns[f"{name}_score"] = np.full(len(keys), np.nan, dtype=np.float32)
            columns[f"{name}_score"][at] = score
            n_sources[at] += 1
            best_rank[at] = np.minimum(best_rank[at], rank)
        columns["n_sources"] = n_sources
        columns["best_rank"] = best_rank
        popularity = self._popularity[locale, codes]
        columns["popularity"] = popularity
        columns["log_popularity"] = np.log(popularity + 1e-2)
        columns["popularity_all_locales"] = self._popularity_all[codes]
        columns["next_popularity"] = self._next_popularity[locale, codes]
        columns["query_popularity"] = self._query_popularity(sessions, locale, codes)
        last = sessions.items[sessions.offsets[1:] - 1].astype(np.int64)[rows]
        columns["last_popularity"] = self._popularity[locale, last]
        if self.has_text:
            cand_row, last_row = self.catalog.rows(codes, locale), self.catalog.rows(last, locale)
            brand_c = np.where(cand_row >= 0, self._brand[cand_row], -1)
            brand_l = np.where(last_row >= 0, self._brand[last_row], -2)
            columns["same_brand"] = (brand_c == brand_l).astype(np.float32)
            price_c = np.where(cand_row >= 0, self._price[cand_row], np.nan)
            price_l = np.where(last_row >= 0, self._price[last_row], np.nan)
            with np.errstate(divide="ignore", invalid="ignore"):
                columns["price_ratio"] = np.where(price_l > 0, price_c / price_l, np.nan).astype(np.float32)
                columns["price_vs_session"] = (price_c / self._session_price(sessions)[rows]).astype(np.float32)
            columns.update(self._related_features(sessions, rows, codes, locale))
        for name, source in self.active.items():
            if isinstance(source, CoVisitation):
                columns.update(self._covisitation_features(source, sessions, rows, codes, locale))
        columns.update(self._session_features(sessions, rows))
        frame = pd.DataFrame(columns)
        frame["locale"] = pd.Categorical(locale, categories=range(len(LOCALES)))
        return rows, codes, frame

    def _query_popularity(self, sessions: Sessions, locale: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Occurrences of each candidate among the prev_items of the sessions being ranked, per 1000 of them
        in its locale: what is popular right now (inputs only)."""
        owner_locale = sessions.locale.astype(np.int64)[sessions.session_index]
        keys = np.sort(owner_locale * self.catalog.num_ids + sessions.items)
        wanted = locale * self.catalog.num_ids + codes
        count = np.searchsorted(keys, wanted, side="right") - np.searchsorted(keys, wanted, side="left")
        per_locale = np.bincount(sessions.locale, minlength=len(LOCALES)).clip(min=1)
        return (1000.0 * count / per_locale[locale]).astype(np.float32)

    def _session_price(self, sessions: Sessions) -> np.ndarray:
        """(n,) mean price of each session's items that have one in its locale (NaN when none)."""
        owner = sessions.session_index
        rows = self.catalog.rows(sessions.items, sessions.locale[owner])
        price = np.where(rows >= 0, self._price[np.maximum(rows, 0)], np.nan)
        known = np.isfinite(price) & (price > 0)
        total = np.bincount(owner[known], weights=price[known], minlength=len(sessions))
        count = np.bincount(owner[known], minlength=len(sessions))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(count > 0, total / count, np.nan)

    @staticmethod
    def _session_features(sessions: Sessions, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Session length, distinct items, repeats, and whether the last item repeats the one before it."""
        owner = sessions.session_index
        key = np.unique(owner * (int(sessions.items.max(initial=0)) + 1) + sessions.items)
        distinct = np.bincount(key // (int(sessions.items.max(initial=0)) + 1), minlength=len(sessions))
        lengths = sessions.lengths
        last = sessions.offsets[1:] - 1
        before = np.maximum(last - 1, 0)
        repeat_last = (lengths > 1) & (sessions.items[last] == sessions.items[before])
        return {
            "session_length": lengths[rows].astype(np.float32),
            "session_distinct": distinct[rows].astype(np.float32),
            "session_repeats": (lengths - distinct)[rows].astype(np.float32),
            "session_repeat_last": repeat_last[rows].astype(np.float32),
        }

    def _recent(self, sessions: Sessions) -> np.ndarray:
        """(sessions, RELATED_ITEMS) codes of the latest items, column s = s steps back; -1 where shorter."""
        session, code, steps_back = last_items(sessions, RELATED_ITEMS)
        recent = np.full((len(sessions), RELATED_ITEMS), -1, dtype=np.int64)
        recent[session, steps_back] = code
        return recent

    def _related_features(self, sessions, rows, codes, locale) -> dict[str, np.ndarray]:
        """Title similarity to the last item, the best over the latest items, and how far back that one is."""
        recent = self._recent(sessions)[rows]  # (C, RELATED_ITEMS)
        cand, step = np.nonzero(recent >= 0)
        sims = np.zeros(recent.shape, dtype=np.float32)
        sims[cand, step] = self._text.similarity(locale[cand], recent[cand, step], codes[cand])
        best = sims.argmax(axis=1)
        return {
            "title_sim_last": sims[:, 0],
            "title_sim_max": sims.max(axis=1),
            "related_steps_back": np.where(sims.max(axis=1) > 0, best, np.nan).astype(np.float32),
        }

    def _covisitation_features(self, covis: CoVisitation, sessions, rows, codes, locale) -> dict[str, np.ndarray]:
        """A co-visitation table's weight from the last item, the best over the latest items, and how far
        back that one is (``covis_*`` for the ``covisitation`` source, ``{name}_last``/``_max`` otherwise)."""
        recent = self._recent(sessions)[rows]
        weights = np.zeros(recent.shape, dtype=np.float32)
        table = covis.table(sessions)  # with the ranked sessions' own pairs when the source counts them
        for step in range(RELATED_ITEMS):
            has = np.flatnonzero(recent[:, step] >= 0)
            weights[has, step] = covis.weights(locale[has], recent[has, step], codes[has], table)
        if covis.name != "covisitation":
            return {f"{covis.name}_last": weights[:, 0], f"{covis.name}_max": weights.max(axis=1)}
        best = weights.argmax(axis=1)
        return {
            "covis_last": weights[:, 0],
            "covis_max": weights.max(axis=1),
            "covis_steps_back": np.where(weights.max(axis=1) > 0, best, np.nan).astype(np.float32),
        }

    # --- prediction ---------------------------------------------------------------------------------
    def _candidates(self, sessions: Sessions, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, codes, features = self.features(sessions)
        score = self.ranker.predict(features[self.feature_names], num_threads=self.params.n_jobs)
        for loc, ranker in self.rankers.items():  # per-locale rankers, where trained, replace the agnostic one
            mine = np.flatnonzero(features["locale"].to_numpy() == loc) if loc is not None else []
            if len(mine):
                score[mine] = ranker.predict(features.iloc[mine][self.feature_names], num_threads=self.params.n_jobs)
        pop_rows, pop_codes, pop_rank = self._popular.popular_candidates(sessions, k)
        # Ranked candidates first (priority = -score), popularity behind all of them.
        backfill = float(np.max(-score, initial=0.0)) + 1.0
        return (np.concatenate([rows, pop_rows]), np.concatenate([codes, pop_codes]),
                np.concatenate([-score, backfill + pop_rank]))
