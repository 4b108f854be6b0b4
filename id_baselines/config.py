"""The one typed configuration of every ID baseline and of their shared trainer.

Override order (as everywhere in recformer-m2): command line > JSON file > these defaults, through
``recformer_m2.config.load_config(BaselineConfig, path, overrides)``. Model sizes follow RecBole 1.2.1's
defaults for the five models (embedding 64, GRU hidden 128, CORE with 2 transformer layers), so a
comparison with RecBole runs both at the same size. The training budget defaults to what fits the
synthetic ``small`` data in a couple of minutes per model on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BaselineConfig:
    """Model, data and training settings of an ID baseline (see each field's note)."""

    # --- model -----------------------------------------------------------------------------------------
    embedding_size: int = 64
    """Size of item embeddings and of the session embedding they are scored against."""
    hidden_size: int = 128
    """GRU hidden size (GRU4Rec++, NARM)."""
    num_layers: int = 1
    """GRU layers (GRU4Rec++, NARM)."""
    embedding_dropout: float = 0.25
    """Dropout on the input item embeddings (GRU4Rec++: RecBole uses 0.3; NARM: 0.25)."""
    hidden_dropout: float = 0.5
    """NARM: dropout on the concatenated context [c_local; c_global]. CORE-trm: transformer dropout."""
    attention_dropout: float = 0.5
    """CORE-trm: dropout on the attention probabilities."""
    gnn_steps: int = 1
    """SR-GNN: propagation steps of the gated graph network."""
    stamp_empty_slots: bool = True
    """STAMP: the empty slots of its ``max_length`` window hold one learned vector that enters its mean
    and attention (what RecBole's STAMP does through its padding; see stamp.py). False: the paper's STAMP."""
    stamp_null_logit: bool = True
    """STAMP: train with the padding column's logit fixed at 0 (a null class; RecBole's loss has it)
    rather than -inf. Prediction never ranks padding either way."""
    core_variant: str = "trm"
    """CORE: ``trm`` (transformer weighting, CORE-trm) or ``ave`` (mean pooling, CORE-ave)."""
    transformer_layers: int = 2
    """CORE-trm: transformer layers of the weighting network."""
    num_heads: int = 2
    """CORE-trm: attention heads."""
    inner_size: int = 256
    """CORE-trm: feed-forward size inside a transformer layer."""
    session_dropout: float = 0.2
    """CORE: dropout on the session's item embeddings."""
    item_dropout: float = 0.2
    """CORE: dropout on the candidate item embeddings (training only)."""
    temperature: float = 0.07
    """CORE: temperature dividing the cosine scores (robust distance measuring)."""

    # --- data ------------------------------------------------------------------------------------------
    max_length: int = 50
    """Sessions longer than this keep their last ``max_length`` items."""
    augment: bool = False
    """Train on every prefix of ``prev_items + [next_item]`` (about 4x the examples on Amazon-M2; targets
    already in their prefix dropped, since a test target never repeats a session item). Default: one
    example per session (``prev_items`` -> ``next_item``), as the Amazon-M2 paper's RecBole setup."""
    bucket_by_length: bool = True
    """Batch training examples of similar length together (``LengthBucketBatches``): little padding on
    long-tailed session lengths. False: plain shuffled batches (as RecBole's)."""
    valid_fraction: float = 0.1
    """Share of the training sessions held out (``validation_split``) for early stopping."""
    max_valid_per_locale: int | None = 2000
    """Cap on held-out sessions per locale (validation cost); None keeps all."""

    # --- training --------------------------------------------------------------------------------------
    learning_rate: float = 3e-3
    """Adam learning rate (RecBole's default is 1e-3; 3e-3 converges within the small epoch budget)."""
    weight_decay: float = 0.0
    """Adam weight decay."""
    batch_size: int = 256
    """Training examples per step."""
    eval_batch_size: int = 1024
    """Sessions scored at once in validation and prediction."""
    max_epochs: int = 3
    """Upper bound on epochs (per stage in ``finetune`` mode)."""
    patience: int = 2
    """Epochs without a better validation MRR@100 before stopping."""
    max_minutes: float | None = None
    """Wall-clock cap on the training of one run (Lightning's ``max_time``; per stage in ``finetune``
    mode). When it is hit mid-epoch the run validates once more and keeps its best model. None: no cap."""
    limit_train_batches: float = 1.0
    """Share (float) or number (int > 1) of training batches per epoch; for quick checks."""
    seed: int = 0
    """Seed of the validation split, initialisation and shuffling."""
    num_workers: int = 0
    """DataLoader workers (batches are cheap to build; 0 keeps both cores for the model)."""
    accelerator: str = "auto"
    """Lightning accelerator: ``auto`` (GPU when present), ``cpu`` or ``gpu``."""
    resume: bool = True
    """Continue from ``checkpoints/last.ckpt`` when the output folder has one."""
    progress: bool = True
    """Show tqdm progress bars."""

    # --- prediction ------------------------------------------------------------------------------------
    exclude_session_items: bool = True
    """Never recommend a session's own items (the Amazon-M2 target never is one); also in validation."""
    locale_mask: bool = True
    """Recommend only products sold in the session's locale (per the catalog); also in validation."""

    def __post_init__(self) -> None:
        if self.core_variant not in ("trm", "ave"):
            raise ValueError(f"core_variant ({self.core_variant!r}) must be 'trm' or 'ave'")
        if self.embedding_size % self.num_heads:
            raise ValueError(f"embedding_size ({self.embedding_size}) is not a multiple of num_heads ({self.num_heads})")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes ({self.max_minutes}) must be positive or None")
        if self.max_length < 1:
            raise ValueError(f"max_length ({self.max_length}) must be positive")
