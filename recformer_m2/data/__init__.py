"""Amazon-M2 data: reading folders, the product catalog, sessions and validation splits."""

from .m2 import Catalog, M2Data, Sessions, default_cache_dir
from .split import locale_split, validation_split

__all__ = ["Catalog", "M2Data", "Sessions", "default_cache_dir", "locale_split", "validation_split"]
