"""KDD Cup 2023 submission files and ground truth: write, read with validation, score.

A submission is a parquet file with one row per test session, in the test file's order:
``locale`` and either ``next_item_prediction`` (up to 100 product ids, best first; tasks
1 and 2) or ``next_item_title`` (one string; task 3). Ground truth is ``gt_task{1,2,3}.csv``
with ``next_item,locale`` or ``next_item_title,locale``, row-aligned with the same test file.
Rows in error messages are data rows counted from 1 (the first row after a CSV header).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recformer_m2.constants import LOCALES, TOP_K
from recformer_m2.errors import DataFormatError
from recformer_m2.metrics import evaluate_rankings, title_bleu

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "next_item_prediction"
"""Submission column of tasks 1 and 2: a list of product ids, best first."""

TITLE_COLUMN = "next_item_title"
"""Submission and ground-truth column of task 3: the next product's title."""

ITEM_COLUMN = "next_item"
"""Ground-truth column of tasks 1 and 2: the next product's id."""

_PARQUET_SUFFIXES = (".parquet", ".pq")


def write_submission(path: str | Path, locales: Sequence[str], predictions: Sequence[Sequence[str]] | None = None,
                     titles: Sequence[str] | None = None) -> Path:
    """Write a KDD Cup submission; give ``predictions`` (tasks 1, 2) or ``titles`` (task 3).

    Refuses what the leaderboard would reject or silently misscore: more than 100 ids in a
    row, a repeated id in a row, ids or titles that are not strings, unknown locales.
    """
    if (predictions is None) == (titles is None):
        raise ValueError("give exactly one of predictions (tasks 1, 2) or titles (task 3)")
    values = predictions if predictions is not None else titles
    if len(values) != len(locales):
        raise ValueError(f"{len(locales)} locales but {len(values)} {'predictions' if titles is None else 'titles'}")
    locale_list = [str(loc) for loc in locales]
    for i, loc in enumerate(locale_list):
        if loc not in LOCALES:
            raise ValueError(f"row {i + 1}: unknown locale {loc!r}; expected one of {list(LOCALES)}")
    if predictions is not None:
        rows = [_checked_prediction(row, i) for i, row in enumerate(predictions)]
        column, column_type = PREDICTION_COLUMN, pa.list_(pa.string())
    else:
        rows = [_checked_title(title, i) for i, title in enumerate(titles)]
        column, column_type = TITLE_COLUMN, pa.string()
    table = pa.table({"locale": pa.array(locale_list, pa.string()), column: pa.array(rows, column_type)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    logger.info("wrote %d %s rows to %s", len(rows), column, path)
    return path


def _checked_prediction(row: Any, index: int) -> list[str]:
    """One prediction row as a list of at most TOP_K distinct string ids, or ValueError."""
    if isinstance(row, (str, bytes)):
        raise ValueError(f"row {index + 1}: prediction is a single string {row!r}, expected a list of ids")
    ids = list(row)
    if len(ids) > TOP_K:
        raise ValueError(f"row {index + 1}: {len(ids)} predicted ids, at most {TOP_K} allowed")
    for item in ids:
        if not isinstance(item, str):
            raise ValueError(f"row {index + 1}: id {item!r} is {type(item).__name__}, expected a string product id")
    if len(set(ids)) != len(ids):
        repeated = sorted({item for item in ids if ids.count(item) > 1})
        raise ValueError(f"row {index + 1}: duplicate ids {repeated}")
    return [str(item) for item in ids]


def _checked_title(title: Any, index: int) -> str:
    """One task-3 title as a string, or ValueError."""
    if not isinstance(title, str):
        raise ValueError(f"row {index + 1}: title {title!r} is {type(title).__name__}, expected a string")
    return str(title)


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true (null counts as true) in a boolean array, or None."""
    flags = pc.fill_null(mask, True).to_numpy(zero_copy_only=False)
    hits = flags.nonzero()[0]
    return int(hits[0]) if len(hits) else None


def _check_locales(path: Path, column: pa.ChunkedArray) -> list[str]:
    """Locale column as strings, or DataFormatError naming the first missing or unknown one."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_dictionary(column.type)):
        raise DataFormatError(path, f"locale column has type {column.type}, expected strings", field="locale")
    column = column.cast(pa.string())
    bad = _first_true(pc.invert(pc.is_in(column, value_set=pa.array(LOCALES))))
    if bad is not None:
        raise DataFormatError(path, f"unknown locale {column[bad].as_py()!r}; expected one of {list(LOCALES)}",
                              row=bad + 1, field="locale")
    return column.to_pylist()


def _check_predictions(path: Path, column: pa.ChunkedArray) -> list[list[str]]:
    """Prediction lists, or DataFormatError naming the first non-list, overlong or non-string row."""
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise DataFormatError(path, f"column has type {kind}, expected a list of product ids per row",
                              row=1 if len(column) else None, field=PREDICTION_COLUMN)
    if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
        raise DataFormatError(path, f"ids have type {kind.value_type}, expected strings",
                              row=1 if len(column) else None, field=PREDICTION_COLUMN)
    missing = _first_true(pc.is_null(column))
    if missing is not None:
        raise DataFormatError(path, "missing prediction list", row=missing + 1, field=PREDICTION_COLUMN)
    lengths = pc.list_value_length(column)
    too_long = _first_true(pc.greater(lengths, TOP_K))
    if too_long is not None:
        raise DataFormatError(path, f"{lengths[too_long].as_py()} predicted ids, at most {TOP_K} allowed",
                              row=too_long + 1, field=PREDICTION_COLUMN)
    rows = column.to_pylist()
    for i, ids in enumerate(rows):
        if None in ids:
            raise DataFormatError(path, "null id in prediction list", row=i + 1, field=PREDICTION_COLUMN)
    repeated = sum(len(set(ids)) != len(ids) for ids in rows)
    if repeated:
        logger.warning("%s: %d rows repeat an id; only the first occurrence is scored", path, repeated)
    return rows


def _check_strings(path: Path, column: pa.ChunkedArray, field: str, nulls_as_empty: bool) -> list[str]:
    """A string column (titles or ids); nulls become '' where allowed, else DataFormatError."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataFormatError(path, f"column has type {column.type}, expected strings",
                              row=1 if len(column) else None, field=field)
    missing = _first_true(pc.is_null(column))
    if missing is not None and not nulls_as_empty:
        raise DataFormatError(path, "missing value", row=missing + 1, field=field)
    return pc.fill_null(column, "").to_pylist()


def _read_parquet(path: Path) -> pa.Table:
    """A parquet table, or DataFormatError when the file is not parquet."""
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        if not path.exists():
            raise
        raise DataFormatError(path, f"not a readable parquet file ({error})") from error


def _task_column(path: Path, names: Sequence[str], candidates: tuple[str, str]) -> str:
    """The one task column a file holds among ``candidates``, or DataFormatError."""
    if "locale" not in names:
        raise DataFormatError(path, f"missing column 'locale' (columns: {list(names)})", field="locale")
    present = [name for name in candidates if name in names]
    if len(present) != 1:
        found = "both" if present else "neither"
        raise DataFormatError(path, f"expected exactly one of {list(candidates)}, found {found} "
                                    f"(columns: {list(names)})", field=candidates[0])
    return present[0]


def read_submission(path: str | Path) -> pd.DataFrame:
    """Read and validate a submission parquet; returns ``locale`` and its task column.

    Predictions come back as lists of string ids. Errors are DataFormatError naming the
    file, the first offending data row (from 1) and the field.
    """
    path = Path(path)
    table = _read_parquet(path)
    column = _task_column(path, table.column_names, (PREDICTION_COLUMN, TITLE_COLUMN))
    locales = _check_locales(path, table.column("locale"))
    if column == PREDICTION_COLUMN:
        values = _check_predictions(path, table.column(column))
    else:
        values = _check_strings(path, table.column(column), TITLE_COLUMN, nulls_as_empty=False)
    return pd.DataFrame({"locale": locales, column: values})


def read_truth(path: str | Path) -> pd.DataFrame:
    """Read ground truth (``gt_task{1,2,3}.csv`` or parquet): ``next_item`` or ``next_item_title``, ``locale``.

    CSV is parsed as CSV (titles hold commas, quotes and newlines) with every field a
    string and empty fields kept as '' rather than NaN, since an empty title is a
    legitimate reference.
    """
    path = Path(path)
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        table = _read_parquet(path)
    else:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise DataFormatError(path, f"not a readable CSV file ({error})") from error
        table = pa.table({name: pa.array(frame[name].tolist(), pa.string()) for name in frame.columns})
    column = _task_column(path, table.column_names, (ITEM_COLUMN, TITLE_COLUMN))
    locales = _check_locales(path, table.column("locale"))
    values = _check_strings(path, table.column(column), column, nulls_as_empty=column == TITLE_COLUMN)
    if column == ITEM_COLUMN:
        empty = next((i for i, item in enumerate(values) if not item), None)
        if empty is not None:
            raise DataFormatError(path, "missing next item id", row=empty + 1, field=ITEM_COLUMN)
    return pd.DataFrame({column: values, "locale": locales})


def evaluate_submission(pred_path: str | Path, truth_path: str | Path) -> pd.DataFrame:
    """Score a submission against its ground truth; per-locale table plus ``overall``.

    Tasks 1 and 2 give MRR/Recall/NDCG@100 (the leaderboard ranks by MRR@100); task 3
    gives BLEU on a 0-1 scale. Rows must align with the truth, locale by locale.
    """
    pred_path, truth_path = Path(pred_path), Path(truth_path)
    submission = read_submission(pred_path)
    truth = read_truth(truth_path)
    expected = PREDICTION_COLUMN if ITEM_COLUMN in truth.columns else TITLE_COLUMN
    if expected not in submission.columns:
        raise DataFormatError(pred_path, f"truth {truth_path} needs column '{expected}', the submission lacks it",
                              field=expected)
    if len(submission) != len(truth):
        raise DataFormatError(pred_path, f"{len(submission)} rows but the truth {truth_path} has {len(truth)}")
    mismatch = (submission["locale"].to_numpy() != truth["locale"].to_numpy()).nonzero()[0]
    if len(mismatch):
        i = int(mismatch[0])
        raise DataFormatError(pred_path, f"locale {submission['locale'].iat[i]!r} but the truth {truth_path} "
                                         f"has {truth['locale'].iat[i]!r} in this row ({len(mismatch)} rows differ)",
                              row=i + 1, field="locale")
    if expected == PREDICTION_COLUMN:
        return evaluate_rankings(submission[PREDICTION_COLUMN].tolist(), truth[ITEM_COLUMN].tolist(),
                                 submission["locale"].tolist(), ks=(TOP_K,))
    return title_bleu(submission[TITLE_COLUMN].tolist(), truth[TITLE_COLUMN].tolist(),
                      submission["locale"].tolist())
