"""The main job: every method available so far, on one data folder, scored per locale, with a report.

With no data folder it generates the embedded synthetic Amazon-M2 data first. Methods are fitted on the
training sessions only and scored on the test files' ground truth; a folder without ground truth (the real
KDD Cup data) is scored on a validation split carved from the training sessions, the methods then being
fitted on the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .config import save_config
from .constants import LOCALES, TASK_LOCALES, TOP_K
from .data import M2Data, Sessions, validation_split
from .heuristics import RANKING_METHODS, TITLE_METHODS, occurrence_counts
from .methods import ranking_method, title_method
from .metrics import bleu_statistics, corpus_bleu_of, evaluate_rankings, paired_bootstrap, rank_metrics, title_bleu

logger = logging.getLogger(__name__)


STAGES = ("recformer", "baselines", "titles")
"""Trained stages of the main job, in the order they run."""


@dataclass
class PipelineConfig:
    """What the main job runs. Override order: command line > ``--config`` JSON file > these defaults."""

    out: str = "runs/main"
    """Folder for the report, tables, plots and (when generated) the synthetic data."""
    data: str | None = None
    """An Amazon-M2 data folder; None generates synthetic data of ``scale`` into ``out/data``."""
    scale: str = "small"
    """Synthetic data size when ``data`` is None: tiny, small, medium or full."""
    seed: int = 0
    """Seed of the synthetic data and of the validation split."""
    methods: list[str] = field(default_factory=lambda: [*RANKING_METHODS, "textknn", "hybrid"])
    """Next-item heuristics (tasks 1 and 2) to compare."""
    title_methods: list[str] = field(default_factory=lambda: [*TITLE_METHODS, "trimmed-title", "grid-title"])
    """Next-title methods (task 3) to compare."""
    valid_fraction: float = 0.1
    """Share of training sessions held out when the data has no ground truth."""
    max_valid_per_locale: int = 20_000
    """Cap on held-out sessions per locale (keeps evaluation of the real data quick)."""
    cold_threshold: int = 3
    """A target seen fewer times than this in its locale's training sessions counts as cold."""
    simple_methods: list[str] = field(default_factory=lambda: ["popularity", "covisitation", "textknn",
                                                               "last-title", "trimmed-title", "grid-title"])
    """The simple methods every other method is compared against: the best of them (overall, per task) is
    the bar a learned model must clear, with a paired bootstrap saying whether it does."""
    bootstrap_samples: int = 1000
    """Resamples of the test sessions in those comparisons."""
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    """Trained stages beside the heuristics: ``recformer`` (pretrain, zero-shot, finetune from the
    pretrained model and from scratch), ``baselines`` (the ID baselines, tasks 1 and 2, both task-2
    modes), ``titles`` (the mT5 title generator with K = 1, 2, 3 previous titles)."""
    pretrain_config: str = "pretrain/configs/small.json"
    """Pretraining config of the ``recformer`` stage (paths relative to the repository root)."""
    finetune_config: str = "finetune/configs/small.json"
    """Finetuning config of the ``recformer`` stage."""
    parallel_finetune: bool = True
    """Finetune from scratch in a second process while the pretrained model finetunes (each with half the CPU
    threads); False runs them one after the other."""
    transfer_fractions: list[float] = field(default_factory=list)
    """A learning curve of the transfer gain: for each share of the ES/FR/IT training sessions, finetune
    from scratch and from the pretrained model on that share alone (``FinetuneConfig.train_fraction``) and
    score both as extra task-2 rows, e.g. ``--transfer-fractions 0.1,0.25``. Off in the main job (about
    2.5 min per share on 2 cores at 0.1)."""
    baseline_models: list[str] = field(default_factory=lambda: ["gru4rec", "narm", "stamp", "srgnn", "core"])
    """ID baselines of the ``baselines`` stage."""
    baseline_budget_seconds: float = 150.0
    """Wall-clock budget of the whole ``baselines`` stage, shared by its training runs."""
    hybrid_with_models: bool = True
    """Add a ``hybrid (+models)`` row per task: the hybrid with the trained models as extra sources."""
    title_config: str | None = None
    """TitleConfig JSON of the ``titles`` stage; None keeps TitleConfig's defaults."""
    title_minutes: float | None = 1.0
    """Cap on the title generator's training time (overrides the title config's ``max_minutes``)."""
    title_ks: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Previous titles given to the generator, one scored row each (the Amazon-M2 paper's ablation)."""


@dataclass
class EvalSplit:
    """Sessions to fit on, sessions to score, and their targets (codes, or titles for task 3)."""

    fit: Sessions
    test: Sessions
    targets: np.ndarray | list[str]
    source: str


def task_split(data: M2Data, task: int, config: PipelineConfig) -> EvalSplit:
    """The test file with its ground truth when known, else a validation split of the training sessions."""
    if data.has_truth(task):
        truth = data.truth(task)
        if task == 3:
            targets: np.ndarray | list[str] = truth["next_item_title"].tolist()
        else:
            targets = data.catalog.codes(truth["next_item"].to_numpy())
            targets[targets < 0] = -2  # an unknown target id can match nothing (-1 pads rankings)
        return EvalSplit(data.train, data.test(task), targets, f"test file, task {task}")
    fit_idx, valid_idx = validation_split(data.train, config.valid_fraction, config.seed, config.max_valid_per_locale)
    valid = data.train.select(valid_idx)
    valid = valid.select(valid.in_locales(TASK_LOCALES[task]))
    if task == 3:
        targets = data.catalog.titles(valid.next_item, valid.locale)
    else:
        targets = valid.next_item
    return EvalSplit(data.train.select(fit_idx), valid, targets, f"validation split of sessions_train, task {task}")


def cold_mask(split: EvalSplit, num_ids: int, threshold: int) -> np.ndarray:
    """Sessions whose target was seen fewer than ``threshold`` times in its locale's training sessions."""
    counts = occurrence_counts(split.fit, num_ids)
    targets = np.asarray(split.targets)
    seen = np.where(targets >= 0, counts[split.test.locale, np.maximum(targets, 0)], 0)
    return seen < threshold


def _locale_names(sessions: Sessions) -> list[str]:
    return [LOCALES[x] for x in sessions.locale]


def run_ranking_task(data: M2Data, task: int, config: PipelineConfig,
                     models: dict[str, tuple[str, Path]] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score every ranking method on one task: rows (method, locale) incl. a cold-item slice, and
    every method against the best simple method (:func:`against_simple`, per-session MRR@100).

    ``models`` adds trained methods: row label -> (method name, model folder).
    """
    split = task_split(data, task, config)
    logger.info("task %d: %d sessions scored (%s), fitted on %d", task, len(split.test), split.source, len(split.fit))
    cold = cold_mask(split, data.catalog.num_ids, config.cold_threshold)
    locales = _locale_names(split.test)
    tables, per_session = [], {}
    entries = [(name, name, None) for name in config.methods]
    entries += [(label, method, folder) for label, (method, folder) in (models or {}).items()]
    for name, method_name, folder in entries:
        start = time.perf_counter()
        method = ranking_method(method_name, data, model=folder, train=split.fit)
        ranked = method.recommend(split.test, k=TOP_K)
        seconds = time.perf_counter() - start
        table = evaluate_rankings(ranked, split.targets, locales, ks=(TOP_K,))
        per_session[name] = rank_metrics(ranked, np.asarray(split.targets), TOP_K)["mrr"]
        if cold.any():
            slice_metrics = rank_metrics(ranked[cold], np.asarray(split.targets)[cold], TOP_K)
            table.loc["cold"] = {
                "MRR@100": slice_metrics["mrr"].mean(), "Recall@100": slice_metrics["recall"].mean(),
                "NDCG@100": slice_metrics["ndcg"].mean(), "n": int(cold.sum()),
            }
        table.insert(0, "method", name)
        table["seconds"] = seconds
        tables.append(table.reset_index())
        logger.info("task %d %s: MRR@100 %.4f (%.1f s)", task, name, table.loc["overall", "MRR@100"], seconds)
    return pd.concat(tables, ignore_index=True), against_simple(per_session, config, "MRR@100")


def against_simple(per_session: dict[str, np.ndarray], config: PipelineConfig, metric: str,
                   score=np.mean) -> pd.DataFrame:
    """Every method against the best simple method (``config.simple_methods``) on the same sessions:
    the difference, its 95% paired-bootstrap interval and the share of resamples where the method wins.
    ``per_session``: method -> one row per session (``score`` turns rows into the metric). Empty when no
    simple method ran."""
    simple = [m for m in per_session if m in config.simple_methods]
    columns = ["method", "versus", metric, "difference", "low", "high", "share_better"]
    if not simple:
        return pd.DataFrame(columns=columns)
    best = max(simple, key=lambda m: float(score(per_session[m])))
    rows = []
    for name, values in per_session.items():
        if name == best:
            continue
        test = paired_bootstrap(values, per_session[best], score=score, samples=config.bootstrap_samples,
                                seed=config.seed)
        rows.append({"method": name, "versus": best, metric: float(score(values)), "difference": test["difference"],
                     "low": test["low"], "high": test["high"], "share_better": test["share_a_better"]})
    return pd.DataFrame(rows, columns=columns)


def run_title_task(data: M2Data, config: PipelineConfig, split: EvalSplit) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Score every title method on task 3 (``split``): BLEU per locale and overall, and each method's titles."""
    tables, generated = [], {}
    for name in config.title_methods:
        generated[name] = title_method(name, data, train=split.fit).generate(split.test)
        table = title_bleu(generated[name], list(split.targets), _locale_names(split.test))
        table.insert(0, "method", name)
        tables.append(table.reset_index())
    return pd.concat(tables, ignore_index=True), generated


def titles_against_simple(split: EvalSplit, config: PipelineConfig, generated: dict[str, list[str]]) -> pd.DataFrame:
    """:func:`against_simple` for task 3: corpus BLEU of resampled sessions (per-sentence BLEU statistics)."""
    locales = _locale_names(split.test)
    stats = {name: bleu_statistics(titles, list(split.targets), locales) for name, titles in generated.items()}
    return against_simple(stats, config, "BLEU", score=corpus_bleu_of)


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


def format_table(table: pd.DataFrame, metrics: list[str]) -> str:
    """Methods as rows, locales as columns, for one metric at a time (the paper's table shape)."""
    blocks = []
    for metric in metrics:
        pivot = table.pivot(index="method", columns="locale", values=metric)
        columns = [x for x in (*LOCALES, "overall", "cold") if x in pivot.columns]
        pivot = pivot.loc[list(table["method"].unique()), columns]
        blocks.append(f"{metric}\n" + pivot.to_string(float_format=lambda v: f"{v:.4f}"))
    return "\n\n".join(blocks)


def run_pipeline(config: PipelineConfig) -> dict[str, pd.DataFrame]:
    """Run the main job and write ``report.md``, ``results_*.csv`` and ``plots/*.png`` under ``config.out``."""
    unknown = sorted(set(config.stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")
    clock = StageClock()
    with clock("data"):
        folder = Path(config.data) if config.data else ensure_synthetic(out / "data", config.scale, config.seed)
        data = M2Data(folder)
    models: dict[int, dict[str, tuple[str, Path]]] = {1: {}, 2: {}}
    trained = [stage for stage in config.stages if stage in ("recformer", "baselines")]
    if trained and not all(data.has_truth(t) for t in (1, 2)):
        logger.warning("%s has no ground truth for tasks 1 and 2: trained stages %s are skipped (they would "
                       "need the validation split kept out of their training)", folder, trained)
        trained = []
    if "recformer" in trained:
        with clock("recformer: pretrain + finetune"):
            for task, entries in train_recformer(folder, out, config).items():
                models[task].update(entries)
    if "baselines" in trained:
        from id_baselines.api import pipeline_baselines

        with clock("ID baselines"):
            for task, entries in pipeline_baselines(folder, out / "baselines", tuple(config.baseline_models),
                                                    config.baseline_budget_seconds).items():
                models[task].update(entries)
    if config.hybrid_with_models:
        for task in (1, 2):
            folders = transfer_models(task, models[task])
            if folders:
                models[task]["hybrid (+models)"] = ("hybrid", folders)
    results: dict[str, pd.DataFrame] = {}
    for task in (1, 2):
        with clock(f"task {task}: fit and score"):
            results[f"task{task}"], results[f"task{task}_vs_simple"] = run_ranking_task(data, task, config,
                                                                                        models[task])
    split3 = task_split(data, 3, config)
    with clock("task 3: title heuristics"):
        results["task3"], titles = run_title_task(data, config, split3)
    examples = None
    if "titles" in config.stages:
        with clock("task 3: title generator"):
            stage = run_title_stage(data, out, config, split3)
        results["task3"] = pd.concat([results["task3"], stage.table], ignore_index=True)
        titles.update({f"mt5 (K={k})": generated for k, generated in stage.generated.items()})
        examples = stage.examples
        results["title_speed"] = pd.DataFrame([{"titles_per_second": stage.titles_per_second,
                                                 "train_seconds": stage.train_seconds}])
    results["task3_vs_simple"] = titles_against_simple(split3, config, titles)
    results["timing"] = clock.table()
    for name, table in results.items():
        table.to_csv(out / f"results_{name}.csv", index=False)
    plot_metric(results["task1"], "MRR@100", out / "plots" / "task1_mrr.png", "Task 1 (UK, DE, JP): MRR@100")
    plot_metric(results["task2"], "MRR@100", out / "plots" / "task2_mrr.png", "Task 2 (ES, FR, IT): MRR@100")
    plot_metric(results["task3"], "BLEU", out / "plots" / "task3_bleu.png", "Task 3: next-title BLEU")
    write_report(out, folder, results, examples)
    logger.info("main job done in %.1f min:\n%s", clock.total() / 60, results["timing"].to_string(index=False))
    return results


def transfer_models(task: int, entries: dict[str, tuple[str, Path]]) -> list[Path]:
    """The trained folders the hybrid fuses for ``task``: the models trained for its locales (task 1: the ID
    baselines; task 2: Recformer and the ID baselines pretrained on UK/DE/JP then finetuned). The pretrained
    Recformer of task 1 is left out: its held-out sessions are not known to the ranker, so its features
    would be scored on sessions it trained on."""
    if task == 1:
        return [folder for method, folder in entries.values() if method != "recformer"]
    return [folder for label, (_, folder) in entries.items() if label.endswith(("(pretrained+ft)", "(pretrain+ft)"))]


class StageClock:
    """Wall-clock seconds of each named stage, for the report (the main job must stay under 30 minutes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        logger.info("stage: %s", name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self) -> pd.DataFrame:
        rows = [{"stage": k, "seconds": round(v, 1)} for k, v in self.seconds.items()]
        return pd.DataFrame([*rows, {"stage": "total", "seconds": round(self.total(), 1)}])


def run_title_stage(data: M2Data, out: Path, config: PipelineConfig, split: EvalSplit):
    """Train the mT5 title generator on the task-3 fit sessions of ``split`` and score it with K = ``title_ks``."""
    from .config import load_config
    from .titles import TitleConfig
    from .titles.ablation import title_stage

    title_config = load_config(TitleConfig, repo_path(config.title_config) if config.title_config else None,
                               {"max_minutes": config.title_minutes} if config.title_minutes is not None else None)
    return title_stage(data, split.fit, split.test, list(split.targets), out / "titles", title_config,
                       ks=tuple(config.title_ks))


def repo_path(relative: str) -> Path:
    """A path of the repository this package runs from (pretrain/, finetune/ configs and scripts)."""
    path = Path(relative)
    if path.is_absolute() or path.exists():
        return path
    candidate = Path(__file__).resolve().parents[1] / relative
    if not candidate.exists():
        raise FileNotFoundError(f"{relative} not found here nor in the repository ({candidate})")
    return candidate


def train_recformer(folder: Path, out: Path, config: PipelineConfig) -> dict[int, dict[str, tuple[str, Path]]]:
    """Pretrain on UK/DE/JP, then finetune on ES/FR/IT from it and from scratch; each step resumes or is
    skipped when its output exists. Returns the rows to score per task.

    The two finetunings run side by side (``parallel_finetune``): the one from scratch in a second process,
    each with half the CPU threads. A second thread speeds these small models up by about 1.5x only, so
    two runs of the same length side by side finish sooner than one after the other. The second process's
    output, progress bars included, goes to ``finetune-supervised/finetune.log``."""
    import subprocess
    import sys

    import torch

    from .config import load_config
    from .finetuning import FinetuneConfig, run_finetuning

    pretrained = out / "pretrain" / "final"
    if not pretrained.exists():
        logger.info("pretraining Recformer (%s) on UK/DE/JP", config.pretrain_config)
        command = [sys.executable, str(repo_path("pretrain/pretrain.py")), "--data", str(folder), "--out",
                   str(out / "pretrain"), "--config", str(repo_path(config.pretrain_config)),
                   "--deepspeed", str(repo_path("pretrain/ds_zero2.json"))]
        subprocess.run(command, check=True)
    finetune = load_config(FinetuneConfig, repo_path(config.finetune_config),
                           {"scratch_config": str(repo_path(config.pretrain_config))})
    supervised, pretrained_ft = out / "finetune-supervised", out / "finetune-pretrained"
    beside = None
    if not (supervised / "done").exists() and config.parallel_finetune and not (pretrained_ft / "done").exists():
        supervised.mkdir(parents=True, exist_ok=True)
        save_config(finetune, supervised / "pipeline_finetune_config.json")
        threads = max(1, (os.cpu_count() or 1) // 2)
        command = [sys.executable, str(repo_path("finetune/finetune.py")), "--data", str(folder), "--pretrained",
                   "none", "--out", str(supervised), "--config", str(supervised / "pipeline_finetune_config.json")]
        logger.info("finetuning recformer (supervised) on ES/FR/IT in a second process (log: %s)",
                    supervised / "finetune.log")
        with open(supervised / "finetune.log", "a") as log:
            beside = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, stdout=log,
                                      stderr=subprocess.STDOUT)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
    in_process = [("recformer (pretrained+ft)", pretrained, pretrained_ft)]
    if beside is None:
        in_process.append(("recformer (supervised)", "none", supervised))
    try:
        for label, start, run in in_process:
            if not (run / "done").exists():
                logger.info("finetuning %s on ES/FR/IT", label)
                run_finetuning(folder, start, run, finetune)
                (run / "done").touch()
    finally:
        if beside is not None:
            torch.set_num_threads(previous)
            if beside.wait() != 0:
                raise RuntimeError(f"supervised finetuning failed (exit {beside.returncode}); see "
                                   f"{supervised / 'finetune.log'}")
            (supervised / "done").touch()
    rows = {1: {"recformer (pretrained)": ("recformer", pretrained)},
            2: {"recformer (zero-shot)": ("recformer", pretrained),
                "recformer (supervised)": ("recformer", supervised / "best"),
                "recformer (pretrained+ft)": ("recformer", pretrained_ft / "best")}}
    for fraction in config.transfer_fractions:
        share = f"{100 * fraction:g}%"
        for label, start, name in (("supervised", "none", "supervised"), ("pretrained+ft", pretrained, "pretrained")):
            run = out / f"finetune-{name}-{100 * fraction:g}pct"
            if not (run / "done").exists():
                logger.info("finetuning recformer (%s) on %s of the ES/FR/IT training sessions", label, share)
                run_finetuning(folder, start, run, replace(finetune, train_fraction=fraction))
                (run / "done").touch()
            rows[2][f"recformer ({label}, {share} data)"] = ("recformer", run / "best")
    return rows


def ensure_synthetic(folder: Path, scale: str, seed: int) -> Path:
    """Generate synthetic data unless ``folder`` already holds data made with the same scale and seed."""
    from .synth import generate

    marker = folder / "synth.json"
    wanted = {"scale": scale, "seed": seed}
    if marker.exists() and {k: v for k, v in json.loads(marker.read_text()).items() if k in wanted} == wanted:
        logger.info("reusing synthetic data in %s", folder)
        return folder
    summary = generate(folder, scale=scale, seed=seed)
    marker.write_text(json.dumps({**wanted, "summary": summary}, indent=2, default=str))
    return folder


def comparison_lines(table: pd.DataFrame | None) -> list[str]:
    """Report lines for an :func:`against_simple` table (none when it is missing or empty)."""
    if table is None or not len(table):
        return []
    return [f"Against the strongest simple method ({table['versus'].iloc[0]}), same sessions: overall difference, "
            "95% paired-bootstrap interval over sessions, share of resamples where the method is better.", "",
            "```", table.drop(columns="versus").to_string(index=False, float_format=lambda v: f"{v:.4f}"), "```", ""]


def write_report(out: Path, folder: Path, results: dict[str, pd.DataFrame],
                 examples: pd.DataFrame | None = None) -> None:
    ranking_metrics = ["MRR@100", "Recall@100", "NDCG@100"]
    lines = [
        "# recformer-m2 report",
        "",
        f"Data: `{folder}`. Methods are fitted on training sessions only and scored on held-out sessions; "
        "`cold` is the slice of sessions whose target was seen fewer than 3 times in its locale's training sessions.",
        "",
    ]
    for task, title in ((1, "Task 1: next product, UK/DE/JP"), (2, "Task 2: next product, ES/FR/IT")):
        lines += [f"## {title}", "", "```", format_table(results[f"task{task}"], ranking_metrics), "```", "",
                  f"![task {task}](plots/task{task}_mrr.png)", ""]
        lines += comparison_lines(results.get(f"task{task}_vs_simple"))
    lines += ["## Task 3: next product title (BLEU, 0-1)", "", "```", format_table(results["task3"], ["BLEU"]), "```",
              "", "![task 3](plots/task3_bleu.png)", ""]
    lines += comparison_lines(results.get("task3_vs_simple"))
    if "title_speed" in results:
        speed = results["title_speed"].iloc[0]
        lines += [f"Title generator: trained in {speed['train_seconds']:.0f} s, generates "
                  f"{speed['titles_per_second']:.1f} titles/s on this machine.", ""]
    if examples is not None and len(examples):
        lines += ["Example generations:", "", "```", examples.to_string(index=False), "```", ""]
    lines += ["## Wall-clock time per stage (seconds)", "", "```", results["timing"].to_string(index=False), "```", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    logger.info("report written to %s", out / "report.md")
