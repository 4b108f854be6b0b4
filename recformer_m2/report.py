"""The main job's scoring and report: per-locale tables, every method against the strongest simple one
(paired bootstrap), plots and ``report.md``.

Kept apart from the orchestration in :mod:`recformer_m2.pipeline`, which fits and runs the methods: this
module only turns predictions into tables and tables into a report. Every score table carries the split
it comes from (``validation`` or ``test``), in a ``split`` column and in its heading in the report, since a
figure read without it cannot be trusted as a final result nor used to choose anything.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import LOCALES, TOP_K
from .data import Sessions
from .heuristics import occurrence_counts
from .metrics import bleu_statistics, corpus_bleu_of, evaluate_rankings, paired_bootstrap, rank_metrics

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")
"""Where a score table comes from: a validation split carved from the training sessions, or a test file."""

RANKING_METRICS = ["MRR@100", "Recall@100", "NDCG@100"]
"""Columns of the task-1 and task-2 tables in the report."""


def cold_mask(fit: Sessions, scored: Sessions, targets: np.ndarray, num_ids: int, threshold: int) -> np.ndarray:
    """Sessions of ``scored`` whose target was seen fewer than ``threshold`` times in its locale's ``fit``
    sessions (-1 / -2 targets count as never seen)."""
    counts = occurrence_counts(fit, num_ids)
    targets = np.asarray(targets)
    seen = np.where(targets >= 0, counts[scored.locale, np.maximum(targets, 0)], 0)
    return seen < threshold


def score_ranking(ranked: np.ndarray, targets: np.ndarray, locales: Sequence[str],
                  cold: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-locale and overall MRR/Recall/NDCG@100 of one method (plus a ``cold`` row for the sessions
    ``cold`` marks, when any), and its per-session MRR@100 for the paired comparisons."""
    targets = np.asarray(targets)
    table = evaluate_rankings(ranked, targets, locales, ks=(TOP_K,))
    if cold is not None and cold.any():
        sliced = rank_metrics(ranked[cold], targets[cold], TOP_K)
        table.loc["cold"] = {"MRR@100": sliced["mrr"].mean(), "Recall@100": sliced["recall"].mean(),
                             "NDCG@100": sliced["ndcg"].mean(), "n": int(cold.sum())}
    return table, rank_metrics(ranked, targets, TOP_K)["mrr"]


def against_simple(per_session: dict[str, np.ndarray], simple_methods: Sequence[str], metric: str,
                   score: Callable[[np.ndarray], float] = np.mean, samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every method against the best simple method (one of ``simple_methods``) on the same sessions:
    the difference, its 95% paired-bootstrap interval and the share of resamples where the method wins.
    ``per_session``: method -> one row per session (``score`` turns rows into the metric). Empty when no
    simple method ran.

    The bar is the simple method scoring best on these very sessions: on a test split that picks the
    strongest opponent after seeing test, which can only make a learned method look worse, never better."""
    simple = [m for m in per_session if m in simple_methods]
    columns = ["method", "versus", metric, "difference", "low", "high", "share_better"]
    if not simple:
        return pd.DataFrame(columns=columns)
    best = max(simple, key=lambda m: float(score(per_session[m])))
    rows = []
    for name, values in per_session.items():
        if name == best:
            continue
        test = paired_bootstrap(values, per_session[best], score=score, samples=samples, seed=seed)
        rows.append({"method": name, "versus": best, metric: float(score(values)), "difference": test["difference"],
                     "low": test["low"], "high": test["high"], "share_better": test["share_a_better"]})
    return pd.DataFrame(rows, columns=columns)


def titles_against_simple(generated: dict[str, list[str]], targets: Sequence[str], locales: Sequence[str],
                          simple_methods: Sequence[str], samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`against_simple` for task 3: corpus BLEU of resampled sessions (per-sentence BLEU statistics)."""
    stats = {name: bleu_statistics(titles, list(targets), locales) for name, titles in generated.items()}
    return against_simple(stats, simple_methods, "BLEU", score=corpus_bleu_of, samples=samples, seed=seed)


def with_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """``table`` with a ``split`` column saying where its scores come from (``validation`` or ``test``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    table = table.copy()
    table["split"] = split
    return table


def plot_metric(table: pd.DataFrame, metric: str, path: Path, title: str) -> None:
    """Grouped bars: one group per locale (and overall), one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = table.pivot(index="locale", columns="method", values=metric)
    order = [x for x in (*LOCALES, "overall", "cold") if x in pivot.index]
    pivot = pivot.loc[order, [m for m in table["method"].unique()]]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(order), 3.6))
    pivot.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


