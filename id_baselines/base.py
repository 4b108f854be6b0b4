"""The contract every ID baseline implements, with the loss and prediction written once.

A model maps a padded batch of sessions to one vector per session (``session_embedding``) in the space
of its item embeddings (``item_embeddings``); scores are their dot products over the whole vocabulary,
trained with full-softmax cross-entropy (as the Amazon-M2 paper's RecBole baselines are). Subclasses
define their layers, ``reset_parameters`` (their paper's or reference code's initialisation) and
``session_embedding``; nothing else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import BaselineConfig
from .data import PAD, PadCollator, SessionBatch


class SessionModel(nn.Module):
    """Base class: item embedding table (row 0 = padding), scores, loss and full-sort prediction."""

    paper: ClassVar[str] = ""
    collator: ClassVar[type[PadCollator]] = PadCollator
    """What builds this model's batches (SR-GNN needs ``GraphCollator``)."""

    def __init__(self, num_items: int, config: BaselineConfig):
        super().__init__()
        if num_items < 2:
            raise ValueError(f"num_items ({num_items}) must count padding and at least one item")
        self.num_items, self.config = num_items, config
        self.item_embedding = nn.Embedding(num_items, config.embedding_size, padding_idx=PAD)

    def post_init(self) -> None:
        """Called at the end of a subclass's ``__init__``: its initialisation, then a zero padding row."""
        self.reset_parameters()
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def reset_parameters(self) -> None:
        """Initialise parameters as the model's reference implementation does."""

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        """(B, D) session vectors, in the space of ``item_embeddings``."""
        raise NotImplementedError

    def item_embeddings(self) -> torch.Tensor:
        """(N, D) candidate item vectors (row 0 is padding and never scores)."""
        return self.item_embedding.weight

    def forward(self, batch: SessionBatch) -> torch.Tensor:
        """(B, N) scores of every vocabulary item; padding scores -inf."""
        scores = self.session_embedding(batch) @ self.item_embeddings().T  # (B, D) x (D, N) -> (B, N)
        scores[:, PAD] = float("-inf")
        return scores

    def loss(self, batch: SessionBatch) -> torch.Tensor:
        """Full-softmax cross-entropy of the next item over the vocabulary."""
        return F.cross_entropy(self(batch), batch.targets)

    @torch.no_grad()
    def full_sort_predict(self, batch: SessionBatch, exclude_session_items: bool = True) -> torch.Tensor:
        """(B, N) scores for ranking; the session's own items (and padding) score -inf when excluded,
        all of them, also those before the ``max_length`` window the model reads."""
        scores = self(batch)
        if exclude_session_items:
            seen = batch.seen if batch.seen is not None else batch.items
            scores.scatter_(1, seen, float("-inf"))  # padding positions hit column PAD, already -inf
        return scores

    @staticmethod
    def gather_last(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states at each session's last position -> (B, D)."""
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.size(-1))
        return states.gather(1, index).squeeze(1)

    @staticmethod
    def padding_mask(batch: SessionBatch) -> torch.Tensor:
        """(B, L) True at real items."""
        return batch.items != PAD

