"""Training the title generator: pairs from training sessions, a seeded validation split, one Lightning loop.

``OUT/`` receives the final model folder (weights, tokenizer, ``title_config.json``, ``metrics.json``);
``OUT/checkpoints/`` the Lightning checkpoints (``best.ckpt`` by the selection metric, ``last.ckpt``
for resuming); ``OUT/run/`` the run's config and the tokenizer trained for it; ``OUT/logs/`` the CSV log.
The test ground truth is never read: model selection uses sessions held out from ``sessions_train``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from ..config import load_config, save_config
from ..data import Catalog, M2Data, Sessions, validation_split
from ..metrics import title_bleu
from ..tokenizer import load_tokenizer, train_tokenizer
from .config import TitleConfig
from .generator import CONFIG_FILE, TitleGenerator
from .edits import copy_share, decode_edit, edit_tokens, encode_edit
from .grid import GridTitle
from .heuristics import WordSurvival, last_titles
from .inputs import (
    SEP, BucketBatches, PairCollator, SiblingTitles, TitlePairs, ensure_tokens, split_source, training_pairs,
)
from .model import TitleModule, add_lora, cpu_settings, decode_segments, gated_script, pretrained_model, scratch_model

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


class ResumableBatches:
    """A batch sampler that Lightning checkpoints (``state_dict``/``load_state_dict`` on its loader): the
    epoch and the batches served in it, so a run resumed mid-epoch trains on the batches the killed run had
    not reached, in the same order, instead of restarting the epoch."""

    def __init__(self, batches: BucketBatches):
        self.batches = batches
        self.served = 0
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        skip, self.skip = self.skip, 0
        self.served = 0
        for i, batch in enumerate(self.batches):  # each epoch draws its order from (seed, epoch)
            self.served = i + 1
            if i >= skip:
                yield batch


class ResumableLoader(torch.utils.data.DataLoader):
    """A DataLoader over :class:`ResumableBatches`, whose position Lightning saves in every checkpoint."""

    def state_dict(self) -> dict[str, int]:
        """Called as a checkpoint is written (after a training step, at validation), when every batch served
        so far has been trained on: Lightning draws no batch ahead here (measured batch by batch; the resume
        test's equal weights depend on it)."""
        sampler = self.batch_sampler
        return {"epoch": sampler.batches.epoch - 1, "trained": sampler.served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.batch_sampler
        if 0 < state["trained"] < len(sampler):  # mid-epoch: the same epoch's order, the rest of it
            sampler.batches.epoch, sampler.skip = state["epoch"], state["trained"]
        else:
            sampler.batches.epoch = state["epoch"] + 1


class RngState(L.Callback):
    """Torch's RNG states (dropout) saved in every checkpoint and restored on resume, as tensors."""

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def title_tokenizer(catalog: Catalog, config: TitleConfig, folder: Path):
    """The run's tokenizer: the ``init`` checkpoint's, a given folder's, or one trained on the catalog's
    titles (reused from ``folder`` when a resumed run already trained it)."""
    if config.init:
        return load_tokenizer(config.init)
    if config.tokenizer:
        return load_tokenizer(config.tokenizer)
    if (folder / "tokenizer.json").is_file():
        return load_tokenizer(folder)
    return train_tokenizer(catalog.table["title"].tolist(), folder, vocab_size=config.vocab_size, seed=config.seed,
                           num_threads=2)


def fit_title_model(catalog: Catalog, train: Sessions, out_dir: str | Path, config: TitleConfig) -> TitleGenerator:
    """Train on ``train`` (a validation split is carved from it, seeded), save to ``out_dir`` and return the
    generator, attached to ``catalog`` and ready to ``generate``."""
    out = Path(out_dir)
    ckpt_dir, run_dir = out / CHECKPOINTS, out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG_FILE)
    L.seed_everything(config.seed, workers=True, verbose=False)
    fit_idx, valid_idx = title_split(train, config)
    siblings = SiblingTitles(catalog) if config.siblings else None
    grid = GridTitle().fit(catalog) if config.drafts else None
    fit_pairs, val_pairs = (training_pairs(catalog, train.select(idx), config.max_k, config.attributes, config.dedupe,
                                           siblings, config.siblings, grid, config.drafts)
                            for idx in (fit_idx, valid_idx))
    if config.train_ks:
        fit_pairs, val_pairs = (sample_k(pairs, config.train_ks, [config.seed, part])
                                for part, pairs in enumerate((fit_pairs, val_pairs)))
    if config.min_copy_share > 0:  # training pairs only: validation is never filtered by its labels (targets)
        fit_pairs = continued_lines(fit_pairs, config)
    if not fit_pairs.sources or not val_pairs.sources:
        raise ValueError(f"too few usable sessions: {len(fit_pairs.sources)} training and {len(val_pairs.sources)} "
                         "validation pairs (sessions whose next item and an earlier item have titles in the locale)")
    logger.info("title pairs: %d training, %d validation (K=%s, validation by %s)", len(fit_pairs.sources),
                len(val_pairs.sources), config.train_ks or config.k, config.valid_by)
    if config.drafts:
        logger.info("drafts: %.0f%% of training sources hold one; the first is the target in %.1f%% of them",
                    *draft_shares(fit_pairs))

    tokenizer = title_tokenizer(catalog, config, run_dir / "tokenizer")
    vocab_before = len(tokenizer)
    ensure_tokens(tokenizer, edit_tokens(config.max_k, config.drafts) if config.target_format == "edit" else [])
    new_ids = list(range(vocab_before, len(tokenizer)))
    model = pretrained_model(config.init, tokenizer) if config.init else scratch_model(config, tokenizer)
    if config.lora_r > 0:
        model = add_lora(model, config, new_ids)

    collator = PairCollator(tokenizer, config.max_source_length, config.max_target_length)
    fit_data = list(zip(*collator.encode(fit_pairs.sources, decoder_targets(fit_pairs, config))))
    val_data = list(zip(*collator.encode(val_pairs.sources, decoder_targets(val_pairs, config))))
    val_data.sort(key=lambda pair: len(pair[0]))
    fit_loader = ResumableLoader(
        fit_data, batch_sampler=ResumableBatches(BucketBatches([len(s) for s, _ in fit_data], config.batch_size,
                                                               config.seed)),
        collate_fn=collator)
    val_loader = torch.utils.data.DataLoader(val_data, batch_size=2 * config.batch_size, collate_fn=collator)
    n_bleu = min(config.val_bleu_samples, len(val_pairs.sources))  # a seeded sample across locales
    pick = np.sort(np.random.default_rng(config.seed).choice(len(val_pairs.sources), n_bleu, replace=False))
    val_texts = TitlePairs(*([part[i] for i in pick] for part in val_pairs)) if n_bleu else None
    module = TitleModule(model, tokenizer, config, val_texts)

    monitor, mode = (config.select_on, "max" if config.select_on == "val_bleu" else "min")
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_last=True,
                                 save_top_k=1, enable_version_counter=False)
    trainer = L.Trainer(
        accelerator="auto", devices=1, max_steps=config.max_steps, max_epochs=config.max_epochs,
        max_time={"minutes": config.max_minutes} if config.max_minutes else None,
        val_check_interval=config.eval_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        callbacks=[checkpoint, EarlyStopping(monitor=monitor, mode=mode, patience=config.patience), RngState()],
        logger=CSVLogger(out, name="logs"), log_every_n_steps=min(20, len(fit_loader)),
        gradient_clip_val=config.max_grad_norm or None, enable_progress_bar=config.progress, enable_model_summary=False,
    )
    resume = "last" if config.resume and (ckpt_dir / "last.ckpt").exists() else None
    if resume:
        logger.info("resuming from %s", ckpt_dir / "last.ckpt")
    start = time.perf_counter()
    with cpu_settings(config):  # weights_only: a checkpoint is read as tensors and plain values, never code
        trainer.fit(module, fit_loader, val_loader, ckpt_path=resume, weights_only=True)
        seconds = time.perf_counter() - start
        final = trainer.validate(module, val_loader, verbose=False)[0]
        metrics = select_weights(module, checkpoint, monitor, mode, final)
    fit_sessions = train.select(fit_idx)
    survival = WordSurvival().fit(last_titles(catalog, fit_sessions),
                                  catalog.titles(fit_sessions.next_item, fit_sessions.locale), fit_sessions.locale)
    generator = TitleGenerator(module.model, tokenizer, config, survival).fit(catalog)
    if config.target_format == "edit" and (config.edit_gate is None or (config.drafts and config.draft_bias is None)):
        with cpu_settings(config):
            gate, bias, scores = tune_edit_gate(generator, val_pairs, config)
        config = generator.config = dataclasses.replace(config, edit_gate=gate, draft_bias=bias)
        metrics["val_bleu_by_edit_gate"] = {g: v for (b, g), v in scores.items() if b == bias}
        if config.drafts:
            metrics["val_bleu_by_draft_bias"] = {b: v for (b, g), v in scores.items() if g == gate}
            metrics["draft_bias"] = bias
        metrics["edit_gate"] = gate
    generator.save_pretrained(out)
    if val_texts:  # the copy baseline on the same validation sessions, for comparison
        last = [titles[0] for titles in val_texts.titles]
        metrics["val_bleu_last_title"] = float(title_bleu(last, val_texts.targets,
                                                          val_texts.locales).loc["overall", "BLEU"])
    record = {"train_seconds": round(seconds, 1), "global_step": trainer.global_step,
              "train_pairs": len(fit_data), "valid_pairs": len(val_data), **metrics}
    (out / "metrics.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("title model: %d steps in %.0f s, %s; saved to %s", trainer.global_step, seconds,
                ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)), out)
    return generator


