"""The main job: every method available so far, on one data folder, scored per locale, with a report.

With no data folder it generates the embedded synthetic Amazon-M2 data first. Methods are fitted on the
training sessions only and scored on the test files' ground truth; a folder without ground truth (the real
KDD Cup data) is scored on a validation split carved from the training sessions, the methods then being
fitted on the rest.

This module is the orchestration (data, trained stages, the methods, stage timing); turning predictions into
tables, plots and ``report.md`` is :mod:`recformer_m2.report`'s job.
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
from .errors import MissingTextError
from .heuristics import RANKING_METHODS, TITLE_METHODS
from .methods import ranking_method, title_method
from .metrics import title_bleu
from .report import (StyleResult, against_simple, cold_mask, plot_curve, plot_metric, score_ranking,
                     titles_against_simple, transfer_curve, with_split, write_report)

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
    stage0_fraction: float = 0.0
    """"Stage 0" of the pretrained path: before finetuning on ES/FR/IT, finetune the pretrained model with the
    finetuning objective (next item against the full item table, popularity prior) on this share of the
    UK/DE/JP training sessions, for ``stage0_epochs`` epochs, then use it as task 1's Recformer; 0 skips it.
    Pretraining's objectives teach which products are variants of one line; stage 0 teaches what follows
    what, from the large locales. On synthetic ``m2`` ``small`` at 0.1 (validation MRR@100 on ES/FR/IT) it
    took pretrained+ft from .250 to .262 alone (.265 to .268 with the title similarity fused in), above
    supervised-only (.257, .265). Off in the main job: it costs about 4 minutes on 2 cores, which the
    30-minute main job cannot spare; ``--stage0-fraction 0.1`` turns it on."""
    stage0_epochs: int = 1
    """Epochs of stage 0 over its share of the UK/DE/JP sessions."""
    baseline_models: list[str] = field(default_factory=lambda: ["gru4rec", "narm", "stamp", "srgnn", "core"])
    """ID baselines of the ``baselines`` stage."""
    baseline_budget_seconds: float = 60.0
    """Wall-clock budget of the whole ``baselines`` stage, shared by its training runs (60 s: on the calibrated
    default their task-2 test MRR@100 was at most .015 with 100 s, and the main job must stay under 30 min)."""
    hybrid_with_models: bool = True
    """Add a ``hybrid (+models)`` row per task: the hybrid with the trained models as extra sources."""
    title_config: str | None = None
    """TitleConfig JSON of the ``titles`` stage; None keeps TitleConfig's defaults."""
    title_minutes: float | None = 1.0
    """Cap on the title generator's training time (overrides the title config's ``max_minutes``)."""
    title_ks: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Previous titles given to the generator, one scored row each (the Amazon-M2 paper's ablation)."""
    styles: list[str] = field(default_factory=list)
    """More worlds: synthetic generator styles (``synth --style``), each generated at ``scale`` and ``seed``
    into ``out/data-STYLE``, with the heuristic stage's methods (``methods``, ``title_methods``) scored on it
    in one more table per task, e.g. ``--styles a,b,c``. Empty in the main job: only the main data."""


@dataclass
class EvalSplit:
    """Sessions to fit on, sessions to score, and their targets (codes, or titles for task 3)."""

    fit: Sessions
    test: Sessions
    targets: np.ndarray | list[str]
    source: str
    split: str = "test"
    """``test`` (a test file and its ground truth) or ``validation`` (carved from the training sessions)."""


def task_split(data: M2Data, task: int, config: PipelineConfig) -> EvalSplit:
    """The test file with its ground truth when known, else a validation split of the training sessions."""
    if data.has_truth(task):
        truth = data.truth(task)
        if task == 3:
            targets: np.ndarray | list[str] = truth["next_item_title"].tolist()
        else:
            targets = data.catalog.codes(truth["next_item"].to_numpy())
            targets[targets < 0] = -2  # an unknown target id can match nothing (-1 pads rankings)
        return EvalSplit(data.train, data.test(task), targets, f"test file, task {task}", "test")
    fit_idx, valid_idx = validation_split(data.train, config.valid_fraction, config.seed, config.max_valid_per_locale)
    valid = data.train.select(valid_idx)
    valid = valid.select(valid.in_locales(TASK_LOCALES[task]))
    if task == 3:
        targets = data.catalog.titles(valid.next_item, valid.locale)
    else:
        targets = valid.next_item
    return EvalSplit(data.train.select(fit_idx), valid, targets, f"validation split of sessions_train, task {task}",
                     "validation")


def _locale_names(sessions: Sessions) -> list[str]:
    return [LOCALES[x] for x in sessions.locale]


class Skips:
    """Methods and stages the main job left out, and why: one note each in the report (and the log)."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.tasks: dict[str, list[int]] = {}

    def add(self, what: str, reason: str, task: int | None = None) -> None:
        if what not in self.reasons:
            logger.warning("skipped %s: %s", what, reason)
        self.reasons.setdefault(what, reason)
        if task is not None:
            self.tasks.setdefault(what, []).append(task)

    def notes(self) -> list[str]:
        out = []
        for what, reason in self.reasons.items():
            tasks = self.tasks.get(what)
            where = f" (task{'s' if len(tasks) > 1 else ''} {', '.join(map(str, tasks))})" if tasks else ""
            out.append(f"{what}{where}: {reason}")
        return out


def run_ranking_task(data: M2Data, task: int, config: PipelineConfig,
                     models: dict[str, tuple[str, Path]] | None = None,
                     skips: Skips | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score every ranking method on one task: rows (method, locale) incl. a cold-item slice, and
    every method against the best simple method (:func:`report.against_simple`, per-session MRR@100). Both
    tables carry a ``split`` column.

    ``models`` adds trained methods: row label -> (method name, model folder). A method that needs product
    text the data lacks (:class:`MissingTextError`) is left out and noted in ``skips``.
    """
    skips = skips if skips is not None else Skips()
    split = task_split(data, task, config)
    logger.info("task %d: %d sessions scored (%s), fitted on %d", task, len(split.test), split.source, len(split.fit))
    cold = cold_mask(split.fit, split.test, np.asarray(split.targets), data.catalog.num_ids, config.cold_threshold)
    locales = _locale_names(split.test)
    tables, per_session = [], {}
    entries = [(name, name, None) for name in config.methods]
    entries += [(label, method, folder) for label, (method, folder) in (models or {}).items()]
    for name, method_name, folder in entries:
        start = time.perf_counter()
        try:
            method = ranking_method(method_name, data, model=folder, train=split.fit)
            ranked = method.recommend(split.test, k=TOP_K)
        except MissingTextError as error:  # a text method on an ID-only folder
            skips.add(name, str(error), task)
            continue
        seconds = time.perf_counter() - start
        table, per_session[name] = score_ranking(ranked, np.asarray(split.targets), locales, cold)
        table.insert(0, "method", name)
        table["seconds"] = seconds
        tables.append(table.reset_index())
        logger.info("task %d %s: MRR@100 %.4f (%.1f s)", task, name, table.loc["overall", "MRR@100"], seconds)
    if not tables:
        raise ValueError(f"no method of {[name for name, _, _ in entries]} could run on {data.folder}: "
                         f"{skips.notes()}")
    versus = against_simple(per_session, config.simple_methods, "MRR@100", samples=config.bootstrap_samples,
                            seed=config.seed)
    return with_split(pd.concat(tables, ignore_index=True), split.split), with_split(versus, split.split)


def run_title_task(data: M2Data, config: PipelineConfig, split: EvalSplit) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Score every title method on task 3 (``split``): BLEU per locale and overall (with a ``split``
    column), and each method's titles."""
    tables, generated = [], {}
    for name in config.title_methods:
        generated[name] = title_method(name, data, train=split.fit).generate(split.test)
        table = title_bleu(generated[name], list(split.targets), _locale_names(split.test))
        table.insert(0, "method", name)
        tables.append(table.reset_index())
    return with_split(pd.concat(tables, ignore_index=True), split.split), generated


def titles_versus(split: EvalSplit, config: PipelineConfig, generated: dict[str, list[str]]) -> pd.DataFrame:
    """Every title method against the strongest simple one on ``split`` (corpus BLEU, paired bootstrap)."""
    versus = titles_against_simple(generated, list(split.targets), _locale_names(split.test), config.simple_methods,
                                   samples=config.bootstrap_samples, seed=config.seed)
    return with_split(versus, split.split)


def run_pipeline(config: PipelineConfig) -> dict[str, pd.DataFrame]:
    """Run the main job and write ``report.md``, ``results_*.csv`` and ``plots/*.png`` under ``config.out``.

    A data folder without product text runs every id-based method; text methods and stages (textknn,
    Recformer, the title methods) are skipped, each with a note in the report."""
    unknown = sorted(set(config.stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")
    clock, skips = StageClock(), Skips()
    with clock("data"):
        folder = Path(config.data) if config.data else ensure_synthetic(out / "data", config.scale, config.seed)
        data = M2Data(folder)
    text = data.has_text
    models: dict[int, dict[str, tuple[str, Path]]] = {1: {}, 2: {}}
    trained = [stage for stage in config.stages if stage in ("recformer", "baselines")]
    if trained and not all(data.has_truth(t) for t in (1, 2)):
        for stage in trained:
            skips.add(f"stage `{stage}`", f"{folder} has no ground truth for tasks 1 and 2 (the trained models "
                      "would need the validation split kept out of their training)")
        trained = []
    if not text:
        for stage in [s for s in config.stages if s in ("recformer", "titles")]:
            skips.add(f"stage `{stage}`", f"{folder} has no product text (products_train missing or every "
                      "attribute empty); it reads product text")
        trained = [stage for stage in trained if stage != "recformer"]
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
    splits: dict[int, tuple[str, str]] = {}
    for task in (1, 2):
        with clock(f"task {task}: fit and score"):
            results[f"task{task}"], results[f"task{task}_vs_simple"] = run_ranking_task(data, task, config,
                                                                                        models[task], skips)
        split = task_split(data, task, config)
        splits[task] = (split.split, split.source)
    examples = None
    if text:
        split3 = task_split(data, 3, config)
        splits[3] = (split3.split, split3.source)
        with clock("task 3: title heuristics"):
            results["task3"], titles = run_title_task(data, config, split3)
        if "titles" in config.stages:
            with clock("task 3: title generator"):
                stage = run_title_stage(data, out, config, split3)
            results["task3"] = pd.concat([results["task3"], with_split(stage.table, split3.split)], ignore_index=True)
            titles.update({f"mt5 (K={k})": generated for k, generated in stage.generated.items()})
            examples = stage.examples
            results["title_speed"] = pd.DataFrame([{"titles_per_second": stage.titles_per_second,
                                                     "train_seconds": stage.train_seconds}])
        results["task3_vs_simple"] = titles_versus(split3, config, titles)
    else:
        skips.add("task 3 (every title method)", f"{folder} has no product titles to copy, edit or score against")
    worlds = []
    for style in config.styles:
        with clock(f"style {style}: heuristics"):
            worlds.append(run_style(style, out, config))
    results["timing"] = clock.table()
    for name, table in results.items():
        table.to_csv(out / f"results_{name}.csv", index=False)
    for world in worlds:
        for name, table in world.tables.items():
            table.to_csv(out / f"results_style-{world.style}_{name}.csv", index=False)
    plot_metric(results["task1"], "MRR@100", out / "plots" / "task1_mrr.png",
                f"Task 1 (UK, DE, JP): MRR@100, {splits[1][0]}")
    plot_metric(results["task2"], "MRR@100", out / "plots" / "task2_mrr.png",
                f"Task 2 (ES, FR, IT): MRR@100, {splits[2][0]}")
    curve = transfer_curve(results["task2"])
    if len(curve):
        plot_curve(curve, out / "plots" / "task2_curve.png", f"Task 2 learning curve, {splits[2][0]}")
    if "task3" in results:
        plot_metric(results["task3"], "BLEU", out / "plots" / "task3_bleu.png",
                    f"Task 3: next-title BLEU, {splits[3][0]}")
    write_report(out, folder, results, splits, examples, notes=skips.notes(), styles=worlds,
                 cold_threshold=config.cold_threshold)
    logger.info("main job done in %.1f min:\n%s", clock.total() / 60, results["timing"].to_string(index=False))
    return results


def run_style(style: str, out: Path, config: PipelineConfig) -> StyleResult:
    """The heuristic stage's methods (``methods``, ``title_methods``) on synthetic data of generator style
    ``style`` (same scale and seed as the main data): one more world to read every method in."""
    folder = ensure_synthetic(out / f"data-{style}", config.scale, config.seed, style=style)
    data = M2Data(folder)
    world = StyleResult(style, folder)
    for task in (1, 2):
        world.tables[f"task{task}"], world.tables[f"task{task}_vs_simple"] = run_ranking_task(data, task, config)
        split = task_split(data, task, config)
        world.splits[task] = (split.split, split.source)
    split3 = task_split(data, 3, config)
    world.tables["task3"], titles = run_title_task(data, config, split3)
    world.tables["task3_vs_simple"] = titles_versus(split3, config, titles)
    world.splits[3] = (split3.split, split3.source)
    return world


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
    """Pretrain on UK/DE/JP (then, with ``stage0_fraction``, finetune that on a share of UK/DE/JP's sessions:
    stage 0), then finetune on ES/FR/IT from it and from scratch; each step resumes or is skipped when its
    output exists. Returns the rows to score per task: the finetuned models as served (with
    the title similarity their ``lexical_weight`` fuses in, chosen on validation) and by the model alone
    (``recformer-alone``).

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
    start = pretrained
    if config.stage0_fraction > 0:
        stage0 = out / "stage0"
        if not (stage0 / "done").exists():
            logger.info("stage 0: finetuning the pretrained model on %g%% of the UK/DE/JP training sessions",
                        100 * config.stage0_fraction)
            # No cross-locale sessions here: in task 1 they would be the ES/FR/IT training sessions, the
            # very ones the ES/FR/IT finetuning then holds out to validate on.
            run_finetuning(folder, pretrained, stage0, replace(
                finetune, task=1, train_fraction=config.stage0_fraction, stage1_epochs=config.stage0_epochs,
                stage2_epochs=0, lexical_grid=(), cross_locale=False))
            (stage0 / "done").touch()
        start = stage0 / "best"
    supervised = out / "finetune-supervised"
    pretrained_ft = out / ("finetune-stage0" if config.stage0_fraction > 0 else "finetune-pretrained")
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
    in_process = [("recformer (pretrained+ft)", start, pretrained_ft)]
    if beside is None:
        in_process.append(("recformer (supervised)", "none", supervised))
    try:
        for label, begin, run in in_process:
            if not (run / "done").exists():
                logger.info("finetuning %s on ES/FR/IT", label)
                run_finetuning(folder, begin, run, finetune)
                (run / "done").touch()
    finally:
        if beside is not None:
            torch.set_num_threads(previous)
            if beside.wait() != 0:
                raise RuntimeError(f"supervised finetuning failed (exit {beside.returncode}); see "
                                   f"{supervised / 'finetune.log'}")
            (supervised / "done").touch()
    task1_label = "recformer (pretrained+stage 0)" if config.stage0_fraction > 0 else "recformer (pretrained)"
    rows = {1: {task1_label: ("recformer", start)},
            2: {"recformer (zero-shot)": ("recformer", pretrained),
                "recformer (supervised, model alone)": ("recformer-alone", supervised / "best"),
                "recformer (supervised)": ("recformer", supervised / "best"),
                "recformer (pretrained+ft, model alone)": ("recformer-alone", pretrained_ft / "best"),
                "recformer (pretrained+ft)": ("recformer", pretrained_ft / "best")}}
    for fraction in config.transfer_fractions:
        share = f"{100 * fraction:g}%"
        for label, begin, run in (("supervised", "none", supervised), ("pretrained+ft", start, pretrained_ft)):
            run = run.with_name(f"{run.name}-{100 * fraction:g}pct")
            if not (run / "done").exists():
                logger.info("finetuning recformer (%s) on %s of the ES/FR/IT training sessions", label, share)
                run_finetuning(folder, begin, run, replace(finetune, train_fraction=fraction))
                (run / "done").touch()
            rows[2][f"recformer ({label}, {share} data)"] = ("recformer", run / "best")
    return rows


def ensure_synthetic(folder: Path, scale: str, seed: int, style: str | None = None) -> Path:
    """Generate synthetic data unless ``folder`` already holds data made with the same scale, seed and
    generator style (None: the generator's default style, recorded by name, so that a folder made before
    the default changed is made again)."""
    import inspect

    from .synth import DEFAULT_STYLE, generate

    if "style" not in inspect.signature(generate).parameters:
        raise ValueError(f"style {style or DEFAULT_STYLE!r} asked for, but this version of "
                         "recformer_m2.synth.generate has no styles")
    style = style or DEFAULT_STYLE
    marker = folder / "synth.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        if (made.get("scale"), made.get("seed"), made.get("style")) == (scale, seed, style):
            logger.info("reusing synthetic data in %s", folder)
            return folder
    summary = generate(folder, scale=scale, seed=seed, style=style)
    marker.write_text(json.dumps({"scale": scale, "seed": seed, "style": style, "summary": summary}, indent=2,
                                 default=str))
    return folder
