"""Recformer pretraining on Amazon-M2 sessions with DeepSpeed ZeRO-2: typed config, data, one loop, validation.

Pretraining (Li et al. 2023, section 3.3) teaches the encoder two things at once from (session prefix,
next item) pairs of the training locales: masked-language modelling of the session's attribute values,
and a session-to-next-item contrastive loss over in-batch (and cross-rank) candidates. The script
``pretrain/pretrain.py`` is a thin command line over :func:`run_pretraining`.

Exact resumption rests on three rules:

- the data order is a pure function of (seed, epoch): :func:`epoch_batches` permutes the examples
  with ``default_rng([seed, epoch])`` and deals micro-batches to ranks, so a step number alone tells
  which batches are next;
- the masking RNG is re-derived for every micro-batch from (seed, epoch, rank, batch number)
  (:class:`MicroBatches`), so it is the same whether a batch is collated in the main process or a
  DataLoader worker, first time or after a restart;
- the dropout RNG (python, numpy, torch CPU and CUDA states) of each rank is saved inside every
  checkpoint and restored on resume.

A checkpoint is DeepSpeed's (``save_checkpoint`` into ``OUT/checkpoints/<tag>``, ZeRO partitions of
every rank) plus one ``rng_state_<rank>.pt`` per rank; the ``latest`` file naming it is written by
rank 0 only after every rank has finished writing, through a temporary file and an atomic rename,
so a crash at any moment leaves ``latest`` naming a complete checkpoint.

The package's modules follow the run: :mod:`.config` (typed settings), :mod:`.data` (examples, batch
order, masking), :mod:`.distributed` (process group, DeepSpeed JSON), :mod:`.checkpoints`,
:mod:`.validation` and :mod:`.run` (the loop).
"""

from .checkpoints import export_checkpoint, latest_tag
from .config import CHECKPOINTS, FINAL, METRICS_FILE, PretrainConfig, model_config, read_model_config, with_model_fields
from .data import (ItemTable, MicroBatches, PretrainData, PretrainDataset, PretrainExamples, alignment_examples,
                   build_examples, concatenate_examples, epoch_batches, prepare_data)
from .distributed import DistEnv, deepspeed_config
from .run import build_model, run_pretraining
from .validation import retrieval_metrics, validate

__all__ = [
    "CHECKPOINTS",
    "DistEnv",
    "FINAL",
    "ItemTable",
    "METRICS_FILE",
    "MicroBatches",
    "PretrainConfig",
    "read_model_config",
    "with_model_fields",
    "PretrainData",
    "PretrainDataset",
    "PretrainExamples",
    "alignment_examples",
    "build_examples",
    "concatenate_examples",
    "build_model",
    "deepspeed_config",
    "epoch_batches",
    "export_checkpoint",
    "latest_tag",
    "model_config",
    "prepare_data",
    "retrieval_metrics",
    "run_pretraining",
    "validate",
]
