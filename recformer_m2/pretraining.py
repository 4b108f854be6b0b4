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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .batching import length_grouped
from .config import save_config
from .constants import LOCALES
from .data import Catalog, M2Data, Sessions, validation_split
from .metrics import rank_metrics
from .models import Item, RecformerConfig, RecformerForPretraining, SessionCollator
from .tokenizer import load_tokenizer, special_token_ids, train_tokenizer

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
"""Sub-folder of the output folder holding DeepSpeed checkpoints, their ``latest`` file, config and tokenizer."""
FINAL = "final"
"""Sub-folder of the output folder with the finished model: a plain ``save_pretrained`` folder."""
METRICS_FILE = "metrics.jsonl"
"""Validation history, one JSON record per validation, in the output folder."""
LATEST = "latest"
"""DeepSpeed's name for the file holding the tag of the newest complete checkpoint."""
TAG_PREFIX = "step_"


@dataclass
class PretrainConfig:
    """Everything a pretraining run is set by. Override order: command line > ``--config`` JSON > these defaults.

    The model fields build the :class:`RecformerConfig` (:func:`model_config`); with ``--init`` the
    architecture comes from the init folder instead. DeepSpeed's JSON keeps what only DeepSpeed knows
    (ZeRO stage and buckets, Adam betas and eps, fp16 loss scaling); batch size, accumulation,
    clipping, learning rate, weight decay, warmup, total steps and precision belong to this config
    and are written into DeepSpeed's JSON where it says ``"auto"`` (:func:`deepspeed_config`).
    """

    # --- data ---
    locales: list[str] = field(default_factory=lambda: ["UK", "DE", "JP"])
    """Locales whose training sessions are trained on."""
    zero_shot_locales: list[str] = field(default_factory=lambda: ["ES", "FR", "IT"])
    """Locales never trained on whose held-out sessions are also scored by retrieval (zero-shot transfer)."""
    valid_fraction: float = 0.05
    """Share of training sessions held out for validation (:func:`~recformer_m2.data.validation_split`)."""
    max_valid_per_locale: int = 2000
    """Cap on held-out sessions per locale (the rest of the drawn ones go back to training)."""
    split_seed: int = 0
    """Seed of the validation split (kept apart from ``seed`` so runs with other seeds score the same sessions)."""
    # --- tokenizer (only used when the run trains its own) ---
    vocab_size: int = 16000
    """Size asked of the catalog tokenizer trained when no ``--tokenizer`` or ``--init`` is given (a soft limit)."""
    # --- model: fields of RecformerConfig ---
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    attention_window: int = 64
    """Local attention window of every layer (even)."""
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_token_num: int = 1024
    """Most tokens per session, CLS included (also the size of the token-position table)."""
    max_attr_num: int = 12
    max_attr_length: int = 32
    max_item_embeddings: int = 51
    pooler_type: str = "cls"
    temperature: float = 0.05
    mlm_weight: float = 0.1
    item_cl_weight: float = 1.0
    # --- masking ---
    mlm_probability: float = 0.15
    whole_word_masking: bool = True
    # --- optimisation ---
    batch_size: int = 16
    """Micro-batch size per rank (DeepSpeed's ``train_micro_batch_size_per_gpu``)."""
    gradient_accumulation_steps: int = 1
    lr: float = 5e-5
    """Peak learning rate, reached after ``warmup_steps`` and decayed linearly to 0 at the last step."""
    weight_decay: float = 0.01
    """AdamW weight decay, not applied to biases and LayerNorm weights."""
    warmup_steps: int = 1000
    max_steps: int = 0
    """Optimizer steps to train; 0 trains ``epochs`` full epochs instead."""
    epochs: int = 1
    max_grad_norm: float = 1.0
    """Gradient clipping (DeepSpeed's ``gradient_clipping``); 0 disables it."""
    precision: str = "auto"
    """``auto`` (bf16 on GPUs that support it, else fp16; fp32 on CPU), ``bf16``, ``fp16`` or ``fp32``.
    On CPU it is always fp32."""
    # --- side work ---
    log_every: int = 10
    eval_every: int = 1000
    """Validate every this many optimizer steps (and always at the end)."""
    eval_at_start: bool = True
    """Also validate the initial weights (step 0) of a fresh run, a baseline to read the history against."""
    eval_batch_size: int = 32
    """Micro-batch size per rank of the held-out losses."""
    encode_batch_size: int = 128
    """Items or sessions encoded at once for retrieval (large batches amortise Longformer's per-call cost)."""
    max_retrieval_sessions: int = 1000
    """Held-out sessions per locale scored by next-item retrieval (Recall@K, rank 0); 0 skips retrieval."""
    recall_ks: list[int] = field(default_factory=lambda: [10, 100])
    save_every: int = 1000
    """Checkpoint every this many optimizer steps (and always at the end)."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept; older ones are deleted once a newer one is complete."""
    num_workers: int = 0
    """DataLoader worker processes per rank that collate batches."""
    group_by_length: int = 50
    """Sort training examples by session length within windows of this many optimizer steps, then shuffle
    the steps (:func:`~recformer_m2.batching.length_grouped`): batches pad less, which halved the step time
    of ``small`` on CPU. 0 or 1 keeps the plain random order."""
    seed: int = 0
    """Seed of the model initialisation, data order, masking and dropout."""

    def __post_init__(self) -> None:
        for name in ("locales", "zero_shot_locales"):
            unknown = sorted(set(getattr(self, name)) - set(LOCALES))
            if unknown:
                raise ValueError(f"{name} has unknown locale(s) {unknown}; choose from {list(LOCALES)}")
        if not self.locales:
            raise ValueError("locales is empty: name at least one locale to train on")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")
        positive = ("batch_size", "gradient_accumulation_steps", "eval_batch_size", "eval_every", "save_every",
                    "log_every", "keep_checkpoints", "warmup_steps", "encode_batch_size")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad:
            raise ValueError(f"these settings must be at least 1: {bad}")
        if self.max_steps < 0 or (self.max_steps == 0 and self.epochs < 1):
            raise ValueError(f"train for max_steps > 0 or epochs >= 1 (got max_steps={self.max_steps}, "
                             f"epochs={self.epochs})")


