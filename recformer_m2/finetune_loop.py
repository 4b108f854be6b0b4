"""The Lightning pieces of Recformer finetuning (:mod:`recformer_m2.finetuning` drives them).

A module of its own so that importing :mod:`recformer_m2.finetuning` (the ``Recommender`` reads a
constant and a helper from it) does not load Lightning.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from transformers import get_scheduler

from . import finetuning as ft
from .constants import LOCALES
from .data import Catalog
from .encode import RecformerEncoder
from .models import RecformerForSeqRec
from .session_dataset import EpochBatches

logger = logging.getLogger(__name__)


class SeqRecModule(L.LightningModule):
    """One training step of either stage: cross-entropy of each session against the frozen item table
    (full softmax, or sampled negatives); AdamW and a ``transformers`` schedule, fresh at each stage."""

    def __init__(self, model: RecformerForSeqRec, config: "ft.FinetuneConfig", batches: EpochBatches,
                 epochs: int, resume: dict | None = None):
        super().__init__()
        self.model, self.config, self.batches, self.epochs = model, config, batches, epochs
        self.resume = resume
        """``{"optimizer": state_dict, "scheduler": state_dict or None}`` of a stage resumed mid-way."""
        self.losses: list[torch.Tensor] = []

    def on_train_epoch_start(self) -> None:
        self.losses = []
        self.batches.set_epoch(self.current_epoch)  # Lightning sets only samplers' epochs, not batch samplers'
        self.model.train()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch, num_negatives=self.config.num_negatives, generator=None).loss
        self.losses.append(loss.detach())
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def epoch_loss(self) -> float:
        return float(torch.stack(self.losses).mean()) if self.losses else float("nan")

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=self.config.lr,
                                      weight_decay=self.config.weight_decay)
        steps = math.ceil(len(self.batches) / self.config.accumulate_grad_batches) * self.epochs  # the whole stage
        scheduler = get_scheduler(self.config.lr_scheduler, optimizer,
                                  num_warmup_steps=round(self.config.warmup_ratio * steps), num_training_steps=steps)
        if self.resume is not None:
            optimizer.load_state_dict(self.resume["optimizer"])
            if self.resume.get("scheduler") is not None:  # absent in resume files of the hand-written loop
                scheduler.load_state_dict(self.resume["scheduler"])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ItemTableRefresh(L.Callback):
    """Before each epoch: in stage 1 every candidate item is re-encoded with the current encoder into the
    frozen table that epoch trains against; in stage 2 the best stage-1 table (``table``) is used."""

    def __init__(self, encoder: RecformerEncoder, data: "ft.FinetuneData", catalog: Catalog, stage: int,
                 table: np.ndarray | None = None):
        self.encoder, self.data, self.catalog, self.stage = encoder, data, catalog, stage
        self.table = table

    def on_train_epoch_start(self, trainer: L.Trainer, module: SeqRecModule) -> None:
        if self.stage == 1 or self.table is None:
            module.eval()
            self.table = self.encoder.encode_items(self.data.items, progress=trainer.is_global_zero)
            module.train()
        data = self.data
        module.model.set_item_embeddings(torch.from_numpy(self.table),
                                         None if data.prior is None else torch.from_numpy(data.prior),
                                         torch.from_numpy(data.locales), ids=self.catalog.ids[data.codes],
                                         group_names=LOCALES)


class RetrievalValidation(L.Callback):
    """After each epoch: validation MRR@100 by retrieval from the epoch's table (choosing the retrieval
    weights on their grids), the metrics line, ``best`` when it improved, the ``last`` resume file, and
    early stopping after ``patience`` epochs without a better MRR. ``state`` carries progress across resumes."""

    def __init__(self, refresh: ItemTableRefresh, tokenizer, config: "ft.FinetuneConfig", out: Path, state: dict):
        self.refresh, self.tokenizer, self.config, self.out, self.state = refresh, tokenizer, config, out, state

    def on_train_epoch_end(self, trainer: L.Trainer, module: SeqRecModule) -> None:
        model, config, state, stage = module.model, self.config, self.state, self.refresh.stage
        data, catalog, table = self.refresh.data, self.refresh.catalog, self.refresh.table
        module.eval()
        metrics = ft.evaluate(self.refresh.encoder, table, data, catalog, data.valid, data.valid_targets,
                              bias=ft.item_bias(model), last_item_grid=config.last_item_grid,
                              table_item_grid=config.table_item_grid, lexical_grid=config.lexical_grid)
        if "last_item_weight" in metrics:  # chosen on validation: the next epoch trains with it, best keeps it
            with torch.no_grad():
                ft._encoder_of(model).last_item_weight.fill_(metrics["last_item_weight"])
        epoch = state["epoch"] + 1
        record = {"stage": stage, "epoch": epoch, "train_loss": module.epoch_loss(), **metrics}
        if data.prior is not None:
            record["prior_weight"] = float(model.prior_weight.detach())
        writer = trainer.is_global_zero
        if writer:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        logger.info("stage %d epoch %d: loss %.4f, valid MRR@100 %.4f", stage, epoch, record["train_loss"],
                    metrics["mrr@100"])
        if metrics["mrr@100"] > state["best"]:
            state["best"], state["bad_epochs"] = metrics["mrr@100"], 0
            if writer:
                weights = {name: metrics.get(name, getattr(model.config, name))
                           for name in ("table_item_weight", "lexical_weight")}
                ft._save_best(model, self.tokenizer, config, record, self.out / "best", weights)
                if stage == 1:  # stage 2 starts from these weights and keeps this table frozen
                    ft.save_state(self.out / "checkpoints" / ft.STAGE1_BEST,
                                  {**ft._prefixed("model.", model.state_dict()), "table": torch.from_numpy(table)}, {})
        else:
            state["bad_epochs"] += 1
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        state.update(stage=stage, epoch=epoch, optimizer=trainer.optimizers[0].state_dict(),
                     scheduler=scheduler.state_dict())
        if writer:
            ft._save_last(self.out / "checkpoints" / ft.LAST, model, state, config)
        trainer.strategy.barrier("finetuning epoch written")  # other ranks read STAGE1_BEST after the stage
        if state["bad_epochs"] >= config.patience:
            logger.info("stage %d: no better validation MRR@100 for %d epoch(s); stopping", stage, config.patience)
            trainer.should_stop = True
        module.train()


def trainer_settings(config: "ft.FinetuneConfig") -> dict:
    """Accelerator, devices and precision for ``config.device`` (``auto``: a GPU when there is one),
    ``config.devices`` (GPUs, or CPU processes with gloo), ``config.precision`` (``auto``: bf16 autocast on a
    GPU that has it, else fp32)."""
    if config.device == "auto":
        gpu = torch.cuda.is_available()
        accelerator, devices = ("gpu" if gpu else "cpu"), config.devices
    else:
        device = torch.device(config.device)
        gpu = device.type == "cuda"
        accelerator = "gpu" if gpu else device.type
        devices = [device.index] if gpu and device.index is not None else config.devices
    precision = config.precision
    if precision == "auto":
        precision = "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"
    return {"accelerator": accelerator, "devices": devices, "precision": precision}


def num_workers(config: "ft.FinetuneConfig", accelerator: str) -> int:
    """``config.num_workers``, or when None: none on the CPU (measured: no faster on 2 cores, and they take
    cores from the step), and up to 8 beside a GPU."""
    if config.num_workers is not None:
        return config.num_workers
    if accelerator == "cpu":
        return 0
    import os

    return max(0, min(8, (os.cpu_count() or 1) - 1))


def fit_stage(epochs: int, module: SeqRecModule, loader: torch.utils.data.DataLoader,
              refresh: ItemTableRefresh, validation: RetrievalValidation, settings: dict) -> None:
    """Train the rest of a stage (``epochs`` more epochs) with a Lightning ``Trainer``."""
    import warnings

    config = module.config
    lightning_logger = logging.getLogger("lightning.pytorch")  # its banner (accelerators, tips) at every stage
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            **settings, strategy=config.strategy, max_epochs=epochs,
            accumulate_grad_batches=config.accumulate_grad_batches,
            gradient_clip_val=config.max_grad_norm if config.max_grad_norm > 0 else None,
            gradient_clip_algorithm="norm", callbacks=[refresh, validation], logger=False, enable_checkpointing=False,
            enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
            default_root_dir=validation.out,
        )
        with warnings.catch_warnings():  # on the CPU no workers is the measured choice (see num_workers)
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            module.train()  # the encoder's wrapper left it in eval mode
            trainer.fit(module, train_dataloaders=loader)
    finally:
        lightning_logger.setLevel(level)


__all__ = ["ItemTableRefresh", "RetrievalValidation", "SeqRecModule", "fit_stage", "num_workers", "trainer_settings"]
