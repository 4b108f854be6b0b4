"""Dense attention for the Recformer encoder: what transformers' ``LongformerSelfAttention`` computes, as one masked
``scaled_dot_product_attention`` (SDPA) per layer over the whole sequence.

Why: Recformer's sequences are short (<= 256 tokens at ``small``, <= 1024 at ``base``), so Longformer's sliding
chunks cost more than they save: thousands of small kernels per step, and host reads (``.item()``, ``nonzero``)
in every layer that stall the device queue. The dense path has neither, and fused SDPA kernels do the rest.

What ``LongformerSelfAttention`` computes with global attention on CLS (position 0) alone, as Recformer sets it
(``modeling_longformer.py``, transformers 5):

- a query ``i`` other than CLS attends, with the ``query``/``key``/``value`` projections, to the attended keys
  ``j`` with ``|i - j| <= w / 2`` (``w``: the layer's ``attention_window``; a global key is taken out of the band)
  and to CLS (Longformer's "global key" column, also through ``key`` and ``value``);
- CLS attends, with ``query_global``/``key_global``/``value_global``, to every attended token;
- a padding query's output is zero (Longformer zeroes its probabilities after the softmax).

Masked keys get probability exactly 0 in both computations, so they differ by float rounding only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.longformer.modeling_longformer import (LongformerBaseModelOutput, LongformerEncoder,
                                                                LongformerSelfAttention)

DENSE_PAD_MULTIPLE = 8
"""The dense path pads sequences to a multiple of this: SDPA's memory-efficient CUDA kernel copies any mask whose
rows are not 8-aligned, in every layer. (Longformer instead needs a multiple of every layer's window.)"""

PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
"""``LongformerSelfAttention``'s weights: the dense module reuses them under the same names (same state-dict keys)."""


@dataclass
class DenseMasks:
    """What every layer's attention reads, built once per encoder pass (no host reads)."""

    local: dict[int, torch.Tensor]
    """``attention_window -> (B, 1, L, L)`` bool, True where query ``i`` may attend key ``j`` (local queries)."""
    cls_keys: torch.Tensor
    """``(B, 1, 1, L)`` bool: the keys CLS attends (every attended token)."""
    padding: torch.Tensor
    """``(B, L, 1)`` bool, True at padding (whose attention output is zero)."""


def dense_masks(attended: torch.Tensor, windows: list[int]) -> DenseMasks:
    """Masks of Longformer's attention pattern for ``attended`` ``(B, L)`` bool, global attention on CLS.

    A padding query is given its own key as well, so that no row is empty (an empty row's softmax is NaN, and
    its backward would spread NaN to the keys even though the row's output is zeroed afterwards)."""
    seq_len = attended.shape[1]
    positions = torch.arange(seq_len, device=attended.device)
    distance = (positions[:, None] - positions[None, :]).abs()  # (L, L)
    key_ok = attended[:, None, None, :]  # (B, 1, 1, L)
    cls_column = positions == 0  # (L,): every query reads CLS, its global key
    local = {}
    for window in sorted(set(windows)):
        near = (distance <= window // 2) | cls_column  # (L, L)
        local[window] = (near & key_ok) | (distance == 0)  # (L, L) & (B, 1, 1, L) -> (B, 1, L, L)
    return DenseMasks(local=local, cls_keys=key_ok | cls_column, padding=~attended[:, :, None])


class DenseSelfAttention(LongformerSelfAttention):
    """``LongformerSelfAttention``'s weights and result (global attention on CLS only), by two SDPA calls."""

    @classmethod
    def from_longformer(cls, attention: LongformerSelfAttention) -> DenseSelfAttention:
        """The dense module over ``attention``'s own projections. Built on the meta device, so no weights are made
        and no random numbers drawn: a model seeded alike starts from the same weights with either implementation."""
        with torch.device("meta"):
            dense = cls(attention.config, attention.layer_id)
        for name in PROJECTIONS:
            setattr(dense, name, getattr(attention, name))
        return dense

    def forward(self, hidden_states: torch.Tensor, attention_mask: DenseMasks | None = None,
                is_index_masked: torch.Tensor | None = None, is_index_global_attn: torch.Tensor | None = None,
                is_global_attn: bool | None = None, output_attentions: bool = False) -> tuple[torch.Tensor]:
        """``(B, L, D)`` -> ``((B, L, D),)``. ``attention_mask``: the encoder pass's :class:`DenseMasks` (the other
        arguments are ``LongformerLayer``'s, unused here)."""
        if output_attentions:
            raise ValueError("attention probabilities come in Longformer's banded layout: build the model with "
                             "attention_implementation='longformer' to read them")
        if not isinstance(attention_mask, DenseMasks):
            raise TypeError(f"DenseSelfAttention needs the DenseMasks of DenseEncoder, got {type(attention_mask)}")
        batch_size, seq_len, embed_dim = hidden_states.shape
        dropout = self.dropout if self.training else 0.0

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)  # (B, n, D) -> (B, H, n, d)

        local = F.scaled_dot_product_attention(
            heads(self.query(hidden_states)), heads(self.key(hidden_states)), heads(self.value(hidden_states)),
            attn_mask=attention_mask.local[self.one_sided_attn_window_size * 2], dropout_p=dropout,
        )  # (B, H, L, d)
        cls = F.scaled_dot_product_attention(
            heads(self.query_global(hidden_states[:, :1])), heads(self.key_global(hidden_states)),
            heads(self.value_global(hidden_states)), attn_mask=attention_mask.cls_keys, dropout_p=dropout,
        )  # (B, H, 1, d)
        out = torch.cat([cls.transpose(1, 2), local[:, :, 1:].transpose(1, 2)], dim=1)  # -> (B, L, H, d)
        return (out.reshape(batch_size, seq_len, embed_dim).masked_fill(attention_mask.padding, 0.0),)


class DenseEncoder(LongformerEncoder):
    """``LongformerEncoder`` (same layers and weights) whose attention is :class:`DenseSelfAttention`.

    Takes Longformer's encoder mask (< 0 padding, 0 local, > 0 global) and reads global attention as CLS
    (position 0) where attended: Recformer's layout, and the only one it computes exactly."""

    def __init__(self, config) -> None:
        super().__init__(config)
        for layer in self.layer:
            layer.attention.self = DenseSelfAttention.from_longformer(layer.attention.self)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, padding_len: int = 0,
                output_attentions: bool = False, output_hidden_states: bool = False,
                return_dict: bool = True) -> LongformerBaseModelOutput:
        """``(B, L, D)`` hidden states and ``(B, L)`` mask; the last ``padding_len`` positions are cut from the
        outputs, as ``LongformerEncoder`` does."""
        if output_attentions:
            raise ValueError("attention probabilities come in Longformer's banded layout: build the model with "
                             "attention_implementation='longformer' to read them")
        masks = dense_masks(attention_mask >= 0, self.config.attention_window)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask=masks)[0]
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        end = hidden_states.shape[1] - padding_len
        if output_hidden_states:
            all_hidden_states = tuple(state[:, :end] for state in all_hidden_states)
        output = LongformerBaseModelOutput(last_hidden_state=hidden_states[:, :end], hidden_states=all_hidden_states)
        return output if return_dict else output.to_tuple()


__all__ = ["DENSE_PAD_MULTIPLE", "DenseEncoder", "DenseMasks", "DenseSelfAttention", "dense_masks"]
