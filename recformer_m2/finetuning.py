"""Two-stage Recformer finetuning for next-item prediction (Li et al. 2023, section 3.4), on Lightning.

Stage 1: before each epoch every candidate item is re-encoded with the current encoder into a frozen
item table (:class:`ItemTableRefresh`, a Lightning callback); the session encoder then trains against it
(full-softmax cross-entropy over the table). Stage 2: the table of the best stage-1 epoch stays frozen and
the encoder keeps training. Both stages are one :class:`SeqRecModule` fitted by a ``lightning.Trainer``,
the same stack as the ID baselines and the title generator: a DataLoader whose worker processes run the
``SessionCollator`` (examples from :mod:`recformer_m2.session_dataset`), AdamW with a
``transformers.get_scheduler`` schedule (``constant`` by default: the learning rate of the earlier
hand-written loop), bf16 autocast on GPUs, gradient accumulation and clipping, and multi-GPU data
parallelism through the launcher::

    torchrun --nproc_per_node 4 finetune/finetune.py --data DIR --pretrained DIR --out DIR --devices 4 --strategy ddp

(every rank refreshes the table and validates on identical weights, so all take the same decisions
without communicating; rank 0 writes). Lightning was chosen over the DeepSpeed engine of pretraining
because the models are small (ZeRO sharding buys nothing) and the ID baselines and titles already use it.

Early stopping watches validation MRR@100 (a split carved from the training sessions, never the test
ground truth; :class:`RetrievalValidation`, at the end of every epoch); the best model lands in
``OUT/best``, written by ``RecformerForSeqRec.save_pretrained`` (weights, item table with ids and prior,
tokenizer, and the retrieval weights chosen on validation in its config: the newest item's table row and
the title similarity fused into retrieval, :mod:`recformer_m2.lexical`; ``AutoModelForSeqRec.from_pretrained``
restores it whole); ``OUT/checkpoints/last.safetensors`` (tensors, with the scalars, the learning-rate
schedule and the run's configuration as JSON in its header: nothing is unpickled, whereas Lightning's own
``.ckpt`` is a pickle) is rewritten atomically after every epoch so a crashed run resumes from the last
finished epoch. A resume with another configuration is refused, naming the fields that differ, unless
``force_new_config``; ``OUT/run.lock`` refuses a second live run into the same OUT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .config import load_config, save_config
from .constants import LOCALES, TASK_LOCALES, TOP_K
from .data import Catalog, M2Data, Sessions, locale_split
from .encode import RecformerEncoder, catalog_items, newest_item_rows, session_items
from .heuristics import occurrence_counts
from .index import ItemIndex, retrieval_queries
from .item_dataset import preload_items
from .lexical import TitleSimilarity, fused_top_k
from .metrics import rank_metrics
from .models import TABLE_FILE, RecformerConfig, RecformerForSeqRec, RecformerModel
from .models.folders import ModelFolderError, check_model_folder, check_resume_config
from .run_lock import output_lock
from .session_dataset import EpochBatches, FinetuneCollate, FinetuneExamples
from .state_files import read_state, read_state_values, save_state

logger = logging.getLogger(__name__)

CONFIG_FILE = "finetune_config.json"
"""Written into ``best`` (and OUT): a folder holding it is a finetuning output, which must carry its item table."""
LAST = "last.safetensors"
STAGE1_BEST = "stage1_best.safetensors"
OLD_PICKLES = ("last.pt", "stage1_best.pt")
"""Resume files of earlier versions: pickles, never loaded (unpickling runs whatever code the file names)."""
RESUME_IGNORED = ("device", "num_workers")
"""FinetuneConfig fields a resumed run may change: they do not change what is computed."""


@dataclass
class FinetuneConfig:
    """Finetuning settings. Override order: command line > ``--config`` JSON file > these defaults."""

    task: int = 2
    """Amazon-M2 task whose locales are trained on: 2 = ES/FR/IT, 1 = UK/DE/JP."""
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    stage1_epochs: int = 4
    stage2_epochs: int = 2
    patience: int = 2
    """Epochs without a better validation MRR@100 before a stage stops."""
    valid_fraction: float = 0.1
    max_valid_per_locale: int = 500
    split_seed: int = 0
    train_fraction: float = 1.0
    """Train on this seeded share of the training sessions (whole sessions, drawn after the validation split
    is carved, so validation is the same): learning curves, e.g. how much pretraining gains when the
    target locales have little data."""
    seed: int = 0
    num_negatives: int | None = None
    """None: full softmax over the item table; else this many sampled negatives (never the positive)."""
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    """A ``transformers.get_scheduler`` name (``constant``, ``linear``, ``cosine``, ...), restarted at each stage
    over its epochs; ``constant`` is the fixed learning rate finetuning has always trained with."""
    warmup_ratio: float = 0.0
    """Share of a stage's optimizer steps spent warming the learning rate up (schedules that warm up)."""
    accumulate_grad_batches: int = 1
    """Optimizer step every this many batches (effective batch: ``batch_size`` x this x devices)."""
    group_by_length: int = 50
    """Sort training sessions by length within windows of this many batches, then shuffle the batches
    (:func:`~recformer_m2.batching.length_grouped`): less padding per batch; 0 or 1 keeps a random order."""
    encode_batch_size: int = 128
    popularity_prior: bool = True
    """Add a learned weight times log(1 + the item's occurrences in the training sessions) to every score
    (``RecformerForSeqRec.item_bias``): how often a product is bought is not in its text. Saved with the
    item table as a per-item ``bias`` that retrieval adds to the cosine."""
    prefix_examples: bool = True
    """Train on every prefix of each training session (``Sessions.prefixes``: about four examples per
    session, as GRU4Rec-style session models train) rather than on its ``prev_items`` alone. Validation
    always scores whole sessions."""
    transductive: bool = False
    """Also train on the ``prev_items`` of the sessions the model will rank: the validation sessions and the
    task's test file (when the folder has one). Each of their items after the first is a target for the
    items before it; their real targets are never read. Co-visitation's strongest lever on real sessions
    is the same evidence (``covis-queries``). These sessions also count in the popularity prior, and they
    are not thinned by ``train_fraction``."""
    cross_locale: bool = False
    """Also train on the other locales' training sessions (task 2: UK/DE/JP) whose target a task locale
    sells, as sessions of that locale: a product keeps its id across locales (on Amazon-M2 about 40% of
    ES/FR/IT's products are also DE's), so a transition seen in DE is read in ES text. Items the locale
    does not sell are left out of the session; an example left with none is dropped. Not thinned by
    ``train_fraction``; the popularity prior still counts the task's own sessions only. On synthetic ``m2``
    ``small`` (962 such examples beside 19k) validation MRR@100 of supervised finetuning rose from .2569 to
    .2625: ``finetune/configs/small.json`` turns it on (pretrain/README.md, "Transfer to ES/FR/IT")."""
    lora: bool = False
    """Train LoRA adapters on the attention projections instead of all weights (peft); merged into ``best``."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    pooler_type: str | None = None
    """Pool sessions this way instead of as the model was pretrained (None: keep it); e.g. ``"mean_last"``
    adds the newest item's embedding with a weight (:class:`~recformer_m2.models.RecformerConfig`)."""
    last_item_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)
    """``"mean_last"`` pooling only: at every validation the newest item's weight
    (``RecformerModel.last_item_weight``) takes the value of this grid with the best validation MRR@100,
    which is the MRR early stopping sees and the weight the next epoch trains with and ``best`` keeps.
    The weight is then not learned: training sessions, whose targets the session encoder partly
    memorises, want less of the newest item than unseen sessions do (measured on synthetic ``small``:
    learned 0.75-0.93, while validation MRR@100 rose by a further 0.02-0.03 with more). Empty: learned."""
    table_item_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
    """With ``last_item_grid``: values of ``RecformerConfig.table_item_weight`` (the newest item's row of
    the frozen item table added to the query at retrieval) tried against every newest-item weight at
    each validation; the pair of best MRR@100 is kept. Empty: the table row is not used."""
    lexical_grid: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5)
    """Values of ``RecformerConfig.lexical_weight`` (title TF-IDF similarity added to retrieval scores,
    :mod:`recformer_m2.lexical`) tried at every validation after the other retrieval weights are chosen;
    ``best`` keeps the value of best validation MRR@100. Early stopping still watches the model alone.
    Empty: no fusion (the weight stays 0)."""
    scratch_config: str = "pretrain/configs/small.json"
    """Model size (a pretraining config file) when finetuning starts from scratch (PRETRAINED = none)."""
    device: str = "auto"
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    devices: int = 1
    """Devices to train on, data parallel (GPUs; on ``device`` ``cpu``, processes): with ``torchrun
    --nproc_per_node N`` give N and ``strategy`` ``ddp``."""
    strategy: str = "auto"
    """Lightning strategy: ``auto``, ``ddp``, ``ddp_find_unused_parameters_true``, ..."""
    precision: str = "auto"
    """Lightning precision; ``auto``: ``bf16-mixed`` on a GPU that has bf16, else ``32-true``."""
    num_workers: int | None = None
    """DataLoader worker processes that collate batches; None: 0 on the CPU, up to 8 beside a GPU. On 2 shared
    CPU cores with one torch thread (the main job's setting; synthetic ``small``, pretrained ``small``)
    0/1/2 workers ran 2.36-2.40/2.35/2.44-2.45 steps/s: no gain, and the main job's two finetunings
    already fill both cores. On an H200 8 collating workers ran the small finetuning step x1.35 the
    inline loop's rate (bench/gpu_check.py)."""


