"""STAMP: Q. Liu, Y. Zeng, R. Mokhosi and H. Zhang, "STAMP: Short-Term Attention/Memory Priority Model
for Session-based Recommendation", KDD 2018.

No recurrence: from the session's item embeddings x_1..x_t it takes
- the short-term memory m_t = x_t (the last click),
- the session mean m_s = (1/t) sum_i x_i,
- an attention over the items driven by both, alpha_i = w_0^T sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a),
  giving the long-term memory m_a = sum_i alpha_i x_i (plus m_s, as in RecBole's implementation);
then two MLP cells h_s = tanh(W_s m_a + b_s), h_t = tanh(W_t m_t + b_t), and the trilinear score
<h_s, h_t, x_i> = (h_s * h_t) . x_i, so the session embedding is h_s * h_t. Like RecBole, the final
sigmoid of the paper's score is dropped: the scores go straight into the softmax cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SessionModel
from .config import BaselineConfig
from .data import SessionBatch


class STAMP(SessionModel):
    """Attention/memory priority: general interest (attended memory) times current interest (last click)."""

    paper = "Liu et al. 2018, STAMP: Short-Term Attention/Memory Priority Model for Session-based Recommendation"

    def __init__(self, num_items: int, config: BaselineConfig):
        super().__init__(num_items, config)
        dim = config.embedding_size
        self.w_0 = nn.Linear(dim, 1, bias=False)
        self.w_1 = nn.Linear(dim, dim, bias=False)  # on every item x_i
        self.w_2 = nn.Linear(dim, dim, bias=False)  # on the last item x_t
        self.w_3 = nn.Linear(dim, dim, bias=False)  # on the session mean m_s
        self.b_a = nn.Parameter(torch.zeros(dim))
        self.mlp_s = nn.Linear(dim, dim)
        self.mlp_t = nn.Linear(dim, dim)
        self.post_init()

    def reset_parameters(self) -> None:
        # The paper's initialisation (also RecBole's): N(0, 0.002) embeddings, N(0, 0.05) weights, zero biases.
        nn.init.normal_(self.item_embedding.weight, 0.0, 0.002)
        for layer in (self.w_0, self.w_1, self.w_2, self.w_3, self.mlp_s, self.mlp_t):
            nn.init.normal_(layer.weight, 0.0, 0.05)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.b_a)

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        x = self.item_embedding(batch.items)  # (B, L, D); padding rows are zero
        last = self.gather_last(x, batch.lengths)  # (B, D) m_t
        mean = x.sum(1) / batch.lengths.unsqueeze(1).to(x.dtype)  # (B, D) m_s
        alpha = self.w_0(torch.sigmoid(self.w_1(x) + (self.w_2(last) + self.w_3(mean) + self.b_a).unsqueeze(1)))  # (B, L, 1)
        alpha = alpha * self.padding_mask(batch).unsqueeze(-1)
        memory = (alpha * x).sum(1) + mean  # (B, D) m_a
        h_s = torch.tanh(self.mlp_s(memory))
        h_t = torch.tanh(self.mlp_t(last))
        return h_s * h_t  # (B, D): scores are the trilinear product <h_s, h_t, x_i>
