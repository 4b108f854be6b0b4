"""(session prefix, next item) examples, the deterministic per-epoch batch order and masking."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..batching import length_grouped
from ..constants import LOCALES
from ..data import Catalog, M2Data, Sessions, validation_split
from ..models import Item, SessionCollator
from .config import PretrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainExamples:
    """(session prefix, next item) pairs as catalog rows; example ``i`` has prefix
    ``rows[offsets[i]:offsets[i + 1]]`` (oldest first) and target row ``next_rows[i]``.

    ``next_codes`` are the targets' product codes (the same product in two locales shares one, so a
    batch never uses it as a negative of itself); ``session`` is each example's index in the sessions
    it was built from.
    """

    rows: np.ndarray  # (total,) int32 catalog rows
    offsets: np.ndarray  # (n + 1,) int64
    next_rows: np.ndarray  # (n,) int32
    next_codes: np.ndarray  # (n,) int32
    locale: np.ndarray  # (n,) int8
    session: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.next_rows)

    def prefix(self, i: int) -> np.ndarray:
        return self.rows[self.offsets[i]:self.offsets[i + 1]]


def build_examples(catalog: Catalog, sessions: Sessions, locales: Sequence[str]) -> PretrainExamples:
    """One example per session of ``locales``: its ``prev_items`` then its ``next_item``.

    Items without a product row in the session's locale have no text there and are left out; a session
    whose next item has no row, or with no previous item left, gives no example.
    """
    item_rows = catalog.rows(sessions.items, sessions.locale[sessions.session_index])  # (total,)
    has_row = item_rows >= 0
    kept = np.bincount(sessions.session_index[has_row], minlength=len(sessions))  # (n,) prefix items with text
    next_rows = np.where(sessions.next_item >= 0, catalog.rows(np.maximum(sessions.next_item, 0), sessions.locale), -1)
    use = sessions.in_locales(list(locales)) & (next_rows >= 0) & (kept > 0)
    keep_items = has_row & use[sessions.session_index]
    offsets = np.concatenate([[0], np.cumsum(kept[use])]).astype(np.int64)
    return PretrainExamples(
        rows=item_rows[keep_items].astype(np.int32),
        offsets=offsets,
        next_rows=next_rows[use].astype(np.int32),
        next_codes=sessions.next_item[use].astype(np.int32),
        locale=sessions.locale[use].astype(np.int8),
        session=np.flatnonzero(use).astype(np.int64),
    )


def alignment_examples(catalog: Catalog, locales: Sequence[str], align_locales: Sequence[str]) -> PretrainExamples:
    """Translation pairs from the catalog alone: for every product sold both in one of ``locales`` and in one of
    ``align_locales``, two one-item examples, its sentence in the first as the session and in the second as the
    next item, and the reverse. The contrast then pulls a product's texts in two languages together, which
    carries what the large locales' sessions teach over to the small locales' wording; the prefix side gets
    the MLM loss, so both languages are also masked and predicted. ``session`` is -1: no session is read.
    """
    prefix, target, codes, locale = [], [], [], []
    for loc in dict.fromkeys(locales):
        for other in dict.fromkeys(align_locales):
            if other == loc:
                continue
            shared = np.intersect1d(catalog.locale_codes(loc), catalog.locale_codes(other))
            rows_here = catalog.rows(shared, LOCALES.index(loc))
            rows_there = catalog.rows(shared, LOCALES.index(other))
            prefix += [rows_here, rows_there]
            target += [rows_there, rows_here]
            codes += [shared, shared]
            locale += [np.full(len(shared), LOCALES.index(other)), np.full(len(shared), LOCALES.index(loc))]
    if not prefix:
        return concatenate_examples([])
    n = sum(len(p) for p in prefix)
    return PretrainExamples(
        rows=np.concatenate(prefix).astype(np.int32),
        offsets=np.arange(n + 1, dtype=np.int64),
        next_rows=np.concatenate(target).astype(np.int32),
        next_codes=np.concatenate(codes).astype(np.int32),
        locale=np.concatenate(locale).astype(np.int8),
        session=np.full(n, -1, dtype=np.int64),
    )


def concatenate_examples(parts: Sequence[PretrainExamples]) -> PretrainExamples:
    """The examples of ``parts``, one after another."""
    lengths = [np.diff(p.offsets) for p in parts]
    return PretrainExamples(
        rows=np.concatenate([p.rows for p in parts] or [np.zeros(0)]).astype(np.int32),
        offsets=np.concatenate([[0], np.cumsum(np.concatenate(lengths or [np.zeros(0)]))]).astype(np.int64),
        next_rows=np.concatenate([p.next_rows for p in parts] or [np.zeros(0)]).astype(np.int32),
        next_codes=np.concatenate([p.next_codes for p in parts] or [np.zeros(0)]).astype(np.int32),
        locale=np.concatenate([p.locale for p in parts] or [np.zeros(0)]).astype(np.int8),
        session=np.concatenate([p.session for p in parts] or [np.zeros(0)]).astype(np.int64),
    )


class PretrainDataset(Dataset):
    """Examples as the collator takes them: ``{"items", "next_item", "next_item_id"}`` with attribute texts,
    or ``{"items", "label"}`` with ``table_index`` (catalog row -> item-table row): the next item's table row.

    Texts come from ``catalog.attributes(row)``, cached per row on the instance (each worker its own).
    """

    def __init__(self, catalog: Catalog, examples: PretrainExamples, table_index: np.ndarray | None = None) -> None:
        self.catalog = catalog
        self.examples = examples
        self.table_index = table_index
        if table_index is not None and (table_index[examples.next_rows] < 0).any():
            raise ValueError("some next items have no row in the item table: build it over the examples' locales")
        self._texts: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def _text(self, row: int) -> Item:
        text = self._texts.get(row)
        if text is None:
            text = self._texts[row] = self.catalog.attributes(row)
        return text

    def __getitem__(self, i: int) -> dict[str, Any]:
        items = [self._text(int(r)) for r in self.examples.prefix(i)]
        if self.table_index is not None:
            return {"items": items, "label": int(self.table_index[self.examples.next_rows[i]])}
        return {
            "items": items,
            "next_item": self._text(int(self.examples.next_rows[i])),
            "next_item_id": int(self.examples.next_codes[i]),
        }


def epoch_batches(num_examples: int, batch_size: int, world_size: int, rank: int, seed: int, epoch: int,
                  accumulation: int = 1, lengths: np.ndarray | None = None, group_window: int = 0) -> np.ndarray:
    """``(micro-batches, batch_size)`` example indices of one rank in one epoch: a pure function of its arguments.

    The epoch's permutation is cut into optimizer steps of ``batch_size * world_size * accumulation``
    examples (the incomplete last one is dropped, so every rank sees the same number of equal batches
    and every optimizer step the same number of micro-batches); micro-batch ``m`` of rank ``r`` is
    the ``r``-th slice of the ``m``-th chunk. With ``lengths`` and ``group_window > 1`` the permutation
    is first :func:`~recformer_m2.batching.length_grouped` by optimizer step, so a step's micro-batches
    (on every rank) pad to similar lengths.
    """
    per_step = batch_size * world_size * accumulation
    steps = num_examples // per_step
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_examples)
    if lengths is not None and group_window > 1:
        order = length_grouped(order, lengths, per_step, group_window, rng)
    chunks = order[: steps * per_step].reshape(steps * accumulation, world_size, batch_size)
    return np.ascontiguousarray(chunks[:, rank])


def masking_seed(*key: int) -> int:
    """A 64-bit seed from a tuple of non-negative ints, e.g. (seed, epoch, rank, batch number)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0])