def heldout_product_split(sessions: Sessions, share: float, seed: int,
                          max_per_locale: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, valid) holding out a seeded ``share`` of the products: a session validates when its
    next item is held out and it views none before, and trains when it touches none (the rest is unused).

    Why: task-3 titles belong to products the model never met; validating on sessions whose next product
    other training sessions teach rewards memorising the catalog, which the test never does.
    """
    held = np.random.default_rng([seed, 7]).random(int(max(sessions.items.max(initial=0),
                                                           sessions.next_item.max(initial=0))) + 1) < share
    viewed = np.zeros(len(sessions), dtype=bool)
    np.logical_or.at(viewed, sessions.session_index, held[sessions.items])
    target = np.zeros(len(sessions), dtype=bool)
    known = sessions.next_item >= 0
    target[known] = held[sessions.next_item[known]]
    valid = target & ~viewed
    if max_per_locale is not None:
        u = np.random.default_rng([seed, 8]).random(len(sessions))
        for loc in np.unique(sessions.locale):
            idx = np.flatnonzero(valid & (sessions.locale == loc))
            if len(idx) > max_per_locale:
                valid[idx[np.argsort(u[idx], kind="stable")[max_per_locale:]]] = False
    return np.flatnonzero(~target & ~viewed), np.flatnonzero(valid)


def title_split(train: Sessions, config: TitleConfig) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, valid) session indices ``config.valid_by`` asks for."""
    if config.valid_by == "products":
        return heldout_product_split(train, config.heldout_products, config.seed, config.max_valid_per_locale)
    return validation_split(train, config.valid_fraction, config.seed, config.max_valid_per_locale)


