"""Fixed facts of the Amazon-M2 (KDD Cup 2023) data format."""

LOCALES: tuple[str, ...] = ("UK", "DE", "JP", "ES", "FR", "IT")
"""Every locale of Amazon-M2; a locale's index in this tuple is its integer code."""

TASK_LOCALES: dict[int, tuple[str, ...]] = {
    1: ("UK", "DE", "JP"),
    2: ("ES", "FR", "IT"),
    3: LOCALES,
}
"""Locales whose sessions each task's test file holds (task 3 spans all six)."""

PRODUCT_COLUMNS: tuple[str, ...] = (
    "id", "locale", "title", "price", "brand", "color", "size", "model", "material", "author", "desc",
)
"""Column order of ``products_train.csv``."""

ATTRIBUTES: tuple[str, ...] = ("title", "brand", "color", "size", "model", "material", "author", "desc")
"""Text attributes of a product, in the default order they are flattened into a sentence."""

TOP_K = 100
"""Length of a KDD Cup prediction list and the cut-off of every ranking metric."""
