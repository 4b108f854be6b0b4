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
from .heuristics import WordSurvival, last_titles
from .edits import copy_share, decode_edit, edit_tokens, encode_edit
from .inputs import SEP, BucketBatches, PairCollator, SiblingTitles, ensure_tokens, split_source, training_pairs
from .model import TitleModule, add_lora, cpu_settings, decode_segments, gated_script, pretrained_model, scratch_model

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


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
    fit_pairs, val_pairs = (training_pairs(catalog, train.select(idx), config.max_k, config.attributes, config.dedupe,
                                           siblings, config.siblings)
                            for idx in (fit_idx, valid_idx))
    if config.train_ks:
        fit_pairs, val_pairs = (sample_k(pairs, config.train_ks, [config.seed, part])
                                for part, pairs in enumerate((fit_pairs, val_pairs)))
    if config.min_copy_share > 0:
        fit_pairs, val_pairs = continued_lines(fit_pairs, config), continued_lines(val_pairs, config)
    if not fit_pairs[0] or not val_pairs[0]:
        raise ValueError(f"too few usable sessions: {len(fit_pairs[0])} training and {len(val_pairs[0])} validation "
                         "pairs (sessions whose next item and an earlier item have titles in the locale)")
    logger.info("title pairs: %d training, %d validation (K=%s, validation by %s)", len(fit_pairs[0]),
                len(val_pairs[0]), config.train_ks or config.k, config.valid_by)

    tokenizer = title_tokenizer(catalog, config, run_dir / "tokenizer")
    vocab_before = len(tokenizer)
    ensure_tokens(tokenizer, edit_tokens(config.max_k) if config.target_format == "edit" else [])
    new_ids = list(range(vocab_before, len(tokenizer)))
    model = pretrained_model(config.init, tokenizer) if config.init else scratch_model(config, tokenizer)
    if config.lora_r > 0:
        model = add_lora(model, config, new_ids)

    collator = PairCollator(tokenizer, config.max_source_length, config.max_target_length)
    fit_data = list(zip(*collator.encode(fit_pairs[0], decoder_targets(fit_pairs, config))))
    val_data = list(zip(*collator.encode(val_pairs[0], decoder_targets(val_pairs, config))))
    val_data.sort(key=lambda pair: len(pair[0]))
    fit_loader = torch.utils.data.DataLoader(
        fit_data, batch_sampler=BucketBatches([len(s) for s, _ in fit_data], config.batch_size, config.seed),
        collate_fn=collator)
    val_loader = torch.utils.data.DataLoader(val_data, batch_size=2 * config.batch_size, collate_fn=collator)
    n_bleu = min(config.val_bleu_samples, len(val_pairs[0]))  # a seeded sample across locales
    pick = np.sort(np.random.default_rng(config.seed).choice(len(val_pairs[0]), n_bleu, replace=False))
    val_texts = tuple([part[i] for i in pick] for part in val_pairs) if n_bleu else None
    module = TitleModule(model, tokenizer, config, val_texts)

    monitor, mode = (config.select_on, "max" if config.select_on == "val_bleu" else "min")
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_last=True,
                                 save_top_k=1, enable_version_counter=False)
    trainer = L.Trainer(
        accelerator="auto", devices=1, max_steps=config.max_steps, max_epochs=config.max_epochs,
        max_time={"minutes": config.max_minutes} if config.max_minutes else None,
        val_check_interval=config.eval_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        callbacks=[checkpoint, EarlyStopping(monitor=monitor, mode=mode, patience=config.patience)],
        logger=CSVLogger(out, name="logs"), log_every_n_steps=min(20, len(fit_loader)),
        gradient_clip_val=config.max_grad_norm or None, enable_progress_bar=config.progress, enable_model_summary=False,
    )
    resume = "last" if config.resume and (ckpt_dir / "last.ckpt").exists() else None
    start = time.perf_counter()
    with cpu_settings(config):
        trainer.fit(module, fit_loader, val_loader, ckpt_path=resume)
        seconds = time.perf_counter() - start
        final = trainer.validate(module, val_loader, verbose=False)[0]
        metrics = select_weights(module, checkpoint, monitor, mode, final)
    fit_sessions = train.select(fit_idx)
    survival = WordSurvival().fit(last_titles(catalog, fit_sessions),
                                  catalog.titles(fit_sessions.next_item, fit_sessions.locale), fit_sessions.locale)
    generator = TitleGenerator(module.model, tokenizer, config, survival).fit(catalog)
    if config.target_format == "edit" and config.edit_gate is None:
        with cpu_settings(config):
            gate, gate_scores = tune_edit_gate(generator, val_pairs, config)
        config = generator.config = dataclasses.replace(config, edit_gate=gate)
        metrics["val_bleu_by_edit_gate"] = gate_scores
        metrics["edit_gate"] = gate
    generator.save_pretrained(out)
    if val_texts:  # the copy baseline on the same validation sessions, for comparison
        last = [titles[0] for titles in val_texts[3]]
        metrics["val_bleu_last_title"] = float(title_bleu(last, val_texts[1], val_texts[2]).loc["overall", "BLEU"])
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


