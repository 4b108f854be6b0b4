"""Turn a DeepSpeed ZeRO pretraining checkpoint into a plain ``save_pretrained`` folder.

    python scripts/convert_pretrain_ckpt.py OUT/checkpoints OUT_DIR [--tag step_00001000]

CKPT_DIR is the ``checkpoints`` folder of a pretraining run: DeepSpeed's tag folders and ``latest``
file, plus the model ``config.json`` and tokenizer the run saved there. Without ``--tag`` the newest
complete checkpoint (``latest``) is converted. The fp32 weights are consolidated from every rank's
ZeRO partitions with DeepSpeed's ``get_fp32_state_dict_from_zero_checkpoint`` and loaded strictly
into ``RecformerForPretraining``; the result loads with ``RecformerEncoder.from_pretrained(OUT_DIR)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint_dir", help="the run's OUT/checkpoints folder")
    parser.add_argument("out_dir", help="folder to write (replaced if it exists)")
    parser.add_argument("--tag", default=None, help="checkpoint tag, e.g. step_00001000 (default: latest)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("recformer_m2").setLevel(logging.INFO)
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from recformer_m2.pretraining import export_checkpoint

    export_checkpoint(args.checkpoint_dir, args.out_dir, args.tag)


if __name__ == "__main__":
    main()
