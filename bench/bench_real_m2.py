"""Id-based methods on real Amazon-M2 sessions: MRR@100 and Recall@100 per locale, with paired-bootstrap
intervals against co-visitation.

The real sessions (``--sessions``, e.g. ``../shared/real_m2/task2_sessions.parquet``: ES/FR/IT,
``prev_items`` + ``next_item``, product ids only) are split per locale by a seeded draw into a train part
and a test part (``--test-fraction``). Each train session is a KDD-format training session (prev_items,
next_item); the test part's prev_items are the queries and its next_items the labels, which only the
scoring here reads. There is no product text: the catalog is every (id, locale) seen in the train
sessions or in the test prev_items (never a test label), with empty attributes, so text sources are
skipped. The hybrid's ranker learns from a validation split of the train part (its own ``fit``).

``--evaluate-on validation`` scores on a seeded validation share of the train part instead, the
methods being trained on the rest: every default of the id sources and of the hybrid is chosen there,
never on the test part. Figures printed are labelled with the split they come from.

    python bench/bench_real_m2.py --sessions ../shared/real_m2/task2_sessions.parquet [--seed 0]
        [--test-fraction 0.2] [--methods popularity,covisitation,hybrid] [--evaluate-on validation]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("bench_real_m2")


def split_per_locale(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held out): per locale, a seeded ``fraction`` of the rows (rounded) is held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction ({fraction}) must be in (0, 1)")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(frame), dtype=bool)
    for locale in sorted(frame["locale"].unique()):
        rows = np.flatnonzero(frame["locale"].to_numpy() == locale)
        held[rng.permutation(rows)[: int(round(fraction * len(rows)))]] = True
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def id_catalog(train: pd.DataFrame, queries: pd.DataFrame):
    """A text-less Catalog of every (id, locale) in the train sessions or the queries' prev_items (never a
    query's next_item: a label must not shape what can be recommended)."""
    from recformer_m2.constants import PRODUCT_COLUMNS
    from recformer_m2.data.m2 import Catalog

    pairs = pd.concat([
        train[["prev_items", "locale"]].explode("prev_items").rename(columns={"prev_items": "id"}),
        train[["next_item", "locale"]].rename(columns={"next_item": "id"}),
        queries[["prev_items", "locale"]].explode("prev_items").rename(columns={"prev_items": "id"}),
    ]).dropna().drop_duplicates().reset_index(drop=True)
    table = pd.DataFrame({c: "" for c in PRODUCT_COLUMNS}, index=pairs.index)
    table["id"], table["locale"] = pairs["id"].astype(str), pairs["locale"].astype(str)
    table["price"] = np.nan
    return Catalog(table, source="real-sessions")


def to_sessions(frame: pd.DataFrame, catalog, with_target: bool):
    """Sessions of a frame; ``with_target=False`` leaves next_item at -1 (queries carry no label)."""
    from recformer_m2.constants import LOCALES
    from recformer_m2.data.m2 import Sessions

    lengths = frame["prev_items"].map(len).to_numpy()
    flat = np.concatenate([np.asarray(p, dtype=object) for p in frame["prev_items"]])
    items = catalog.codes(flat)
    if (items < 0).any():
        raise ValueError(f"{int((items < 0).sum())} session items missing from the catalog")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    locale = pd.Index(LOCALES).get_indexer(frame["locale"]).astype(np.int8)
    target = catalog.codes(frame["next_item"].to_numpy()) if with_target else np.full(len(frame), -1)
    return Sessions(items.astype(np.int32), offsets, locale, target.astype(np.int32), source="real-sessions")


def build_methods(names: list[str], args: argparse.Namespace) -> dict:
    """Fresh, unfitted methods by name: the id-capable recommenders of the library; ``hybrid-without-G``
    drops source group G (``hybrid.SOURCE_GROUPS``) for the ablation."""
    from recformer_m2.heuristics import RANKING_METHODS
    from recformer_m2.hybrid import Hybrid, id_sources

    def sources(group: str | None = None) -> dict:
        return id_sources(without_group=group, query_evidence=args.query_evidence, embeddings=args.embeddings,
                          query_windows=tuple(int(w) for w in args.query_windows.split(",")))

    methods = {}
    for name in names:
        if name == "hybrid" or name.startswith("hybrid-without-"):
            group = name.removeprefix("hybrid-without-") if name != "hybrid" else None
            methods[name] = Hybrid(sources=sources(group), seed=args.seed, folds=args.folds,
                                   valid_fraction=args.valid_fraction, per_locale=args.per_locale)
        elif name in RANKING_METHODS:
            methods[name] = RANKING_METHODS[name]()
        elif name in sources():
            methods[name] = sources()[name]
        else:
            raise SystemExit(f"unknown method {name!r}")
    return methods


