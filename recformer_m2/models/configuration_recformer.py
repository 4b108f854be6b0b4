"""Configuration of the Recformer encoder (Li et al. 2023, "Text Is All You Need: Learning Language
Representations for Sequential Recommendation", https://arxiv.org/abs/2305.13731).

Recformer is a Longformer whose input is a session flattened into text: ``CLS`` then each item's
attribute sentence (``key value key value ...``), most recent item first. It adds two embedding
tables to Longformer's: token types (CLS / attribute key / attribute value / padding) and item
positions (1 = most recent item, 0 = CLS and padding). Every hyper-parameter lives here, so
scripts never patch a config.
"""

# No ``from __future__ import annotations`` here: @strict type-checks fields from their annotations,
# which it skips when they are strings.
import enum
import logging

from huggingface_hub.dataclasses import strict
from transformers import LongformerConfig

logger = logging.getLogger(__name__)

POOLER_TYPES: tuple[str, ...] = ("cls", "mean", "mean_last")
"""Known ways to pool token states into one session or item vector."""

ATTENTION_IMPLEMENTATIONS: tuple[str, ...] = ("dense", "longformer")
"""Ways to compute the encoder's attention (same weights, same result up to float rounding)."""


class TokenType(enum.IntEnum):
    """Token type ids of the Recformer layout; shared by the collator (writes them) and the model (embeds them)."""

    CLS = 0
    KEY = 1
    VALUE = 2
    PAD = 3


