"""recformer-m2: next-product recommendation from product text, across languages (Amazon-M2).

Model classes are exported here but imported on first use, so the command line and the data layer
start without loading torch and transformers.
"""

import importlib
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "RecformerConfig": "recformer_m2.models",
    "RecformerModel": "recformer_m2.models",
    "RecformerForPretraining": "recformer_m2.models",
    "RecformerForSeqRec": "recformer_m2.models",
    "SessionCollator": "recformer_m2.models",
    "RecformerEncoder": "recformer_m2.encode",
    "Recommender": "recformer_m2.recommender",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recformer_m2' has no attribute {name!r}")
