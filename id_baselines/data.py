"""From ``Sessions`` to padded batches: the item vocabulary, (prefix, next item) examples and collators.

All CPU work happens here, in the collator, never inside a model's ``forward``: padding, truncation and,
for SR-GNN, the session graph (unique nodes, alias indices, normalised in/out adjacency).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Sampler

from recformer_m2.batching import length_grouped_batches
from recformer_m2.data import Catalog, Sessions
from recformer_m2.data.m2 import filtered_offsets

PAD = 0
"""Vocabulary index of padding; real items are 1..N-1."""


class ItemVocab:
    """Item ids (catalog id strings) of a model's embedding table; index 0 is padding."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, dtype=object)  # (N - 1,) id strings of indices 1..N-1
        if len(set(self.ids.tolist())) != len(self.ids):
            raise ValueError("item vocabulary has repeated ids")

    def __len__(self) -> int:
        """Size of the embedding table, padding included."""
        return len(self.ids) + 1

    @classmethod
    def from_sessions(cls, catalog: Catalog, *sessions: Sessions) -> "ItemVocab":
        """Every item that occurs in the sessions (previous items and targets), in catalog code order."""
        codes = np.concatenate([np.concatenate([s.items, s.next_item]) for s in sessions])
        return cls(catalog.ids[np.unique(codes[codes >= 0])])

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        """Vocabulary index of each id string; PAD (0) for ids not in the vocabulary."""
        return pd.Index(self.ids).get_indexer(np.asarray(ids, dtype=object)).astype(np.int64) + 1

    def save(self, path: Path) -> None:
        Path(path).write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "ItemVocab":
        return cls(np.array(Path(path).read_text(encoding="utf-8").splitlines(), dtype=object))


def sessions_to_vocab(sessions: Sessions, code_to_index: np.ndarray) -> Sessions:
    """The same sessions with items and targets as vocabulary indices; unknown items dropped, unknown
    targets PAD. ``code_to_index[code]`` is the vocabulary index of a catalog code."""
    items = code_to_index[sessions.items]
    known = items != PAD
    next_item = np.where(sessions.next_item >= 0, code_to_index[np.maximum(sessions.next_item, 0)], PAD)
    return Sessions(
        items[known].astype(np.int32), filtered_offsets(sessions.offsets, known), sessions.locale,
        next_item.astype(np.int32), sessions.source,
    )


@dataclass
class SessionExamples:
    """(prefix, target) examples over one flat item array: prefix ``flat[start:end]``, then ``target``."""

    flat: np.ndarray  # (total,) int64 vocabulary indices
    starts: np.ndarray  # (n,) int64
    ends: np.ndarray  # (n,) int64
    targets: np.ndarray  # (n,) int64, PAD when unknown
    locale: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.targets)

    @classmethod
    def for_prediction(cls, sessions: Sessions) -> "SessionExamples":
        """One example per session, every row kept (empty sessions too): the whole session, its target."""
        return cls(sessions.items.astype(np.int64), sessions.offsets[:-1].astype(np.int64),
                   sessions.offsets[1:].astype(np.int64), sessions.next_item.astype(np.int64),
                   sessions.locale.astype(np.int64))

    @classmethod
    def for_training(cls, sessions: Sessions, augment: bool) -> "SessionExamples":
        """Examples of sessions whose target is known. ``augment``: every prefix of ``items + [target]``
        predicts the item after it, except when that item is already in the prefix."""
        keep = (sessions.next_item != PAD) & (sessions.lengths > 0)
        sessions = sessions.select(keep)
        if not augment:
            return cls.for_prediction(sessions)
        full, position = sessions.prefix_positions()
        owner = full.session_index[position]
        return cls(full.items.astype(np.int64), full.offsets[:-1][owner], position, full.items[position].astype(np.int64),
                   full.locale.astype(np.int64)[owner])

    def lengths(self, max_length: int) -> np.ndarray:
        """(n,) prefix lengths after truncation to ``max_length``."""
        return np.minimum(self.ends - self.starts, max_length)


@dataclass
class SessionBatch:
    """A padded batch. Sessions are right-padded with PAD; ``lengths >= 1`` (an empty session is one PAD)."""

    items: torch.Tensor  # (B, L) int64
    lengths: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (B,) int64, PAD when unknown
    locale: torch.Tensor  # (B,) int64
    seen: torch.Tensor | None = None  # (B, S) every item of the session, not truncated (for exclusion)
    alias: torch.Tensor | None = None  # (B, L) SR-GNN: node of each position
    nodes: torch.Tensor | None = None  # (B, n) SR-GNN: item of each node, PAD-padded
    adjacency: torch.Tensor | None = None  # (B, n, 2n) SR-GNN: [A_in | A_out], degree-normalised

    def __len__(self) -> int:
        return len(self.targets)


