"""The ``recformer-m2`` command: one entry point, one subcommand per job.

Settings come from, in this order of precedence: the command line, a ``--config`` JSON file, defaults.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cache import KINDS as CACHE_KINDS
from .constants import LOCALES, TOP_K
from .errors import DataFormatError, EmptyPredictionError

logger = logging.getLogger("recformer_m2")


def cmd_synth(args: argparse.Namespace) -> None:
    from .synth import generate

    generate(args.out, scale=args.scale, seed=args.seed, style=args.style)


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .tokenizer import train_tokenizer

    catalog = M2Data(args.data).catalog
    catalog.require_text("train-tokenizer")
    texts = (catalog.sentence(row) for row in range(len(catalog)))
    train_tokenizer(texts, args.out, vocab_size=args.vocab_size)
    logger.info("tokenizer written to %s", args.out)


def cmd_predict(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .methods import ranking_method, title_method
    from .submission import write_submission

    if args.k < 1:
        raise ValueError(f"--k must be at least 1 (got {args.k})")
    data = M2Data(args.data)
    sessions = data.test(args.task)
    locales = [LOCALES[x] for x in sessions.locale]
    try:
        method = (title_method if args.task == 3 else ranking_method)(args.method, data, args.model)
    except DataFormatError:
        raise
    except ValueError as err:
        raise ValueError(f"task {args.task}: {err}") from None
    if args.task == 3:
        titles = method.generate(sessions)
        check_predicted(sessions.source, args.method, [len(t.strip()) for t in titles], locales, "title")
        write_submission(args.out, locales, titles=titles)
    else:
        ranked = method.recommend(sessions, k=args.k)
        ids = data.catalog.ids
        predictions = [list(ids[row[row >= 0]]) for row in ranked]
        check_predicted(sessions.source, args.method, [len(p) for p in predictions], locales, "next-item list",
                        want=min(args.k, TOP_K))
        write_submission(args.out, locales, predictions=predictions)
    logger.info("wrote %d predictions to %s", len(sessions), args.out)


def check_predicted(source: str, method: str, sizes: list[int], locales: list[str], what: str,
                    want: int | None = None) -> None:
    """Refuse a submission in which no row holds a prediction (a silently wrong answer); count and report
    rows left empty (every candidate of a tiny locale already in the session, or a locale without training
    sessions) and rows shorter than ``want``."""
    empty = [i for i, n in enumerate(sizes) if n == 0]
    if sizes and len(empty) == len(sizes):
        raise EmptyPredictionError(
            f"{source}: method {method!r} gave no {what} for any of the {len(sizes)} test row(s) (locales "
            f"{sorted(set(locales))}: no usable training sessions or products?); no submission written"
        )
    if empty:
        logger.warning("%s: %d of %d rows got no %s from %r (first: data row %d; locales %s)", source, len(empty),
                       len(sizes), what, method, empty[0] + 1, sorted({locales[i] for i in empty}))
    short = sum(0 < n < want for n in sizes) if want else 0
    if short:
        logger.warning("%s: %d of %d rows have fewer than %d predicted ids (too few candidates in their locale)",
                       source, short, len(sizes), want)


def cmd_train_baseline(args: argparse.Namespace) -> None:
    from id_baselines.api import train_baseline
    from id_baselines.config import BaselineConfig

    from .config import config_overrides

    out = train_baseline(args.model, args.data, args.task, args.mode, args.out, args.config,
                         config_overrides(args, BaselineConfig))
    logger.info("baseline %s written to %s", args.model, out)


def cmd_train_titles(args: argparse.Namespace) -> None:
    from .data import M2Data
    from .titles import train_titles

    M2Data(args.data).require_text("train-titles")
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


def cmd_cache(args: argparse.Namespace) -> None:
    from .cache import CACHE_ENV, cache_usage, clear_cache, default_cache_dir, human_bytes

    root = default_cache_dir()
    if args.action == "clear":
        removed = clear_cache(args.kind or None, root, args.older_than)
        for entry in removed:
            print(f"{entry.kind:16s} removed {entry.entries:6d} entries  {human_bytes(entry.bytes):>10s}")
        return
    print(f"cache root: {root} (${CACHE_ENV} moves it)")
    usage = cache_usage(root)
    for entry in usage:
        print(f"{entry.kind:16s} {entry.entries:6d} entries  {human_bytes(entry.bytes):>10s}  {entry.path}")
    total = sum(entry.bytes for entry in usage)
    print(f"{'total':16s} {sum(entry.entries for entry in usage):6d} entries  {human_bytes(total):>10s}")


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
    if args.stage0_fraction is not None:
        overrides["stage0_fraction"] = args.stage0_fraction
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

    p = sub.add_parser("cache", help="report (info) or empty (clear) the caches of parsed data and embeddings")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--kind", action="append", default=[], choices=sorted(CACHE_KINDS),
                   help="with clear: only this kind (repeatable; default: every kind)")
    p.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                   help="with clear: only entries not used for this many days")
    p.set_defaults(func=cmd_cache)

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
    p.add_argument("--stage0-fraction", type=float, default=None,
                   help="share of the UK/DE/JP training sessions the pretrained model is finetuned on before "
                        "ES/FR/IT (stage 0, e.g. 0.1; default 0: off)")
    p.add_argument("--styles", default=None,
                   help="comma-separated synthetic generator styles: the heuristics scored on each style's data, "
                        "one more table per task (default: none, only the main data)")
    p.set_defaults(func=cmd_pipeline)

    from .sharded import add_encode_parser  # encode: catalog or test sessions, sharded across launcher ranks
    add_encode_parser(sub)
    return parser


USER_ERRORS = (ValueError, OSError)
"""What a user can fix (bad data, a wrong path, a bad setting): one line on stderr, exit 1. DataFormatError
and MissingTextError are ValueErrors; anything else is a bug and keeps its traceback."""


def _accept_verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` after the subcommand too (``recformer-m2 predict ... -v``), not only before it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in action.choices.values():
            try:
                sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                 help="debug logging; tracebacks on errors")
            except argparse.ArgumentError:  # the subcommand uses -v itself
                continue


def one_line(error: BaseException) -> str:
    """An error as one line: its message's lines joined (arrow and numpy messages can span lines)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ValueError, OSError)) and str(error) else f"{type(error).__name__}: {text}"


def main(argv: list[str] | None = None) -> None:
    """Run one subcommand. A user error ends the process with one line on stderr and exit code 1 (the
    traceback only with ``--verbose``); every command, data file and method goes through here."""
    parser = build_parser()
    _accept_verbose_everywhere(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except USER_ERRORS as err:
        if args.verbose:
            raise
        raise SystemExit(f"recformer-m2 {args.command}: error: {one_line(err)}") from None


if __name__ == "__main__":
    main()
