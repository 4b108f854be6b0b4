"""Reading Amazon-M2 (KDD Cup 2023) data folders exactly, fast, and with content-keyed caches.

A data folder holds ``products_train``, ``sessions_train`` and ``sessions_test_task{1,2,3}`` as CSV (the
KDD Cup files) or parquet (list columns), and optionally ``gt_task{1,2,3}.csv`` ground truth row-aligned
with the test files. Parsing uses pyarrow's multi-threaded CSV reader (quoted fields may hold newlines, as
``prev_items`` and ``desc`` do); every parsed table is cached as parquet under a key made of the bytes of
the files it came from, so a second run reads the cache in seconds and a changed file is never served stale.

Row numbers in error messages count data records from 1 (the header is not counted), which differs from
line numbers when quoted fields span lines.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..constants import ATTRIBUTES, LOCALES, PRODUCT_COLUMNS
from ..cache import cache_dir as kind_cache_dir
from ..cache import default_cache_dir, touch  # default_cache_dir: re-exported, defined once in cache.py
from ..errors import DataFormatError, MissingTextError

logger = logging.getLogger(__name__)

PARSER_VERSION = "2"
"""Bumped whenever parsing changes what lands in a cache, so old caches are ignored (2: skip counts stored)."""

_PREV_ITEMS_PATTERN = r"^\[\s*('[^'\s]*'\s*)*\]\s*$"
"""A numpy repr of a string array: ``['A' 'B']``, possibly wrapped onto several lines."""

_TEXT_COLUMNS = [c for c in PRODUCT_COLUMNS if c != "price"]


def file_digest(path: Path, digest_size: int = 12, chunk: int = 1 << 23) -> str:
    """blake2b of a file's bytes: cache keys name content, never a file name or a date; cache records
    check a file against it."""
    h = hashlib.blake2b(digest_size=digest_size)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _find_source(folder: Path, stem: str, required: bool = True) -> Path | None:
    for suffix in (".csv", ".parquet"):
        path = folder / f"{stem}{suffix}"
        if path.exists():
            return path
    if required:
        raise FileNotFoundError(f"{folder}: no {stem}.csv or {stem}.parquet")
    return None


def _check_utf8(path: Path, chunk: int = 1 << 24) -> None:
    """Raise naming the first non-UTF-8 byte of a file and its line; read in chunks to bound memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                # err.object is the up to 3 bytes of an unfinished character held back from the previous
                # block (never a newline), then this block
                start = err.start - (len(err.object) - len(block))
                line = lines + block.count(b"\n", 0, max(start, 0)) + 1
                bad = err.object[err.start]
                raise DataFormatError(
                    path, f"not UTF-8: byte {bad:#x} at offset {offset + start} (line {line} of the file)"
                ) from None
            if not block:
                return
            offset, lines = offset + len(block), lines + block.count(b"\n")


