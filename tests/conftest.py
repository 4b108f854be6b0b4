"""Shared fixtures: the hand-written Amazon-M2 format sample copied from ../shared."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def m2_sample_dir() -> Path:
    """Folder with the format sample: quirks of the real KDD Cup files, a few rows each."""
    return FIXTURES


def write_m2_folder(folder: Path, products: list[tuple], sessions: list[tuple], tests: dict[int, list[tuple]] | None = None) -> Path:
    """Write a tiny data folder in the KDD Cup CSV format.

    ``products``: (id, locale, title[, brand]) tuples; ``sessions``: (prev_ids, next_id, locale);
    ``tests``: task -> [(prev_ids, locale)].
    """
    import numpy as np
    import pandas as pd

    from recformer_m2.constants import PRODUCT_COLUMNS

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for product in products:
        row = dict.fromkeys(PRODUCT_COLUMNS, "")
        row.update(id=product[0], locale=product[1], title=product[2], price=1.0)
        if len(product) > 3:
            row["brand"] = product[3]
        rows.append(row)
    pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS)).to_csv(folder / "products_train.csv", index=False)
    pd.DataFrame(
        [(str(np.array(prev)), nxt, loc) for prev, nxt, loc in sessions], columns=["prev_items", "next_item", "locale"]
    ).to_csv(folder / "sessions_train.csv", index=False)
    for task, test_sessions in (tests or {}).items():
        pd.DataFrame(
            [(str(np.array(prev)), loc) for prev, loc in test_sessions], columns=["prev_items", "locale"]
        ).to_csv(folder / f"sessions_test_task{task}.csv", index=False)
    return folder


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private parse cache per test, so tests never see each other's caches."""
    return tmp_path / "cache"