CURVE_ROW = re.compile(r"^(?P<name>.+) \((?P<start>[^,()]+), (?P<share>[0-9.]+)% data\)$")
"""Task-2 rows of a share of the ES/FR/IT training sessions, e.g. ``recformer (supervised, 10% data)``."""


def transfer_curve(table: pd.DataFrame, metric: str = "MRR@100") -> pd.DataFrame:
    """The learning curve in a task table: overall ``metric`` by share of the small locales' training sessions
    (rows), one column per start (``supervised``, ``pretrained+ft``, ...), and each start's gain over the
    first. The 100% point is the full-data row of the same name and start (``recformer (supervised)``);
    empty when the table has no share rows."""
    overall = table[table["locale"] == "overall"].set_index("method")[metric]
    points = {}
    for method, value in overall.items():
        match = CURVE_ROW.match(method)
        if match:
            points[match["name"], match["start"], float(match["share"])] = value
    for name, start in {(name, start) for name, start, _ in points}:
        full = f"{name} ({start})"
        if full in overall.index:
            points[name, start, 100.0] = overall[full]
    if not points:
        return pd.DataFrame()
    curve = pd.Series(points).unstack([0, 1])
    curve.columns = [start for _, start in curve.columns]
    curve.index.name = "% of sessions"
    starts = list(dict.fromkeys(start for _, start, _ in points))
    curve = curve[sorted(starts, key=lambda s: (s != "supervised", s))]
    for start in curve.columns[1:]:
        curve[f"{start} gain"] = curve[start] - curve[curve.columns[0]]
    return curve