def run(args: argparse.Namespace) -> dict:
    """Split, fit every method on the train part, score it on the chosen evaluation part."""
    from recformer_m2.constants import LOCALES
    from recformer_m2.metrics import evaluate_rankings, paired_bootstrap, rank_metrics

    frame = pd.read_parquet(args.sessions, columns=["prev_items", "next_item", "locale"])
    frame["prev_items"] = frame["prev_items"].map(list)
    train_df, test_df = split_per_locale(frame, args.test_fraction, args.seed)
    split_name = "test"
    if args.evaluate_on == "validation":
        train_df, test_df = split_per_locale(train_df, args.test_fraction, args.seed + 1)
        split_name = "validation"
    catalog = id_catalog(train_df, test_df)
    train, queries = to_sessions(train_df, catalog, True), to_sessions(test_df, catalog, False)
    targets = catalog.codes(test_df["next_item"].to_numpy())
    targets[targets < 0] = -2  # a label never seen as an input cannot be recommended by an id method
    locales = test_df["locale"].tolist()
    logger.info("%d train sessions, %d %s sessions, %d products; %.1f%% of %s labels unseen in inputs",
                len(train), len(queries), split_name, catalog.num_ids, 100 * (targets < 0).mean(), split_name)
    names = args.methods.split(",")
    if "covisitation" not in names:
        names = ["covisitation", *names]
    per_session, tables, seconds, importance = {}, {}, {}, {}
    for name, method in build_methods(names, args).items():
        start = time.perf_counter()
        method.fit(catalog, train)
        ranked = method.recommend(queries, k=100, progress=False)
        seconds[name] = time.perf_counter() - start
        per_session[name] = rank_metrics(ranked, targets, 100)
        tables[name] = evaluate_rankings(ranked, targets, locales)
        if hasattr(method, "feature_importance"):
            gain = method.feature_importance()
            importance[name] = (gain / gain.sum()).head(args.importance)
        logger.info("%s: %s MRR@100 %.4f (%.0f s)", name, split_name, tables[name].loc["overall", "MRR@100"],
                    seconds[name])
    groups = [loc for loc in LOCALES if loc in set(locales)] + ["overall"]
    masks = {loc: np.asarray(locales) == loc for loc in groups[:-1]} | {"overall": np.ones(len(locales), bool)}
    rows = []
    for name in per_session:
        for group in groups:
            row = {"method": name, "locale": group, "n": int(masks[group].sum())}
            for metric, key in (("MRR@100", "mrr"), ("Recall@100", "recall")):
                ours, base = per_session[name][key][masks[group]], per_session["covisitation"][key][masks[group]]
                boot = paired_bootstrap(ours, base, samples=args.bootstrap, seed=args.seed)
                row[metric] = float(ours.mean())
                row[f"{metric} vs covis"] = f"{boot['difference']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}]"
            row["MRR ratio"] = row["MRR@100"] / max(float(per_session["covisitation"]["mrr"][masks[group]].mean()), 1e-12)
            rows.append(row)
    return {"split": split_name, "table": pd.DataFrame(rows), "seconds": seconds, "importance": importance,
            "sessions": {"train": len(train), split_name: len(queries)}}


def report(result: dict) -> list[str]:
    """The printed lines: one table (methods x locales) with intervals against co-visitation."""
    lines = [f"split scored: {result['split']} ({result['sessions']}); intervals: 95% paired bootstrap "
             f"against co-visitation on the same sessions", ""]
    table = result["table"].copy()
    for metric in ("MRR@100", "Recall@100"):
        table[metric] = table[metric].map(lambda v: f"{v:.4f}")
    table["MRR ratio"] = table["MRR ratio"].map(lambda v: f"{v:.3f}x")
    lines.append(table.to_string(index=False))
    for name, share in result["importance"].items():
        lines += ["", f"{name} feature importance (share of split gain, top {len(share)}):"]
        lines += [f"  {feature:<32}{value:.3f}" for feature, value in share.items()]
    lines += ["", "seconds (fit + recommend): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())]
    return lines


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", required=True, help="parquet of real sessions: prev_items, next_item, locale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of each locale's sessions tested on")
    parser.add_argument("--evaluate-on", choices=("test", "validation"), default="test",
                        help="validation: score on a share of the train part (for choosing defaults)")
    parser.add_argument("--methods", default="popularity,covisitation,hybrid")
    parser.add_argument("--folds", type=int, default=5,
                        help="hybrid: disjoint held-out folds the ranker learns from (5 chosen on validation)")
    parser.add_argument("--valid-fraction", type=float, default=0.2, help="hybrid: held-out share per fold")
    parser.add_argument("--query-evidence", type=float, default=1.0, help="weight of the queries' own pairs")
    parser.add_argument("--per-locale", action="store_true", help="hybrid: one ranker per locale")
    parser.add_argument("--query-windows", default="3", help="windows of the covis-queries sources, e.g. 1,3")
    parser.add_argument("--embeddings", choices=("svd", "als"), default="svd", help="item embedding method")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--importance", type=int, default=20, help="features listed per ranker")
    parser.add_argument("--json", default=None, help="also write the table here")
    args = parser.parse_args()
    result = run(args)
    print("\n".join(report(result)))  # the benchmark's result, on stdout
    if args.json:
        payload = {**result, "table": result["table"].to_dict(orient="records"),
                   "importance": {k: v.to_dict() for k, v in result["importance"].items()}}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