def sample_k(pairs: TitlePairs, ks: tuple[int, ...], seed) -> TitlePairs:
    """Pairs whose sources keep only their first K products, K drawn per pair from ``ks`` (seeded)."""
    draws = np.random.default_rng(seed).choice(np.asarray(ks), size=len(pairs.sources))
    cut_sources = []
    for src, k in zip(pairs.sources, draws.tolist()):
        products, rest = split_source(src)
        cut_sources.append(" ".join([f" {SEP} ".join(products.split(f" {SEP} ")[:k]), rest]).strip())
    cut_titles = [ts[:k] for ts, k in zip(pairs.titles, draws.tolist())]
    return pairs._replace(sources=cut_sources, titles=cut_titles)


def tune_edit_gate(generator: TitleGenerator, pairs: TitlePairs, config: TitleConfig
                   ) -> tuple[float, float | None, dict[tuple[float | None, float], float]]:
    """(edit_gate, draft_bias) with the best BLEU on the validation pairs, and every pair's BLEU. Values the
    config fixes stay; the others come from ``gate_grid`` and ``draft_bias_grid`` (ties: the smaller)."""
    biases = config.draft_bias_grid if config.drafts and config.draft_bias is None else (config.draft_bias,)
    gates = config.gate_grid if config.edit_gate is None else (config.edit_gate,)
    survival = [generator.survival_of(loc) for loc in pairs.locales]
    scores = {}
    for bias in sorted(biases, key=lambda b: b or 0.0):
        biased = dataclasses.replace(config, draft_bias=bias)
        segments = decode_segments(generator.model, generator.tokenizer, pairs.sources, biased, progress=False)
        for gate in sorted(gates):
            hyps = [decode_edit(gated_script(segs, gate, surv), ts, ds)
                    for segs, surv, ts, ds in zip(segments, survival, pairs.titles, pairs.drafts)]
            scores[bias, gate] = float(title_bleu(hyps, pairs.targets, pairs.locales).loc["overall", "BLEU"])
    bias, gate = max(scores, key=lambda bg: (scores[bg], -(bg[0] or 0.0), -bg[1]))
    logger.info("edit gate: validation BLEU by (draft_bias, edit_gate) %s -> %s, %s",
                {k: round(v, 4) for k, v in scores.items()}, bias, gate)
    return gate, bias, scores


