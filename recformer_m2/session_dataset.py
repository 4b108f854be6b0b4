"""Finetuning examples as a ``datasets.Dataset`` read by a DataLoader whose workers collate.

Each example is a session's catalog rows (oldest first, items without text in its locale left out), the
table row of its next item and its locale. The rows are mapped from the columnar sessions with
``Dataset.map(batched=True)`` once per run instead of building every example's attribute sentences at the
start of each stage; an item's sentence is read from one shared row -> item lookup as a batch is collated,
and its tokens come from the item tokenizer's cache (preloaded from :mod:`recformer_m2.item_dataset`), so
nothing is tokenised inside the training loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from .batching import length_grouped_batches
from .data import Catalog, Sessions
from .models import Item, SessionCollator

logger = logging.getLogger(__name__)


def _rows_batch(batch: dict[str, list], row_of: np.ndarray, offsets: np.ndarray) -> dict[str, list]:
    """Catalog rows of each session in ``batch["session"]``, unknown items (row -1) left out."""
    out = []
    for i in batch["session"]:
        rows = row_of[offsets[i]:offsets[i + 1]]
        out.append(rows[rows >= 0].tolist())
    return {"rows": out}


def session_examples(catalog: Catalog, sessions: Sessions, labels: np.ndarray):
    """A ``datasets.Dataset`` with one row per session: ``rows`` (its items' catalog rows in its locale,
    oldest first), ``label`` (its target's item-table row) and ``group`` (its locale index)."""
    import datasets

    if len(labels) != len(sessions):
        raise ValueError(f"{len(labels)} labels for {len(sessions)} sessions")
    row_of = catalog.rows(sessions.items, sessions.locale[sessions.session_index])  # (total,) -1: no text there
    raw = datasets.Dataset.from_dict({"session": np.arange(len(sessions)), "label": np.asarray(labels, np.int64),
                                      "group": sessions.locale.astype(np.int64)})
    # in memory, fingerprinted by the caller's arrays: seconds for ~17k examples, nothing to reuse on disk
    return raw.map(_rows_batch, batched=True, fn_kwargs={"row_of": row_of, "offsets": sessions.offsets},
                   remove_columns=["session"], keep_in_memory=True, new_fingerprint=_fingerprint(row_of, labels),
                   desc="session rows")


def _fingerprint(row_of: np.ndarray, labels: np.ndarray) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(row_of).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


class FinetuneExamples(torch.utils.data.Dataset):
    """The DataLoader's view of :func:`session_examples`: a batch of indices becomes a list of
    ``{"items", "label", "group"}`` examples (one Arrow read per batch through ``__getitems__``)."""

    def __init__(self, table, items_by_row: dict[int, Item]):
        self.table = table
        self.items_by_row = items_by_row

    @classmethod
    def build(cls, catalog: Catalog, sessions: Sessions, labels: np.ndarray) -> "FinetuneExamples":
        table = session_examples(catalog, sessions, labels)
        rows = np.unique(np.concatenate([np.asarray(r, dtype=np.int64) for r in table["rows"]] or [np.zeros(0)]))
        return cls(table, {int(r): catalog.attributes(int(r)) for r in rows})

    def __len__(self) -> int:
        return len(self.table)

    def lengths(self) -> np.ndarray:
        """(n,) number of items each example reads (length grouping)."""
        return np.array([len(r) for r in self.table["rows"]], dtype=np.int64)

    def __getitems__(self, index: Sequence[int]) -> list[dict]:
        batch = self.table[list(index)]
        return [{"items": [self.items_by_row[r] for r in rows], "label": int(label), "group": int(group)}
                for rows, label, group in zip(batch["rows"], batch["label"], batch["group"])]

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]


class FinetuneCollate:
    """``SessionCollator`` for ranking examples plus each session's locale as ``groups`` (a session ranks
    only its locale's items); a DataLoader ``collate_fn`` that its worker processes run."""

    def __init__(self, collator: SessionCollator):
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collator([{"items": e["items"], "label": e["label"]} for e in examples])
        batch["groups"] = torch.tensor([e["group"] for e in examples], dtype=torch.long)
        return batch


class EpochBatches(torch.utils.data.Sampler):
    """The batches of each epoch, drawn from ``(seed, stage, epoch)`` so a resumed run trains the epochs it
    had not finished in the same order: a seeded permutation, length-grouped in windows of
    ``group_by_length`` batches (dropping the last incomplete batch) or, with ``group_by_length <= 1``,
    cut in order. Under ``torch.distributed`` each rank takes every ``world``-th batch (an equal count)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, group_by_length: int, seed: int, stage: int,
                 first_epoch: int = 0):
        self.lengths, self.batch_size, self.window = lengths, batch_size, group_by_length
        self.seed, self.stage = seed, stage
        self.first_epoch = self.epoch = first_epoch

    def set_epoch(self, epoch: int) -> None:
        """Called with the epoch number of a fit (0, 1, ...) before its batches are drawn; a resumed stage's
        fit starts at ``first_epoch``."""
        self.epoch = self.first_epoch + epoch

    def epoch_batches(self) -> list[np.ndarray]:
        """All ranks' batches of the current epoch, in training order."""
        rng = np.random.default_rng([self.seed, self.stage, self.epoch])
        order = rng.permutation(len(self.lengths))
        if self.window > 1:
            return length_grouped_batches(order, self.lengths, self.batch_size, self.window, rng, drop_last=True)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        n = len(self.lengths)
        batches = n // self.batch_size if self.window > 1 else -(-n // self.batch_size)
        return batches // self._rank_world()[1]

    def __iter__(self):
        rank, world = self._rank_world()
        batches = self.epoch_batches()
        for batch in batches[rank:len(batches) // world * world:world]:
            yield batch.tolist()


__all__ = ["EpochBatches", "FinetuneCollate", "FinetuneExamples", "session_examples"]