def plot_curve(curve: pd.DataFrame, path: Path, title: str) -> None:
    """Lines of :func:`transfer_curve`: the metric against the share of sessions, one line per start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for start in [c for c in curve.columns if not c.endswith(" gain")]:
        ax.plot(curve.index, curve[start], marker="o", label=start)
    ax.set_xscale("log")
    ax.set_xticks(list(curve.index), [f"{x:g}" for x in curve.index])
    ax.set_xlabel("% of ES/FR/IT training sessions")
    ax.set_ylabel("MRR@100")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(table: pd.DataFrame, metrics: list[str]) -> str:
    """Methods as rows, locales as columns, for one metric at a time (the paper's table shape)."""
    blocks = []
    for metric in metrics:
        pivot = table.pivot(index="method", columns="locale", values=metric)
        columns = [x for x in (*LOCALES, "overall", "cold") if x in pivot.columns]
        pivot = pivot.loc[list(table["method"].unique()), columns]
        blocks.append(f"{metric}\n" + pivot.to_string(float_format=lambda v: f"{v:.4f}"))
    return "\n\n".join(blocks)


def comparison_lines(table: pd.DataFrame | None, split: str) -> list[str]:
    """Report lines for an :func:`against_simple` table (none when it is missing or empty)."""
    if table is None or not len(table):
        return []
    return [f"Against the strongest simple method ({table['versus'].iloc[0]}), same {split} sessions: overall "
            "difference, 95% paired-bootstrap interval over sessions, share of resamples where the method is better.",
            "", "```", table.drop(columns=["versus", "split"], errors="ignore").to_string(
                index=False, float_format=lambda v: f"{v:.4f}"), "```", ""]


@dataclass
class StyleResult:
    """The heuristic methods' tables on the synthetic data of one generator style (one world)."""

    style: str
    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    """``task1``, ``task2``, ``task3`` score tables and their ``*_vs_simple`` comparisons."""
    splits: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Task -> (``validation`` or ``test``, a description of the sessions scored)."""


TASK_TITLES = {1: "Task 1: next product, UK/DE/JP", 2: "Task 2: next product, ES/FR/IT",
               3: "Task 3: next product title, BLEU 0-1"}


def split_heading(split: str, source: str) -> str:
    """The part of a table heading that names its split, e.g. ``(test split: test file, task 1)``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"({split} split: {source})"


def task_lines(results: dict[str, pd.DataFrame], task: int, split: str, source: str, level: str = "##",
               plot: str | None = None) -> list[str]:
    """A task's table, its plot and its comparison with the strongest simple method, under a heading that
    says which split the scores come from."""
    metrics = ["BLEU"] if task == 3 else RANKING_METRICS
    lines = [f"{level} {TASK_TITLES[task]} {split_heading(split, source)}", "", "```",
             format_table(results[f"task{task}"], metrics), "```", ""]
    if plot:
        lines += [f"![task {task}]({plot})", ""]
    return lines + comparison_lines(results.get(f"task{task}_vs_simple"), split)


def write_report(out: Path, folder: Path, results: dict[str, pd.DataFrame], splits: dict[int, tuple[str, str]],
                 examples: pd.DataFrame | None = None, notes: Sequence[str] = (),
                 styles: Sequence[StyleResult] = (), cold_threshold: int = 3) -> None:
    """``out/report.md``: the three task tables (each naming its split), comparisons, plots, example titles,
    skipped methods (``notes``), one section per extra generator style, and wall-clock time per stage.
    ``splits``: task -> (``validation`` or ``test``, a description of the sessions scored)."""
    made = folder / "synth.json"
    if made.exists():
        made_with = json.loads(made.read_text(encoding="utf-8"))
        origin = (f" (synthetic: style `{made_with.get('style')}`, scale `{made_with.get('scale')}`, "
                  f"seed {made_with.get('seed')})")
    else:
        origin = ""
    lines = [
        "# recformer-m2 report",
        "",
        f"Data: `{folder}`{origin}. Methods are fitted on training sessions only and scored on held-out sessions; every "
        "table names its split: `test` (a test file with its ground truth, for the final report only) or "
        "`validation` (sessions carved from the training sessions). `cold` is the slice of sessions whose target "
        f"was seen fewer than {cold_threshold} times in its locale's training sessions.",
        "",
    ]
    if notes:
        lines += ["## Skipped", "", *[f"- {note}" for note in notes], ""]
    for task in (1, 2):
        lines += task_lines(results, task, *splits[task], plot=f"plots/task{task}_mrr.png")
    curve = transfer_curve(results["task2"])
    if len(curve):
        lines += [f"### Task 2 learning curve: overall MRR@100 by share of the ES/FR/IT training sessions "
                  f"{split_heading(*splits[2])}", "", "```", curve.to_string(float_format=lambda v: f"{v:.4f}"),
                  "```", "", "![task 2 learning curve](plots/task2_curve.png)", ""]
    if "task3" in results:
        lines += task_lines(results, 3, *splits[3], plot="plots/task3_bleu.png")
    if "title_speed" in results:
        speed = results["title_speed"].iloc[0]
        lines += [f"Title generator: trained in {speed['train_seconds']:.0f} s, generates "
                  f"{speed['titles_per_second']:.1f} titles/s on this machine.", ""]
    if examples is not None and len(examples):
        lines += ["Example generations:", "", "```", examples.to_string(index=False), "```", ""]
    for world in styles:
        lines += [f"## Generator style `{world.style}`: the heuristics on its data (`{world.folder}`)", ""]
        for task in (1, 2, 3):
            if f"task{task}" in world.tables:
                lines += task_lines(world.tables, task, *world.splits[task], level="###")
    lines += ["## Wall-clock time per stage (seconds)", "", "```", results["timing"].to_string(index=False), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    logger.info("report written to %s", out / "report.md")
