"""Recformer (Li et al. 2023, "Text Is All You Need: Learning Language Representations for Sequential
Recommendation", https://arxiv.org/abs/2305.13731) on transformers' Longformer encoder.

- :class:`RecformerModel`: embeddings (word + token position + token type + item position) and a
  ``LongformerEncoder`` with global attention on CLS (by default computed as dense masked SDPA,
  :mod:`~recformer_m2.models.attention`, with the same weights); returns token states and a pooled vector.
- :class:`RecformerForPretraining`: masked-language-model loss plus a session-to-next-item
  contrastive loss over in-batch (and cross-rank) candidates.
- :class:`RecformerForSeqRec`: scores a session against a table of item embeddings.

Inputs come from :class:`~recformer_m2.models.collator.SessionCollator`; all tokenisation, masking
and layout is done there, so ``forward`` only runs tensor ops.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.models.longformer.modeling_longformer import LongformerEncoder, LongformerLMHead
from transformers.utils import ModelOutput

from .attention import DENSE_PAD_MULTIPLE, DenseEncoder
from .configuration_recformer import RecformerConfig, TokenType
from .item_table import (LEGACY_KEYS_FILE, LEGACY_TABLE_FILE, TABLE_FILE, ItemTable, read_legacy_table, read_table,
                         write_table)

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of positions that the masked-language-model loss skips (``F.cross_entropy``'s default)."""


@dataclass
class RecformerModelOutput(ModelOutput):
    """Token states ``(B, L, D)`` without the window padding; pooled vector ``(B, D)`` per ``config.pooler_type``."""

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    global_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class RecformerPretrainingOutput(ModelOutput):
    """Weighted total ``loss``, its two parts, and what they were computed from.

    ``mlm_logits`` ``(M, V)`` holds only the M labelled positions (``mlm_labels != -100``, row-major
    order), which keeps memory at M x V instead of B x L x V. ``cl_correct`` counts sessions whose
    top-scored candidate is their own next item.
    """

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    item_cl_loss: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None
    item_embeddings: torch.Tensor | None = None
    cl_correct: torch.Tensor | None = None


@dataclass
class RecformerSeqRecOutput(ModelOutput):
    """``scores``: ``(B, N)`` over all items, or ``(B, 1 + K)`` [positive, K negatives] when negatives are sampled.

    ``session_embeddings`` ``(B, D)`` are L2-normalised, like the item table they are scored against.
    """

    loss: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


class RecformerEmbeddings(nn.Module):
    """Sum of word, token-position, token-type and item-position embeddings, then LayerNorm and dropout."""

    def __init__(self, config: RecformerConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.token_type_size, config.hidden_size)
        self.item_position_embeddings = nn.Embedding(config.max_item_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        item_position_ids: torch.Tensor,
        position_ids: torch.Tensor,
    ) -> torch.Tensor:
        """All inputs ``(B, L)`` long; returns ``(B, L, D)``."""
        embeddings = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
            + self.item_position_embeddings(item_position_ids)
        )  # 4 x (B, L, D) -> (B, L, D)
        return self.dropout(self.LayerNorm(embeddings))


