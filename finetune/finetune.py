"""Two-stage Recformer finetuning from the command line (see recformer_m2/finetuning.py).

    python finetune/finetune.py --data DIR --pretrained DIR|none --out DIR [--config FILE.json] [--field value ...]

Settings: command line > --config JSON file > FinetuneConfig defaults. Rerunning into the same OUT resumes;
with other settings than the checkpoint was saved under it stops, naming them, unless --force-new-config.
Training runs on Lightning: --num-workers (collating DataLoader workers), --lr-scheduler/--warmup-ratio
(a transformers.get_scheduler schedule), --accumulate-grad-batches, --precision (bf16-mixed on a GPU by
default). Several GPUs, data parallel, through the launcher:

    torchrun --nproc_per_node 4 finetune/finetune.py --data DIR --pretrained DIR --out DIR --devices 4 --strategy ddp
"""

import argparse
import logging
import sys

from recformer_m2.config import add_config_arguments, config_overrides, load_config
from recformer_m2.errors import DataFormatError
from recformer_m2.finetuning import FinetuneConfig, run_finetuning


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Amazon-M2 data folder")
    parser.add_argument("--pretrained", required=True, help="a pretraining 'final' folder, or 'none' (from scratch)")
    parser.add_argument("--out", required=True, help="run folder; the best model lands in OUT/best")
    parser.add_argument("--config", default=None, help="JSON file of FinetuneConfig fields")
    parser.add_argument("--force-new-config", action="store_true",
                        help="resume OUT's checkpoint even though these settings differ from the ones it was saved under")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an error")
    add_config_arguments(parser, FinetuneConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(FinetuneConfig, args.config, config_overrides(args, FinetuneConfig))
    try:
        run_finetuning(args.data, args.pretrained, args.out, config, force_new_config=args.force_new_config)
    except DataFormatError as err:  # bad data, a damaged folder, a changed config: one line, exit 1
        if args.verbose:
            raise
        logging.getLogger("recformer_m2").error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