class MicroBatches(Dataset):
    """Collated micro-batches; batch ``b`` is masked with an RNG seeded by ``(*key, b)``, so it is the same
    batch whichever process collates it and however often. Use with ``DataLoader(batch_size=None)``."""

    def __init__(self, dataset: PretrainDataset, collator: SessionCollator, batches: np.ndarray,
                 key: tuple[int, ...]) -> None:
        self.dataset = dataset
        self.collator = collator
        self.batches = batches
        self.key = key

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        self.collator.reseed(masking_seed(*self.key, b))
        return self.collator([self.dataset[int(i)] for i in self.batches[b]])


def batch_loader(batches: MicroBatches, start: int, num_workers: int, pin_memory: bool) -> DataLoader:
    """Micro-batches ``start, start + 1, ...`` in order. The loader gets its own generator, so creating
    it never draws from the global torch RNG that dropout uses."""
    return DataLoader(
        batches, batch_size=None, sampler=range(start, len(batches)), num_workers=num_workers,
        pin_memory=pin_memory, generator=torch.Generator().manual_seed(0),
    )


@dataclass(frozen=True)
class ItemTable:
    """The products a table-negative run contrasts with: catalog ``rows``, each row's ``locale``, and
    ``index`` mapping every catalog row to its table row (-1 outside the table)."""

    rows: np.ndarray  # (N,) int64 catalog rows
    locale: np.ndarray  # (N,) int64
    index: np.ndarray  # (len(catalog),) int64

    def log_counts(self, examples: PretrainExamples) -> np.ndarray:
        """``(N,)`` log(1 + occurrences of each product in ``examples``, prefix and next items)."""
        rows = np.concatenate([examples.rows, examples.next_rows]).astype(np.int64)
        return np.log1p(np.bincount(rows, minlength=len(self.index))[self.rows]).astype(np.float32)

    @classmethod
    def of_locales(cls, catalog: Catalog, locales: Sequence[str]) -> "ItemTable":
        """Every product sold in ``locales``, locale by locale."""
        codes = [catalog.locale_codes(loc) for loc in locales]
        locale = np.concatenate([np.full(len(c), LOCALES.index(loc)) for c, loc in zip(codes, locales)])
        rows = catalog.rows(np.concatenate(codes), locale).astype(np.int64)
        index = np.full(len(catalog), -1, dtype=np.int64)
        index[rows] = np.arange(len(rows))
        return cls(rows, locale.astype(np.int64), index)