class LengthBucketBatches(Sampler[list[int]]):
    """Shuffled batches of similar-length examples: each epoch shuffles, cuts the order into pools of
    ``pool`` batches, sorts each pool by length, cuts it into batches and shuffles the batches. Padding
    then costs little (session lengths are long-tailed) while every batch stays a random draw of its pool.
    ``pool=0``: plain shuffled batches.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 64):
        self.lengths, self.batch_size, self.seed, self.pool = np.asarray(lengths), batch_size, seed, pool
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch, so every epoch has its own (seeded) order."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        for batch in length_grouped_batches(order, self.lengths, self.batch_size, self.pool, rng, drop_last=False):
            yield batch.tolist()


class PadCollator:
    """Builds a ``SessionBatch`` from example indices: the last ``max_length`` items of each prefix,
    padded to the longest prefix of the batch."""

    def __init__(self, examples: SessionExamples, max_length: int):
        self.examples, self.max_length = examples, max_length

    def __call__(self, index: list[int] | np.ndarray) -> SessionBatch:
        ex = self.examples
        index = np.asarray(index, dtype=np.int64)
        ends = ex.ends[index]
        full = ends - ex.starts[index]
        lengths = np.minimum(full, self.max_length)
        return SessionBatch(
            items=torch.from_numpy(self._last_items(ends, lengths)),
            lengths=torch.from_numpy(np.maximum(lengths, 1)),
            targets=torch.from_numpy(ex.targets[index]),
            locale=torch.from_numpy(ex.locale[index]),
            seen=torch.from_numpy(self._last_items(ends, full)),
        )

    def _last_items(self, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(B, max length) the ``lengths`` items before each end, right-padded with PAD."""
        width = max(int(lengths.max(initial=0)), 1)
        pos = np.arange(width)[None, :]
        valid = pos < lengths[:, None]
        gather = np.where(valid, ends[:, None] - lengths[:, None] + pos, 0)
        return np.where(valid, self.examples.flat[gather] if len(self.examples.flat) else 0, PAD).astype(np.int64)


def session_graph(items: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SR-GNN's session graphs for a padded batch, vectorised.

    Nodes are a session's distinct items in order of first appearance; an edge u -> v links consecutive
    items (counted once). Returns ``alias`` (B, L): node of each position (0 on padding); ``nodes`` (B, n):
    item of each node; ``adjacency`` (B, n, 2n): ``A_in[i, j] = [j -> i] / indeg(i)`` then
    ``A_out[i, j] = [i -> j] / outdeg(i)`` (a zero degree divides by 1), as in Wu et al. 2019.
    """
    batch, width = items.shape
    pos = torch.arange(width)
    valid = pos[None, :] < lengths[:, None]  # (B, L)
    same = (items[:, :, None] == items[:, None, :]) & valid[:, None, :]  # (B, L, L)
    first = same.to(torch.int8).argmax(dim=2)  # (B, L) first position holding the same item
    is_first = (first == pos[None, :]) & valid
    node_number = is_first.long().cumsum(1) - 1  # (B, L) node of each first occurrence
    alias = torch.where(valid, node_number.gather(1, first), 0)
    n = max(int(is_first.sum(1).max()), 1)
    rows = torch.arange(batch)[:, None].expand(-1, width)
    nodes = torch.zeros(batch, n, dtype=torch.long)
    nodes[rows[is_first], node_number[is_first]] = items[is_first]
    edge = valid[:, 1:]  # (B, L - 1) consecutive pairs inside the session
    adj = torch.zeros(batch, n, n)
    adj[rows[:, 1:][edge], alias[:, :-1][edge], alias[:, 1:][edge]] = 1.0
    indeg = adj.sum(1).clamp(min=1.0)  # (B, n)
    outdeg = adj.sum(2).clamp(min=1.0)  # (B, n)
    adjacency = torch.cat([adj.transpose(1, 2) / indeg[:, :, None], adj / outdeg[:, :, None]], dim=2)
    return alias, nodes, adjacency


class GraphCollator(PadCollator):
    """``PadCollator`` plus SR-GNN's session graph of every example."""

    def __call__(self, index: list[int] | np.ndarray) -> SessionBatch:
        batch = super().__call__(index)
        batch.alias, batch.nodes, batch.adjacency = session_graph(batch.items, batch.lengths)
        return batch
