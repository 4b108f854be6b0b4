"""Hybrid ablation: MRR@100 per locale of the hybrid, the hybrid without each source, and each source alone.

On synthetic ``small`` data by default (``--data``; else ``/tmp/main_run/data`` when it exists, else
``--work/synthetic-small``, generated once). Every variant is fitted on all training sessions (the hybrid's
ranker on its own held-out split of them) and scored on the test sessions of tasks 1 and 2 against
``gt_task{1,2}.csv``. ``--model A,B`` adds trained folders (Recformer or ID baseline) as sources, so they
are ablated and scored alone too. Printed: one table per task (variants x locales), whether the hybrid
beats every source alone in every locale (the target), and the full hybrid's feature importance (share
of split gain).

    python bench/bench_hybrid.py [--data DIR] [--model runs/ft/best,runs/narm] [--json out.json]
    python bench/bench_hybrid.py --sources wide --style m2 [--folds 4]   # the wide source set, group ablation

``--sources wide`` uses ``hybrid.id_sources(text=True)`` (co-visitation variants, cross-locale, the ranked
sessions' own prev_items, embeddings, textknn, popularity) and ablates by group (``hybrid.SOURCE_GROUPS``,
plus ``models`` when ``--model`` is given) instead of by source. ``--style`` generates that synthetic
style (``synth.STYLES``) under ``--work`` when ``--data`` is not given. Figures are on each task's test
split (the hybrid chooses nothing on it: its ranker early-stops on held-out training sessions).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd

logger = logging.getLogger("bench_hybrid")

DEFAULT_DATA = Path("/tmp/main_run/data")


def data_folder(args: argparse.Namespace) -> Path:
    """The folder to benchmark on: ``--data``, the main job's data, or generated small synthetic data."""
    if args.data:
        return Path(args.data)
    if args.style is None and (DEFAULT_DATA / "sessions_train.csv").exists():
        return DEFAULT_DATA
    folder = Path(args.work) / f"synthetic-small-{args.style or 'default'}"
    if not (folder / "sessions_train.csv").exists():
        from recformer_m2.synth import generate

        generate(folder, scale="small", seed=0, **({"style": args.style} if args.style else {}))
    return folder


def run(data_dir: Path, model: str | None, tasks: tuple[int, ...], cache: str | None, wide: bool = False,
        folds: int = 1, ablation: bool = True) -> dict:
    """Fit every variant once on the training sessions and score it on each task's test sessions."""
    from recformer_m2.constants import LOCALES, TASK_LOCALES
    from recformer_m2.data import M2Data
    from recformer_m2.hybrid import SOURCE_GROUPS, Hybrid, ModelSource, default_sources, id_sources
    from recformer_m2.methods import model_sources
    from recformer_m2.metrics import evaluate_rankings

    data = M2Data(data_dir, cache_dir=cache)
    models = model_sources(model, data)
    heuristics = (lambda: id_sources(text=True)) if wide else default_sources
    names = [*heuristics(), *models]
    groups = {**SOURCE_GROUPS, **({"models": tuple(models)} if models else {})} if wide else {n: (n,) for n in names}

    def sources(without: str | None = None) -> dict:
        # Heuristic sources are fresh objects for every variant; model sources are shared (never fitted).
        fresh = {**heuristics(), **models}
        dropped = set(groups.get(without, ())) | ({n for n in fresh if n.startswith("covis-queries")}
                                                  if wide and without == "queries" else set())
        return {name: source for name, source in fresh.items() if name not in dropped}

    variants = {"hybrid": lambda: Hybrid(sources=sources(), folds=folds)}
    if ablation:
        variants.update({f"without {group}": (lambda g=group: Hybrid(sources=sources(without=g), folds=folds))
                         for group in groups})
    variants.update({f"{name} alone": (lambda n=name: sources()[n]) for name in names})
    scores: dict[int, dict[str, pd.Series]] = {task: {} for task in tasks}
    seconds, importance, summary = {}, None, None
    for label, build in variants.items():
        start = time.perf_counter()
        method = build()
        if not isinstance(method, ModelSource):
            method.fit(data.catalog, data.train)
        for task in tasks:
            sessions = data.test(task)
            ranked = method.recommend(sessions, k=100, progress=False)
            targets = data.catalog.codes(data.truth(task)["next_item"].to_numpy())
            targets[targets < 0] = -2  # an unknown target is never matched
            table = evaluate_rankings(ranked, targets, [LOCALES[x] for x in sessions.locale])
            scores[task][label] = table["MRR@100"].reindex([*TASK_LOCALES[task], "overall"])
        seconds[label] = time.perf_counter() - start
        logger.info("%s: %s (%.0f s)", label, ", ".join(
            f"task {t} {scores[t][label]['overall']:.4f}" for t in tasks), seconds[label])
        if label == "hybrid":
            gain = method.feature_importance()
            importance, summary = gain / gain.sum(), dict(method.training_summary)
    return {"data": str(data_dir), "sources": names, "seconds": seconds,
            "mrr": {task: pd.DataFrame(rows).T for task, rows in scores.items()},
            "importance": importance, "training_summary": summary}


