"""Recformer (Li et al. 2023): configuration, encoder and heads, and the collator that feeds them.

Importing this package registers ``"recformer"`` with ``AutoConfig`` and ``RecformerModel`` with
``AutoModel``, so ``AutoModel.from_pretrained(folder)`` works on a saved Recformer folder.
"""

from transformers import AutoConfig, AutoModel

from .collator import NOT_MASKABLE, Item, ItemTokenizer, SessionCollator, TokenizedItem
from .configuration_recformer import POOLER_TYPES, RecformerConfig, TokenType
from .modeling_recformer import (
    IGNORE_INDEX,
    RecformerEmbeddings,
    RecformerForPretraining,
    RecformerForSeqRec,
    RecformerModel,
    RecformerModelOutput,
    RecformerPreTrainedModel,
    RecformerPretrainingOutput,
    RecformerSeqRecOutput,
    gather_across_ranks,
    item_contrastive_loss,
    table_contrastive_loss,
)

AutoConfig.register("recformer", RecformerConfig, exist_ok=True)
AutoModel.register(RecformerConfig, RecformerModel, exist_ok=True)

__all__ = [
    "IGNORE_INDEX",
    "NOT_MASKABLE",
    "POOLER_TYPES",
    "Item",
    "ItemTokenizer",
    "RecformerConfig",
    "RecformerEmbeddings",
    "RecformerForPretraining",
    "RecformerForSeqRec",
    "RecformerModel",
    "RecformerModelOutput",
    "RecformerPreTrainedModel",
    "RecformerPretrainingOutput",
    "RecformerSeqRecOutput",
    "SessionCollator",
    "TokenType",
    "TokenizedItem",
    "gather_across_ranks",
    "item_contrastive_loss",
    "table_contrastive_loss",
]