def continued_lines(pairs: TitlePairs, config: TitleConfig) -> TitlePairs:
    """The pairs whose target keeps at least ``min_copy_share`` of its words from one of its source titles."""
    return pairs.select([copy_share(t, ts) >= config.min_copy_share for t, ts in zip(pairs.targets, pairs.titles)])


def draft_shares(pairs: TitlePairs) -> tuple[float, float]:
    """(% of pairs holding a draft, % of those whose first draft is their target)."""
    held = [(ds[0] == t) for t, ds in zip(pairs.targets, pairs.drafts) if ds]
    return 100.0 * len(held) / max(len(pairs.sources), 1), 100.0 * sum(held) / max(len(held), 1)


def decoder_targets(pairs: TitlePairs, config: TitleConfig) -> list[str]:
    """What the decoder learns to write: the titles, or their edit scripts."""
    if config.target_format == "edit":
        return [encode_edit(t, ts, ds) for t, ts, ds in zip(pairs.targets, pairs.titles, pairs.drafts)]
    return pairs.targets


def select_weights(module: TitleModule, checkpoint: ModelCheckpoint, monitor: str, mode: str,
                   final: dict[str, Any]) -> dict[str, Any]:
    """Keep the final weights or the best checkpoint's, whichever scores better on ``monitor``."""
    final_score = float(final[monitor])
    best = checkpoint.best_model_score
    better = best is not None and (float(best) > final_score if mode == "max" else float(best) < final_score)
    if better and checkpoint.best_model_path:
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state, strict=True)
        logger.info("keeping the best checkpoint (%s %.4f) over the final weights (%.4f)", monitor, float(best),
                    final_score)
        finals = {f"final_{k}": float(v) for k, v in final.items()}
        return {monitor: float(best), "selected": "best checkpoint", **finals}
    return {**{k: float(v) for k, v in final.items()}, "selected": "final weights"}


def train_titles(data_dir: str | Path, out_dir: str | Path, config_path: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> Path:
    """``recformer-m2 train-titles``: train on a data folder's training sessions; returns the model folder."""
    config = load_config(TitleConfig, config_path, overrides)
    config.extra = {**config.extra, "data": str(data_dir)}
    data = M2Data(data_dir)
    fit_title_model(data.catalog, data.train, out_dir, config)
    return Path(out_dir)
