"""SR-GNN: S. Wu, Y. Tang, Y. Zhu, L. Wang, X. Xie and T. Tan, "Session-based Recommendation with Graph
Neural Networks", AAAI 2019 (arXiv:1811.00855).

Each session is a directed graph over its distinct items (an edge per consecutive pair). A gated graph
neural network updates the node vectors: a_i = [A_in,i (H W_in + b_in) + b_iah ; A_out,i (H W_out + b_out)
+ b_ioh] aggregates along incoming and outgoing edges (degree-normalised adjacency), and a GRU update
mixes a_i into node i. The session is then read out from its positions' node vectors v_1..v_t:
s_g = sum_i alpha_i v_i with alpha_i = q^T sigmoid(W_1 v_t + W_2 v_i + c), the local s_l = v_t, and the
hybrid s_h = W_3 [s_g; s_l], scored against the item embeddings.

The graph (unique nodes, alias indices, normalised in/out adjacency) is built by ``GraphCollator`` in
the data pipeline, vectorised over the batch; ``forward`` only does tensor algebra (RecBole builds it
inside ``forward`` with per-session Python loops). The GRU update uses ``nn.GRUCell``, whose update gate
z weighs the old state where the paper's weighs the new one: the same family, with z <-> 1 - z.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SessionModel
from .config import BaselineConfig
from .data import GraphCollator, SessionBatch


class GatedGraphLayer(nn.Module):
    """One propagation step of the gated GNN over (B, n) node vectors with (B, n, 2n) adjacency."""

    def __init__(self, dim: int):
        super().__init__()
        self.edge_in = nn.Linear(dim, dim)
        self.edge_out = nn.Linear(dim, dim)
        self.bias_in = nn.Parameter(torch.zeros(dim))
        self.bias_out = nn.Parameter(torch.zeros(dim))
        self.cell = nn.GRUCell(2 * dim, dim)

    def forward(self, adjacency: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        n = hidden.size(1)
        incoming = adjacency[:, :, :n] @ self.edge_in(hidden) + self.bias_in  # (B, n, n) x (B, n, D) -> (B, n, D)
        outgoing = adjacency[:, :, n:] @ self.edge_out(hidden) + self.bias_out  # (B, n, D)
        message = torch.cat([incoming, outgoing], dim=2)  # (B, n, 2D)
        return self.cell(message.flatten(0, 1), hidden.flatten(0, 1)).view_as(hidden)


class SRGNN(SessionModel):
    """Gated GNN over the session graph, then attention readout [s_g; s_l] -> item space."""

    paper = "Wu et al. 2019, Session-based Recommendation with Graph Neural Networks"
    collator = GraphCollator

    def __init__(self, num_items: int, config: BaselineConfig):
        super().__init__(num_items, config)
        dim = config.embedding_size
        self.layers = nn.ModuleList(GatedGraphLayer(dim) for _ in range(config.gnn_steps))
        self.w_1 = nn.Linear(dim, dim)  # on the last position's node v_t
        self.w_2 = nn.Linear(dim, dim)  # on every position's node v_i
        self.q = nn.Linear(dim, 1, bias=False)
        self.w_3 = nn.Linear(2 * dim, dim)
        self.post_init()

    def reset_parameters(self) -> None:
        # As the authors' code and RecBole: every parameter ~ U(-1/sqrt(D), 1/sqrt(D)).
        bound = 1.0 / math.sqrt(self.config.embedding_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        if batch.adjacency is None:
            raise ValueError("SR-GNN needs the session graph: build batches with GraphCollator")
        hidden = self.item_embedding(batch.nodes)  # (B, n, D)
        for layer in self.layers:
            hidden = layer(batch.adjacency, hidden)
        alias = batch.alias.unsqueeze(-1).expand(-1, -1, hidden.size(-1))  # (B, L, D)
        states = hidden.gather(1, alias)  # (B, L, D): node vector of each position
        last = self.gather_last(states, batch.lengths)  # (B, D) s_l
        alpha = self.q(torch.sigmoid(self.w_1(last).unsqueeze(1) + self.w_2(states)))  # (B, L, 1)
        s_global = (alpha * states * self.padding_mask(batch).unsqueeze(-1)).sum(1)  # (B, D)
        return self.w_3(torch.cat([s_global, last], dim=1))  # (B, 2D) -> (B, D)
