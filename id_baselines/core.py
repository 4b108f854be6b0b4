"""CORE: Y. Hou, B. Hu, Z. Zhang and W. X. Zhao, "CORE: Simple and Effective Session-based
Recommendation within Consistent Representation Space", SIGIR 2022 (arXiv:2204.11067).

Representation-consistent encoding: the session embedding is a weighted sum of the session's own item
embeddings, s = sum_i alpha_i x_i, so sessions and items live in the same space. The weights come from
- CORE-ave: alpha_i = 1/t (mean pooling), or
- CORE-trm (default): a transformer over the items plus learned positions (causal, padding masked),
  alpha = softmax_i(w^T h_i).
Robust distance measuring: item and session embeddings are L2-normalised, dropout is applied to the
session's items and to the candidate item embeddings during training, and cosine scores are divided by a
temperature tau before the softmax cross-entropy. Initialisation as the authors' code (RecBole-based):
every parameter ~ U(-1/sqrt(D), 1/sqrt(D)) after the transformer's own initialisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import SessionModel
from .config import BaselineConfig
from .data import SessionBatch


class TransformerWeights(nn.Module):
    """CORE-trm's weighting network: one weight per position, softmax over the session's items."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        dim = config.embedding_size
        self.positions = nn.Embedding(config.max_length, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout)
        layer = nn.TransformerEncoderLayer(
            dim, config.num_heads, config.inner_size, config.hidden_dropout, activation="gelu", batch_first=True
        )
        layer.self_attn.dropout = config.attention_dropout
        layer.dropout = nn.Identity()  # no dropout inside the feed-forward block, as BERT and RecBole
        self.encoder = nn.TransformerEncoder(layer, config.transformer_layers, enable_nested_tensor=False)
        self.weight = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) item embeddings, (B, L) real-item mask -> (B, L, 1) weights summing to 1 per session."""
        width = x.size(1)
        h = self.dropout(self.norm(x + self.positions.weight[:width]))  # (B, L, D)
        causal = torch.triu(torch.ones(width, width, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.encoder(h, mask=causal, src_key_padding_mask=~mask)  # (B, L, D)
        logits = self.weight(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, L)
        # An empty session (no real item) gets uniform weights over its padding, whose vectors are zero.
        logits = torch.where(mask.any(1, keepdim=True), logits, torch.zeros_like(logits))
        return torch.softmax(logits, dim=1).unsqueeze(-1)


class CORE(SessionModel):
    """Session = weighted sum of its item embeddings; cosine scores over temperature."""

    paper = "Hou et al. 2022, CORE: Simple and Effective Session-based Recommendation within Consistent Representation Space"

    def __init__(self, num_items: int, config: BaselineConfig):
        super().__init__(num_items, config)
        self.session_dropout = nn.Dropout(config.session_dropout)
        self.item_dropout = nn.Dropout(config.item_dropout)
        self.weights = TransformerWeights(config) if config.core_variant == "trm" else None
        self.post_init()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.config.embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        mask = self.padding_mask(batch)  # (B, L)
        x = self.session_dropout(self.item_embedding(batch.items))  # (B, L, D)
        if self.weights is not None:
            alpha = self.weights(x, mask)  # (B, L, 1)
        else:
            alpha = (mask / batch.lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)  # CORE-ave
        session = (alpha * x).sum(1)  # (B, D)
        return F.normalize(session, dim=-1) / self.config.temperature

    def item_embeddings(self) -> torch.Tensor:
        return F.normalize(self.item_dropout(self.item_embedding.weight), dim=-1)  # dropout is off in eval
