"""Two-stage Recformer finetuning from the command line (see recformer_m2/finetuning.py).

    python finetune/finetune.py --data DIR --pretrained DIR|none --out DIR [--config FILE.json] [--field value ...]

Settings: command line > --config JSON file > FinetuneConfig defaults.
"""

import argparse
import logging

from recformer_m2.config import add_config_arguments, config_overrides, load_config
from recformer_m2.finetuning import FinetuneConfig, run_finetuning



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Amazon-M2 data folder")
    parser.add_argument("--pretrained", required=True, help="a pretraining 'final' folder, or 'none' (from scratch)")
    parser.add_argument("--out", required=True, help="run folder; the best model lands in OUT/best")
    parser.add_argument("--config", default=None, help="JSON file of FinetuneConfig fields")
    add_config_arguments(parser, FinetuneConfig)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(FinetuneConfig, args.config, config_overrides(args, FinetuneConfig))
    run_finetuning(args.data, args.pretrained, args.out, config)


if __name__ == "__main__":
    main()