def sample_k(pairs: tuple[list, ...], ks: tuple[int, ...], seed) -> tuple[list, ...]:
    """Pairs whose sources keep only their first K products, K drawn per pair from ``ks`` (seeded)."""
    sources, targets, locales, titles = pairs
    draws = np.random.default_rng(seed).choice(np.asarray(ks), size=len(sources))
    cut_sources = []
    for src, k in zip(sources, draws.tolist()):
        products, sibs = split_source(src)
        cut_sources.append(" ".join([f" {SEP} ".join(products.split(f" {SEP} ")[:k]), sibs]).strip())
    cut_titles = [ts[:k] for ts, k in zip(titles, draws.tolist())]
    return cut_sources, targets, locales, cut_titles


def tune_edit_gate(generator: TitleGenerator, pairs: tuple[list, ...], config: TitleConfig
                   ) -> tuple[float, dict[str, float]]:
    """The ``gate_grid`` value of ``edit_gate`` with the best BLEU on the validation pairs (ties: the
    smaller), and every value's BLEU."""
    sources, targets, locales, titles = pairs
    segments = decode_segments(generator.model, generator.tokenizer, sources, config, progress=False)
    survival = [generator.survival_of(loc) for loc in locales]
    scores = {}
    for gate in sorted(config.gate_grid):
        hyps = [decode_edit(gated_script(segs, gate, surv), ts) for segs, surv, ts in zip(segments, survival, titles)]
        scores[gate] = float(title_bleu(hyps, targets, locales).loc["overall", "BLEU"])
    best = max(scores, key=lambda g: (scores[g], -g))
    logger.info("edit gate: validation BLEU by edit_gate %s -> %.2f", {g: round(v, 4) for g, v in scores.items()}, best)
    return best, {str(g): v for g, v in scores.items()}


def continued_lines(pairs: tuple[list, ...], config: TitleConfig) -> tuple[list, ...]:
    """The pairs whose target keeps at least ``min_copy_share`` of its words from one of its source titles."""
    keep = [copy_share(t, ts) >= config.min_copy_share for t, ts in zip(pairs[1], pairs[3])]
    return tuple([x for x, ok in zip(part, keep) if ok] for part in pairs)


def decoder_targets(pairs: tuple[list, ...], config: TitleConfig) -> list[str]:
    """What the decoder learns to write: the titles, or their edit scripts."""
    _, targets, _, titles = pairs
    if config.target_format == "edit":
        return [encode_edit(t, ts) for t, ts in zip(targets, titles)]
    return targets


def select_weights(module: TitleModule, checkpoint: ModelCheckpoint, monitor: str, mode: str,
                   final: dict[str, Any]) -> dict[str, Any]:
    """Keep the final weights or the best checkpoint's, whichever scores better on ``monitor``."""
    final_score = float(final[monitor])
    best = checkpoint.best_model_score
    better = best is not None and (float(best) > final_score if mode == "max" else float(best) < final_score)
    if better and checkpoint.best_model_path:
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
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
