"""Pretrain a Recformer encoder on Amazon-M2 sessions with DeepSpeed (ZeRO-2).

    deepspeed pretrain/pretrain.py --data DIR --out DIR --config pretrain/configs/NAME.json \
        --deepspeed pretrain/ds_zero2.json [--tokenizer DIR] [--init DIR]
    python pretrain/pretrain.py ...same arguments...     # one process, no launcher

Restarting the same command resumes exactly from the newest checkpoint in ``OUT/checkpoints`` (the newest
readable one when it is damaged); with a changed config it stops naming the fields, unless --force-new-config.
Any field of ``PretrainConfig`` can be overridden on the command line (``--max-steps 100``), and so can
the architecture: ``--model FILE`` (a RecformerConfig ``config.json`` or a folder holding one) replaces
the file's ``model``, and ``--hidden-size 64`` etc. change single fields of it.
Order: command line > ``--config`` file > defaults. See pretrain/README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from recformer_m2.config import add_config_arguments, config_overrides, load_config
from recformer_m2.errors import DataFormatError
from recformer_m2.pretraining import PretrainConfig, run_pretraining
from recformer_m2.pretraining.config import add_model_arguments, model_overrides, with_model_fields


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Amazon-M2 data folder")
    parser.add_argument("--out", required=True, help="output folder: checkpoints, metrics.jsonl, final/")
    parser.add_argument("--config", default=None, help="JSON file of PretrainConfig fields")
    parser.add_argument("--deepspeed", required=True, metavar="JSON",
                        help="DeepSpeed config; its \"auto\" values are filled from the pretraining config")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: that of --init, else trained)")
    parser.add_argument("--init", default=None, help="Recformer weights folder to start from")
    parser.add_argument("--stop-after-step", type=int, default=None,
                        help="crash drill: exit with status 1 right after the checkpoint of this step")
    parser.add_argument("--force-new-config", action="store_true",
                        help="resume OUT's checkpoint even though this config differs from the one it was saved under")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # passed by the launcher
    add_config_arguments(parser, PretrainConfig)
    add_model_arguments(parser)
    return parser


def _fail(err: Exception, verbose: bool) -> None:
    """One line on stderr and exit status 1; the traceback only with ``--verbose``."""
    if verbose:
        raise err
    logging.getLogger("recformer_m2").error("%s", err)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("recformer_m2").setLevel(logging.INFO)  # rank 0's level; the others are set to WARNING
    try:
        config = load_config(PretrainConfig, args.config, config_overrides(args, PretrainConfig))
        config = with_model_fields(config, **model_overrides(args))
    except (ValueError, OSError) as err:  # an unknown field, a bad value, a missing file: one line
        _fail(err, args.verbose)
    try:
        final = run_pretraining(config, args.data, args.out, args.deepspeed, tokenizer_dir=args.tokenizer,
                                init_dir=args.init, stop_after_step=args.stop_after_step,
                                force_new_config=args.force_new_config)
    except DataFormatError as err:  # bad data, a damaged checkpoint, a changed config, a busy OUT: one line
        _fail(err, args.verbose)
    logging.getLogger("recformer_m2").info("pretrained model written to %s", final)


if __name__ == "__main__":
    main()
