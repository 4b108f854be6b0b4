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

Two options reproduce what RecBole 1.2.1's STAMP computes beyond the paper (both on by default; both
off is the paper's model). Its forward pass equals ours to 1e-11 on the same weights; the differences
are in how it treats padding:
- ``stamp_null_logit``: RecBole's cross-entropy scores every column of its embedding table, padding
  included, so training has a null class whose logit stays 0 (the padding row is zero, or frozen). We
  keep that column at logit 0 in the loss instead of -inf. On MovieLens-100k it adds nothing alone
  and about 0.002 MRR@100 with the empty slots (3 seeds each; bench/README.md).
- ``stamp_empty_slots``: the memory is a window of ``max_length`` slots. A session of t < max_length
  items leaves n = max_length - t of them empty, each holding one learned vector e. They enter the sum
  of m_s (still divided by t) and the attention, with weight alpha_e computed as for an item:
  m_s = (sum_i x_i + n e) / t and m_a = sum_i alpha_i x_i + n alpha_e e + m_s. RecBole does this
  without meaning to: it pads every sequence to the full window, does not mask the padding, and its
  normal initialisation overwrites the zero padding row, which ``padding_idx`` then freezes. Its m_s
  and m_a therefore carry the session length, which the paper's model cannot see. Here the slots are
  explicit, learned and computed from counts, so a session's scores never depend on how wide its
  batch is padded. On MovieLens-100k they raise MRR@100 from 0.026 to 0.030 (0.032 with the null
  logit; RecBole 0.032).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        self.empty_slot = nn.Parameter(torch.zeros(dim)) if config.stamp_empty_slots else None  # e
        self.post_init()

    def reset_parameters(self) -> None:
        # The paper's initialisation (also RecBole's): N(0, 0.002) embeddings, N(0, 0.05) weights, zero biases.
        nn.init.normal_(self.item_embedding.weight, 0.0, 0.002)
        for layer in (self.w_0, self.w_1, self.w_2, self.w_3, self.mlp_s, self.mlp_t):
            nn.init.normal_(layer.weight, 0.0, 0.05)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.b_a)
        if self.empty_slot is not None:
            nn.init.normal_(self.empty_slot, 0.0, 0.002)  # as an item embedding (RecBole's padding row)

    def loss(self, batch: SessionBatch) -> torch.Tensor:
        """Cross-entropy with a null class: the padding column keeps its logit 0 (its row is zero and
        frozen) instead of -inf, with ``stamp_null_logit``; as in RecBole, whose loss scores padding too."""
        if not self.config.stamp_null_logit:
            return super().loss(batch)
        scores = self.session_embedding(batch) @ self.item_embeddings().T  # (B, D) x (D, N) -> (B, N)
        return F.cross_entropy(scores, batch.targets)

    def session_embedding(self, batch: SessionBatch) -> torch.Tensor:
        x = self.item_embedding(batch.items) * self.padding_mask(batch).unsqueeze(-1)  # (B, L, D)
        count = batch.lengths.unsqueeze(1).to(x.dtype)  # (B, 1) t
        last = self.gather_last(x, batch.lengths)  # (B, D) m_t
        total = x.sum(1)  # (B, D)
        if self.empty_slot is not None:
            empty = (self.config.max_length - batch.lengths).clamp(min=0).unsqueeze(1).to(x.dtype)  # (B, 1) n
            total = total + empty * self.empty_slot
        mean = total / count  # (B, D) m_s
        query = self.w_2(last) + self.w_3(mean) + self.b_a  # (B, D)
        alpha = self.w_0(torch.sigmoid(self.w_1(x) + query.unsqueeze(1)))  # (B, L, 1)
        memory = (alpha * x).sum(1) + mean  # (B, D) m_a; padding rows of x are zero
        if self.empty_slot is not None:
            alpha_empty = self.w_0(torch.sigmoid(self.w_1(self.empty_slot) + query))  # (B, 1)
            memory = memory + empty * alpha_empty * self.empty_slot
        h_s = torch.tanh(self.mlp_s(memory))
        h_t = torch.tanh(self.mlp_t(last))
        return h_s * h_t  # (B, D): scores are the trilinear product <h_s, h_t, x_i>
