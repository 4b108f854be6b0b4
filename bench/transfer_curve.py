"""Learning curves of transfer (issue 21): finetune each start (from scratch, a pretrained model, a stage-0 model)
on a share of the ES/FR/IT training sessions, at several shares and seeds, and score every run on validation
(what may choose) and on the task-2 test file (for the report), with paired-bootstrap intervals against the
reference start at the same share and seed.

    python bench/transfer_curve.py --data runs/main-cross/data --out runs/curve \
        --start supervised=none --start pretrained=runs/main-cross/pretrain/final \
        --versus supervised --fractions 0.1,0.25,0.5 --seeds 0,1 --seed-fractions 0.1 \
        --run "supervised@1@0=runs/main-cross/finetune-supervised" ...

Runs go to OUT/NAME-PCTpct-sSEED (``finetune/finetune.sh`` with ``--train-fraction`` and ``--seed``; the
validation split and the share drawn stay those of ``split_seed``, so seeds differ in initialisation and order
only); ``--run NAME@FRACTION@SEED=FOLDER`` adds a finished run instead of training it. A rerun skips runs
that finished. ``--start-args NAME="ARGS"`` gives one start its own finetuning options on top of ``--config``,
e.g. supervised-only in the strict sense (no large-locale sessions) beside the cross-locale starts:

    --start strict=none --start-args "strict=--cross-locale false"

Writes OUT/curve.csv, OUT/curve.md and OUT/curve.png.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from recformer_m2.constants import TOP_K  # noqa: E402
from recformer_m2.data import M2Data  # noqa: E402
from recformer_m2.methods import ranking_method  # noqa: E402
from recformer_m2.metrics import paired_bootstrap, rank_metrics  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_transfer import validation_mrr  # noqa: E402

logger = logging.getLogger("transfer_curve")
REPO = Path(__file__).resolve().parents[1]
FINISHED = "curve_done"
"""Marker written into a run folder once its finetuning exited cleanly."""


def parse_list(text: str, kind=float) -> list:
    return [kind(part) for part in text.split(",") if part.strip()]


def run_folder(out: Path, name: str, fraction: float, seed: int) -> Path:
    return out / f"{name}-{round(100 * fraction):g}pct-s{seed}"


def finetune_command(data: Path, start: str, folder: Path, fraction: float, seed: int, config: Path,
                     extra: list[str]) -> list[str]:
    """The ``finetune.sh`` command of one run; ``extra`` (a start's own options) comes last, so it wins."""
    return ["bash", str(REPO / "finetune" / "finetune.sh"), str(data), start, str(folder), "--config", str(config),
            "--train-fraction", str(fraction), "--seed", str(seed), *extra]


def finetune(command: list[str], folder: Path, threads: int) -> Path:
    """One finetuning run (resumed when a rerun finds it unfinished); its log is ``folder/curve.log``."""
    if (folder / FINISHED).exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("finetuning %s", folder.name)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(folder / "curve.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    (folder / FINISHED).touch()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--start", action="append", required=True,
                        help="NAME=PRETRAINED (a pretraining final or stage-0 best folder, or none); repeatable")
    parser.add_argument("--start-args", action="append", default=[],
                        help='NAME="ARGS": finetuning options of that start only, after --config; repeatable')
    parser.add_argument("--versus", required=True, help="the start every other is compared with")
    parser.add_argument("--fractions", type=parse_list, default=[0.1, 0.25, 0.5])
    parser.add_argument("--seeds", type=lambda t: parse_list(t, int), default=[0])
    parser.add_argument("--seed-fractions", type=parse_list, default=[],
                        help="fractions run with every seed; the others with the first seed only")
    parser.add_argument("--run", action="append", default=[], help="NAME@FRACTION@SEED=FOLDER of a finished run")
    parser.add_argument("--config", type=Path, default=REPO / "finetune" / "configs" / "small.json")
    parser.add_argument("--jobs", type=int, default=2, help="finetuning runs at once (threads are shared out)")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    starts = dict(text.split("=", 1) for text in args.start)
    if args.versus not in starts:
        raise SystemExit(f"--versus {args.versus!r} is not one of the --start names {sorted(starts)}")
    extra = {name: shlex.split(text) for name, _, text in (text.partition("=") for text in args.start_args)}
    if unknown := sorted(set(extra) - set(starts)):
        raise SystemExit(f"--start-args names {unknown}, which are not --start names {sorted(starts)}")

    runs: dict[tuple[str, float, int], Path] = {}
    for text in args.run:
        key, _, folder = text.partition("=")
        name, fraction, seed = key.split("@")
        runs[name, float(fraction), int(seed)] = Path(folder)
    todo = [(name, fraction, seed) for fraction in args.fractions
            for seed in (args.seeds if fraction in args.seed_fractions else args.seeds[:1])
            for name in starts if (name, fraction, seed) not in runs]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        done = pool.map(lambda key: finetune(
            finetune_command(args.data, starts[key[0]], run_folder(args.out, *key), key[1], key[2], args.config,
                             extra.get(key[0], [])), run_folder(args.out, *key), threads), todo)
        runs.update(zip(todo, done))

    data = M2Data(args.data)
    sessions = data.test(2)
    targets = data.catalog.codes(data.truth(2)["next_item"].to_numpy())
    targets[targets < 0] = -2
    scores, rows = {}, []
    for (name, fraction, seed), folder in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        alone, fused = validation_mrr(folder / "best")
        row = {"start": name, "fraction": fraction, "seed": seed, "valid alone": alone, "valid fused": fused}
        for method, column in (("recformer-alone", "test alone"), ("recformer", "test fused")):
            ranked = ranking_method(method, data, model=folder / "best").recommend(sessions, k=TOP_K)
            scores[name, fraction, seed, column] = rank_metrics(ranked, targets, TOP_K)["mrr"]
            row[column] = scores[name, fraction, seed, column].mean()
        rows.append(row)
    for row in rows:
        for column in ("test alone", "test fused"):
            reference = scores.get((args.versus, row["fraction"], row["seed"], column))
            if row["start"] == args.versus or reference is None:
                continue
            test = paired_bootstrap(scores[row["start"], row["fraction"], row["seed"], column], reference,
                                    samples=args.samples, seed=0)
            row[f"{column} vs {args.versus}"] = (f"{test['difference']:+.4f} "
                                                 f"[{test['low']:+.4f}, {test['high']:+.4f}]")
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "curve.csv", index=False)
    (args.out / "curve.md").write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n", encoding="utf-8")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    plot(table, args.out / "curve.png")


def plot(table: pd.DataFrame, path: Path) -> None:
    """MRR@100 against the share of ES/FR/IT sessions, one line per start (the mean over seeds), for the
    validation and test columns side by side."""
    columns = ("valid alone", "valid fused", "test alone", "test fused")
    figure, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.5), sharey=True)
    for axis, column in zip(axes, columns):
        for name, part in table.groupby("start"):
            mean = part.groupby("fraction")[column].mean()
            axis.plot(100 * mean.index, mean.to_numpy(), marker="o", label=name)
        axis.set_xscale("log")
        axis.set_xticks([10, 25, 50, 100], ["10", "25", "50", "100"])
        axis.set_title(f"{column} ({'validation' if column.startswith('valid') else 'test'})")
        axis.set_xlabel("% of ES/FR/IT training sessions")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("MRR@100")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