def _csv_header(path: Path) -> list[str]:
    """The header record of a CSV file, read by Python's csv module (for messages on the error path)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return next(csv.reader(f), [])


def read_csv_table(path: Path, columns: dict[str, pa.DataType], on_bad_rows: str = "error") -> tuple[pa.Table, int]:
    """Read a KDD Cup CSV into an arrow table with exactly ``columns``, checking its header; returns the
    table and the number of malformed rows skipped. A file without data rows gives an empty table.

    ``on_bad_rows``: ``"error"`` raises on a row with the wrong number of fields, naming its data row;
    ``"skip"`` skips such rows (the count is returned, for the caller to report on every run).

    The fast path is pyarrow's multi-threaded reader with no Python callback. A callback
    (``invalid_row_handler``) runs on arrow's worker threads and takes the GIL there; a worker that asks for
    the GIL while the interpreter finalizes (the main thread has just raised) is ended by ``pthread_exit``
    inside C++ frames, which aborts the process: ``terminate called without an active exception``, exit
    134 (the backtrace of apache/arrow#45017 shows that path). Only when the fast read fails is the file read
    again single-threaded, the callback then running in this thread, to find and name the bad rows.
    """
    convert = pcsv.ConvertOptions(column_types=columns, strings_can_be_null=False, null_values=[""])
    parse = pcsv.ParseOptions(newlines_in_values=True)
    try:
        table, skipped = pcsv.read_csv(path, parse_options=parse, convert_options=convert), 0
    except pa.ArrowInvalid as err:
        table, skipped = _read_csv_diagnosing(path, columns, convert, on_bad_rows, str(err))
    header = table.column_names
    repeated = sorted({c for c in header if header.count(c) > 1 and c in columns})
    if repeated:
        raise DataFormatError(path, f"column(s) {repeated} appear more than once in the header {header}")
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataFormatError(path, f"missing column(s) {missing}; header has {header}")
    return table.select(list(columns)), skipped


def _read_csv_diagnosing(path: Path, columns: dict[str, pa.DataType], convert: pcsv.ConvertOptions,
                         on_bad_rows: str, message: str) -> tuple[pa.Table, int]:
    """Second, single-threaded read after the fast one failed: names the first bad data row and field,
    or returns the table without the malformed rows (``on_bad_rows="skip"``) and how many were skipped."""
    # Before any handler sees row text: pyarrow cannot pass a row that is not UTF-8 to Python (it prints an
    # "Exception ignored" traceback instead).
    _check_utf8(path)
    if "UTF8" in message:
        raise DataFormatError(path, f"invalid UTF-8 in one of the columns {list(columns)}")
    if "Empty CSV file" in message:
        return pa.table({c: pa.array([], t) for c, t in columns.items()}), 0
    bad_rows: list[pcsv.InvalidRow] = []

    def handle_invalid(row: pcsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "skip"

    parse = pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handle_invalid)
    serial = pcsv.ReadOptions(use_threads=False)  # the handler then runs in this thread only
    try:
        table, conversion = pcsv.read_csv(path, read_options=serial, parse_options=parse, convert_options=convert), None
    except pa.ArrowInvalid as err:
        table, conversion = None, str(err)
    if bad_rows and (on_bad_rows == "error" or table is None):
        first = bad_rows[0]
        header = _csv_header(path)
        if conversion is None or _conversion_row(conversion) is None or first.number - 1 < _conversion_row(conversion):
            raise DataFormatError(
                path, f"wrong number of fields: {first.actual_columns} where the header has {first.expected_columns} "
                f"{header} ({len(bad_rows)} such row(s)); row text: {first.text[:200]!r}", row=first.number - 1,
            )
    if conversion is not None:
        raise _conversion_error(path, conversion)
    return table, len(bad_rows)


def _conversion_row(message: str) -> int | None:
    """Data row of an arrow conversion error message (its ``Row #N`` counts the header as row 1)."""
    match = re.search(r"Row #(\d+)", message)
    return int(match.group(1)) - 1 if match else None


def _conversion_error(path: Path, message: str) -> DataFormatError:
    """A single-threaded arrow conversion error (``In CSV column #3: Row #5: CSV conversion error to double:
    invalid value 'x'``) as a DataFormatError naming the data row and the field."""
    column = re.search(r"column #(\d+)", message)
    header = _csv_header(path)
    field = header[int(column.group(1))] if column and int(column.group(1)) < len(header) else None
    detail = message.split("conversion error to ", 1)[-1]
    if detail.startswith("double:"):
        detail = "not a number" + detail[len("double"):]
    return DataFormatError(path, " ".join(detail.split()), _conversion_row(message), field)


def _first_true(mask: pa.Array | np.ndarray) -> int:
    """Index of the first true entry (nulls count as true); callers check that there is one."""
    if isinstance(mask, (pa.Array, pa.ChunkedArray)):
        mask = pc.fill_null(mask, True).to_numpy(zero_copy_only=False)
    return int(np.flatnonzero(np.asarray(mask))[0])


def locale_codes(path: Path, locales: pa.Array) -> np.ndarray:
    """Map locale strings to indices into LOCALES, raising on the first unknown one."""
    if pa.types.is_dictionary(locales.type):
        locales = locales.cast(pa.string())
    if not (pa.types.is_string(locales.type) or pa.types.is_large_string(locales.type)):
        raise DataFormatError(path, f"column has type {locales.type}, expected locale names {list(LOCALES)}",
                              field="locale")
    idx = pc.index_in(locales, value_set=pa.array(LOCALES))
    if idx.null_count:
        row = _first_true(pc.is_null(idx).to_numpy(zero_copy_only=False))
        raise DataFormatError(
            path, f"unknown locale {locales[row].as_py()!r} (expected one of {list(LOCALES)})", row + 1, "locale"
        )
    return idx.to_numpy(zero_copy_only=False).astype(np.int8)


def parse_prev_items(path: Path, column: pa.ChunkedArray | pa.Array) -> pa.ListArray:
    """Parse ``prev_items`` (numpy-repr strings, or an arrow list column) into a list<string> array."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        if column.null_count:
            raise DataFormatError(path, "missing value", _first_true(pc.is_null(column)) + 1, "prev_items")
        return column.cast(pa.list_(pa.string()))
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataFormatError(path, f"column has type {column.type}, expected strings like ['A' 'B'] or lists of ids",
                              field="prev_items")
    if column.null_count:
        raise DataFormatError(path, "missing value", _first_true(pc.is_null(column)) + 1, "prev_items")
    valid = pc.match_substring_regex(column, _PREV_ITEMS_PATTERN)
    if not np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool).all():
        row = _first_true(pc.invert(valid))
        value = column[row].as_py()[:120]
        raise DataFormatError(path, f"not a list of quoted ids like ['A' 'B']: {value!r}", row + 1, "prev_items")
    stripped = pc.utf8_trim_whitespace(pc.replace_substring_regex(column, r"[\[\]']", ""))
    split = pc.split_pattern_regex(stripped, r"\s+")
    # "[]" splits into [""]: remove empty strings so an empty session is an empty list.
    flat = split.flatten()
    keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    offsets = filtered_offsets(split.offsets.to_numpy(), keep).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(pa.array(keep)))


def filtered_offsets(offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Offsets of ragged lists after dropping the flat entries where ``keep`` is False."""
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    kept = np.bincount(owner[keep], minlength=len(lengths))
    return np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)


@dataclass(frozen=True)
class Sessions:
    """Sessions of one file in columnar form: session ``i`` is ``items[offsets[i]:offsets[i+1]]``.

    Items are integer codes into the catalog's id vocabulary (``Catalog.ids``), oldest first, as in the
    file. ``next_item`` holds codes of the target (``-1`` where unknown, e.g. test files).
    """

    items: np.ndarray  # (total,) int32
    offsets: np.ndarray  # (n + 1,) int64
    locale: np.ndarray  # (n,) int8, index into LOCALES
    next_item: np.ndarray  # (n,) int32, -1 when unknown
    source: str = ""

    def __len__(self) -> int:
        return len(self.locale)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def session_index(self) -> np.ndarray:
        """Session number of every entry of ``items`` (for vectorised per-session work)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def select(self, index: np.ndarray) -> "Sessions":
        """The sessions at ``index`` (integer positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        lengths = self.lengths[index]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        starts = self.offsets[index]
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return Sessions(self.items[gather], offsets, self.locale[index], self.next_item[index], self.source)

    def in_locales(self, locales: tuple[str, ...] | list[str]) -> np.ndarray:
        """Boolean mask of sessions from the given locales."""
        wanted = [LOCALES.index(loc) for loc in locales]
        return np.isin(self.locale, wanted)

    def to_lists(self) -> list[np.ndarray]:
        return np.split(self.items, self.offsets[1:-1])

    def prefix_positions(self) -> tuple["Sessions", np.ndarray]:
        """Every position of each full sequence (``prev_items`` then ``next_item``) that a session
        recommender can learn from: all but the first, minus items already earlier in the session (a
        target never repeats a session item). Sessions with an unknown target or no items are left out.

        Returns (full sequences, with ``next_item`` -1; the ``items`` index of each predicted position):
        position ``p`` of session ``s`` is predicted from ``items[offsets[s]:p]``. On Amazon-M2 this gives
        about four examples per session instead of one.
        """
        known = self.select((self.next_item >= 0) & (self.lengths > 0))
        lengths = known.lengths + 1
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.empty(offsets[-1], dtype=self.items.dtype)
        is_target = np.zeros(offsets[-1], dtype=bool)
        is_target[offsets[1:] - 1] = True
        flat[is_target], flat[~is_target] = known.next_item, known.items
        full = Sessions(flat, offsets, known.locale, np.full(len(known), -1, dtype=known.next_item.dtype), self.source)
        owner = full.session_index
        position = np.arange(len(flat), dtype=np.int64)
        # a position repeats an item when the same (session, item) occurred earlier
        key = owner * (int(flat.max(initial=0)) + 1) + flat
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        predicted = (position > offsets[:-1][owner]) & (first[inverse] == position)
        return full, position[predicted]

    def inputs_as_sessions(self) -> "Sessions":
        """Each session's ``prev_items`` as a session of its own whose last item is its target: what a model
        may learn from sessions it will rank, never reading their real targets (``next_item`` is ignored).
        Sessions of fewer than two items are left out."""
        keep = self.select(self.lengths >= 2)
        last = keep.offsets[1:] - 1
        earlier = np.ones(len(keep.items), dtype=bool)
        earlier[last] = False
        offsets = keep.offsets - np.arange(len(keep) + 1, dtype=np.int64)
        return Sessions(keep.items[earlier], offsets, keep.locale, keep.items[last].astype(keep.next_item.dtype),
                        keep.source)

    @staticmethod
    def concatenate(parts: Sequence[Sessions]) -> "Sessions":
        """The sessions of ``parts``, in order, as one set."""
        sizes = np.cumsum([0] + [len(p.items) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [p.offsets[1:] + size for p, size in zip(parts, sizes)]).astype(np.int64)
        return Sessions(np.concatenate([p.items for p in parts]), offsets, np.concatenate([p.locale for p in parts]),
                        np.concatenate([p.next_item for p in parts]), "+".join(dict.fromkeys(p.source for p in parts)))

    def prefixes(self, max_length: int | None = None) -> "Sessions":
        """:meth:`prefix_positions` as sessions of their own: each keeps the newest ``max_length`` items
        of its prefix (all when None) and has the predicted item as ``next_item``."""
        full, position = self.prefix_positions()
        start = full.offsets[:-1][full.session_index[position]]
        if max_length is not None:
            start = np.maximum(start, position - max_length)
        lengths = position - start
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return Sessions(full.items[gather], offsets, full.locale[full.session_index[position]],
                        full.items[position], self.source)


class Catalog:
    """The product table, looked up by (id, locale): one row per product and locale it is sold in.

    Ids are mapped to integer codes (``ids[code]`` is the id string); the same id in several locales
    shares one code and has one row per locale, each with that locale's text.
    """

    def __init__(self, table: pd.DataFrame, source: str = "", digest: str = "", no_text_reason: str = ""):
        self.table = table.reset_index(drop=True)
        self.source = source
        self.digest = digest
        """Digest of the product file's bytes: names this catalog's content in cache keys."""
        self.no_text_reason = no_text_reason
        """Why this catalog has no text, when its reader knows better than "all attributes empty"."""
        self.ids: np.ndarray = np.asarray(pd.unique(self.table["id"]).astype(object))
        self.ids.sort()
        self._id_index = pd.Index(self.ids)
        self.table["code"] = self._id_index.get_indexer(self.table["id"]).astype(np.int32)
        self.table["locale_idx"] = pd.Index(LOCALES).get_indexer(self.table["locale"]).astype(np.int8)
        self._rows = np.full((len(LOCALES), len(self.ids)), -1, dtype=np.int32)
        self._rows[self.table["locale_idx"].to_numpy(), self.table["code"].to_numpy()] = np.arange(len(self.table))

    def __len__(self) -> int:
        return len(self.table)

    @property
    def num_ids(self) -> int:
        return len(self.ids)

    @cached_property
    def has_text(self) -> bool:
        """Whether any product has any text attribute. Id methods (popularity, co-visitation, ID baselines)
        work without; text methods (textknn, Recformer, titles) call :meth:`require_text` first."""
        for key in ATTRIBUTES:
            if key in self.table:
                values = self.table[key].fillna("").astype(str)
                values = values[values != ""]
                # whitespace-only values are not text; the first thousand settle it on real catalogs
                if values.head(1000).str.strip().ne("").any() or values.str.strip().ne("").any():
                    return True
        return False

    def require_text(self, method: str) -> None:
        """Raise :class:`MissingTextError` naming the missing text and ``method`` when there is no text."""
        if not self.has_text:
            reason = self.no_text_reason or f"products_train has no product text ({', '.join(ATTRIBUTES)} all empty)"
            raise MissingTextError(self.source or "catalog", reason, method)

    def codes(self, ids) -> np.ndarray:
        """Codes of id strings; ``-1`` for ids not in the catalog."""
        return self._id_index.get_indexer(np.asarray(ids, dtype=object)).astype(np.int32)

    def rows(self, codes: np.ndarray, locale: np.ndarray | int) -> np.ndarray:
        """Table rows of (code, locale) pairs; ``-1`` where the product is not sold in that locale."""
        return self._rows[locale, codes]

    def newest_sold(self, sessions: "Sessions") -> np.ndarray:
        """Position in ``sessions.items`` of each session's newest item sold in the session's locale (the
        last one that has text there); ``-1`` for a session with none."""
        owner = sessions.session_index
        sold = np.flatnonzero(self.rows(sessions.items, sessions.locale[owner]) >= 0)
        newest = np.full(len(sessions), -1, dtype=np.int64)
        np.maximum.at(newest, owner[sold], sold)
        return newest

    def locale_codes(self, locale: str | int) -> np.ndarray:
        """Codes of every product sold in a locale, ascending."""
        loc = LOCALES.index(locale) if isinstance(locale, str) else locale
        return np.flatnonzero(self._rows[loc] >= 0).astype(np.int32)

    def attributes(
        self, row: int, attributes: tuple[str, ...] = ATTRIBUTES, max_value_chars: int = 128
    ) -> list[tuple[str, str]]:
        """(key, value) pairs of a product row in the given order; empty attributes are skipped."""
        record = self.table.iloc[row]
        pairs = []
        for key in attributes:
            value = record[key]
            if key == "price":
                value = "" if pd.isna(value) else f"{value:g}"
            value = " ".join(str(value).split())  # newlines and runs of spaces inside values
            if value:
                pairs.append((key, value[:max_value_chars]))
        return pairs

    def sentence(self, row: int, attributes: tuple[str, ...] = ATTRIBUTES, max_value_chars: int = 128) -> str:
        """A product flattened into ``key value key value ...`` text."""
        return " ".join(f"{k} {v}" for k, v in self.attributes(row, attributes, max_value_chars))

    def titles(self, codes: np.ndarray, locale: np.ndarray | int) -> list[str]:
        """Titles of (code, locale) products; ``""`` where the product has no row in that locale."""
        rows = self.rows(codes, locale)
        titles = self.table["title"].to_numpy()
        return [titles[r] if r >= 0 else "" for r in rows]


_SKIPS_METADATA = b"recformer_m2.skipped"
"""Parquet metadata key of a cached table: the counts of what its parse skipped, reported on every load."""


def _cached(cache: Path, key: str, build) -> tuple[pa.Table, dict[str, int]]:
    """Read a parquet cache file for ``key`` or build ``(table, skip counts)``, write both atomically and
    return them. The counts travel with the table so that a run served from the cache reports them too."""
    path = cache / f"{key}.parquet"
    if path.exists():
        try:
            # pre_buffer=False: no asynchronous reads left on arrow's IO threads when this returns
            table = pq.read_table(path, pre_buffer=False)
            counts = json.loads((table.schema.metadata or {})[_SKIPS_METADATA])
            touch(path)
            return table.replace_schema_metadata(None), counts
        except (pa.ArrowInvalid, OSError, KeyError, ValueError) as err:
            logger.warning("cache %s unreadable (%s); rebuilding it", path, err)
    table, counts = build()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    metadata = {**(table.schema.metadata or {}), _SKIPS_METADATA: json.dumps(counts).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), tmp)
    tmp.replace(path)
    return table, counts


def _read_parquet(path: Path) -> pa.Table:
    """A parquet data file, or DataFormatError naming it when it cannot be read as one."""
    try:
        return pq.read_table(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataFormatError(path, f"not a readable parquet file ({' '.join(str(err).split())})") from None


def read_products(path: Path, on_bad_rows: str = "error") -> tuple[pa.Table, dict[str, int]]:
    """Parse and validate a products file; returns the table and counts of what was skipped: malformed
    rows (with ``on_bad_rows="skip"``) and duplicate (id, locale) rows (the first is kept)."""
    counts: dict[str, int] = {}
    if path.suffix == ".parquet":
        table = _read_parquet(path)
        missing = [c for c in PRODUCT_COLUMNS if c not in table.column_names]
        if missing:
            raise DataFormatError(path, f"missing column(s) {missing}")
        table = table.select(list(PRODUCT_COLUMNS))
        schema = pa.schema([(c, pa.float64() if c == "price" else pa.string()) for c in PRODUCT_COLUMNS])
        try:
            table = table.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            detail = " ".join(str(err).split())
            raise DataFormatError(path, f"columns do not cast to {schema.types} ({detail})") from None
    else:
        types = {c: (pa.float64() if c == "price" else pa.string()) for c in PRODUCT_COLUMNS}
        table, counts["malformed_rows"] = read_csv_table(path, types, on_bad_rows)
    for column in _TEXT_COLUMNS:
        table = table.set_column(table.column_names.index(column), column, pc.fill_null(table[column], ""))
    ids = table["id"].combine_chunks()
    empty = pc.equal(ids, "").to_numpy(zero_copy_only=False)
    if empty.any():
        raise DataFormatError(path, "empty product id", _first_true(empty) + 1, "id")
    locale_codes(path, table["locale"].combine_chunks())
    keys = pd.MultiIndex.from_arrays([ids.to_pandas(), table["locale"].to_pandas()])
    duplicated = np.asarray(keys.duplicated())
    counts["duplicate_rows"] = int(duplicated.sum())
    if duplicated.any():
        counts["first_duplicate_row"] = _first_true(duplicated) + 1
        table = table.filter(pa.array(~duplicated))
    return table, counts


def encode_sessions(
    path: Path, table: pa.Table, catalog: Catalog, has_target: bool, drop_unusable: bool
) -> tuple[pa.Table, dict[str, int]]:
    """Turn a parsed sessions table into codes; returns the coded table and counts of what was skipped.

    Ids absent from the whole catalog are dropped from sessions (counted). With ``drop_unusable``
    (training files), sessions left empty or whose target is unknown are dropped (counted); test files
    keep every row so that predictions stay row-aligned with their ground truth.
    """
    counts: dict[str, int] = {}
    locale = locale_codes(path, table["locale"].combine_chunks())
    lists = parse_prev_items(path, table["prev_items"])
    flat_codes = catalog.codes(np.asarray(lists.flatten().to_numpy(zero_copy_only=False), dtype=object))
    offsets = lists.offsets.to_numpy().astype(np.int64)
    known = flat_codes >= 0
    counts["unknown_items_dropped"] = int((~known).sum())
    if not known.all():
        offsets = filtered_offsets(offsets, known)
        flat_codes = flat_codes[known]
    session_index = np.repeat(np.arange(len(locale)), np.diff(offsets))
    not_in_locale = catalog.rows(flat_codes, locale[session_index]) < 0
    counts["items_without_locale_row"] = int(not_in_locale.sum())
    if has_target:
        next_item = catalog.codes(_target_ids(path, table))
        counts["unknown_targets"] = int((next_item < 0).sum())
        known_target = next_item >= 0
        counts["targets_without_locale_row"] = int(
            (catalog.rows(next_item[known_target], locale[known_target]) < 0).sum()
        )
    else:
        next_item = np.full(len(locale), -1, dtype=np.int32)
    empty = np.diff(offsets) == 0
    counts["empty_sessions"] = int(empty.sum())
    keep = np.ones(len(locale), dtype=bool)
    if drop_unusable:
        keep = ~empty & (next_item >= 0 if has_target else True)
    counts["sessions_dropped"] = int((~keep).sum())
    list_array = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat_codes.astype(np.int32)))
    coded = pa.table({"items": list_array, "locale": pa.array(locale), "next_item": pa.array(next_item.astype(np.int32))})
    if not keep.all():
        coded = coded.filter(pa.array(keep))
    return coded, counts


def _target_ids(path: Path, table: pa.Table) -> np.ndarray:
    """The ``next_item`` column as an object array of id strings, or DataFormatError at its first null."""
    column = table["next_item"].combine_chunks()
    if column.null_count:
        raise DataFormatError(path, "missing value", _first_true(pc.is_null(column)) + 1, "next_item")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise DataFormatError(path, f"column has type {column.type}, expected product ids (strings)", field="next_item")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


_SKIP_MESSAGES = {
    "malformed_rows": "skipped {n} malformed row(s) (wrong number of fields)",
    "duplicate_rows": "skipped {n} duplicate (id, locale) row(s), keeping the first; first duplicate at data row "
                      "{first}",
    "unknown_items_dropped": "{n} session item(s) whose id is not in the product table were dropped",
    "items_without_locale_row": "{n} session item(s) have no product row in their session's locale (text models skip them)",
    "unknown_targets": "{n} next_item id(s) are not in the product table",
    "targets_without_locale_row": "{n} next_item(s) have no product row in their session's locale",
    "empty_sessions": "{n} session(s) are empty",
    "sessions_dropped": "{n} unusable session(s) (empty, or unknown next_item) were skipped",
}
"""How each skip count is reported; a count of zero says nothing."""


def _report(path: Path, counts: dict[str, int]) -> None:
    for key, message in _SKIP_MESSAGES.items():
        if counts.get(key):
            logger.warning("%s: %s", path, message.format(n=counts[key], first=counts.get("first_duplicate_row")))


def _sessions_from_table(table: pa.Table, source: str) -> Sessions:
    items = table["items"].combine_chunks()
    return Sessions(
        items=items.flatten().to_numpy().astype(np.int32, copy=False),
        offsets=items.offsets.to_numpy().astype(np.int64),
        locale=table["locale"].to_numpy().astype(np.int8),
        next_item=table["next_item"].to_numpy().astype(np.int32),
        source=source,
    )


SESSION_FILES: tuple[tuple[str, bool], ...] = (
    ("sessions_train", True), ("sessions_test_task1", False), ("sessions_test_task2", False),
    ("sessions_test_task3", False),
)
"""Session files of a data folder (stem, has a next_item column); an ID-only catalog takes its ids from them."""


class M2Data:
    """An Amazon-M2 data folder: catalog, training sessions, test sessions and ground truth, cached.

    A folder without product text (no ``products_train``, or one without data rows) still loads: its
    catalog holds the (id, locale) pairs of the session files, without text (``has_text`` is False), so
    id methods run and text methods refuse with :class:`MissingTextError`.

    >>> data = M2Data("data/synthetic-small")
    >>> data.catalog.sentence(0), len(data.train), len(data.test(1))
    """

    def __init__(self, folder: str | Path, cache_dir: str | Path | None = None, on_bad_rows: str = "error"):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"data folder {self.folder} does not exist")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else kind_cache_dir("tables")
        self.on_bad_rows = on_bad_rows
        self.skipped: dict[str, dict[str, int]] = {}
        """File -> nonzero counts of what its parse skipped (logged as warnings on every load, cached or not)."""
        self._sessions: dict[str, Sessions] = {}

    def _key(self, path: Path, *, with_products: bool) -> str:
        parts = [PARSER_VERSION, self.on_bad_rows, file_digest(path)]
        if with_products:
            parts.append(self.catalog.digest)
        return f"{path.stem}-" + hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()

    def _note(self, path: Path, counts: dict[str, int]) -> None:
        _report(path, counts)
        nonzero = {key: n for key, n in counts.items() if n and key in _SKIP_MESSAGES}
        if nonzero:
            self.skipped[str(path)] = nonzero

    @cached_property
    def _products_path(self) -> Path | None:
        return _find_source(self.folder, "products_train", required=False)

    @cached_property
    def catalog(self) -> Catalog:
        path = self._products_path
        if path is not None:
            table, counts = _cached(self.cache_dir, self._key(path, with_products=False),
                                    lambda: read_products(path, self.on_bad_rows))
            self._note(path, counts)
            if table.num_rows:
                logger.info("%s: %d product rows", path, table.num_rows)
                return Catalog(table.to_pandas(), source=str(path), digest=file_digest(path))
            reason = f"{path.name} has no data rows, so no product text"
        else:
            reason = "no products_train.csv or products_train.parquet, so no product text"
        return self._catalog_from_sessions(reason)

    @property
    def has_text(self) -> bool:
        """Whether the folder has product text (see :meth:`Catalog.has_text`)."""
        return self.catalog.has_text

    def require_text(self, method: str) -> None:
        """Raise :class:`MissingTextError` naming this folder's missing text and ``method``."""
        self.catalog.require_text(method)

    def _read_sessions_file(self, path: Path, has_target: bool) -> tuple[pa.Table, int]:
        """The raw columns of a sessions file and the count of malformed rows skipped; a file without data
        rows is an error (nothing can be trained or predicted from it)."""
        columns = ["prev_items", "next_item", "locale"] if has_target else ["prev_items", "locale"]
        if path.suffix == ".parquet":
            raw, skipped = _read_parquet(path), 0
            missing = [c for c in columns if c not in raw.column_names]
            if missing:
                raise DataFormatError(path, f"missing column(s) {missing}; columns are {raw.column_names}")
        else:
            raw, skipped = read_csv_table(path, {c: pa.string() for c in columns}, self.on_bad_rows)
        if raw.num_rows == 0:
            raise DataFormatError(path, "no data rows" + (f" ({skipped} malformed row(s) skipped)" if skipped else ""))
        return raw, skipped

    def _catalog_from_sessions(self, reason: str) -> Catalog:
        """An ID-only catalog: one text-less row per (id, locale) pair that the session files hold."""
        paths = [(p, has_target) for stem, has_target in SESSION_FILES
                 if (p := _find_source(self.folder, stem, required=False)) is not None]
        if not paths:
            raise FileNotFoundError(f"{self.folder}: no products_train.csv or products_train.parquet, "
                                    f"and no session files to take product ids from")
        digest = hashlib.blake2b(
            "|".join([PARSER_VERSION, self.on_bad_rows, *(file_digest(p) for p, _ in paths)]).encode(), digest_size=12
        ).hexdigest()

        def build() -> tuple[pa.Table, dict[str, int]]:
            ids, locales = [], []
            for path, has_target in paths:
                raw, _ = self._read_sessions_file(path, has_target)
                locale = locale_codes(path, raw["locale"].combine_chunks())
                lists = parse_prev_items(path, raw["prev_items"])
                ids.append(np.asarray(lists.flatten().to_numpy(zero_copy_only=False), dtype=object))
                locales.append(np.repeat(locale, np.diff(lists.offsets.to_numpy())))
                if has_target:
                    ids.append(_target_ids(path, raw))
                    locales.append(locale)
            pairs = pd.DataFrame({"id": np.concatenate(ids), "locale": np.concatenate(locales)})
            pairs = pairs[pairs["id"] != ""].drop_duplicates().sort_values(["id", "locale"])
            columns = {c: pa.array([""] * len(pairs), pa.string()) for c in PRODUCT_COLUMNS}
            columns["id"] = pa.array(pairs["id"].tolist(), pa.string())
            columns["locale"] = pa.array([LOCALES[x] for x in pairs["locale"]], pa.string())
            columns["price"] = pa.nulls(len(pairs), pa.float64())
            return pa.table(columns), {}

        table, _ = _cached(self.cache_dir, f"catalog-ids-{digest}", build)
        logger.warning("%s: %s; the catalog holds the %d (id, locale) pairs of the session files (id methods "
                       "only)", self.folder, reason, table.num_rows)
        return Catalog(table.to_pandas(), source=str(self.folder), digest=f"ids-{digest}",
                       no_text_reason=reason)

    def _load_sessions(self, stem: str, has_target: bool, drop_unusable: bool) -> Sessions:
        if stem not in self._sessions:
            path = _find_source(self.folder, stem)
            catalog = self.catalog

            def build() -> tuple[pa.Table, dict[str, int]]:
                raw, skipped = self._read_sessions_file(path, has_target)
                coded, counts = encode_sessions(path, raw, catalog, has_target, drop_unusable)
                return coded, {"malformed_rows": skipped, **counts}

            table, counts = _cached(self.cache_dir, self._key(path, with_products=True), build)
            self._note(path, counts)
            self._sessions[stem] = _sessions_from_table(table, str(path))
        return self._sessions[stem]

    @property
    def train(self) -> Sessions:
        """Training sessions with known targets; unusable rows skipped (counted, reported on every load)."""
        return self._load_sessions("sessions_train", has_target=True, drop_unusable=True)

    def test(self, task: int) -> Sessions:
        """Test sessions of a task, every row kept (row-aligned with the submission and ground truth)."""
        return self._load_sessions(f"sessions_test_task{task}", has_target=False, drop_unusable=False)

    def has_test(self, task: int) -> bool:
        return _find_source(self.folder, f"sessions_test_task{task}", required=False) is not None

    def has_truth(self, task: int) -> bool:
        return _find_source(self.folder, f"gt_task{task}", required=False) is not None

    def truth(self, task: int) -> pd.DataFrame:
        """Ground truth of a test file: ``next_item`` (or ``next_item_title`` for task 3) and ``locale``."""
        from ..submission import read_truth

        path = _find_source(self.folder, f"gt_task{task}")
        truth = read_truth(path)
        if len(truth) != len(self.test(task)):
            raise DataFormatError(path, f"{len(truth)} rows, but the test file has {len(self.test(task))}")
        return truth
