"""Typed pretraining config; it holds the Recformer architecture as a :class:`RecformerConfig` (one source)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..constants import LOCALES
from ..models import RecformerConfig
from ..tokenizer import special_token_ids

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

    ``model`` is the architecture, a :class:`RecformerConfig` (in JSON: an object of its fields, or the path
    of a ``config.json`` or of a model folder); :func:`model_config` only adds the tokenizer's size and
    special ids. With ``--init`` the architecture comes from the init folder instead. DeepSpeed's JSON
    keeps what only DeepSpeed knows (ZeRO stage and buckets, Adam betas and eps, fp16 loss scaling);
    batch size, accumulation,
    clipping, learning rate, weight decay, warmup, total steps and precision belong to this config
    and are written into DeepSpeed's JSON where it says ``"auto"`` (:func:`deepspeed_config`).
    """

    # --- data ---
    locales: list[str] = field(default_factory=lambda: ["UK", "DE", "JP"])
    """Locales whose training sessions are trained on."""
    zero_shot_locales: list[str] = field(default_factory=lambda: ["ES", "FR", "IT"])
    """Locales never trained on whose held-out sessions are also scored by retrieval (zero-shot transfer)."""
    align_locales: list[str] = field(default_factory=list)
    """Locales whose catalog text is aligned with the training locales' text of the same products
    (:func:`~recformer_m2.pretraining.data.alignment_examples`): product pairs, no sessions of these locales.
    Needs in-batch negatives (not ``table_negatives``)."""
    valid_fraction: float = 0.05
    """Share of training sessions held out for validation (:func:`~recformer_m2.data.validation_split`)."""
    max_valid_per_locale: int = 2000
    """Cap on held-out sessions per locale (the rest of the drawn ones go back to training)."""
    split_seed: int = 0
    """Seed of the validation split (kept apart from ``seed`` so runs with other seeds score the same sessions)."""
    # --- tokenizer (only used when the run trains its own) ---
    vocab_size: int = 16000
    """Size asked of the catalog tokenizer trained when no ``--tokenizer`` or ``--init`` is given (a soft limit)."""
    # --- model ---
    model: RecformerConfig = field(default_factory=RecformerConfig)
    """The architecture and training-objective weights (hidden size, layers, window, token budgets, pooling,
    temperature, loss weights); ``vocab_size`` and the special-token ids are the tokenizer's."""
    table_negatives: bool = False
    """Contrast each session with every product of its locale in a frozen table of the training locales'
    products (re-encoded every ``table_refresh_steps``), as finetuning's stage 1 does, instead of with the
    other next items of the batch (:class:`~recformer_m2.models.RecformerForPretraining`)."""
    table_refresh_steps: int = 250
    """Optimizer steps between re-encodings of the item table (``table_negatives``); a run (re)starting
    encodes it too, so a resume is exact when it starts on a multiple of this."""
    table_prior: float = 1.0
    """With ``table_negatives``: this times log(1 + occurrences in the training examples) is added to each
    table product's logit. Text cannot show how often a product is bought, and the next item is drawn in
    proportion to it; with the prior the encoder spends itself on the textual part (finetuning learns
    its own weight). 0 disables it."""
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
        self.model = read_model_config(self.model)
        for name in ("locales", "zero_shot_locales", "align_locales"):
            unknown = sorted(set(getattr(self, name)) - set(LOCALES))
            if unknown:
                raise ValueError(f"{name} has unknown locale(s) {unknown}; choose from {list(LOCALES)}")
        if not self.locales:
            raise ValueError("locales is empty: name at least one locale to train on")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"precision must be auto, bf16, fp16 or fp32, got {self.precision!r}")
        positive = ("batch_size", "gradient_accumulation_steps", "eval_batch_size", "eval_every", "save_every",
                    "log_every", "keep_checkpoints", "warmup_steps", "encode_batch_size", "table_refresh_steps")
        bad = {name: getattr(self, name) for name in positive if getattr(self, name) < 1}
        if bad:
            raise ValueError(f"these settings must be at least 1: {bad}")
        if self.align_locales and self.table_negatives:
            raise ValueError("align_locales needs in-batch negatives: the item table holds only the training "
                             "locales' products; set table_negatives to false or align_locales to []")
        if self.table_prior < 0:
            raise ValueError(f"table_prior must be >= 0, got {self.table_prior}")
        if self.max_steps < 0 or (self.max_steps == 0 and self.epochs < 1):
            raise ValueError(f"train for max_steps > 0 or epochs >= 1 (got max_steps={self.max_steps}, "
                             f"epochs={self.epochs})")