@dataclass
class PretrainData:
    """The catalog, training and validation examples, and the sessions scored by retrieval."""

    catalog: Catalog
    train: PretrainExamples
    valid: PretrainExamples
    retrieval: Sessions
    """Held-out sessions (training and zero-shot locales, at most ``max_retrieval_sessions`` each)."""


def prepare_data(data: M2Data, config: PretrainConfig) -> PretrainData:
    """Split ``data.train`` (seeded), build examples of the training locales and pick retrieval sessions."""
    sessions = data.train
    fit, held = validation_split(sessions, config.valid_fraction, config.split_seed, config.max_valid_per_locale)
    catalog = data.catalog
    train = build_examples(catalog, sessions.select(fit), config.locales)
    if config.align_locales:
        pairs = alignment_examples(catalog, config.locales, config.align_locales)
        logger.info("alignment examples: %d (products of %s also sold in %s, both directions)", len(pairs),
                    config.locales, config.align_locales)
        train = concatenate_examples([train, pairs])
    valid_sessions = sessions.select(held)
    valid = build_examples(catalog, valid_sessions, config.locales)
    # Retrieval: held-out sessions with a scorable target (it has text in the locale and a previous item does).
    scorable = build_examples(catalog, valid_sessions, list(dict.fromkeys(config.locales + config.zero_shot_locales)))
    picked = [scorable.session[scorable.locale == LOCALES.index(loc)][: config.max_retrieval_sessions]
              for loc in LOCALES]
    retrieval = valid_sessions.select(np.sort(np.concatenate(picked)))
    for name, examples in (("train", train), ("valid", valid)):
        counts = {LOCALES[loc]: int((examples.locale == loc).sum()) for loc in np.unique(examples.locale)}
        logger.info("%s examples: %d %s", name, len(examples), counts)
    logger.info("retrieval sessions: %s",
                {LOCALES[loc]: int((retrieval.locale == loc).sum()) for loc in np.unique(retrieval.locale)})
    return PretrainData(catalog, train, valid, retrieval)