@dataclass
class FinetuneData:
    """The item table's rows and the labelled sessions of the task's locales."""

    codes: np.ndarray  # (N,) item code of each table row
    locales: np.ndarray  # (N,) locale index of each table row
    items: list  # (N,) attribute sentences
    train: Sessions
    train_labels: np.ndarray  # (n,) table row of each training session's target
    valid: Sessions
    valid_targets: np.ndarray  # (m,) target codes
    prior: np.ndarray | None = None  # (N,) log(1 + training occurrences) of each table row; None: no prior
    lexical: TitleSimilarity | None = None  # title TF-IDF of the task's locales when lexical_grid is searched


def prepare_data(data: M2Data, config: FinetuneConfig, max_items: int | None = None) -> FinetuneData:
    """The task's item table and its (training, validation) sessions; ``max_items``: the newest items of a
    prefix the model reads (older ones are dropped here rather than carried to the collator)."""
    catalog = data.catalog
    locales = TASK_LOCALES[config.task]
    codes = np.concatenate([catalog.locale_codes(loc) for loc in locales])
    item_locales = np.concatenate([np.full(len(catalog.locale_codes(loc)), LOCALES.index(loc)) for loc in locales])
    rows = catalog.rows(codes, item_locales)
    position = np.full((len(LOCALES), catalog.num_ids), -1, dtype=np.int64)
    position[item_locales, codes] = np.arange(len(codes))
    train, valid = locale_split(data.train, locales, config.valid_fraction, config.split_seed,
                                config.max_valid_per_locale)
    if not 0.0 < config.train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in (0, 1], got {config.train_fraction}")
    if config.train_fraction < 1.0:
        keep = np.random.default_rng(config.split_seed).random(len(train)) < config.train_fraction
        if not keep.any():
            raise ValueError(f"train_fraction {config.train_fraction} keeps none of the {len(train)} training sessions")
        logger.info("training on %d of %d sessions (train_fraction %g)", keep.sum(), len(train), config.train_fraction)
        train = train.select(keep)
    if config.transductive:
        train = Sessions.concatenate([train, ranked_inputs(data, valid, config.task).inputs_as_sessions()])
    prior = None
    if config.popularity_prior:  # from the sessions trained on only: validation targets stay unseen
        prior = np.log1p(occurrence_counts(train, catalog.num_ids)[item_locales, codes]).astype(np.float32)
    if config.prefix_examples:
        sessions = len(train)
        train = train.prefixes(max_items)
        logger.info("%d training examples from every prefix of %d sessions", len(train), sessions)
    if config.cross_locale:
        moved = moved_sessions(catalog, data.train, locales)
        if config.prefix_examples:
            moved = moved.prefixes(max_items)
            moved = moved.select((catalog.newest_sold(moved) >= 0) & (catalog.rows(moved.next_item, moved.locale) >= 0))
        train = Sessions.concatenate([train, moved])
    labels = position[train.locale, train.next_item]
    usable = labels >= 0
    if not usable.all():
        logger.warning("%d training session(s) skipped: their target has no product row in the locale", (~usable).sum())
    logger.info("finetuning on %d sessions, validating on %d, %d candidate items", usable.sum(), len(valid), len(codes))
    lexical = None
    if any(config.lexical_grid):
        lexical = TitleSimilarity.fit(catalog, tuple(LOCALES.index(loc) for loc in locales))
    return FinetuneData(codes, item_locales, catalog_items(catalog, rows), train.select(usable), labels[usable],
                        valid, valid.next_item, prior, lexical)


