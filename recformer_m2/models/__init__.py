"""Recformer (Li et al. 2023): configuration, encoder and heads, and the collator that feeds them.

Importing this package registers ``"recformer"`` with ``AutoConfig``, ``RecformerModel`` with ``AutoModel``,
``RecformerForPretraining`` with ``AutoModelForPreTraining`` and ``RecformerForSeqRec`` with
:class:`AutoModelForSeqRec`, so ``AutoModelForSeqRec.from_pretrained(best_dir)`` restores a finetuned folder.
"""

from .auto import AutoModelForSeqRec, register_auto_classes
from .collator import NOT_MASKABLE, Item, ItemTokenizer, SessionCollator, TokenizedItem
from .configuration_recformer import POOLER_TYPES, RecformerConfig, TokenType
from .item_table import TABLE_FILE, ItemTable
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

register_auto_classes()

__all__ = [
    "IGNORE_INDEX",
    "TABLE_FILE",
    "AutoModelForSeqRec",
    "ItemTable",
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