def model_config(config: PretrainConfig, tokenizer) -> RecformerConfig:
    """The Recformer architecture of a fresh run: the model fields of ``config``, ids and size of ``tokenizer``."""
    ids = special_token_ids(tokenizer, ("pad", "cls", "eos", "sep", "mask"))
    return RecformerConfig(
        vocab_size=len(tokenizer),
        pad_token_id=ids["pad"],
        bos_token_id=ids["cls"],
        eos_token_id=ids["eos"],
        sep_token_id=ids["sep"],
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        attention_window=config.attention_window,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        max_position_embeddings=config.max_token_num,
        max_token_num=config.max_token_num,
        max_attr_num=config.max_attr_num,
        max_attr_length=config.max_attr_length,
        max_item_embeddings=config.max_item_embeddings,
        pooler_type=config.pooler_type,
        temperature=config.temperature,
        mlm_weight=config.mlm_weight,
        item_cl_weight=config.item_cl_weight,
    )


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainExamples:
    """(session prefix, next item) pairs as catalog rows; example ``i`` has prefix
    ``rows[offsets[i]:offsets[i + 1]]`` (oldest first) and target row ``next_rows[i]``.

    ``next_codes`` are the targets' product codes (the same product in two locales shares one, so a
    batch never uses it as a negative of itself); ``session`` is each example's index in the sessions
    it was built from.
    """

    rows: np.ndarray  # (total,) int32 catalog rows
    offsets: np.ndarray  # (n + 1,) int64
    next_rows: np.ndarray  # (n,) int32
    next_codes: np.ndarray  # (n,) int32
    locale: np.ndarray  # (n,) int8
    session: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.next_rows)

    def prefix(self, i: int) -> np.ndarray:
        return self.rows[self.offsets[i]:self.offsets[i + 1]]


def build_examples(catalog: Catalog, sessions: Sessions, locales: Sequence[str]) -> PretrainExamples:
    """One example per session of ``locales``: its ``prev_items`` then its ``next_item``.

    Items without a product row in the session's locale have no text there and are left out; a session
    whose next item has no row, or with no previous item left, gives no example.
    """
    item_rows = catalog.rows(sessions.items, sessions.locale[sessions.session_index])  # (total,)
    has_row = item_rows >= 0
    kept = np.bincount(sessions.session_index[has_row], minlength=len(sessions))  # (n,) prefix items with text
    next_rows = np.where(sessions.next_item >= 0, catalog.rows(np.maximum(sessions.next_item, 0), sessions.locale), -1)
    use = sessions.in_locales(list(locales)) & (next_rows >= 0) & (kept > 0)
    keep_items = has_row & use[sessions.session_index]
    offsets = np.concatenate([[0], np.cumsum(kept[use])]).astype(np.int64)
    return PretrainExamples(
        rows=item_rows[keep_items].astype(np.int32),
        offsets=offsets,
        next_rows=next_rows[use].astype(np.int32),
        next_codes=sessions.next_item[use].astype(np.int32),
        locale=sessions.locale[use].astype(np.int8),
        session=np.flatnonzero(use).astype(np.int64),
    )


