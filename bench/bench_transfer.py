"""Trained next-item models against one another on a task's test file: MRR@100 and Recall@100 per locale and
overall, each model's validation MRR@100 (what chose it), and paired-bootstrap intervals against a named
reference row. This is the transfer question of the library: does a model pretrained on UK/DE/JP (or
finetuned on them first, a "stage 0") beat finetuning on ES/FR/IT alone, on the same sessions?

    python bench/bench_transfer.py --data runs/main/data \
        --model "supervised=recformer-alone:runs/main/finetune-supervised/best" \
        --model "pretrained+ft=recformer-alone:runs/main/finetune-pretrained/best" \
        --versus supervised [--task 2] [--samples 1000]

Each ``--model`` is LABEL=METHOD:FOLDER with METHOD ``recformer`` (as served, the title similarity fused in
with its validation-chosen weight), ``recformer-alone`` (the model alone), or an ID baseline's name. The
validation columns are the ``best`` folder's recorded validation MRR@100 (model alone, and with the title
similarity fused in; finetuning's own split of the training sessions): only they may pick between models. The test columns are for the report.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recformer_m2.constants import LOCALES, TOP_K
from recformer_m2.data import M2Data
from recformer_m2.methods import ranking_method
from recformer_m2.metrics import evaluate_rankings, paired_bootstrap, rank_metrics

logger = logging.getLogger("bench_transfer")


def parse_model(text: str) -> tuple[str, str, Path]:
    """``LABEL=METHOD:FOLDER`` -> (label, method, folder)."""
    label, sep, rest = text.partition("=")
    method, sep2, folder = rest.partition(":")
    if not (sep and sep2 and label and method and folder):
        raise SystemExit(f"--model {text!r}: expected LABEL=METHOD:FOLDER")
    return label, method, Path(folder)


def validation_mrr(folder: Path) -> tuple[float, float]:
    """The validation MRR@100 finetuning recorded with ``best`` (``folder/metrics.json``): the model alone and
    with the title similarity fused in (NaN where not recorded)."""
    path = folder / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    return float(metrics.get("mrr@100", float("nan"))), float(metrics.get("lexical_mrr@100", float("nan")))


def title_overlap(data: M2Data, sessions, targets: np.ndarray) -> np.ndarray:
    """Per session, the Jaccard overlap of the word sets of the newest item's title and the target's title
    (0 where either has no title in the locale). A low overlap marks a move to another kind of product, a
    slice defined from the text alone, as a user with real data could define it."""
    catalog = data.catalog
    newest = catalog.newest_sold(sessions)
    last = np.where(newest >= 0, sessions.items[np.maximum(newest, 0)], 0)
    last_titles = catalog.titles(last, sessions.locale)
    target_titles = catalog.titles(np.maximum(targets, 0), sessions.locale)
    overlap = np.zeros(len(sessions))
    for i, (a, b) in enumerate(zip(last_titles, target_titles)):
        words_a, words_b = set(a.lower().split()), set(b.lower().split())
        if newest[i] >= 0 and targets[i] >= 0 and words_a and words_b:
            overlap[i] = len(words_a & words_b) / len(words_a | words_b)
    return overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Amazon-M2 data folder with the task's ground truth")
    parser.add_argument("--model", action="append", required=True, help="LABEL=METHOD:FOLDER (repeatable)")
    parser.add_argument("--versus", required=True, help="label of the reference row of the paired comparisons")
    parser.add_argument("--task", type=int, default=2, choices=[1, 2])
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--other-kind-overlap", type=float, default=0.0,
                        help="also score the slice of sessions whose target's title shares at most this Jaccard "
                             "word overlap with the newest item's title (a move to another kind of product); "
                             "0 skips it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = [parse_model(text) for text in args.model]
    if args.versus not in [label for label, _, _ in models]:
        raise SystemExit(f"--versus {args.versus!r} is not one of the --model labels")
    data = M2Data(args.data)
    if not data.has_truth(args.task):
        raise SystemExit(f"{args.data}: no ground truth for task {args.task}; this bench scores the test file")
    sessions = data.test(args.task)
    truth = data.truth(args.task)
    targets = data.catalog.codes(truth["next_item"].to_numpy())
    targets[targets < 0] = -2  # an unknown target id can match nothing
    locales = [LOCALES[x] for x in sessions.locale]
    other_kind = None
    if args.other_kind_overlap > 0:
        other_kind = title_overlap(data, sessions, targets) <= args.other_kind_overlap
        logger.info("other-kind slice (title overlap <= %g): %d of %d sessions", args.other_kind_overlap,
                    other_kind.sum(), len(other_kind))
    rows, per_session = [], {}
    for label, method, folder in models:
        ranked = ranking_method(method, data, model=folder).recommend(sessions, k=TOP_K)
        table = evaluate_rankings(ranked, targets, locales, ks=(TOP_K,))
        per_session[label] = rank_metrics(ranked, targets, TOP_K)["mrr"]
        alone, fused = validation_mrr(folder)
        row = {"model": label, "valid MRR@100 alone": alone, "valid MRR@100 fused": fused}
        row.update({f"test MRR@100 {loc}": table.loc[loc, "MRR@100"] for loc in table.index})
        row["test Recall@100 overall"] = table.loc["overall", "Recall@100"]
        if other_kind is not None:
            row["test MRR@100 other kind"] = per_session[label][other_kind].mean()
            row["test MRR@100 same kind"] = per_session[label][~other_kind].mean()
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\npaired bootstrap on the task-{args.task} test sessions ({len(targets)}), MRR@100 against {args.versus}:")
    reference = per_session[args.versus]
    for label, values in per_session.items():
        if label == args.versus:
            continue
        test = paired_bootstrap(values, reference, samples=args.samples, seed=args.seed)
        ratio = values.mean() / reference.mean() if reference.mean() > 0 else float("nan")
        print(f"  {label}: {values.mean():.4f} vs {reference.mean():.4f}  {test['difference']:+.4f} "
              f"[{test['low']:+.4f}, {test['high']:+.4f}]  {ratio:.3f}x  (test)")


if __name__ == "__main__":
    main()
