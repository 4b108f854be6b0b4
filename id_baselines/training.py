"""The one training loop of every ID baseline: a Lightning module wrapping any registered model.

Checkpoints (``best.ckpt`` by validation MRR@100, ``last.ckpt`` to resume from), early stopping on the
same metric, tqdm progress, CPU or GPU; training seconds per epoch are recorded for benchmarks.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from recformer_m2.constants import TOP_K
from recformer_m2.metrics import metrics_from_ranks, score_ranks

from .base import SessionModel
from .config import BaselineConfig
from .data import LengthBucketBatches, SessionBatch, SessionExamples

logger = logging.getLogger(__name__)

MONITOR = "val_mrr"
"""Logged name of validation MRR@100, the early-stopping and model-selection metric."""


def masked_scores(
    model: SessionModel, batch: SessionBatch, exclude_session_items: bool, allowed: torch.Tensor | None
) -> torch.Tensor:
    """(B, N) ranking scores: -inf for padding, (optionally) the session's items and items not allowed
    in the session's locale (``allowed``: (locales, N) bool)."""
    scores = model.full_sort_predict(batch, exclude_session_items)
    if allowed is not None:
        scores.masked_fill_(~allowed[batch.locale], float("-inf"))
    return scores


class _Indices(Dataset):
    """Example numbers; the collator turns a list of them into a padded batch."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def make_loader(model: SessionModel, examples: SessionExamples, config: BaselineConfig, train: bool) -> DataLoader:
    """Batches of ``examples`` built by the model's collator (SR-GNN's builds the session graph)."""
    lengths = examples.lengths(config.max_length)
    if train:
        pool = 64 if config.bucket_by_length else 0
        batches = LengthBucketBatches(lengths, config.batch_size, config.seed, pool)
    else:  # sorted by length: validation order does not matter
        order = np.argsort(lengths, kind="stable")
        batches = [order[i:i + config.eval_batch_size].tolist() for i in range(0, len(order), config.eval_batch_size)]
    return DataLoader(
        _Indices(len(examples)),
        batch_sampler=batches,
        collate_fn=type(model).collator(examples, config.max_length),
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )


class BaselineModule(L.LightningModule):
    """Trains any ``SessionModel`` with its own loss; validates by full ranking (MRR/Recall@100)."""

    def __init__(self, model: SessionModel, config: BaselineConfig, allowed: torch.Tensor | None = None):
        super().__init__()
        self.model, self.config = model, config
        self.register_buffer("allowed", allowed, persistent=False)
        self._ranks: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []

    def on_train_epoch_start(self) -> None:
        self._losses = []

    def training_step(self, batch: SessionBatch, batch_idx: int) -> torch.Tensor:
        loss = self.model.loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch))
        self._losses.append(loss.detach())
        return loss

    @property
    def epoch_loss(self) -> float:
        """Mean training loss of the current epoch so far."""
        return float(torch.stack(self._losses).mean()) if self._losses else float("nan")

    def on_validation_epoch_start(self) -> None:
        self._ranks = []

    def validation_step(self, batch: SessionBatch, batch_idx: int) -> None:
        scores = masked_scores(self.model, batch, self.config.exclude_session_items, self.allowed)
        self._ranks.append(score_ranks(scores, batch.targets).cpu())  # ties count against the target

    def on_validation_epoch_end(self) -> None:
        metrics = metrics_from_ranks(torch.cat(self._ranks).numpy(), TOP_K)
        self.log(MONITOR, float(metrics["mrr"].mean()), prog_bar=True)
        self.log("val_recall", float(metrics["recall"].mean()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.config.learning_rate, weight_decay=self.config.weight_decay)


class EpochHistory(Callback):
    """Training seconds (validation excluded) and validation metrics of every epoch; kept in checkpoints."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._start = 0.0
        self._seconds: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start, self._seconds = time.perf_counter(), None

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._seconds is None:
            self._seconds = time.perf_counter() - self._start

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        seconds = self._seconds if self._seconds is not None else time.perf_counter() - self._start
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        self.history.append({"epoch": trainer.current_epoch, "train_seconds": seconds,
                             "train_loss": module.epoch_loss, **metrics})

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])


@dataclass
class FitResult:
    """What a training run left: the best checkpoint, its validation MRR@100, the per-epoch history."""

    best_checkpoint: Path
    best_mrr: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([h["train_seconds"] for h in self.history])) if self.history else float("nan")


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The wrapped model's weights from a Lightning checkpoint of ``BaselineModule``."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")}


def fit(
    model: SessionModel,
    train: SessionExamples,
    valid: SessionExamples,
    config: BaselineConfig,
    out_dir: Path,
    allowed: torch.Tensor | None = None,
) -> FitResult:
    """Train ``model`` in place and leave it holding the best weights (by validation MRR@100).

    Checkpoints go to ``out_dir/checkpoints``; with ``config.resume`` a run continues from ``last.ckpt``.
    """
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if not config.resume and ckpt_dir.exists():
        for stale in ckpt_dir.glob("*.ckpt"):
            stale.unlink()
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = BaselineModule(model, config, allowed)
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=MONITOR, mode="max", save_top_k=1, save_last=True
    )
    history = EpochHistory()
    callbacks: list[Callback] = [checkpoint, EarlyStopping(MONITOR, mode="max", patience=config.patience), history]
    if config.progress:
        callbacks.append(TQDMProgressBar())
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=1,
        max_epochs=config.max_epochs,
        max_time=timedelta(minutes=config.max_minutes) if config.max_minutes is not None else None,
        limit_train_batches=config.limit_train_batches,
        callbacks=callbacks,
        logger=CSVLogger(out_dir, name="logs"),
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out_dir,
    )
    resume = config.resume and (ckpt_dir / "last.ckpt").exists()
    if resume:
        logger.info("resuming from %s", ckpt_dir / "last.ckpt")
    trainer.fit(
        module, make_loader(model, train, config, train=True), make_loader(model, valid, config, train=False),
        ckpt_path="last" if resume else None,
    )
    best = Path(checkpoint.best_model_path)
    model.load_state_dict(checkpoint_state(best))
    model.cpu().eval()
    result = FitResult(best, float(checkpoint.best_model_score), history.history)
    (out_dir / "history.json").write_text(json.dumps(result.history, indent=2) + "\n", encoding="utf-8")
    logger.info("best validation MRR@100 %.4f (%s), %.1f s per training epoch", result.best_mrr, best.name,
                result.seconds_per_epoch)
    return result
