"""Every ID baseline on synthetic Amazon-M2 data, scored per locale against the test ground truth,
next to the popularity and co-visitation heuristics.

Task 1 (UK/DE/JP) is trained supervised; task 2 (ES/FR/IT) both supervised and pretrain (UK/DE/JP) +
finetune. The pretraining stage of ``finetune`` is the task-1 model: same sessions, same settings, so it
is reused rather than trained twice. Nothing is tuned on the test files; early stopping uses a
validation split of the training sessions.

    python -m id_baselines.synthetic_eval --out runs/id_baselines [--scale small] [--models narm,stamp]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from recformer_m2.constants import LOCALES, TASK_LOCALES
from recformer_m2.data import M2Data
from recformer_m2.heuristics import RANKING_METHODS
from recformer_m2.metrics import evaluate_rankings
from recformer_m2.synth import generate

from .api import load_baseline, train_baseline
from .registry import MODELS

logger = logging.getLogger(__name__)

METRICS = ("MRR@100", "Recall@100")


def score(data: M2Data, task: int, ranked) -> pd.DataFrame:
    """Per-locale and overall MRR/Recall@100 of (n, 100) codes against ``data.truth(task)``."""
    targets = data.catalog.codes(data.truth(task)["next_item"].to_numpy())
    targets[targets < 0] = -2  # an unknown target can match nothing (-1 pads rankings)
    locales = [LOCALES[x] for x in data.test(task).locale]
    return evaluate_rankings(ranked, targets, locales)


def run(out: Path, scale: str, seed: int, models: list[str], overrides: dict, score_only: bool = False) -> pd.DataFrame:
    """Train and score everything; returns a long table (method, task, mode, locale, metrics, seconds).
    ``score_only``: score the model folders a previous run left, without training."""
    data_dir = out / f"data-{scale}-{seed}"
    if not (data_dir / "gt_task2.csv").exists():
        generate(data_dir, scale=scale, seed=seed)
    data = M2Data(data_dir)
    rows = []

    def record(method: str, task: int, mode: str, table: pd.DataFrame, seconds: float) -> None:
        for locale, values in table.iterrows():
            rows.append({"method": method, "task": task, "mode": mode, "locale": locale,
                         **{m: values[m] for m in METRICS}, "n": int(values["n"]), "train_s": seconds})

    for name, cls in RANKING_METHODS.items():
        start = time.perf_counter()
        method = cls().fit(data.catalog, data.train)
        seconds = time.perf_counter() - start
        for task in (1, 2):
            record(name, task, "-", score(data, task, method.recommend(data.test(task), progress=False)), seconds)
    for name in models:
        runs = [(1, "supervised"), (2, "supervised"), (2, "finetune")]
        for task, mode in runs:
            folder = out / name / f"task{task}-{mode}"
            if score_only:
                seconds = _earlier_seconds(out, folder, name, task, mode)
            else:
                if mode == "finetune" and not (folder / "pretrain" / "model.pt").exists():
                    shutil.copytree(out / name / "task1-supervised", folder / "pretrain", dirs_exist_ok=True)
                start = time.perf_counter()
                train_baseline(name, data_dir, task, mode, folder, overrides=overrides)
                seconds = time.perf_counter() - start
                info = json.loads((folder / "model.json").read_text())
                (folder / "model.json").write_text(json.dumps({**info, "train_seconds": seconds}, indent=2) + "\n")
            ranked = load_baseline(folder, data.catalog).recommend(data.test(task), progress=False)
            record(name, task, mode, score(data, task, ranked), seconds)
            logger.info("%s task %d %s: %s", name, task, mode, rows[-1])
    table = pd.DataFrame(rows)
    table.to_csv(out / "results.csv", index=False)
    return table


def _earlier_seconds(out: Path, folder: Path, name: str, task: int, mode: str) -> float:
    """Training wall-clock seconds of an earlier run: its model.json, else its results.csv, else NaN."""
    info = json.loads((folder / "model.json").read_text())
    if "train_seconds" in info:
        return float(info["train_seconds"])
    if (out / "results.csv").exists():
        earlier = pd.read_csv(out / "results.csv")
        match = earlier[(earlier.method == name) & (earlier.task == task) & (earlier["mode"] == mode)]
        if len(match):
            return float(match.train_s.iloc[0])
    return float("nan")


def markdown(table: pd.DataFrame) -> str:
    """One table per task: rows = method (mode), columns = locale x metric."""
    parts = []
    for task in (1, 2):
        sub = table[table.task == task].copy()
        sub["method"] = sub["method"] + sub["mode"].map(lambda m: "" if m == "-" else f" ({m})")
        locales = [loc for loc in (*TASK_LOCALES[task], "overall") if loc in set(sub.locale)]
        header = ["method"] + [f"{loc} {m}" for loc in locales for m in ("MRR", "R@100")] + ["train s"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, group in sub.groupby("method", sort=False):
            by_loc = group.set_index("locale")
            cells = [f"{by_loc.loc[loc, 'MRR@100']:.4f} | {by_loc.loc[loc, 'Recall@100']:.4f}" for loc in locales]
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {group.train_s.iloc[0]:.0f} |")
        parts.append(f"Task {task} (n = {int(sub[sub.locale == 'overall'].n.iloc[0])} test sessions)\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--overrides", default="{}", help="JSON object of BaselineConfig fields")
    parser.add_argument("--score-only", action="store_true", help="score the models of an earlier run again")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = run(out, args.scale, args.seed, args.models.split(","), json.loads(args.overrides), args.score_only)
    text = markdown(table)
    (out / "results.md").write_text(text, encoding="utf-8")
    print(text)  # the command's result, on stdout


if __name__ == "__main__":
    main()