class PretrainDataset(Dataset):
    """Examples as the collator takes them: ``{"items", "next_item", "next_item_id"}`` with attribute texts.

    Texts come from ``catalog.attributes(row)``, cached per row on the instance (each worker its own).
    """

    def __init__(self, catalog: Catalog, examples: PretrainExamples) -> None:
        self.catalog = catalog
        self.examples = examples
        self._texts: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def _text(self, row: int) -> Item:
        text = self._texts.get(row)
        if text is None:
            text = self._texts[row] = self.catalog.attributes(row)
        return text

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "items": [self._text(int(r)) for r in self.examples.prefix(i)],
            "next_item": self._text(int(self.examples.next_rows[i])),
            "next_item_id": int(self.examples.next_codes[i]),
        }


def epoch_batches(num_examples: int, batch_size: int, world_size: int, rank: int, seed: int, epoch: int,
                  accumulation: int = 1, lengths: np.ndarray | None = None, group_window: int = 0) -> np.ndarray:
    """``(micro-batches, batch_size)`` example indices of one rank in one epoch: a pure function of its arguments.

    The epoch's permutation is cut into optimizer steps of ``batch_size * world_size * accumulation``
    examples (the incomplete last one is dropped, so every rank sees the same number of equal batches
    and every optimizer step the same number of micro-batches); micro-batch ``m`` of rank ``r`` is
    the ``r``-th slice of the ``m``-th chunk. With ``lengths`` and ``group_window > 1`` the permutation
    is first :func:`~recformer_m2.batching.length_grouped` by optimizer step, so a step's micro-batches
    (on every rank) pad to similar lengths.
    """
    per_step = batch_size * world_size * accumulation
    steps = num_examples // per_step
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_examples)
    if lengths is not None and group_window > 1:
        order = length_grouped(order, lengths, per_step, group_window, rng)
    chunks = order[: steps * per_step].reshape(steps * accumulation, world_size, batch_size)
    return np.ascontiguousarray(chunks[:, rank])