def ranked_inputs(data: M2Data, valid: Sessions, task: int) -> Sessions:
    """The sessions a finetuned model will rank, targets withheld: ``valid`` and the task's test file in the
    task's locales (the latter only where the folder has it)."""
    parts = [valid]
    if data.has_test(task):
        test = data.test(task)
        parts.append(test.select(test.in_locales(TASK_LOCALES[task])))
    ranked = Sessions.concatenate(parts)
    withheld = dataclasses.replace(ranked, next_item=np.full(len(ranked), -1, ranked.next_item.dtype))
    logger.info("transductive: %d sessions to rank (%d validation), their prev_items only", len(withheld), len(valid))
    return withheld


def moved_sessions(catalog: Catalog, sessions: Sessions, locales: tuple[str, ...]) -> Sessions:
    """The sessions of the locales outside ``locales`` whose target one of ``locales`` sells, as sessions
    of that locale (one copy per locale that sells it), keeping only those with an item it sells."""
    others = sessions.select(~sessions.in_locales(list(locales)))
    parts = []
    for loc in locales:
        index = LOCALES.index(loc)
        sold = others.select(catalog.rows(others.next_item, index) >= 0)
        there = dataclasses.replace(sold, locale=np.full(len(sold), index, dtype=sold.locale.dtype))
        parts.append(there.select(catalog.newest_sold(there) >= 0))
    moved = Sessions.concatenate(parts)
    logger.info("cross-locale: %d sessions of other locales whose target %s sells", len(moved), "/".join(locales))
    return moved