def report(result: dict) -> list[str]:
    """Tables, the beats-every-source check and the feature importance, as printed lines."""
    lines = [f"data: {result['data']}; sources: {', '.join(result['sources'])}"]
    failures = []
    for task, table in result["mrr"].items():
        lines += ["", f"task {task}, MRR@100", table.to_string(float_format=lambda v: f"{v:.4f}")]
        alone = table.loc[[f"{name} alone" for name in result["sources"]]]
        margin = table.loc["hybrid"] - alone.max()
        for locale, value in margin.items():
            if value <= 0:
                failures.append(f"task {task} {locale}: hybrid {table.loc['hybrid', locale]:.4f} <= "
                                f"{alone[locale].idxmax()} {alone[locale].max():.4f}")
        lines.append("hybrid minus best source alone: " + ", ".join(f"{k} {v:+.4f}" for k, v in margin.items()))
        best = alone["overall"].idxmax()
        lines.append(f"hybrid / best source alone overall ({best}): "
                     f"{table.loc['hybrid', 'overall'] / max(alone['overall'].max(), 1e-12):.3f}x (target >= 1.05x)")
    lines += ["", "hybrid beats every source alone in every locale: " + ("yes" if not failures else "NO")]
    lines += [f"  {failure}" for failure in failures]
    lines += ["", f"hybrid training: {result['training_summary']}", "feature importance (share of gain):"]
    lines += [f"  {name:<28}{share:.3f}" for name, share in result["importance"].head(15).items()]
    lines += ["", "seconds per variant (fit + both tasks): " + ", ".join(
        f"{k} {v:.0f}" for k, v in result["seconds"].items())]
    return lines


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data folder with gt_task1.csv and gt_task2.csv")
    parser.add_argument("--work", default="/tmp/hybrid-bench", help="where small data is generated if needed")
    parser.add_argument("--model", default=None, help="trained folders joined by commas, added as sources")
    parser.add_argument("--tasks", default="1,2")
    parser.add_argument("--sources", choices=("default", "wide"), default="default",
                        help="default: covisitation, textknn, popularity; wide: hybrid.id_sources(text=True)")
    parser.add_argument("--folds", type=int, default=1, help="hybrid: disjoint held-out folds for the ranker")
    parser.add_argument("--no-ablation", action="store_true", help="skip the hybrid-without-X variants")
    parser.add_argument("--style", default=None, help="synthetic style to generate when --data is not given")
    parser.add_argument("--cache", default=None, help="parse cache folder")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    result = run(data_folder(args), args.model, tuple(int(t) for t in args.tasks.split(",")), args.cache,
                 wide=args.sources == "wide", folds=args.folds, ablation=not args.no_ablation)
    print("\n".join(report(result)))  # the benchmark's result, on stdout
    if args.json:
        serialisable = {**result, "mrr": {t: table.to_dict() for t, table in result["mrr"].items()},
                        "importance": result["importance"].to_dict()}
        Path(args.json).write_text(json.dumps(serialisable, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
