"""recformer-m2: next-product recommendation from product text, across languages (Amazon-M2)."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