def masking_seed(*key: int) -> int:
    """A 64-bit seed from a tuple of non-negative ints, e.g. (seed, epoch, rank, batch number)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])


class MicroBatches(Dataset):
    """Collated micro-batches; batch ``b`` is masked with an RNG seeded by ``(*key, b)``, so it is the same
    batch whichever process collates it and however often. Use with ``DataLoader(batch_size=None)``."""

    def __init__(self, dataset: PretrainDataset, collator: SessionCollator, batches: np.ndarray,
                 key: tuple[int, ...]) -> None:
        self.dataset = dataset
        self.collator = collator
        self.batches = batches
        self.key = key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        self.collator.reseed(masking_seed(*self.key, b))
        return self.collator([self.dataset[int(i)] for i in self.batches[b]])


def batch_loader(batches: MicroBatches, start: int, num_workers: int, pin_memory: bool) -> DataLoader:
    """Micro-batches ``start, start + 1, ...`` in order. The loader gets its own generator, so creating
    it never draws from the global torch RNG that dropout uses."""
    return DataLoader(
        batches, batch_size=None, sampler=range(start, len(batches)), num_workers=num_workers,
        pin_memory=pin_memory, generator=torch.Generator().manual_seed(0),
    )


@dataclass
class PretrainData:
    """The catalog, training and validation examples, and the sessions scored by retrieval."""

    catalog: Catalog
    train: PretrainExamples
    valid: PretrainExamples
    retrieval: Sessions
    """Held-out sessions (training and zero-shot locales, at most ``max_retrieval_sessions`` each)."""


def prepare_data(data: M2Data, config: PretrainConfig) -> PretrainData:
    """Split ``data.train`` (seeded), build examples of the training locales and pick retrieval sessions."""
    sessions = data.train
    fit, held = validation_split(sessions, config.valid_fraction, config.split_seed, config.max_valid_per_locale)
    catalog = data.catalog
    train = build_examples(catalog, sessions.select(fit), config.locales)
    valid_sessions = sessions.select(held)
    valid = build_examples(catalog, valid_sessions, config.locales)
    # Retrieval: held-out sessions with a scorable target (it has text in the locale and a previous item does).
    scorable = build_examples(catalog, valid_sessions, list(dict.fromkeys(config.locales + config.zero_shot_locales)))
    picked = [scorable.session[scorable.locale == LOCALES.index(loc)][: config.max_retrieval_sessions]
              for loc in LOCALES]
    retrieval = valid_sessions.select(np.sort(np.concatenate(picked)))
    for name, examples in (("train", train), ("valid", valid)):
        counts = {loc: int((examples.locale == LOCALES.index(loc)).sum()) for loc in config.locales}
        logger.info("%s examples: %d %s", name, len(examples), counts)
    logger.info("retrieval sessions: %s",
                {LOCALES[loc]: int((retrieval.locale == loc).sum()) for loc in np.unique(retrieval.locale)})
    return PretrainData(catalog, train, valid, retrieval)


# --------------------------------------------------------------------------------------------------
# Distributed setup and DeepSpeed configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: ranks, device and the collective backend."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed() -> DistEnv:
    """Start torch.distributed through DeepSpeed: under its launcher (env vars set) or as one plain process.

    A plain ``python pretrain.py`` has none of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``; DeepSpeed would then look for MPI, so they are set for a world of one (a free
    local port). Without CUDA: ``DS_ACCELERATOR=cpu``, the gloo backend, and torch threads split
    between the ranks of this machine unless ``OMP_NUM_THREADS`` is set.
    """
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)  # before NCCL starts, so its barriers use this rank's GPU
    backend = "nccl" if cuda else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if cuda:
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        if "OMP_NUM_THREADS" not in os.environ:
            local_size = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_size, 1)))
    return DistEnv(rank, local_rank, world_size, device, backend)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` on CPU (whatever was asked); ``auto`` on GPU is bf16 where supported, else fp16."""
    if device.type != "cuda":
        if precision not in ("auto", "fp32"):
            logger.warning("precision %s asked for, but there is no GPU: training in fp32", precision)
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def _fill(section: dict, key: str, value: Any, where: str) -> None:
    """Set ``section[key]`` to ours when absent or ``"auto"``; a different concrete value raises."""
    current = section.get(key, "auto")
    if current == "auto":
        section[key] = value
    elif current != value:
        raise ValueError(
            f"DeepSpeed config sets {where}{key}={current!r} but the pretraining config gives {value!r}; "
            f"set it to \"auto\" in the DeepSpeed JSON and change it in the pretraining config (or on the command line)"
        )


def _find_auto(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _find_auto(value, f"{path}{key}.")]
    return [path.rstrip(".")] if node == "auto" else []


def deepspeed_config(path: str | Path, config: PretrainConfig, env: DistEnv, total_steps: int) -> dict[str, Any]:
    """DeepSpeed's JSON with every ``"auto"`` filled from ``config``: batch sizes, accumulation, clipping,
    AdamW lr and weight decay, the WarmupDecayLR schedule and bf16/fp16. On CPU, ``torch_adam``
    (DeepSpeed's fused Adam needs CUDA) and fp32. An ``"auto"`` left anywhere else raises."""
    with open(path, encoding="utf-8") as f:
        ds = json.load(f)
    _fill(ds, "train_micro_batch_size_per_gpu", config.batch_size, "")
    _fill(ds, "gradient_accumulation_steps", config.gradient_accumulation_steps, "")
    _fill(ds, "train_batch_size", config.batch_size * config.gradient_accumulation_steps * env.world_size, "")
    _fill(ds, "gradient_clipping", config.max_grad_norm, "")
    if "optimizer" not in ds:
        raise ValueError(f"{path}: no \"optimizer\" section; pretraining expects AdamW configured there")
    opt = ds["optimizer"].setdefault("params", {})
    _fill(opt, "lr", config.lr, "optimizer.params.")
    _fill(opt, "weight_decay", config.weight_decay, "optimizer.params.")
    if env.device.type != "cuda":
        opt.setdefault("torch_adam", True)
    if "scheduler" in ds:
        sched = ds["scheduler"].setdefault("params", {})
        _fill(sched, "total_num_steps", total_steps, "scheduler.params.")
        _fill(sched, "warmup_num_steps", min(config.warmup_steps, total_steps), "scheduler.params.")
        _fill(sched, "warmup_max_lr", config.lr, "scheduler.params.")
        _fill(sched, "warmup_min_lr", 0.0, "scheduler.params.")
    precision = resolve_precision(config.precision, env.device)
    for name in ("bf16", "fp16"):
        section = ds.setdefault(name, {})
        if section.get("enabled", "auto") == "auto" or env.device.type != "cuda":
            section["enabled"] = precision == name
        elif section["enabled"] != (precision == name):
            raise ValueError(f"DeepSpeed config sets {name}.enabled={section['enabled']} but precision is {precision}")
    left = _find_auto(ds)
    if left:
        raise ValueError(f"{path}: \"auto\" at {left}, which the pretraining config does not fill; give values")
    return ds


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices and embeddings, none on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def checkpoint_tag(step: int) -> str:
    return f"{TAG_PREFIX}{step:08d}"