def load_seqrec(pretrained: str | Path, data: M2Data, config: FinetuneConfig, out: Path):
    """The model to finetune and its tokenizer: from a pretraining ``final`` folder, or from scratch for ``none``."""
    from .tokenizer import load_tokenizer, train_tokenizer

    if str(pretrained).lower() == "none":
        from .pretraining import PretrainConfig, model_config, with_model_fields

        scratch = with_model_fields(load_config(PretrainConfig, config.scratch_config), pooler_type=config.pooler_type)
        catalog = data.catalog
        folder = out / "tokenizer" if _rank() == 0 else out / f".tokenizer-rank{_rank()}"  # seeded: all alike
        tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), folder,
                                    vocab_size=scratch.vocab_size, seed=config.seed)
        torch.manual_seed(config.seed)
        return RecformerForSeqRec(model_config(scratch, tokenizer)), tokenizer
    check_model_folder(pretrained)
    new_weights = ["prior_weight"]
    overrides = {}
    if config.pooler_type is not None:
        overrides["pooler_type"] = config.pooler_type
        if RecformerConfig.from_pretrained(pretrained).pooler_type != config.pooler_type:
            new_weights.append("recformer.last_item_weight")  # mean_last's weight, when the checkpoint has none
    model = RecformerForSeqRec.from_pretrained_strict(pretrained, allow_unexpected=("lm_head",),
                                                      allow_missing=tuple(new_weights), **overrides)
    return model, load_tokenizer(pretrained)


