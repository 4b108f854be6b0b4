"""Auto classes for Recformer: ``"recformer"`` in ``AutoConfig``, the encoder in ``AutoModel``, the pretraining
model in transformers' ``AutoModelForPreTraining``, and the next-item head in :class:`AutoModelForSeqRec`.

transformers has no Auto class for sequential recommendation, so :class:`AutoModelForSeqRec` is one built
the way transformers builds its own (``_BaseAutoModelClass`` over an initially empty mapping, filled by
``register``): ``AutoModelForSeqRec.from_pretrained(best_dir)`` restores a finetuned folder whole
(weights, item table, tokenizer), strictly (:meth:`RecformerPreTrainedModel.from_pretrained`).
"""

from __future__ import annotations

from collections import OrderedDict

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping, auto_class_update
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .configuration_recformer import RecformerConfig
from .modeling_recformer import RecformerForPretraining, RecformerForSeqRec, RecformerModel


class AutoModelForSeqRec(_BaseAutoModelClass):
    """Loads the sequential-recommendation head registered for a config's model type."""

    _model_mapping = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())


AutoModelForSeqRec = auto_class_update(AutoModelForSeqRec, head_doc="sequential recommendation")


def register_auto_classes() -> None:
    """Register Recformer with the Auto classes (idempotent; run on importing ``recformer_m2.models``)."""
    AutoConfig.register("recformer", RecformerConfig, exist_ok=True)
    AutoModel.register(RecformerConfig, RecformerModel, exist_ok=True)
    AutoModelForPreTraining.register(RecformerConfig, RecformerForPretraining, exist_ok=True)
    AutoModelForSeqRec.register(RecformerConfig, RecformerForSeqRec, exist_ok=True)


__all__ = ["AutoModelForSeqRec", "register_auto_classes"]