@strict
class RecformerConfig(LongformerConfig):
    r"""Hyper-parameters of the Recformer encoder and its two training objectives.

    Longformer's arguments keep their meaning (``hidden_size``, ``num_hidden_layers``, ...); the
    defaults below are Recformer's (longformer-base sized) with special-token ids laid out as in
    this project's catalog tokenizer (``<pad>``=0, ``</s>``=1, ``<s>``=3 as CLS, ``<sep>``=4).
    Set ``vocab_size`` to ``len(tokenizer)`` and the ids to the tokenizer's when using another one.

    Args:
        max_attr_num (`int`, defaults to 12):
            Attributes kept per item, in the order given; later ones are dropped.
        max_attr_length (`int`, defaults to 32):
            Tokens kept per attribute value; the attribute key is never cut.
        max_item_embeddings (`int`, defaults to 51):
            Size of the item-position table: the most items a session keeps, plus one for position 0
            (CLS and padding). Older items beyond ``max_item_embeddings - 1`` are dropped.
        max_token_num (`int`, defaults to 1024):
            Most tokens per session, CLS included; sessions are cut from the oldest end.
        max_position_embeddings (`int`, defaults to 1024):
            Size of the token-position table; must be at least ``max_token_num`` because the model
            numbers tokens 0, 1, ... from CLS.
        attention_window (`int` or `list[int]`, defaults to 64):
            Local attention window of each layer (even, positive); an int is used for every layer
            and is stored as a per-layer list, as ``LongformerSelfAttention`` indexes it by layer.
        pooler_type (`str`, defaults to `"cls"`):
            ``"cls"``: the CLS hidden state (the token with global attention); ``"mean"``: the mean
            over non-padding tokens; ``"mean_last"``: that mean, L2-normalised, plus a learned weight
            (``RecformerModel.last_item_weight``) times the normalised mean encoding of the newest item
            read alone (one more, short encoder pass), i.e. its item embedding. A mean over a whole
            session blurs what its last product was, while the next product is most often a sibling of
            it (same line, other colour or size), which item embeddings find. An item alone pools in
            the same direction as with ``"mean"``, so item tables do not change.
        table_item_weight (`float`, defaults to 0.0):
            Retrieval only: ``Recommender`` adds this times the indexed embedding of the session's newest
            item (its row of the finetuned item table, which candidates are scored in) to the session
            vector before searching. Finetuning chooses it on validation with ``last_item_weight``.
            Why: the table is frozen from an earlier checkpoint, and the newest item's own row finds its
            siblings in that table better than the encoder's current reading of it does.
        lexical_weight (`float`, defaults to 0.0):
            Retrieval only: ``Recommender`` adds this times the title TF-IDF similarity of each product to
            the session's last products (textknn's text score, :mod:`recformer_m2.lexical`) to its score;
            0 searches by the model alone. Finetuning chooses it on validation (``lexical_grid``).
        temperature (`float`, defaults to 0.05):
            Cosine similarities are divided by it before every softmax (contrastive and ranking).
        token_type_size (`int`, defaults to 4):
            Size of the token-type table, at least the four :class:`TokenType` values
            (CLS, attribute key, attribute value, padding). Longformer's ``type_vocab_size`` is set
            to the same value and otherwise unused.
        mlm_weight (`float`, defaults to 0.1):
            Weight of the masked-language-model loss in pretraining (Recformer's lambda).
        item_cl_weight (`float`, defaults to 1.0):
            Weight of the session-to-next-item contrastive loss in pretraining.
        contrast_unmasked (`bool`, defaults to False):
            Score pretraining's contrastive loss on the session as written (one more encoder pass) rather
            than on the masked copy the MLM loss reads, whose hidden words are often the brand or series
            that tell one product line from another.
        attention_implementation (`str`, defaults to `"dense"`):
            How the encoder computes Longformer's attention (band of ``attention_window`` plus global CLS):
            ``"dense"``: one masked ``scaled_dot_product_attention`` per layer over the whole sequence
            (:mod:`~recformer_m2.models.attention`); ``"longformer"``: transformers' sliding chunks. Both use
            the same weights and give the same result up to float rounding; dense is faster at Recformer's
            lengths (<= 1024 tokens) because it launches far fewer kernels and never reads the device from the
            host. A ``config.json`` without this field loads as ``"dense"``.
    """

    model_type = "recformer"

    vocab_size: int = 16000
    pad_token_id: int | None = 0
    bos_token_id: int | None = 3
    eos_token_id: int | list[int] | None = 1
    sep_token_id: int | None = 4
    attention_window: list[int] | int = 64
    max_position_embeddings: int = 1024

    max_attr_num: int = 12
    max_attr_length: int = 32
    max_item_embeddings: int = 51
    max_token_num: int = 1024
    pooler_type: str = "cls"
    table_item_weight: float | int = 0.0
    lexical_weight: float | int = 0.0
    temperature: float | int = 0.05
    token_type_size: int = 4
    mlm_weight: float | int = 0.1
    item_cl_weight: float | int = 1.0
    contrast_unmasked: bool = False
    attention_implementation: str = "dense"

    def __post_init__(self, **kwargs) -> None:
        """Check every Recformer argument and store the attention window per layer."""
        self.check_recformer_args()
        if isinstance(self.attention_window, int):
            self.attention_window = [self.attention_window] * self.num_hidden_layers
        self.type_vocab_size = self.token_type_size
        super().__post_init__(**kwargs)

    def check_recformer_args(self) -> None:
        """Raise ``ValueError`` naming the offending values; the model calls it again at build time."""
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden size ({self.hidden_size}) is not a multiple of the number of attention heads "
                f"({self.num_attention_heads})"
            )
        windows = (
            [self.attention_window] * self.num_hidden_layers
            if isinstance(self.attention_window, int)
            else list(self.attention_window)
        )
        if len(windows) != self.num_hidden_layers:
            raise ValueError(
                f"attention_window has {len(windows)} entries ({windows}) but num_hidden_layers is "
                f"{self.num_hidden_layers}; give one window per layer or a single int"
            )
        bad = sorted({w for w in windows if w <= 0 or w % 2 != 0})
        if bad:
            raise ValueError(
                f"attention windows must be even and positive, got {bad} (attention_window={self.attention_window})"
            )
        if self.attention_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, "
                             f"got {self.attention_implementation!r}")
        if self.pooler_type not in POOLER_TYPES:
            raise ValueError(f"pooler_type must be one of {POOLER_TYPES}, got {self.pooler_type!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not self.lexical_weight >= 0:
            raise ValueError(f"lexical_weight must be >= 0, got {self.lexical_weight}")
        for name in ("max_attr_num", "max_attr_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_item_embeddings < 2:
            raise ValueError(
                f"max_item_embeddings must be at least 2 (position 0 plus one item), got {self.max_item_embeddings}"
            )
        if self.max_token_num < 2:
            raise ValueError(f"max_token_num must be at least 2 (CLS plus one token), got {self.max_token_num}")
        if self.max_position_embeddings < self.max_token_num:
            raise ValueError(
                f"max_position_embeddings ({self.max_position_embeddings}) is smaller than max_token_num "
                f"({self.max_token_num}); the model numbers every session token"
            )
        if self.token_type_size < len(TokenType):
            raise ValueError(
                f"token_type_size ({self.token_type_size}) cannot hold the {len(TokenType)} token types "
                f"{[t.name for t in TokenType]}"
            )
        if self.mlm_weight < 0 or self.item_cl_weight < 0:
            raise ValueError(
                f"loss weights must be non-negative, got mlm_weight={self.mlm_weight}, "
                f"item_cl_weight={self.item_cl_weight}"
            )
        if self.pad_token_id is None or not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be an id below vocab_size ({self.vocab_size})")


__all__ = ["ATTENTION_IMPLEMENTATIONS", "POOLER_TYPES", "RecformerConfig", "TokenType"]
