"""Train an ID baseline on an Amazon-M2 folder, save it as a folder, load it as a ``SessionRecommender``.

Output folder of a run (``train_baseline``):
- ``model.pt`` (best weights), ``config.json`` (its ``BaselineConfig``, reusable as ``--config``),
  ``model.json`` (name, task, mode, locales, vocabulary size), ``vocab.txt`` (item id of index 1, 2, ...);
- ``checkpoints/{best,last}.ckpt`` (Lightning), ``history.json``, ``logs/``;
- ``pretrain/`` with the same files in ``finetune`` mode.

Modes (task 2 as in the Amazon-M2 paper's Table 4): ``supervised`` trains on the task's locales only;
``finetune`` pretrains on UK/DE/JP, then trains on ES/FR/IT starting from the pretrained weights, where
products of both vocabularies (same id) keep their learned embedding and new ones start fresh.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from tqdm.auto import tqdm

from recformer_m2.config import load_config, save_config
from recformer_m2.constants import LOCALES, TASK_LOCALES, TOP_K
from recformer_m2.data import Catalog, M2Data, Sessions, validation_split
from recformer_m2.heuristics import SessionRecommender

from .base import SessionModel
from .config import BaselineConfig
from .data import PAD, ItemVocab, SessionExamples, sessions_to_vocab
from .registry import MODELS, build_model
from .training import FitResult, fit, masked_scores

logger = logging.getLogger(__name__)

MODES = ("supervised", "finetune")


def allowed_items(catalog: Catalog, vocab: ItemVocab, locale_mask: bool) -> torch.Tensor:
    """(locales, N) bool: vocabulary items that may be recommended in each locale: known to the catalog
    and, with ``locale_mask``, sold in that locale."""
    codes = np.concatenate([[-1], catalog.codes(vocab.ids)])  # (N,) catalog code of each index
    known = codes >= 0
    if not locale_mask:
        return torch.from_numpy(np.tile(known, (len(LOCALES), 1)))
    rows = np.stack([catalog.rows(np.maximum(codes, 0), loc) >= 0 for loc in range(len(LOCALES))])
    return torch.from_numpy(rows & known)


def transfer_weights(source: SessionModel, source_vocab: ItemVocab, target: SessionModel, target_vocab: ItemVocab) -> int:
    """Copy every weight of ``source`` into ``target``; item-embedding rows only for ids in both
    vocabularies (the others keep ``target``'s fresh initialisation). Returns how many ids were shared."""
    source_state, target_state = source.state_dict(), target.state_dict()
    if source_state.keys() != target_state.keys():
        raise ValueError(f"cannot transfer weights: parameter names differ: {sorted(source_state.keys() ^ target_state.keys())}")
    key = "item_embedding.weight"
    for name, value in source_state.items():
        if name != key and value.shape != target_state[name].shape:
            raise ValueError(f"cannot transfer {name}: shape {tuple(value.shape)} vs {tuple(target_state[name].shape)}")
        if name != key:
            target_state[name] = value.clone()
    source_index = source_vocab.index_of(target_vocab.ids)  # (N_target - 1,) index in source, PAD if absent
    shared = np.flatnonzero(source_index != PAD)
    rows = target_state[key].clone()
    rows[torch.from_numpy(shared + 1)] = source_state[key][torch.from_numpy(source_index[shared])]
    target_state[key] = rows
    target.load_state_dict(target_state)
    return len(shared)


def train_on_sessions(
    name: str,
    config: BaselineConfig,
    catalog: Catalog,
    train: Sessions,
    out_dir: str | Path,
    valid: Sessions | None = None,
    vocab: ItemVocab | None = None,
    init: "BaselineRecommender | None" = None,
    meta: dict[str, Any] | None = None,
) -> FitResult:
    """One training stage on sessions of ``catalog`` codes, saved as a loadable folder in ``out_dir``.

    ``valid``: held-out sessions for early stopping (default: ``validation_split`` of ``train``).
    ``vocab``: the item vocabulary (default: the items of the sessions trained on). ``init``: a trained
    baseline to start from (``transfer_weights``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown ID baseline {name!r}; choose from {sorted(MODELS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if valid is None:
        fit_idx, valid_idx = validation_split(train, config.valid_fraction, config.seed, config.max_valid_per_locale)
        train, valid = train.select(fit_idx), train.select(valid_idx)
    vocab = vocab if vocab is not None else ItemVocab.from_sessions(catalog, train)
    code_to_index = vocab.index_of(catalog.ids)
    train_examples = SessionExamples.for_training(sessions_to_vocab(train, code_to_index), config.augment)
    # every held-out session, also those whose target or items the vocabulary lacks (misses or guesses, as on
    # test): validation is never filtered by its labels
    valid_examples = SessionExamples.for_prediction(sessions_to_vocab(valid, code_to_index))
    logger.info("%s: %d items, %d training examples from %d sessions, %d validation sessions",
                name, len(vocab) - 1, len(train_examples), len(train), len(valid_examples))
    torch.manual_seed(config.seed)
    model = build_model(name, len(vocab), config)
    if init is not None:
        shared = transfer_weights(init.model, init.vocab, model, vocab)
        logger.info("%s: started from a pretrained model; %d of %d items share its embeddings", name, shared, len(vocab) - 1)
    allowed = allowed_items(catalog, vocab, config.locale_mask) if config.locale_mask else None
    result = fit(model, train_examples, valid_examples, config, out, allowed)
    torch.save({"state_dict": model.state_dict()}, out / "model.pt")
    save_config(config, out / "config.json")
    vocab.save(out / "vocab.txt")
    info = {"model": name, "num_items": len(vocab), "best_valid_mrr@100": result.best_mrr,
            "seconds_per_epoch": result.seconds_per_epoch, **(meta or {})}
    (out / "model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return result


def train_baseline(
    model: str,
    data_dir: str | Path,
    task: int,
    mode: str,
    out_dir: str | Path,
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Train ID baseline ``model`` for a task (1: UK/DE/JP, 2: ES/FR/IT) in ``mode`` on the training
    sessions of ``data_dir`` (never its test ground truth); returns ``out_dir``, loadable by ``load_baseline``."""
    if task not in (1, 2):
        raise ValueError(f"task ({task}) must be 1 or 2: the ID baselines predict next items, not titles")
    if mode not in MODES:
        raise ValueError(f"mode ({mode!r}) must be one of {MODES}")
    if mode == "finetune" and task != 2:
        raise ValueError("finetune mode pretrains on UK/DE/JP and finetunes on ES/FR/IT: it is for task 2")
    config = load_config(BaselineConfig, config_path, overrides)
    data, out = M2Data(data_dir), Path(out_dir)
    meta = {"task": task, "mode": mode, "data": str(data_dir)}
    init = None
    if mode == "finetune":
        pre_dir = out / "pretrain"
        if config.resume and (pre_dir / "model.pt").exists():
            logger.info("pretraining already done: %s", pre_dir)
        else:
            source = data.train.select(data.train.in_locales(TASK_LOCALES[1]))
            train_on_sessions(model, config, data.catalog, source, pre_dir,
                              meta={**meta, "stage": "pretrain", "locales": list(TASK_LOCALES[1])})
        init = load_baseline(pre_dir)
    sessions = data.train.select(data.train.in_locales(TASK_LOCALES[task]))
    train_on_sessions(model, config, data.catalog, sessions, out, init=init,
                      meta={**meta, "stage": mode, "locales": list(TASK_LOCALES[task])})
    return out


PIPELINE_CONFIG = BaselineConfig(
    embedding_size=32, hidden_size=64, inner_size=64, transformer_layers=1, max_epochs=4, patience=1,
    batch_size=256, max_valid_per_locale=300, resume=False, progress=False,
)
"""What the main job trains the baselines with: half RecBole's sizes, a few epochs, a time cap per run
(``max_minutes``, set by ``pipeline_baselines`` from its budget), no resume (finished runs are skipped)."""

STAGES = ((1, "supervised"), (2, "finetune"), (2, "supervised"))
"""(task, mode) of each model's runs, in training order: task 2's finetune starts from the task-1 model."""


@contextmanager
def _lightning_quiet() -> Iterator[None]:
    """Lightning's per-run INFO lines (accelerator found, ...) hidden: 15 runs would repeat them 15 times."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        lightning_logger.setLevel(level)


def _stage_dir(out: Path, name: str, task: int, mode: str) -> Path:
    return out / (f"task1/{name}" if task == 1 else f"task2-{mode}/{name}")


def pipeline_baselines(
    folder: str | Path,
    out: str | Path,
    models: tuple[str, ...] | list[str] = ("gru4rec", "narm", "stamp", "srgnn", "core"),
    budget_seconds: float = 360.0,
    config: BaselineConfig | None = None,
) -> dict[int, dict[str, tuple[str, Path]]]:
    """Train every baseline of ``models`` for task 1 (UK/DE/JP) and both task-2 modes (ES/FR/IT
    supervised; pretrained on UK/DE/JP, then finetuned), within about ``budget_seconds`` of wall clock.

    Only the training sessions of ``folder`` are read (validation is carved from them), never a test file.
    The task-1 model is the pretrained model of task 2's finetune mode: both train on the same UK/DE/JP
    sessions with the same settings. The budget is shared out as the runs go, in proportion to the runs'
    numbers of training sessions: each run may train for its share of the budget left, minus the largest
    overhead (setup, validation, saving) seen so far, at least 5 s; time a run leaves unused goes to the
    runs after it. A finished run leaves ``done`` in its folder and is skipped next time (not counted).
    ``config``: the settings (default ``PIPELINE_CONFIG``; its ``max_minutes`` is replaced per run).

    Returns ``{1: {name: (name, folder)}, 2: {"name (supervised)": ..., "name (pretrain+ft)": ...}}``,
    each folder loadable by ``load_baseline`` (``ranking_method(name, data, model=folder)``).
    """
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown ID baseline(s) {unknown}; choose from {sorted(MODELS)}")
    base, out = config or PIPELINE_CONFIG, Path(out)
    data = M2Data(folder)
    sessions = {task: data.train.select(data.train.in_locales(TASK_LOCALES[task])) for task in (1, 2)}
    runs = [(name, task, mode) for name in models for task, mode in STAGES]
    todo = [run for run in runs if not (_stage_dir(out, *run) / "done").exists()]
    weight = {task: max(len(s), 1) for task, s in sessions.items()}  # time follows the training set's size
    start, overhead = time.perf_counter(), 0.0
    for i, (name, task, mode) in enumerate(todo):
        left = budget_seconds - (time.perf_counter() - start)
        share = left * weight[task] / sum(weight[t] for _, t, _ in todo[i:])
        cap = max(share - overhead, 5.0)
        if left < 5.0 * (len(todo) - i):
            logger.warning("%s task %d %s: baseline budget (%.0f s) spent; training for %.0f s anyway",
                           name, task, mode, budget_seconds, cap)
        run_dir = _stage_dir(out, name, task, mode)
        pretrained = _stage_dir(out, name, 1, "supervised") if mode == "finetune" else None
        init = load_baseline(pretrained) if pretrained is not None else None
        run_start = time.perf_counter()
        with _lightning_quiet():
            result = train_on_sessions(
                name, replace(base, max_minutes=cap / 60), data.catalog, sessions[task], run_dir, init=init,
                meta={"task": task, "mode": mode, "data": str(folder), "stage": mode,
                      "locales": list(TASK_LOCALES[task]), "training_cap_seconds": cap,
                      **({"pretrained_from": str(pretrained)} if pretrained is not None else {})},
            )
        seconds = time.perf_counter() - run_start
        trained = sum(h["train_seconds"] for h in result.history)
        overhead = max(overhead, seconds - trained)
        (run_dir / "done").write_text(json.dumps({"seconds": seconds, "train_seconds": trained}) + "\n",
                                      encoding="utf-8")
        logger.info("%s task %d %s: %.0f s (%.0f s training, cap %.0f s), validation MRR@100 %.4f",
                    name, task, mode, seconds, trained, cap, result.best_mrr)
    logger.info("ID baselines: %d runs trained in %.0f s (budget %.0f s), %d already done",
                len(todo), time.perf_counter() - start, budget_seconds, len(runs) - len(todo))
    return {
        1: {name: (name, _stage_dir(out, name, 1, "supervised")) for name in models},
        2: {f"{name} ({label})": (name, _stage_dir(out, name, 2, mode)) for name in models
            for mode, label in (("supervised", "supervised"), ("finetune", "pretrain+ft"))},
    }


class BaselineRecommender(SessionRecommender):
    """A trained ID baseline as a ``SessionRecommender``: ``fit(catalog, train)`` only binds the catalog
    (maps the vocabulary to its codes); ``recommend`` ranks the whole vocabulary."""

    def __init__(self, name: str, model: SessionModel, vocab: ItemVocab, config: BaselineConfig):
        self.name, self.model, self.vocab, self.config = name, model.eval(), vocab, config
        self._code_to_index: np.ndarray | None = None

    def fit(self, catalog: Catalog, train: Sessions | None = None) -> "BaselineRecommender":
        self._code_to_index = self.vocab.index_of(catalog.ids)  # (num_ids,) vocabulary index, PAD if absent
        self._index_to_code = np.concatenate([[-1], catalog.codes(self.vocab.ids)]).astype(np.int32)  # (N,)
        self._allowed = allowed_items(catalog, self.vocab, self.config.locale_mask)
        return self

    @torch.no_grad()
    def recommend(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        """(n, k) int32 catalog codes, best first, -1 padded; never a session item nor an unknown id."""
        if self._code_to_index is None:
            raise RuntimeError("bind a catalog first: recommender.fit(catalog, train)")
        examples = SessionExamples.for_prediction(sessions_to_vocab(sessions, self._code_to_index))
        collate = type(self.model).collator(examples, self.config.max_length)
        order = np.argsort(examples.ends - examples.starts, kind="stable")  # similar lengths batch together
        device = next(self.model.parameters()).device
        allowed = self._allowed.to(device)
        out = np.full((len(examples), k), -1, dtype=np.int32)
        size = self.config.eval_batch_size
        for start in tqdm(range(0, len(order), size), desc=f"{self.name}: recommend", disable=not progress):
            index = order[start:start + size]
            batch = move_data_to_device(collate(index), device)
            scores = masked_scores(self.model, batch, self.config.exclude_session_items, allowed)
            top = scores.topk(min(k, scores.size(1)), dim=1)
            codes = self._index_to_code[top.indices.cpu().numpy()]
            codes[~torch.isfinite(top.values).cpu().numpy()] = -1
            out[index, :codes.shape[1]] = codes
        return out


def load_baseline(out_dir: str | Path, catalog: Catalog | None = None) -> BaselineRecommender:
    """The best model of a ``train_baseline`` folder; pass ``catalog`` (or call ``fit``) before ``recommend``."""
    out = Path(out_dir)
    info = json.loads((out / "model.json").read_text(encoding="utf-8"))
    config = load_config(BaselineConfig, out / "config.json")
    vocab = ItemVocab.load(out / "vocab.txt")
    if len(vocab) != info["num_items"]:
        raise ValueError(f"{out}: vocab.txt has {len(vocab)} entries with padding, model.json says {info['num_items']}")
    model = build_model(info["model"], len(vocab), config)
    model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True)["state_dict"])
    recommender = BaselineRecommender(info["model"], model, vocab, config)
    return recommender.fit(catalog) if catalog is not None else recommender


__all__ = ["BaselineRecommender", "load_baseline", "pipeline_baselines", "train_baseline", "train_on_sessions", "transfer_weights"]