def latest_tag(checkpoint_dir: str | Path) -> str | None:
    """Tag named by ``latest`` (always a complete checkpoint), or None when there is none."""
    path = Path(checkpoint_dir) / LATEST
    if not path.is_file():
        return None
    tag = path.read_text(encoding="utf-8").strip()
    if not (Path(checkpoint_dir) / tag).is_dir():
        raise FileNotFoundError(f"{path} names {tag!r}, which is not a folder in {checkpoint_dir}")
    return tag


def _rng_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rng_state_{rank:05d}.pt"


def rng_state() -> dict[str, Any]:
    """This process's RNG states: python, numpy (legacy global), torch CPU and every CUDA device."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(engine, checkpoint_dir: Path, step: int, client_state: dict[str, Any], env: DistEnv,
                    keep: int) -> str:
    """Write a checkpoint on every rank, then point ``latest`` at it and drop all but the newest ``keep``.

    A half-written folder of the same tag (left by a crash) is removed first; ``latest`` is replaced
    atomically after a barrier, so it only ever names a complete checkpoint.
    """
    tag = checkpoint_tag(step)
    tag_dir = checkpoint_dir / tag
    if env.is_main:
        if tag_dir.exists() and latest_tag(checkpoint_dir) != tag:
            shutil.rmtree(tag_dir)
        tag_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    torch.save(rng_state(), _rng_file(tag_dir, env.rank))
    engine.save_checkpoint(str(checkpoint_dir), tag=tag, client_state=client_state, save_latest=False)
    dist.barrier()  # every rank's files are on disk
    if env.is_main:
        tmp = checkpoint_dir / f"{LATEST}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(tag)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, checkpoint_dir / LATEST)
        tags = sorted(p.name for p in checkpoint_dir.glob(f"{TAG_PREFIX}*") if p.is_dir() and p.name <= tag)
        for old in tags[:-keep]:
            shutil.rmtree(checkpoint_dir / old)
        logger.info("checkpoint %s written", tag_dir)
    dist.barrier()
    return tag


def load_checkpoint(engine, checkpoint_dir: Path, tag: str, env: DistEnv) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this rank's RNG states; returns the client state."""
    rng_path = _rng_file(checkpoint_dir / tag, env.rank)
    if not rng_path.is_file():
        raise FileNotFoundError(f"{rng_path} is missing: the checkpoint was written by fewer ranks than "
                                f"this run's {env.world_size}; resume with the same number of ranks")
    path, client = engine.load_checkpoint(str(checkpoint_dir), tag=tag, load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {checkpoint_dir / tag}")
    set_rng_state(torch.load(rng_path, weights_only=False))
    return client


def export_checkpoint(checkpoint_dir: str | Path, out_dir: str | Path, tag: str | None = None) -> Path:
    """Consolidate a ZeRO checkpoint's fp32 weights into a plain ``save_pretrained`` folder.

    Uses DeepSpeed's ``get_fp32_state_dict_from_zero_checkpoint`` and the ``config.json`` and tokenizer
    that the run saved in ``checkpoint_dir``; the weights are loaded strictly (a missing or unused
    tensor raises) into :class:`RecformerForPretraining`. ``out_dir`` is written through a temporary
    folder and renamed, so it is either complete or absent.
    """
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    checkpoint_dir, out = Path(checkpoint_dir), Path(out_dir)
    tag = tag or latest_tag(checkpoint_dir)
    if tag is None:
        raise FileNotFoundError(f"{checkpoint_dir}: no {LATEST} file; pass the tag of the checkpoint to export")
    config = RecformerConfig.from_pretrained(str(checkpoint_dir), local_files_only=True)
    tokenizer = load_tokenizer(checkpoint_dir)
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=tag)
    model = RecformerForPretraining(config)
    model.load_state_dict(state, strict=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    logger.info("exported %s/%s to %s", checkpoint_dir, tag, out)
    return out


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def retrieval_metrics(encoder, catalog: Catalog, sessions: Sessions, ks: Sequence[int], progress: bool = False
                      ) -> dict[str, float]:
    """Recall@K of next-item retrieval among each locale's products (``encode.retrieve``), overall and per locale."""
    from .encode import retrieve

    ranked = retrieve(encoder, catalog, sessions, k=max(ks), progress=progress)
    out: dict[str, float] = {}
    for k in ks:
        hits = rank_metrics(ranked, sessions.next_item, k)["recall"]
        for loc in np.unique(sessions.locale):
            out[f"recall@{k}/{LOCALES[loc]}"] = float(hits[sessions.locale == loc].mean())
    return out


@torch.no_grad()
def validate(model: RecformerForPretraining, batches: MicroBatches, env: DistEnv, data: PretrainData,
             config: PretrainConfig, tokenizer) -> dict[str, float]:
    """Held-out losses and contrastive accuracy (every rank, its share of batches, summed across ranks),
    then Recall@K by retrieval on rank 0 (the others wait). Leaves the model in train mode."""
    from .encode import RecformerEncoder

    model.eval()
    totals = torch.zeros(5, dtype=torch.float64)  # mlm loss sum, cl loss sum, correct, sessions, batches
    for batch in batch_loader(batches, 0, config.num_workers, env.device.type == "cuda"):
        batch = {k: v.to(env.device) for k, v in batch.items()}
        out = model(**batch)
        n = batch["input_ids"].shape[0]
        totals += torch.tensor([out.mlm_loss.item(), out.item_cl_loss.item(), out.cl_correct.item(), n, 1.0],
                               dtype=torch.float64)
    if env.world_size > 1:
        totals = totals.to(env.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(totals)
    mlm, cl, correct, sessions, count = totals.cpu().tolist()
    metrics = {
        "valid_mlm_loss": mlm / max(count, 1),
        "valid_cl_loss": cl / max(count, 1),
        "valid_cl_accuracy": correct / max(sessions, 1),
        "valid_sessions": int(sessions),
        "cl_candidates": batches.batches.shape[1] * env.world_size,
    }
    metrics["valid_loss"] = model.config.mlm_weight * metrics["valid_mlm_loss"] + \
        model.config.item_cl_weight * metrics["valid_cl_loss"]
    if env.is_main and config.max_retrieval_sessions > 0 and len(data.retrieval):
        start = time.perf_counter()
        encoder = RecformerEncoder(model.recformer, tokenizer, batch_size=config.encode_batch_size)
        per_locale = retrieval_metrics(encoder, data.catalog, data.retrieval, config.recall_ks)
        metrics.update(per_locale)
        for k in config.recall_ks:
            for name, group in (("train_locales", config.locales), ("zero_shot", config.zero_shot_locales)):
                mask = np.isin(data.retrieval.locale, [LOCALES.index(loc) for loc in group])
                if mask.any():
                    values = [per_locale[f"recall@{k}/{LOCALES[loc]}"] for loc in data.retrieval.locale[mask]]
                    metrics[f"recall@{k}/{name}"] = float(np.mean(values))  # micro-average over sessions
        metrics["retrieval_seconds"] = round(time.perf_counter() - start, 2)
    dist.barrier()
    model.train()
    return metrics


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step``: a crashed run may have validated past the checkpoint it resumes from."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def prepare_tokenizer(out: Path, catalog: Catalog, config: PretrainConfig, env: DistEnv,
                      tokenizer_dir: str | Path | None, init_dir: str | Path | None):
    """``--tokenizer``, else the one of ``--init``, else a catalog tokenizer trained by rank 0 into
    ``OUT/tokenizer`` (reused when a restarted run finds it there) while the other ranks wait."""
    if tokenizer_dir is not None:
        return load_tokenizer(tokenizer_dir)
    if init_dir is not None:
        return load_tokenizer(init_dir)
    folder = out / "tokenizer"
    if env.is_main and not folder.is_dir():
        tmp = out / f"tokenizer.tmp{os.getpid()}"
        texts = (catalog.sentence(row) for row in range(len(catalog)))
        train_tokenizer(texts, tmp, vocab_size=config.vocab_size, seed=config.seed)
        tmp.rename(folder)
    dist.barrier()
    return load_tokenizer(folder)


def build_model(config: PretrainConfig, tokenizer, init_dir: str | Path | None) -> RecformerForPretraining:
    """A fresh model of ``config`` (seeded), or the weights of ``--init`` (architecture from its config;
    the MLM head may be new when the folder holds a bare encoder)."""
    torch.manual_seed(config.seed)
    if init_dir is None:
        return RecformerForPretraining(model_config(config, tokenizer))
    model = RecformerForPretraining.from_pretrained_strict(init_dir, allow_missing=("lm_head",))
    ours = model_config(config, tokenizer).to_dict()
    differs = {k: (v, ours[k]) for k, v in model.config.to_dict().items()
               if k in ours and k in {f.name for f in dataclasses.fields(PretrainConfig)} and ours[k] != v}
    if differs:
        logger.warning("--init %s: architecture from its config.json; these pretraining-config fields are "
                       "ignored (init value, config value): %s", init_dir, differs)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but {init_dir} has vocab_size "
                         f"{model.config.vocab_size}")
    return model


