"""NARM: J. Li, P. Ren, Z. Chen, Z. Ren, T. Lian and J. Ma, "Neural Attentive Session-based
Recommendation", CIKM 2017 (arXiv:1711.04725).

A hybrid encoder over the session's GRU states h_1..h_t:
- global encoder: the last state, c_g = h_t (the user's sequential behaviour);
- local encoder: attention of the last state over all states, alpha_tj = v^T sigmoid(A_1 h_t + A_2 h_j),
  c_l = sum_j alpha_tj h_j (the main purpose of the session).
The context c_t = [c_g; c_l] scores item i bilinearly, S_i = emb_i^T B c_t, which is a dot product of
B c_t (the session embedding) with the item embeddings. Dropout on the item embeddings and on c_t, as in
the paper's and RecBole's implementation (0.25 and 0.5).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SessionModel
from .config import BaselineConfig
from .data import SessionBatch


class NARM(SessionModel):
    """GRU states, attention of the last state over them, bilinear decoder B [c_l; c_g]."""

    paper = "Li et al. 2017, Neural Attentive Session-based Recommendation"

    def __init__(self, num_items: int, config: BaselineConfig):
        super().__init__(num_items, config)
        hidden = config.hidden_size
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.gru = nn.GRU(config.embedding_size, hidden, config.num_layers, bias=False, batch_first=True)
        self.a_1 = nn.Linear(hidden, hidden, bias=False)  # applied to every state h_j
        self.a_2 = nn.Linear(hidden, hidden, bias=False)  # applied to the last state h_t
        self.v = nn.Linear(hidden, 1, bias=False)
        self.context_dropout = nn.Dropout(config.hidden_dropout)
        self.b = nn.Linear(2 * hidden, config.embedding_size, bias=False)
        self.post_init()

    def reset_parameters(self) -> None:
        # As RecBole's NARM: Xavier-normal embeddings and linear weights (GRU keeps PyTorch's init).
        nn.init.xavier_normal_(self.item_embedding.weight)
        for layer in (self.a_1, self.a_2, self.v, self.b):
            nn.init.xavier_normal_(layer.weight)

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        x = self.embedding_dropout(self.item_embedding(batch.items))  # (B, L, E)
        states, _ = self.gru(x)  # (B, L, H); causal, so padding after the last item changes nothing
        c_global = last = self.gather_last(states, batch.lengths)  # (B, H)
        mask = self.padding_mask(batch).unsqueeze(-1)  # (B, L, 1)
        alpha = self.v(mask * torch.sigmoid(self.a_1(states) + self.a_2(last).unsqueeze(1)))  # (B, L, 1)
        c_local = (alpha * states).sum(1)  # (B, H)
        context = self.context_dropout(torch.cat([c_local, c_global], dim=1))  # (B, 2H)
        return self.b(context)  # (B, E)