def _add_lora(model: RecformerForSeqRec, config: FinetuneConfig) -> RecformerForSeqRec:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=["query", "key", "value", "query_global", "key_global", "value_global"])
    model.recformer = get_peft_model(model.recformer, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("LoRA: %d trainable parameters of %d", trainable, sum(p.numel() for p in model.parameters()))
    return model


def _encoder_of(model: RecformerForSeqRec) -> RecformerModel:
    """The plain encoder (LoRA adapters merged view when peft wraps it)."""
    inner = model.recformer
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def item_bias(model: RecformerForSeqRec) -> np.ndarray | None:
    """The model's per-item prior in cosine units (what retrieval adds to each item's cosine), or None."""
    bias = model.item_bias()
    return None if bias is None else (bias.detach().float().cpu().numpy() * model.config.temperature)


def evaluate(encoder: RecformerEncoder, table: np.ndarray, data: FinetuneData, catalog: Catalog,
             sessions: Sessions, targets: np.ndarray, k: int = TOP_K, bias: np.ndarray | None = None,
             last_item_grid: tuple[float, ...] = (), table_item_grid: tuple[float, ...] = (),
             table_item_weight: float | None = None, lexical_grid: tuple[float, ...] = ()) -> dict[str, float]:
    """MRR/Recall/NDCG@k of retrieval from ``table`` (plus ``bias`` per item) for held-out sessions (their
    items excluded). With ``last_item_grid`` (``"mean_last"`` pooling) every pair of the encoder's newest-item
    weight and, from ``table_item_grid``, the weight of the newest item's table row is scored, and the
    metrics of the pair of best MRR@k are returned with that pair as ``last_item_weight`` and
    ``table_item_weight``; neither the model nor its config is changed (the caller applies the pair).
    Without a grid the newest item's table row is added with ``table_item_weight`` (None: the config's).
    With ``lexical_grid`` (and ``data.lexical``) the chosen queries are then scored with each lexical weight
    added (:func:`~recformer_m2.lexical.fused_top_k`): ``lexical_weight`` is the one of best MRR@k and
    ``lexical_mrr@k`` (and recall, ndcg) its metrics; the plain metrics stay the model's alone."""
    index = ItemIndex().build(table, data.codes, data.locales, bias)
    texts = session_items(catalog, sessions)
    exclude = sessions.to_lists()
    rows = newest_item_rows(catalog, sessions, data.codes, data.locales)

    def score(queries: np.ndarray) -> dict[str, float]:
        ranked, _ = index.search(queries, sessions.locale, k, exclude=exclude)
        return {f"{name}@{k}": float(values.mean()) for name, values in rank_metrics(ranked, targets, k).items()}

    if not last_item_grid or encoder.model.config.pooler_type != "mean_last":
        if table_item_weight is None:
            table_item_weight = encoder.model.config.table_item_weight
        queries = retrieval_queries(encoder.encode_sessions(texts, batch_size=encoder.batch_size),
                                    table_item_weight, table, rows)
        metrics = score(queries)
    else:
        # query(w, v) = normalise(session(w) + v * newest item's table row), session(w) = normalise(normalised
        # session mean + w * newest item's embedding), as the model pools and retrieval adds: two encodings
        # serve every (w, v)
        weight = encoder.model.last_item_weight
        with torch.no_grad():
            learned = weight.item()
            weight.fill_(0.0)
            try:
                means = encoder.encode_sessions(texts, batch_size=encoder.batch_size)
            finally:
                weight.fill_(learned)
        newest = encoder.encode_items([items[-1] for items in texts], batch_size=encoder.batch_size)
        results = {(w, v): score(retrieval_queries(_normalized(means + w * newest), v, table, rows))
                   for w in last_item_grid for v in (table_item_grid or (0.0,))}
        best_w, best_v = max(results, key=lambda wv: results[wv][f"mrr@{k}"])  # ties: the first (smallest)
        logger.info("newest-item weight %.2f -> %.2f, table-row weight %.2f; validation MRR@%d by weights %s",
                    learned, best_w, best_v, k,
                    {f"{w},{v}": round(r[f"mrr@{k}"], 4) for (w, v), r in results.items()})
        metrics = {**results[best_w, best_v], "last_item_weight": float(best_w), "table_item_weight": float(best_v)}
        queries = retrieval_queries(_normalized(means + best_w * newest), best_v, table, rows)
    if data.lexical is not None and lexical_grid:
        fused = {}
        for w in lexical_grid:
            ranked, _ = fused_top_k(queries, sessions.locale, exclude, table, data.codes, data.locales, bias,
                                    data.lexical, w, k)
            fused[w] = {f"lexical_{name}@{k}": float(values.mean())
                        for name, values in rank_metrics(ranked, targets, k).items()}
        best = max(fused, key=lambda w: fused[w][f"lexical_mrr@{k}"])  # ties: the first (smallest)
        logger.info("lexical weight %.2f; validation MRR@%d by lexical weight %s", best, k,
                    {w: round(r[f"lexical_mrr@{k}"], 4) for w, r in fused.items()})
        metrics.update(fused[best], lexical_weight=float(best))
    return metrics


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _save_best(model: RecformerForSeqRec, tokenizer, config: FinetuneConfig, metrics: dict, folder: Path,
               retrieval_weights: dict[str, float]) -> None:
    """Write the model whole (``save_pretrained``: weights, the item table it was scored against with its ids,
    locales and prior, the tokenizer, and the retrieval weights chosen on validation, ``table_item_weight``
    and ``lexical_weight``, in the saved config), the finetuning config and the metrics to ``folder``
    atomically (tmp then rename)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    saved = model
    if hasattr(model.recformer, "merge_and_unload"):  # LoRA: save merged weights, keep training unmerged
        import copy

        saved = copy.deepcopy(model)
        saved.recformer = saved.recformer.merge_and_unload()
    saved.save_pretrained(tmp, tokenizer=tokenizer, config_updates={k: float(v) for k, v in retrieval_weights.items()})
    save_config(config, tmp / CONFIG_FILE)
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _config_values(config: FinetuneConfig) -> dict[str, Any]:
    """The config as its JSON round trip gives it back (tuples as lists), for comparisons with a saved one."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _save_last(path: Path, model: RecformerForSeqRec, state: dict, config: FinetuneConfig) -> None:
    """The resume state: weights, optimizer slots and RNG states as tensors; progress, the optimizer's
    hyper-parameters, the learning-rate schedule's position and the run's configuration as JSON."""
    tensors = _prefixed("model.", model.state_dict())
    values = {k: state[k] for k in ("stage", "epoch", "best", "bad_epochs")}
    values["config"] = _config_values(config)
    if state.get("scheduler") is not None:
        values["scheduler"] = state["scheduler"]
    if state.get("optimizer") is not None:
        slots = {}
        for pid, slot in state["optimizer"]["state"].items():
            for key, value in slot.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{pid}.{key}"] = value
                else:
                    slots[f"{pid}.{key}"] = value
        values["optimizer"] = {"param_groups": state["optimizer"]["param_groups"], "slots": slots}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_state(path, tensors, values)


def _load_last(path: Path, model: RecformerForSeqRec) -> dict:
    """Restore weights and RNG states from :func:`_save_last`'s file; returns the progress state."""
    tensors, values = read_state(path)
    model.load_state_dict(_unprefixed("model.", tensors))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(len(tensors)) if f"rng.cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    state = {k: values[k] for k in ("stage", "epoch", "best", "bad_epochs")}
    state["optimizer"], state["scheduler"] = None, values.get("scheduler")
    if "optimizer" in values:
        slots: dict[int, dict] = {}
        for name, value in _unprefixed("optimizer.", tensors).items():
            pid, key = name.split(".", 1)
            slots.setdefault(int(pid), {})[key] = value
        for name, value in values["optimizer"]["slots"].items():
            pid, key = name.split(".", 1)
            slots.setdefault(int(pid), {})[key] = value
        state["optimizer"] = {"state": slots, "param_groups": values["optimizer"]["param_groups"]}
    return state


def run_stage(stage: int, model: RecformerForSeqRec, tokenizer, data: FinetuneData, examples: FinetuneExamples,
              catalog: Catalog, config: FinetuneConfig, out: Path, state: dict) -> None:
    """One stage of finetuning on Lightning (:mod:`recformer_m2.finetune_loop`); ``state`` carries progress
    across resumes and is updated after every epoch."""
    from .finetune_loop import (ItemTableRefresh, RetrievalValidation, SeqRecModule, fit_stage, num_workers,
                                trainer_settings)

    epochs = config.stage1_epochs if stage == 1 else config.stage2_epochs
    if state["epoch"] >= epochs:
        return
    if state["bad_epochs"] >= config.patience:
        logger.info("stage %d: no better validation MRR@100 for %d epoch(s); stopping", stage, config.patience)
        return
    encoder = RecformerEncoder(_encoder_of(model), tokenizer, batch_size=config.encode_batch_size)
    collator = encoder.collator
    preload_items(collator.item_tokenizer, data.items)  # sessions and the table read only catalog items
    table = read_state(out / "checkpoints" / STAGE1_BEST)[0]["table"].numpy() if stage == 2 else None
    resume = None
    if state.get("optimizer") is not None and state["stage"] == stage:
        resume = {"optimizer": state["optimizer"], "scheduler": state.get("scheduler")}
    settings = trainer_settings(config)
    workers = num_workers(config, settings["accelerator"])
    batches = EpochBatches(examples.lengths(), config.batch_size, config.group_by_length, config.seed, stage,
                           first_epoch=state["epoch"])
    loader = DataLoader(examples, batch_sampler=batches, collate_fn=FinetuneCollate(collator), num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=settings["accelerator"] == "gpu",
                        generator=torch.Generator().manual_seed(config.seed))  # not drawn from the global RNG
    module = SeqRecModule(model, config, batches, epochs, resume)
    refresh = ItemTableRefresh(encoder, data, catalog, stage, table)
    fit_stage(epochs - state["epoch"], module, loader, refresh,
              RetrievalValidation(refresh, tokenizer, config, out, state), settings)


def _rank() -> int:
    """This process's rank under a launcher (``torchrun`` sets ``RANK``, Lightning's own ``LOCAL_RANK``); 0 alone."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def run_finetuning(data_dir: str | Path, pretrained: str | Path, out_dir: str | Path, config: FinetuneConfig,
                   force_new_config: bool = False) -> Path:
    """Finetune and return ``OUT/best``; resumes from ``OUT/checkpoints/last.safetensors`` when it exists.

    A resume whose configuration differs from the one the checkpoint was saved under raises
    :class:`~recformer_m2.models.folders.ConfigMismatchError` naming the fields, unless ``force_new_config``;
    a second live run into the same OUT raises :class:`~recformer_m2.run_lock.RunLockedError`."""
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    with output_lock(out) if _rank() == 0 else contextlib.nullcontext():  # ranks of one launch share OUT
        return _run_finetuning(data_dir, pretrained, out, config, force_new_config)


def _run_finetuning(data_dir: str | Path, pretrained: str | Path, out: Path, config: FinetuneConfig,
                    force_new_config: bool) -> Path:
    last = out / "checkpoints" / LAST
    if not last.exists():
        for old in OLD_PICKLES:
            if (out / "checkpoints" / old).exists():
                raise ModelFolderError(out / "checkpoints" / old, (
                    f"{out / 'checkpoints' / old}: a resume file of an earlier version (a pickle, which is not "
                    f"loaded: it could run code); delete {out / 'checkpoints'} to start over"))
    else:  # before anything in OUT is rewritten under the new settings
        saved = {**_config_values(FinetuneConfig()), **read_state_values(last).get("config", {})}
        check_resume_config(last, saved, _config_values(config), force_new_config, RESUME_IGNORED)  # a field
        # added since the file was written is taken at its default, which keeps the earlier behaviour
    if _rank() == 0:
        save_config(config, out / CONFIG_FILE)
    data = M2Data(data_dir)
    model, tokenizer = load_seqrec(pretrained, data, config, out)
    fdata = prepare_data(data, config, max_items=model.config.max_item_embeddings - 1)
    examples = FinetuneExamples.build(data.catalog, fdata.train, fdata.train_labels)
    if config.lora:
        model = _add_lora(model, config)
    model.prior_weight.requires_grad_(config.popularity_prior)
    if model.config.pooler_type == "mean_last" and config.last_item_grid:  # chosen on validation, not learned
        _encoder_of(model).last_item_weight.requires_grad_(False)
    state = {"stage": 1, "epoch": 0, "best": -1.0, "bad_epochs": 0, "optimizer": None, "scheduler": None}
    if last.exists():
        state = _load_last(last, model)
        logger.info("resuming from %s: stage %d, %d epoch(s) done", last, state["stage"], state["epoch"])
    start = time.perf_counter()
    for stage in (1, 2):
        if stage < state["stage"]:
            continue
        run_stage(stage, model, tokenizer, fdata, examples, data.catalog, config, out, state)
        if stage == 1:  # stage 2: the best stage-1 weights, a fresh optimizer and schedule, patience reset
            model.load_state_dict(_unprefixed("model.", read_state(last.parent / STAGE1_BEST)[0]))
            state.update(stage=2, epoch=0, bad_epochs=0, optimizer=None, scheduler=None)
            if _rank() == 0:
                _save_last(last, model, state, config)
    logger.info("finetuning done in %.0f s; best validation MRR@100 %.4f in %s", time.perf_counter() - start,
                state["best"], out / "best")
    return out / "best"