MODEL_FLAGS: tuple[str, ...] = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "attention_window",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_token_num", "max_position_embeddings",
    "max_attr_num", "max_attr_length", "max_item_embeddings", "pooler_type", "temperature", "mlm_weight",
    "item_cl_weight", "contrast_unmasked",
)
"""``RecformerConfig`` fields that ``pretrain.py`` takes as flags of their own (``--hidden-size 64``), applied
over ``--model`` and the ``--config`` file's ``model`` (:func:`with_model_fields`)."""


def add_model_arguments(parser) -> None:
    """One ``--field-name`` option per :data:`MODEL_FLAGS` field (default None = not given)."""
    from ..config import _parse_bool

    defaults = RecformerConfig()
    group = parser.add_argument_group("RecformerConfig fields (override the model of --model and --config)")
    for name in MODEL_FLAGS:
        default = getattr(defaults, name)
        kind = int if isinstance(default, list) else type(default)  # attention_window: one window for every layer
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, metavar=kind.__name__,
                           type=_parse_bool if kind is bool else kind)


def model_overrides(args) -> dict[str, Any]:
    """The :data:`MODEL_FLAGS` given on the command line, for :func:`with_model_fields`."""
    return {name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None}


def read_model_config(value: RecformerConfig | Mapping[str, Any] | str | Path) -> RecformerConfig:
    """``PretrainConfig.model`` from what a JSON file or the command line gives: a config, an object of
    :class:`RecformerConfig` fields, or the path of a ``config.json`` (or of the folder holding one)."""
    if isinstance(value, RecformerConfig):
        return value
    if isinstance(value, Mapping):
        return RecformerConfig(**value)
    path = Path(value)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"model: {value} is neither a RecformerConfig JSON file nor a folder holding config.json")
    values = json.loads(path.read_text(encoding="utf-8"))
    if values.get("model_type", "recformer") != "recformer":
        raise ValueError(f"model: {path} is a config of model type {values['model_type']!r}, not 'recformer'")
    values.pop("model_type", None)
    values.pop("transformers_version", None)
    return RecformerConfig(**values)


def with_model_fields(config: PretrainConfig, **fields: Any) -> PretrainConfig:
    """``config`` with these :class:`RecformerConfig` fields changed (None: not given), e.g. from the command
    line; a window given as one value per layer follows a changed layer count when all layers share it."""
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        return config
    values = config.model.to_dict()
    values.pop("model_type", None)
    values.pop("transformers_version", None)
    windows = values.get("attention_window")
    if "attention_window" not in given and isinstance(windows, list) and len(set(windows)) == 1:
        values["attention_window"] = windows[0]
    values.update(given)
    return dataclasses.replace(config, model=RecformerConfig(**values))


def model_config(config: PretrainConfig, tokenizer) -> RecformerConfig:
    """The Recformer architecture of a fresh run: ``config.model`` with the size and special ids of ``tokenizer``."""
    ids = special_token_ids(tokenizer, ("pad", "cls", "eos", "sep", "mask"))
    values = config.model.to_dict()
    values.pop("model_type", None)
    values.pop("transformers_version", None)
    values.update(vocab_size=len(tokenizer), pad_token_id=ids["pad"], bos_token_id=ids["cls"], eos_token_id=ids["eos"],
                  sep_token_id=ids["sep"])
    return RecformerConfig(**values)