def _setup_logging(env: DistEnv) -> None:
    """Progress from rank 0 only; the other ranks report warnings and errors."""
    logging.getLogger("recformer_m2").setLevel(logging.INFO if env.is_main else logging.WARNING)


def run_pretraining(config: PretrainConfig, data_dir: str | Path, out_dir: str | Path,
                    deepspeed_json: str | Path, tokenizer_dir: str | Path | None = None,
                    init_dir: str | Path | None = None, stop_after_step: int | None = None) -> Path:
    """Pretrain, resuming from ``OUT/checkpoints`` when a checkpoint is there; returns ``OUT/final``.

    ``stop_after_step`` is a crash drill: every rank ends with ``os._exit(1)`` right after the
    checkpoint of that step is complete, as if killed.
    """
    import deepspeed

    env = init_distributed()
    _setup_logging(env)
    out = Path(out_dir)
    checkpoint_dir = out / CHECKPOINTS
    metrics_path = out / METRICS_FILE
    if env.is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "pretrain_config.json")

    m2 = M2Data(data_dir)
    if env.is_main:  # parse once into the shared cache; the other ranks then read it
        _ = m2.train
    dist.barrier()
    data = prepare_data(m2, config)
    tokenizer = prepare_tokenizer(out, data.catalog, config, env, tokenizer_dir, init_dir)
    model = build_model(config, tokenizer, init_dir)
    if env.is_main:
        model.config.save_pretrained(str(checkpoint_dir))
        tokenizer.save_pretrained(str(checkpoint_dir))

    steps_per_epoch = len(data.train) // (config.batch_size * env.world_size * config.gradient_accumulation_steps)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(data.train)} training examples do not fill one optimizer step of "
                         f"{config.batch_size} x {env.world_size} ranks x {config.gradient_accumulation_steps} "
                         "accumulation; lower batch_size")
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    ds_config = deepspeed_config(deepspeed_json, config, env, total_steps)
    if env.is_main:
        (out / "deepspeed_config.json").write_text(json.dumps(ds_config, indent=2) + "\n", encoding="utf-8")
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=parameter_groups(model, config.weight_decay),
                                           config=ds_config)
    module: RecformerForPretraining = engine.module
    gas = config.gradient_accumulation_steps
    collator = SessionCollator(tokenizer, module.config, config.mlm_probability, config.whole_word_masking)
    train_set = PretrainDataset(data.catalog, data.train)
    train_lengths = np.minimum(np.diff(data.train.offsets), module.config.max_item_embeddings - 1)  # items kept
    eval_collator = SessionCollator(tokenizer, module.config, config.mlm_probability, config.whole_word_masking)
    eval_bs = max(1, min(config.eval_batch_size, len(data.valid) // env.world_size))
    valid_batches = MicroBatches(
        PretrainDataset(data.catalog, data.valid), eval_collator,
        epoch_batches(len(data.valid), eval_bs, env.world_size, env.rank, config.seed, 0),
        (config.seed, 1 << 20, env.rank),  # fixed masks: the held-out MLM loss is comparable across steps
    )
    if len(valid_batches) == 0:
        raise ValueError(f"{len(data.valid)} validation examples cannot give each of {env.world_size} rank(s) a batch")
    run_facts = {"world_size": env.world_size, "batch_size": config.batch_size, "gradient_accumulation_steps": gas,
                 "seed": config.seed, "group_by_length": config.group_by_length, "num_train_examples": len(data.train),
                 "steps_per_epoch": steps_per_epoch}

    step = 0
    tag = latest_tag(checkpoint_dir)
    if tag is not None:
        client = load_checkpoint(engine, checkpoint_dir, tag, env)
        changed = {k: (client.get(k), v) for k, v in run_facts.items() if client.get(k) != v}
        if changed:
            raise ValueError(f"cannot resume {checkpoint_dir / tag} exactly: (checkpoint, now) differ for {changed}")
        step = int(client["step"])
        if engine.global_steps != step:
            raise RuntimeError(f"checkpoint step {step} but DeepSpeed restored global_steps {engine.global_steps}")
        logger.info("resumed from %s: step %d, epoch %d, micro-batch %d", tag, step, client["epoch"],
                    client["position"])
        if env.is_main:
            _truncate_metrics(metrics_path, step)
    else:
        torch.manual_seed(config.seed + 7919 * (env.rank + 1))  # dropout streams differ across ranks
        if env.is_main and metrics_path.exists():
            metrics_path.unlink()
    logger.info("training %d steps (%d per epoch) of %d x %d ranks x %d accumulation; %s; DeepSpeed %s",
                total_steps, steps_per_epoch, config.batch_size, env.world_size, gas,
                resolve_precision(config.precision, env.device), deepspeed.__version__)

    def record_validation(at_step: int, train_stats: dict[str, float]) -> None:
        metrics = validate(module, valid_batches, env, data, config, tokenizer)
        if env.is_main:
            record = {"step": at_step, **train_stats, **metrics}
            _append_metrics(metrics_path, record)
            logger.info("validation at step %d: %s", at_step,
                        ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))

    if step == 0 and tag is None and config.eval_at_start:
        record_validation(0, {})

    running = np.zeros(4)  # loss, mlm loss, cl loss, micro-batches since the last log
    since_eval = np.zeros(2)  # loss sum, micro-batches since the last validation (kept in checkpoints)
    if tag is not None:
        since_eval[:] = client["since_eval"]
    bar = tqdm(total=total_steps, initial=step, desc="pretrain", disable=not env.is_main, dynamic_ncols=True)
    engine.train()
    while step < total_steps:
        epoch, step_in_epoch = divmod(step, steps_per_epoch)
        batches = MicroBatches(train_set, collator,
                               epoch_batches(len(data.train), config.batch_size, env.world_size, env.rank,
                                             config.seed, epoch, gas, train_lengths, config.group_by_length),
                               (config.seed, epoch, env.rank))
        for micro, batch in enumerate(batch_loader(batches, step_in_epoch * gas, config.num_workers,
                                                   env.device.type == "cuda"), start=step_in_epoch * gas):
            batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
            output = engine(**batch)
            engine.backward(output.loss)
            engine.step()
            running += [output.loss.item(), output.mlm_loss.item(), output.item_cl_loss.item(), 1]
            since_eval += [output.loss.item(), 1]
            if (micro + 1) % gas:
                continue
            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                loss, mlm, cl = running[:3] / running[3]
                lr = engine.get_lr()[0]
                bar.set_postfix(loss=f"{loss:.3f}", mlm=f"{mlm:.3f}", cl=f"{cl:.3f}", lr=f"{lr:.2e}")
                logger.info("step %d: train loss %.4f (mlm %.4f, contrastive %.4f), lr %.3e", step, loss, mlm, cl, lr)
                running[:] = 0
            if step % config.eval_every == 0 or step == total_steps:
                record_validation(step, {"epoch": epoch, "lr": engine.get_lr()[0],
                                         "train_loss": since_eval[0] / max(since_eval[1], 1)})
                since_eval[:] = 0
            if step % config.save_every == 0 or step == total_steps:
                position = (step % steps_per_epoch) * gas
                client_state = {**run_facts, "step": step, "epoch": step // steps_per_epoch, "position": position,
                                "since_eval": since_eval.tolist(), "pretrain_config": dataclasses.asdict(config)}
                save_checkpoint(engine, checkpoint_dir, step, client_state, env, config.keep_checkpoints)
                if stop_after_step is not None and step == stop_after_step:
                    logger.warning("stopping right after checkpoint %d (--stop-after-step)", step)
                    logging.shutdown()
                    os._exit(1)
            if step >= total_steps or step % steps_per_epoch == 0:
                break
    bar.close()

    final = out / FINAL
    if env.is_main:
        export_checkpoint(checkpoint_dir, final, latest_tag(checkpoint_dir))
    dist.barrier()
    return final


# --------------------------------------------------------------------------------------------------
# Command-line overrides of a dataclass config
# --------------------------------------------------------------------------------------------------


__all__ = [
    "MicroBatches",
    "PretrainConfig",
    "PretrainData",
    "PretrainDataset",
    "PretrainExamples",
    "build_examples",
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
