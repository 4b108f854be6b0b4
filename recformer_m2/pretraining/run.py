"""The pretraining loop: one DeepSpeed engine, validation, checkpoints and exact resume."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import save_config
from ..data import Catalog, M2Data
from ..encode import RecformerEncoder, catalog_items
from ..item_dataset import preload_items
from ..models import RecformerForPretraining, SessionCollator
from ..tokenizer import load_tokenizer, train_tokenizer
from ..models.folders import check_resume_config
from ..run_lock import RunLockedError, output_lock
from .checkpoints import export_checkpoint, latest_tag, load_checkpoint, resume_tag, save_checkpoint, saved_run_config
from .config import CHECKPOINTS, FINAL, METRICS_FILE, PretrainConfig, model_config
from .data import ItemTable, MicroBatches, PretrainDataset, PretrainExamples, batch_loader, epoch_batches, prepare_data
from .distributed import (DistEnv, deepspeed_config, init_distributed, parameter_groups, release_shm_buffers,
                          resolve_precision)
from .validation import _append_metrics, _truncate_metrics, validate

logger = logging.getLogger(__name__)

RESUME_IGNORED = ("log_every", "num_workers", "keep_checkpoints", "eval_batch_size", "encode_batch_size")
"""PretrainConfig fields a resumed run may change: they do not change the weights it trains."""


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
               if k in ours and k not in ("transformers_version", "architectures") and ours[k] != v}
    if differs:
        logger.warning("--init %s: architecture from its config.json; these fields of the pretraining config's "
                       "model are ignored (init value, config value): %s", init_dir, differs)
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but {init_dir} has vocab_size "
                         f"{model.config.vocab_size}")
    return model


def _setup_logging(env: DistEnv) -> None:
    """Progress from rank 0 only; the other ranks report warnings and errors."""
    logging.getLogger("recformer_m2").setLevel(logging.INFO if env.is_main else logging.WARNING)


class TableRefresher:
    """Keeps the model's frozen item table (``PretrainConfig.table_negatives``) encoded by recent weights."""

    def __init__(self, module: RecformerForPretraining, tokenizer, catalog: Catalog, table: ItemTable,
                 config: PretrainConfig, examples: PretrainExamples) -> None:
        self.module, self.table, self.config = module, table, config
        self.items = catalog_items(catalog, table.rows)
        self.bias = torch.from_numpy(config.table_prior * table.log_counts(examples)) if config.table_prior else None
        self.encoder = RecformerEncoder(module.recformer, tokenizer, batch_size=config.encode_batch_size)
        self.step: int | None = None

    def __call__(self, step: int) -> None:
        """Re-encode at the first call of a run and then at every multiple of ``table_refresh_steps``."""
        if self.step == step or (self.step is not None and step % self.config.table_refresh_steps):
            return
        start = time.perf_counter()
        embeddings = self.encoder.encode_items(self.items)  # puts the model in eval mode
        self.module.set_item_embeddings(torch.from_numpy(embeddings), torch.from_numpy(self.table.locale), self.bias)
        self.module.train()
        self.step = step
        logger.info("item table of %d products encoded at step %d in %.1f s", len(self.items), step,
                    time.perf_counter() - start)


def _config_values(config: PretrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def run_pretraining(config: PretrainConfig, data_dir: str | Path, out_dir: str | Path,
                    deepspeed_json: str | Path, tokenizer_dir: str | Path | None = None,
                    init_dir: str | Path | None = None, stop_after_step: int | None = None,
                    force_new_config: bool = False) -> Path:
    """Pretrain, resuming from ``OUT/checkpoints`` when a checkpoint is there; returns ``OUT/final``.

    Resumes from the newest readable checkpoint (an older one, with a warning, when the newest is damaged);
    a resume under a changed config is refused naming the fields unless ``force_new_config``; rank 0 holds
    ``OUT/run.lock``, so a second live run into the same OUT is refused.
    ``stop_after_step`` is a crash drill: every rank ends with ``os._exit(1)`` right after the
    checkpoint of that step is complete, as if killed.
    """
    env = init_distributed()
    _setup_logging(env)
    out = Path(out_dir)
    with contextlib.ExitStack() as stack:
        locked = torch.ones(1, device=env.device)
        refusal = None
        if env.is_main:
            try:
                stack.enter_context(output_lock(out))
            except RunLockedError as err:
                refusal, locked[0] = err, 0
        dist.broadcast(locked, src=0)  # every rank stops, not rank 0 alone
        if not locked.item():
            raise refusal or RunLockedError(out, f"{out} is in use by another live run (rank 0 holds no lock)")
        return _run_pretraining(config, data_dir, out, deepspeed_json, tokenizer_dir, init_dir, stop_after_step,
                                force_new_config, env)


def _run_pretraining(config: PretrainConfig, data_dir: str | Path, out: Path, deepspeed_json: str | Path,
                     tokenizer_dir: str | Path | None, init_dir: str | Path | None, stop_after_step: int | None,
                     force_new_config: bool, env: DistEnv) -> Path:
    import deepspeed

    checkpoint_dir = out / CHECKPOINTS
    metrics_path = out / METRICS_FILE
    tag = resume_tag(checkpoint_dir, env.world_size)  # before anything in OUT is rewritten
    saved = None if tag is None else saved_run_config(checkpoint_dir, tag)
    if saved is not None:
        check_resume_config(checkpoint_dir / tag, saved, _config_values(config), force_new_config, RESUME_IGNORED)
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
    atexit.register(release_shm_buffers, env)  # also when the run fails (initialize creates the buffer)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=parameter_groups(model, config.weight_decay),
                                           config=ds_config)
    module: RecformerForPretraining = engine.module
    gas = config.gradient_accumulation_steps
    collator = SessionCollator(tokenizer, module.config, config.mlm_probability, config.whole_word_masking)
    table = ItemTable.of_locales(data.catalog, config.locales) if config.table_negatives else None
    train_set = PretrainDataset(data.catalog, data.train, None if table is None else table.index)
    refresh = None if table is None else TableRefresher(module, tokenizer, data.catalog, table, config, data.train)
    train_lengths = np.minimum(np.diff(data.train.offsets), module.config.max_item_embeddings - 1)  # items kept
    eval_collator = SessionCollator(tokenizer, module.config, config.mlm_probability, config.whole_word_masking)
    if table is not None:  # every product of the locales is read (the table); else those of the examples
        read = table.rows
    else:
        read = np.unique(np.concatenate([data.train.rows, data.train.next_rows, data.valid.rows, data.valid.next_rows]))
    collators = [collator, eval_collator] + ([refresh.encoder.collator] if refresh is not None else [])
    preload_items([c.item_tokenizer for c in collators], catalog_items(data.catalog, read))  # tokenised once
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
    if tag is not None:
        client = load_checkpoint(engine, checkpoint_dir, tag, env)
        if saved is None:  # a checkpoint of an earlier version: its config is in the client state
            check_resume_config(checkpoint_dir / tag, client.get("pretrain_config", {}), _config_values(config),
                                force_new_config, RESUME_IGNORED)
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
            if refresh is not None and micro % gas == 0:
                refresh(step)
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
        export_checkpoint(checkpoint_dir, final, latest_tag(checkpoint_dir))  # the one this run wrote last
    dist.barrier()
    release_shm_buffers(env)
    return final
