"""The ``recformer-m2`` command: one entry point, one subcommand per job.

Settings come from, in this order of precedence: the command line, a ``--config`` JSON file, defaults.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .constants import LOCALES, TOP_K

logger = logging.getLogger("recformer_m2")


def cmd_synth(args: argparse.Namespace) -> None:
    from .synth import generate

    generate(args.out, scale=args.scale, seed=args.seed, style=args.style)


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .tokenizer import train_tokenizer

    catalog = M2Data(args.data).catalog
    texts = (catalog.sentence(row) for row in range(len(catalog)))
    train_tokenizer(texts, args.out, vocab_size=args.vocab_size)
    logger.info("tokenizer written to %s", args.out)


def cmd_predict(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .methods import ranking_method, title_method
    from .submission import write_submission

    data = M2Data(args.data)
    sessions = data.test(args.task)
    locales = [LOCALES[x] for x in sessions.locale]
    try:
        method = (title_method if args.task == 3 else ranking_method)(args.method, data, args.model)
    except ValueError as err:
        raise SystemExit(f"task {args.task}: {err}") from None
    if args.task == 3:
        write_submission(args.out, locales, titles=method.generate(sessions))
    else:
        ranked = method.recommend(sessions, k=args.k)
        ids = data.catalog.ids
        write_submission(args.out, locales, predictions=[list(ids[row[row >= 0]]) for row in ranked])
    logger.info("wrote %d predictions to %s", len(sessions), args.out)


def cmd_train_baseline(args: argparse.Namespace) -> None:
    from id_baselines.api import train_baseline
    from id_baselines.config import BaselineConfig

    from .config import config_overrides

    out = train_baseline(args.model, args.data, args.task, args.mode, args.out, args.config,
                         config_overrides(args, BaselineConfig))
    logger.info("baseline %s written to %s", args.model, out)


def cmd_train_titles(args: argparse.Namespace) -> None:
    from .titles import train_titles

    logger.info("title generator written to %s", train_titles(args.data, args.out, args.config))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .submission import evaluate_submission

    table = evaluate_submission(args.predictions, args.truth)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))  # the command's result, on stdout


def cmd_export_recbole(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .recbole_export import export_recbole

    for path in export_recbole(M2Data(args.data), args.out, name=args.name, task=args.task):
        logger.info("wrote %s", path)


def cmd_pipeline(args: argparse.Namespace) -> None:
    from .config import load_config
    from .pipeline import PipelineConfig, run_pipeline
    from .report import format_table

    overrides = {key: getattr(args, key) for key in ("out", "data", "scale", "seed")}
    if args.methods:
        overrides["methods"] = args.methods.split(",")
    if args.stages is not None:
        overrides["stages"] = [x for x in args.stages.split(",") if x]
    if args.transfer_fractions is not None:
        overrides["transfer_fractions"] = [float(x) for x in args.transfer_fractions.split(",") if x]
    if args.styles is not None:
        overrides["styles"] = [x for x in args.styles.split(",") if x]
    config = load_config(PipelineConfig, args.config, overrides)
    results = run_pipeline(config)
    for name in ("task1", "task2", "task3"):
        metrics = ["BLEU"] if name == "task3" else ["MRR@100", "Recall@100"]
        print(f"\n== {name} ==\n{format_table(results[name], metrics)}")
    print(f"\n== wall-clock seconds per stage ==\n{results['timing'].to_string(index=False)}")
    print(f"\nreport: {Path(config.out) / 'report.md'}")


def build_parser() -> argparse.ArgumentParser:
    from id_baselines.config import BaselineConfig  # a plain dataclass: no torch import

    from .config import add_config_arguments

    parser = argparse.ArgumentParser(prog="recformer-m2", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic Amazon-M2 data folder")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "full"])
    p.add_argument("--seed", type=int, default=0)
    from .synth.config import DEFAULT_STYLE, STYLES

    p.add_argument("--style", default=DEFAULT_STYLE, choices=sorted(STYLES),
                   help="generator style (recformer_m2.synth.STYLES): m2 is calibrated to real sessions, "
                        "classic reproduces the files of the generator before styles existed")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train-tokenizer", help="train the catalog SentencePiece tokenizer")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=16000)
    p.set_defaults(func=cmd_train_tokenizer)

    p = sub.add_parser("predict", help="write a KDD Cup submission for a task's test file")
    p.add_argument("--data", required=True)
    p.add_argument("--task", type=int, required=True, choices=[1, 2, 3])
    p.add_argument("--method", required=True)
    p.add_argument("--model", default=None,
                   help="trained model folder, for methods that need one; with --method hybrid, one or more "
                        "folders joined by commas (Recformer or ID baseline), each added as a candidate source")
    p.add_argument("--out", required=True, help="submission parquet file")
    p.add_argument("--k", type=int, default=TOP_K)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("train-baseline", help="train an ID baseline (GRU4Rec++, NARM, STAMP, SR-GNN, CORE)")
    p.add_argument("--model", required=True, help="gru4rec, narm, stamp, srgnn or core")
    p.add_argument("--data", required=True)
    p.add_argument("--task", type=int, required=True, choices=[1, 2])
    p.add_argument("--mode", default="supervised", choices=["supervised", "finetune"])
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="JSON file of BaselineConfig fields")
    add_config_arguments(p, BaselineConfig)  # --epochs-like overrides: --max-epochs 5 --hidden-size 64 ...
    p.set_defaults(func=cmd_train_baseline)

    p = sub.add_parser("train-titles", help="train the mT5 next-title generator (task 3)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="JSON file of TitleConfig fields")
    p.set_defaults(func=cmd_train_titles)

    p = sub.add_parser("evaluate", help="score a submission against ground truth")
    p.add_argument("--predictions", required=True)
    p.add_argument("--truth", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-recbole", help="write RecBole atomic files of the training/validation/test splits")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="m2")
    p.add_argument("--task", type=int, default=2, choices=[1, 2], help="whose locales to export")
    p.set_defaults(func=cmd_export_recbole)

    p = sub.add_parser("pipeline", help="the main job: every method on one data folder, per-locale report")
    p.add_argument("--config", default=None, help="JSON file of PipelineConfig fields")
    p.add_argument("--out", default=None)
    p.add_argument("--data", default=None, help="data folder (default: generate synthetic data)")
    p.add_argument("--scale", default=None, choices=["tiny", "small", "medium", "full"])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--methods", default=None, help="comma-separated next-item heuristics")
    p.add_argument("--stages", default=None, help="comma-separated trained stages ('' for heuristics only)")
    p.add_argument("--transfer-fractions", default=None,
                   help="comma-separated shares of the ES/FR/IT training sessions (e.g. 0.1,0.25): a learning "
                        "curve of supervised vs pretrained+ft Recformer finetuning, as extra task-2 rows")
    p.add_argument("--styles", default=None,
                   help="comma-separated synthetic generator styles: the heuristics scored on each style's data, "
                        "one more table per task (default: none, only the main data)")
    p.set_defaults(func=cmd_pipeline)

    from .sharded import add_encode_parser  # encode: catalog or test sessions, sharded across launcher ranks
    add_encode_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args.func(args)


if __name__ == "__main__":
    main()