class RecformerPreTrainedModel(PreTrainedModel):
    """Weight init and strict loading shared by every Recformer model."""

    config_class = RecformerConfig
    config: RecformerConfig
    base_model_prefix = "recformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LongformerSelfAttention", "DenseSelfAttention", "RecformerEmbeddings"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' defaults (normal linears and embeddings, unit LayerNorms) plus a zero LM-head bias."""
        super()._init_weights(module)
        if isinstance(module, LongformerLMHead):
            init.zeros_(module.bias)
        if isinstance(module, RecformerModel) and module.config.pooler_type == "mean_last":
            init.constant_(module.last_item_weight, RecformerModel.LAST_ITEM_WEIGHT_INIT)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *model_args: Any,
                        allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                        **kwargs: Any) -> RecformerPreTrainedModel:
        """transformers' loader, made strict: a weight that is missing, unused or mis-shaped raises
        ``ValueError`` naming it (also through the Auto classes), unless ``allow_missing`` (weights of this
        model that are new, e.g. ``"lm_head"`` when turning an encoder into a pretraining model) or
        ``allow_unexpected`` (checkpoint weights this model drops, e.g. ``"lm_head"`` when loading
        ``RecformerForSeqRec`` from a pretraining folder) name it, as exact names or module prefixes.

        Why: transformers only logs such weights (and initialises the missing ones at random), so a
        wrong folder would train or serve silently."""
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(str(pretrained_model_name_or_path), *model_args,
                                              output_loading_info=True, **kwargs)
        allowed_missing, allowed_unexpected = tuple(allow_missing), tuple(allow_unexpected)
        problems = []
        if missing := sorted(k for k in info["missing_keys"] if not _matches(k, allowed_missing)):
            problems.append(f"missing from the checkpoint (would be random): {missing}")
        if unexpected := sorted(k for k in info["unexpected_keys"] if not _matches(k, allowed_unexpected)):
            problems.append(f"in the checkpoint but unused by {cls.__name__}: {unexpected}")
        if mismatched := sorted(info["mismatched_keys"]):
            problems.append(f"shape mismatch (name, checkpoint, model): {mismatched}")
        if info["error_msgs"]:
            problems.append(f"errors: {info['error_msgs']}")
        if problems:
            raise ValueError(
                f"{pretrained_model_name_or_path}: loading {cls.__name__} found weights "
                + "; ".join(problems)
                + " (pass allow_missing=/allow_unexpected= to accept weights that are new or dropped on purpose)"
            )
        return (model, info) if wants_info else model

    @classmethod
    def from_pretrained_strict(
        cls,
        path: str | Path,
        *,
        allow_missing: Iterable[str] = (),
        allow_unexpected: Iterable[str] = (),
        **kwargs: Any,
    ) -> RecformerPreTrainedModel:
        """:meth:`from_pretrained` of a local folder only, checked first (a missing, foreign or damaged folder
        is refused naming the file, and a mistyped path never becomes a hub name)."""
        from .folders import check_model_folder

        check_model_folder(path)
        kwargs.setdefault("local_files_only", True)
        return cls.from_pretrained(str(path), allow_missing=allow_missing, allow_unexpected=allow_unexpected,
                                   **kwargs)


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``key`` equals a pattern or lies under one as a module prefix (``lm_head`` covers ``lm_head.bias``)."""
    return any(key == p or key.startswith(p + ".") for p in patterns)


class RecformerModel(RecformerPreTrainedModel):
    """Recformer encoder: embeddings, Longformer layers with global attention on CLS, pooling."""

    LAST_ITEM_WEIGHT_INIT = 0.5
    """Starting weight of the newest item in ``"mean_last"`` pooling, relative to the whole session."""

    def __init__(self, config: RecformerConfig) -> None:
        super().__init__(config)
        config.check_recformer_args()  # again: the config may have been edited after construction
        if isinstance(config.attention_window, int):  # LongformerSelfAttention indexes it per layer
            config.attention_window = [config.attention_window] * config.num_hidden_layers
        self.embeddings = RecformerEmbeddings(config)
        # Either encoder has the same modules and weights; dense is Longformer's attention as one masked SDPA.
        dense = config.attention_implementation == "dense"
        self.encoder = DenseEncoder(config) if dense else LongformerEncoder(config)
        if config.pooler_type == "mean_last":
            # shape (1,), not a scalar: DeepSpeed's parameter broadcast views every parameter as bytes
            self.last_item_weight = nn.Parameter(torch.full((1,), self.LAST_ITEM_WEIGHT_INIT))
        # Every layer's sliding chunks need the length to be a multiple of its own window; dense, 8-aligned masks.
        self.pad_multiple = DENSE_PAD_MULTIPLE if dense else math.lcm(*config.attention_window)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        item_position_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> RecformerModelOutput:
        """Encode ``(B, L)`` inputs from the collator; ``position_ids`` default to 0..L-1 from CLS."""
        batch_size, seq_len = input_ids.shape
        if seq_len > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {seq_len} exceeds max_position_embeddings ({self.config.max_position_embeddings})"
            )
        attention_mask = attention_mask.long()
        if position_ids is None:
            position_ids = torch.arange(seq_len, device=input_ids.device).expand(batch_size, seq_len)  # (B, L)
        inputs = (input_ids, attention_mask, token_type_ids, item_position_ids, position_ids)
        encoded = self._encode(*inputs, output_attentions, output_hidden_states)
        last_hidden = encoded.last_hidden_state  # (B, L, D), window padding removed
        pooled = self.pool(last_hidden, attention_mask)
        if self.config.pooler_type == "mean_last":
            newest = self._newest_item_mean(*inputs, last_hidden)
            pooled = F.normalize(pooled, dim=-1) + self.last_item_weight * F.normalize(newest, dim=-1)
        return RecformerModelOutput(
            last_hidden_state=last_hidden,
            pooler_output=pooled,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            global_attentions=encoded.global_attentions,
        )

    def _encode(self, input_ids, attention_mask, token_type_ids, item_position_ids, position_ids,
                output_attentions: bool = False, output_hidden_states: bool = False):
        """Embeddings and Longformer layers on ``(B, L)`` inputs, padded to ``pad_multiple`` and back."""
        seq_len = input_ids.shape[1]
        # Pad to the window multiple with inert tokens: pad id, no attention, PAD type, item position 0.
        padding_len = (-seq_len) % self.pad_multiple
        padded_mask = attention_mask
        if padding_len > 0:
            input_ids = F.pad(input_ids, (0, padding_len), value=self.config.pad_token_id)  # (B, L) -> (B, L + P)
            padded_mask = F.pad(attention_mask, (0, padding_len), value=0)
            token_type_ids = F.pad(token_type_ids, (0, padding_len), value=int(TokenType.PAD))
            item_position_ids = F.pad(item_position_ids, (0, padding_len), value=0)
            position_ids = F.pad(position_ids, (0, padding_len), value=0)

        hidden = self.embeddings(input_ids, token_type_ids, item_position_ids, position_ids)  # (B, L + P, D)

        # Longformer's mask convention, 0 none / 1 local / 2 global, with global attention on CLS;
        # LongformerEncoder reads only its sign after the shift: < 0 none, 0 local, > 0 global.
        is_global = torch.zeros_like(padded_mask)
        is_global[:, 0] = 1
        encoder_mask = (padded_mask * (is_global + 1) - 1).to(hidden.dtype)  # (B, L + P) in {-1, 0, 1}

        return self.encoder(
            hidden,
            attention_mask=encoder_mask,
            padding_len=padding_len,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )

    def _newest_item_mean(self, input_ids, attention_mask, token_type_ids, item_position_ids, position_ids,
                          last_hidden: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` mean-pooled encoding of each sequence's newest item read alone, as an item table encodes
        it: the collator puts CLS and the newest item first, so that is the sequence cut after item position 1."""
        newest_mask = attention_mask * (item_position_ids <= 1)  # (B, L)
        # Both facts in one host read: each read waits for the device queue to drain.
        differs, length = torch.stack([(newest_mask != attention_mask).any().long(), newest_mask.sum(1).max()]).tolist()
        if not differs:  # items, or one-item sessions: the pass already done
            return _masked_mean(last_hidden, attention_mask)
        cut = (input_ids[:, :length], newest_mask[:, :length], token_type_ids[:, :length],
               item_position_ids[:, :length], position_ids[:, :length])
        return _masked_mean(self._encode(*cut).last_hidden_state, cut[1])

    def pool(self, last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sequence: CLS state, or mean over non-padding tokens (for ``"mean"`` and, before the
        newest item is added, ``"mean_last"``; ``config.pooler_type``)."""
        if self.config.pooler_type == "cls":
            return last_hidden[:, 0]  # (B, L, D) -> (B, D)
        return _masked_mean(last_hidden, attention_mask)


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(B, L, D)`` over the positions where ``mask`` ``(B, L)`` is nonzero -> ``(B, D)``."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def gather_across_ranks(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Rows of every rank (rank order) and the offset of this rank's rows; identity outside distributed runs.

    ``all_gather`` returns detached copies, so this rank's slice is replaced by ``local`` itself
    and gradients flow into the local shard. Every rank must pass the same number of rows.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    world_size, rank = dist.get_world_size(), dist.get_rank()
    parts = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(parts, local.detach().contiguous())
    parts[rank] = local
    return torch.cat(parts, dim=0), rank * local.shape[0]  # W x (B, ...) -> (W * B, ...)


def item_contrastive_loss(
    session_embeddings: torch.Tensor,
    item_embeddings: torch.Tensor,
    temperature: float,
    item_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of each session against its next item among all gathered next items.

    Candidates that are the same item as a session's positive (equal ``item_ids``) are removed
    from its negatives, since scoring the true item down would teach the wrong thing. Returns
    ``(loss, number of sessions ranking their positive first, logits (B, C))``.
    """
    candidates, offset = gather_across_ranks(item_embeddings)  # (C, D), C = world_size * B
    sessions = F.normalize(session_embeddings, dim=-1)
    candidates = F.normalize(candidates, dim=-1)
    logits = sessions @ candidates.T / temperature  # (B, D) x (D, C) -> (B, C)
    rows = torch.arange(sessions.shape[0], device=logits.device)
    targets = rows + offset  # (B,)
    if item_ids is not None:
        all_ids, _ = gather_across_ranks(item_ids)  # (C,)
        duplicate = item_ids.unsqueeze(1) == all_ids.unsqueeze(0)  # (B, 1) == (1, C) -> (B, C)
        duplicate[rows, targets] = False
        logits = logits.masked_fill(duplicate, float("-inf"))
    loss = F.cross_entropy(logits, targets)
    correct = (logits.argmax(dim=-1) == targets).sum()
    return loss, correct, logits


def table_scores(
    sessions: torch.Tensor,
    table: torch.Tensor,
    temperature: float,
    bias: torch.Tensor | None = None,
    session_groups: torch.Tensor | None = None,
    table_groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, N)`` scores of L2-normalised sessions ``(B, D)`` against a normalised item table ``(N, D)``:
    cosine over the temperature, plus ``bias`` ``(N,)`` per item; with ``session_groups`` ``(B,)`` and
    ``table_groups`` ``(N,)``, items outside a session's group score ``-inf``."""
    scores = sessions @ table.T / temperature  # (B, D) x (D, N) -> (B, N)
    if bias is not None:
        scores = scores + bias
    if session_groups is not None:
        other = session_groups.unsqueeze(1) != table_groups.unsqueeze(0)  # (B, 1) != (1, N) -> (B, N)
        scores = scores.masked_fill(other, float("-inf"))
    return scores


def _item_table_tensors(model: RecformerPreTrainedModel, table: torch.Tensor,
                        **per_row: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """Checked, detached copies on the model's device of an ``(N, D)`` item table (L2-normalised) and of
    ``(N,)`` per-row values (``groups`` as long, others in the weights' dtype), for ``set_item_embeddings``."""
    if table.dim() != 2 or table.shape[1] != model.config.hidden_size:
        raise ValueError(
            f"item table must have shape (num_items, {model.config.hidden_size}), got {tuple(table.shape)}"
        )
    for name, values in per_row.items():
        if values is not None and values.shape != (table.shape[0],):
            raise ValueError(f"item {name} must have shape ({table.shape[0]},), got {tuple(values.shape)}")
    weight = model.recformer.embeddings.word_embeddings.weight
    rows = {name: None if values is None else
            values.detach().to(weight.device, torch.long if name == "groups" else weight.dtype)
            for name, values in per_row.items()}
    return F.normalize(table.detach().to(weight.device, weight.dtype), dim=-1), rows


def table_contrastive_loss(
    session_embeddings: torch.Tensor,
    table: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    table_groups: torch.Tensor | None = None,
    table_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of each session against every item of a frozen, L2-normalised ``(N, D)`` table.

    ``labels`` ``(B,)`` are the positives' table rows. With ``table_groups`` ``(N,)`` a session competes
    only with the items of its positive's group (its locale); ``table_bias`` ``(N,)`` is added to each
    item's logit (e.g. a popularity prior). Returns ``(loss, number of sessions ranking their positive
    first, logits (B, N))``.
    """
    logits = table_scores(F.normalize(session_embeddings, dim=-1), table, temperature, table_bias,
                          None if table_groups is None else table_groups[labels], table_groups)
    loss = F.cross_entropy(logits, labels)
    correct = (logits.argmax(dim=-1) == labels).sum()
    return loss, correct, logits


class RecformerForPretraining(RecformerPreTrainedModel):
    """Recformer pretraining: MLM on the masked session plus session-to-next-item contrast.

    The contrast is in-batch (a second encoder pass over the next items, which are each other's
    negatives), or, with a frozen item table set by :meth:`set_item_embeddings`, a full softmax over
    every item of the session's locale, as finetuning's stage 1 trains. In-batch negatives are mostly
    products of other kinds, so they teach coarse categories; the table holds every sibling variant
    and same-kind product, the hard negatives next-item ranking is decided by.
    """

    _tied_weights_keys = {
        "lm_head.decoder.weight": "recformer.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config: RecformerConfig) -> None:
        super().__init__(config)
        self.recformer = RecformerModel(config)
        self.lm_head = LongformerLMHead(config)
        self.register_buffer("item_embeddings", None, persistent=False)
        self.register_buffer("item_groups", None, persistent=False)
        self.register_buffer("item_bias", None, persistent=False)
        self.post_init()

    def set_item_embeddings(self, table: torch.Tensor, groups: torch.Tensor | None = None,
                            bias: torch.Tensor | None = None) -> None:
        """Store the frozen ``(N, D)`` item table (L2-normalised, no gradient, not saved) that ``labels``
        index; ``groups`` ``(N,)``: each row's locale (a session only competes within its positive's);
        ``bias`` ``(N,)``: added to each row's logit (a fixed popularity prior)."""
        self.item_embeddings, rows = _item_table_tensors(self, table, groups=groups, bias=bias)
        self.item_groups, self.item_bias = rows["groups"], rows["bias"]

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        item_position_ids: torch.Tensor,
        mlm_labels: torch.Tensor | None = None,
        next_input_ids: torch.Tensor | None = None,
        next_attention_mask: torch.Tensor | None = None,
        next_token_type_ids: torch.Tensor | None = None,
        next_item_position_ids: torch.Tensor | None = None,
        item_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> RecformerPretrainingOutput:
        """Masked session inputs and MLM labels ``(B, L)``, next-item inputs ``(B, L')``, next-item ids ``(B,)``;
        or, instead of the next-item inputs, ``labels`` ``(B,)``: the next items' rows in the item table.

        A loss is computed for each part whose inputs are given; ``loss`` is their weighted sum.
        """
        if labels is not None and next_input_ids is not None:
            raise ValueError("give next-item inputs (in-batch contrast) or table labels, not both")
        if labels is not None and self.item_embeddings is None:
            raise RuntimeError("labels index the item table: call set_item_embeddings(table) first")
        session = self.recformer(input_ids, attention_mask, token_type_ids, item_position_ids)
        contrasted = session.pooler_output  # (B, D): the session the contrastive loss scores
        contrasting = next_input_ids is not None or labels is not None
        if contrasting and mlm_labels is not None and self.config.contrast_unmasked:
            written = torch.where(mlm_labels != IGNORE_INDEX, mlm_labels, input_ids)  # (B, L) masking undone
            contrasted = self.recformer(written, attention_mask, token_type_ids, item_position_ids).pooler_output
        output = RecformerPretrainingOutput(session_embeddings=contrasted)
        losses = []

        if mlm_labels is not None:
            labelled = mlm_labels != IGNORE_INDEX  # (B, L)
            output.mlm_logits = self.lm_head(session.last_hidden_state[labelled])  # (M, D) -> (M, V)
            targets = mlm_labels[labelled]  # (M,)
            if targets.numel() > 0:
                output.mlm_loss = F.cross_entropy(output.mlm_logits, targets)
            else:  # nothing masked in this batch: a zero that keeps the graph
                output.mlm_loss = output.mlm_logits.sum() * 0.0
            losses.append(self.config.mlm_weight * output.mlm_loss)

        if next_input_ids is not None:
            nxt = self.recformer(next_input_ids, next_attention_mask, next_token_type_ids, next_item_position_ids)
            output.item_embeddings = nxt.pooler_output
            output.item_cl_loss, output.cl_correct, _ = item_contrastive_loss(
                contrasted, nxt.pooler_output, self.config.temperature, item_ids
            )
            losses.append(self.config.item_cl_weight * output.item_cl_loss)

        if labels is not None:
            output.item_cl_loss, output.cl_correct, _ = table_contrastive_loss(
                contrasted, self.item_embeddings, labels, self.config.temperature, self.item_groups,
                self.item_bias,
            )
            losses.append(self.config.item_cl_weight * output.item_cl_loss)

        if losses:
            output.loss = torch.stack(losses).sum()
        return output


class RecformerForSeqRec(RecformerPreTrainedModel):
    """Next-item ranking: cosine between the session and every item of a fixed table, over the temperature.

    The table is set by :meth:`set_item_embeddings` (no gradient; a non-persistent buffer, so it stays out
    of ``model.safetensors`` and of optimizer and resume state). ``save_pretrained`` writes it, with the
    items' ids, groups and prior, to ``item_table.safetensors`` beside the weights, and the tokenizer when
    the model has one; ``from_pretrained`` (or ``AutoModelForSeqRec``) restores all of it, so a finetuned
    model is one folder (:mod:`~recformer_m2.models.item_table` gives the layout).

    An optional popularity prior adds ``prior_weight * item_prior[i]`` to item ``i``'s score
    (``item_prior``: e.g. log(1 + training occurrences), given with the table; ``prior_weight``: learned).
    Text alone cannot tell how often a product is bought, and the next item of a session is drawn in
    proportion to it: with the prior the encoder learns the remaining, textual part of the choice.
    """

    PRIOR_WEIGHT_INIT = 0.5
    """Starting ``prior_weight``: scores then grow with the square root of popularity."""

    def __init__(self, config: RecformerConfig) -> None:
        super().__init__(config)
        self.recformer = RecformerModel(config)
        self.prior_weight = nn.Parameter(torch.tensor(self.PRIOR_WEIGHT_INIT))
        self.register_buffer("item_embeddings", None, persistent=False)
        self.register_buffer("item_prior", None, persistent=False)
        self.register_buffer("item_groups", None, persistent=False)
        self.item_ids: list[str] | None = None
        self.item_group_names: list[str] | None = None
        self.tokenizer = None
        """The tokenizer ``save_pretrained`` writes beside the weights (set by ``from_pretrained`` when the
        folder has one)."""
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:  # also when from_pretrained adds it to a pretraining checkpoint
            init.constant_(module.prior_weight, self.PRIOR_WEIGHT_INIT)

    def set_item_embeddings(self, table: torch.Tensor, prior: torch.Tensor | None = None,
                            groups: torch.Tensor | None = None, ids: Sequence[str] | None = None,
                            group_names: Sequence[str] | None = None) -> None:
        """Store the ``(N, D)`` item table, L2-normalised, on the model's device; row ``i`` is item index ``i``.
        ``prior``: ``(N,)`` per-item prior values (None: no prior, every item alike). ``groups``: ``(N,)``
        each item's group (its locale); a session given a group competes only with that group's items,
        as retrieval only ranks the session's locale (the same product in another language is no negative).
        ``ids`` (each row's product id) and ``group_names`` (each group index's name) are saved with it."""
        if ids is not None and len(ids) != table.shape[0]:
            raise ValueError(f"{len(ids)} item ids for an item table of {table.shape[0]} rows")
        self.item_embeddings, rows = _item_table_tensors(self, table, prior=prior, groups=groups)
        self.item_prior, self.item_groups = rows["prior"], rows["groups"]
        self.item_ids = None if ids is None else [str(x) for x in ids]
        self.item_group_names = None if group_names is None else list(group_names)

    def item_table(self) -> ItemTable | None:
        """The item table as ``save_pretrained`` writes it (None when none is set)."""
        if self.item_embeddings is None:
            return None
        return ItemTable(self.item_embeddings, self.item_prior, self.item_groups, self.item_ids,
                         self.item_group_names)

    def _restore_item_table(self, table: ItemTable) -> None:
        """Set a table read from a folder as it is stored (already normalised: not normalised again, so a
        load and a save give back the same bytes)."""
        weight = self.recformer.embeddings.word_embeddings.weight
        self.item_embeddings = table.embeddings.to(weight.device, weight.dtype)
        self.item_prior = None if table.prior is None else table.prior.to(weight.device, weight.dtype)
        self.item_groups = None if table.groups is None else table.groups.to(weight.device, torch.long)
        self.item_ids, self.item_group_names = table.ids, table.group_names

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *model_args: Any,
                        allow_missing: Iterable[str] = (), allow_unexpected: Iterable[str] = (),
                        **kwargs: Any) -> RecformerForSeqRec:
        """The strict load of :class:`RecformerPreTrainedModel`, plus the folder's item table
        (``item_table.safetensors``) and tokenizer when it has them. A folder of an earlier version
        (encoder weights, ``item_table.npy`` and ``item_table.parquet``) is read too: its saved per-item
        bias becomes the prior with ``prior_weight`` 1; ``save_pretrained`` then writes the current layout."""
        from ..constants import LOCALES
        from ..tokenizer import TOKENIZER_FILES, load_tokenizer

        folder = Path(pretrained_model_name_or_path)
        legacy = not (folder / TABLE_FILE).is_file() and (folder / LEGACY_TABLE_FILE).is_file()
        if legacy:
            allow_missing = (*allow_missing, "prior_weight")  # those folders saved the encoder alone
        result = super().from_pretrained(folder, *model_args, allow_missing=allow_missing,
                                         allow_unexpected=allow_unexpected, **kwargs)
        model = result[0] if isinstance(result, tuple) else result
        hidden = model.config.hidden_size
        if (folder / TABLE_FILE).is_file():
            model._restore_item_table(read_table(folder / TABLE_FILE, hidden))
        elif legacy:
            logger.warning("%s holds an item table of an earlier version (%s, %s): read with prior_weight 1; "
                           "save_pretrained writes %s", folder, LEGACY_TABLE_FILE, LEGACY_KEYS_FILE, TABLE_FILE)
            model._restore_item_table(read_legacy_table(folder, hidden, model.config.temperature, LOCALES))
            with torch.no_grad():
                model.prior_weight.fill_(1.0)
        if any((folder / name).is_file() for name in TOKENIZER_FILES):
            model.tokenizer = load_tokenizer(folder)
        return result

    def save_pretrained(self, save_directory: str | Path, *args: Any, tokenizer: Any = None,
                        config_updates: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """transformers' save (config and weights), plus the item table and the tokenizer (``tokenizer``, else
        the model's own). ``config_updates``: values written into the saved ``config.json`` only, e.g. the
        ``table_item_weight`` finetuning chose on validation; the live config is never changed."""
        folder = Path(save_directory)
        super().save_pretrained(folder, *args, **kwargs)
        if config_updates:
            config = copy.deepcopy(self.config)
            for name, value in config_updates.items():
                if not hasattr(config, name):
                    raise ValueError(f"config_updates: {type(config).__name__} has no field {name!r}")
                setattr(config, name, value)
            config.check_recformer_args()
            config.save_pretrained(folder)
        table = self.item_table()
        if table is not None:
            write_table(folder / TABLE_FILE, table)
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    def item_bias(self) -> torch.Tensor | None:
        """``(N,)`` score added to each item (None without a prior): ``prior_weight * item_prior``."""
        return None if self.item_prior is None else self.prior_weight * self.item_prior

    @staticmethod
    def sample_negatives(
        labels: torch.Tensor, num_items: int, num_negatives: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``(B, K)`` item indices drawn uniformly (with replacement) from all items except each row's positive."""
        if num_items < 2:
            raise ValueError(f"sampling negatives needs at least 2 items, got {num_items}")
        draws = torch.randint(
            0, num_items - 1, (labels.shape[0], num_negatives), device=labels.device, generator=generator
        )  # (B, K) in [0, N - 1)
        return draws + (draws >= labels.unsqueeze(1)).long()  # shift past the positive: [0, N) without labels

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        item_position_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        num_negatives: int | None = None,
        generator: torch.Generator | None = None,
        groups: torch.Tensor | None = None,
    ) -> RecformerSeqRecOutput:
        """Scores over all items (full softmax loss if ``labels``), or over [positive, ``num_negatives`` sampled].

        ``groups``: ``(B,)`` each session's group (see :meth:`set_item_embeddings`); items of other groups
        score ``-inf`` in the full softmax (sampled negatives are not restricted)."""
        if self.item_embeddings is None:
            raise RuntimeError("no item table: call set_item_embeddings(table) before forward")
        sessions = F.normalize(
            self.recformer(input_ids, attention_mask, token_type_ids, item_position_ids).pooler_output, dim=-1
        )  # (B, D)
        temperature = self.config.temperature
        if num_negatives is None:
            if groups is not None and self.item_groups is None:
                raise ValueError("groups given but the item table has none: set_item_embeddings(..., groups=)")
            scores = table_scores(sessions, self.item_embeddings, temperature, self.item_bias(), groups,
                                  self.item_groups)  # (B, N)
            loss = F.cross_entropy(scores, labels) if labels is not None else None
            return RecformerSeqRecOutput(loss=loss, scores=scores, session_embeddings=sessions)
        if labels is None:
            raise ValueError("num_negatives needs labels: negatives are drawn around each positive")
        negatives = self.sample_negatives(labels, self.item_embeddings.shape[0], num_negatives, generator)
        candidates = torch.cat([labels.unsqueeze(1), negatives], dim=1)  # (B, 1 + K), positive first
        candidate_embeddings = self.item_embeddings[candidates]  # (B, 1 + K, D)
        scores = torch.einsum("bd,bkd->bk", sessions, candidate_embeddings) / temperature  # -> (B, 1 + K)
        if self.item_prior is not None:
            scores = scores + self.item_bias()[candidates]
        loss = F.cross_entropy(scores, torch.zeros_like(labels))
        return RecformerSeqRecOutput(loss=loss, scores=scores, session_embeddings=sessions)


__all__ = [
    "IGNORE_INDEX",
    "RecformerEmbeddings",
    "RecformerForPretraining",
    "RecformerForSeqRec",
    "RecformerModel",
    "RecformerModelOutput",
    "RecformerPreTrainedModel",
    "RecformerPretrainingOutput",
    "RecformerSeqRecOutput",
    "gather_across_ranks",
    "item_contrastive_loss",
    "table_contrastive_loss",
]
