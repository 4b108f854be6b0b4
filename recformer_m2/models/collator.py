"""Turn items and sessions into Recformer batches: all tokenisation, layout and masking happens here on CPU.

Layout of one session (Li et al. 2023, section 3.1), most recent item first::

    tokens         CLS  k k v v v  k v v  |  k k v v  k v ...   PAD PAD
    token types    CLS  KEY.. VALUE..     |  KEY.. VALUE..      PAD PAD
    item position   0   1 1 1 1 1  1 1 1  |  2 2 2 2  2 2 ...    0   0

An item is a sequence of ``(key, value)`` text pairs, e.g. ``[("title", "Anker PowerLine III"),
("brand", "Anker")]``; a session is a list of items, OLDEST FIRST as in Amazon-M2's ``prev_items``.
The collator reverses it, keeps the newest ``max_item_embeddings - 1`` items and cuts the token
sequence at ``max_token_num`` (so the oldest kept item may be partial). An item alone (next-item
inputs, item tables) uses the same layout as a one-item session, so both encode identically.

Token positions are not produced: the model numbers tokens 0..L-1 from CLS, which is the same for
every layout and cannot disagree with the padding. Batches are padded to their longest row (pad
id, attention 0, type PAD, item position 0); the model pads further to the attention window.

Masked-language-model masking touches attribute VALUE tokens only: keys come from a handful of
attribute names and would be trivial targets, and CLS/padding never carry labels.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..tokenizer import encode_words, special_token_ids
from .configuration_recformer import RecformerConfig, TokenType
from .modeling_recformer import IGNORE_INDEX

logger = logging.getLogger(__name__)

Item = Sequence[tuple[str, str]]
"""An item's attribute sentence: ``(key, value)`` pairs in the order they are written."""

NOT_MASKABLE = -1
"""Word id of tokens that masking never touches: CLS, attribute keys, padding."""


@dataclass(frozen=True)
class TokenizedItem:
    """One item's tokens without CLS: ids, :class:`TokenType` per token, and value-word index per token.

    ``word_ids`` numbers the item's value words 0..num_words-1 (a word is a whitespace-separated
    chunk, all of its pieces share the id) and is :data:`NOT_MASKABLE` on key tokens.
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    word_ids: np.ndarray
    num_words: int

    def __len__(self) -> int:
        return len(self.input_ids)


class ItemTokenizer:
    """Tokenise items' attribute sentences, each distinct item once.

    The cache is keyed by the item's content (its ``(key, value)`` pairs), not by an id, so it
    cannot serve stale tokens for an item whose text changed; it lives on the instance (each
    DataLoader worker gets its own copy) and grows with the number of distinct items seen.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_attr_num: int, max_attr_length: int) -> None:
        if max_attr_num < 1 or max_attr_length < 1:
            raise ValueError(f"max_attr_num ({max_attr_num}) and max_attr_length ({max_attr_length}) must be >= 1")
        self.tokenizer = tokenizer
        self.max_attr_num = max_attr_num
        self.max_attr_length = max_attr_length
        self._items: dict[Hashable, TokenizedItem] = {}
        self._keys: dict[str, list[int]] = {}

    @classmethod
    def from_config(cls, tokenizer: PreTrainedTokenizerBase, config: RecformerConfig) -> ItemTokenizer:
        """An item tokenizer with the config's attribute limits."""
        return cls(tokenizer, config.max_attr_num, config.max_attr_length)

    def __len__(self) -> int:
        """Number of distinct items tokenised so far."""
        return len(self._items)

    def clear(self) -> None:
        """Forget the cached items (e.g. after a pass over a catalog, where each is met once)."""
        self._items.clear()

    def __call__(self, item: Item) -> TokenizedItem:
        """Tokens of ``item``: up to ``max_attr_num`` attributes, each key then its value cut to ``max_attr_length``.

        Attributes whose value is not a non-blank string (a missing value read as NaN or None)
        are skipped and do not count towards ``max_attr_num``.
        """
        cache_key = self.cache_key(item)
        tokenized = self._items.get(cache_key)
        if tokenized is None:
            tokenized = self._tokenize(cache_key)
            self._items[cache_key] = tokenized
        return tokenized

    @staticmethod
    def cache_key(item: Item) -> tuple[tuple[str, str], ...]:
        """What an item is cached under: its ``(key, value)`` pairs with a string value."""
        # Non-string values are skipped when tokenising, so they are left out (NaN != NaN would miss).
        return tuple((key, value) for key, value in item if isinstance(value, str))

    def tokenize(self, item: Item) -> TokenizedItem:
        """Tokens of ``item`` as :meth:`__call__` gives them, without reading or filling the cache."""
        return self._tokenize(self.cache_key(item))

    def preload(self, items: Sequence[Item], tokenized: Sequence[TokenizedItem]) -> None:
        """Cache tokens computed elsewhere (:func:`recformer_m2.item_dataset.preload_items`), item by item."""
        if len(items) != len(tokenized):
            raise ValueError(f"{len(tokenized)} tokenized items for {len(items)} items")
        for item, tokens in zip(items, tokenized):
            self._items[self.cache_key(item)] = tokens

    def _key_ids(self, key: str) -> list[int]:
        ids = self._keys.get(key)
        if ids is None:
            ids = list(self.tokenizer(key, add_special_tokens=False)["input_ids"])
            self._keys[key] = ids
        return ids

    def _tokenize(self, item: tuple[tuple[str, str], ...]) -> TokenizedItem:
        input_ids: list[int] = []
        token_types: list[int] = []
        word_ids: list[int] = []
        num_words = num_attrs = 0
        for key, value in item:
            if num_attrs == self.max_attr_num:
                break
            if not isinstance(value, str) or not value.strip():
                continue
            words, budget = [], self.max_attr_length
            for word in encode_words(self.tokenizer, value):
                if budget <= 0:
                    break
                words.append(word[:budget])
                budget -= len(words[-1])
            if not words:
                continue
            key_ids = self._key_ids(key)
            input_ids += key_ids
            token_types += [TokenType.KEY] * len(key_ids)
            word_ids += [NOT_MASKABLE] * len(key_ids)
            for word in words:
                input_ids += word
                token_types += [TokenType.VALUE] * len(word)
                word_ids += [num_words] * len(word)
                num_words += 1
            num_attrs += 1
        return TokenizedItem(
            input_ids=np.asarray(input_ids, dtype=np.int64),
            token_type_ids=np.asarray(token_types, dtype=np.int64),
            word_ids=np.asarray(word_ids, dtype=np.int64),
            num_words=num_words,
        )


@dataclass
class _Row:
    """One laid-out sequence before padding; ``word_ids`` are unique within the row."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    item_position_ids: np.ndarray
    word_ids: np.ndarray
    num_words: int


class SessionCollator:
    """Batch sessions for Recformer pretraining or ranking; use it as a DataLoader ``collate_fn``.

    Each example is a mapping with ``"items"`` (the session, oldest first) and optionally
    ``"next_item"`` (an item: adds ``next_*`` inputs for the contrastive loss), ``"next_item_id"``
    (int: adds ``item_ids``, used to drop in-batch duplicates of the positive) and ``"label"``
    (int item index: adds ``labels`` for ranking). The batch holds ``input_ids``,
    ``attention_mask``, ``token_type_ids``, ``item_position_ids`` (all ``(B, L)`` long) and, when
    ``mlm_probability > 0``, masked ``input_ids`` with ``mlm_labels`` (-100 where not masked).

    Masking picks words (``whole_word_masking``) or single tokens with ``mlm_probability`` and
    replaces the chosen tokens by the mask token 80% of the time, a random non-special token 10%
    and leaves them 10%. ``rng`` (a seed or numpy Generator) makes it reproducible; DataLoader
    workers each copy the collator, so give each worker its own seed via :meth:`reseed`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: RecformerConfig,
        mlm_probability: float = 0.15,
        whole_word_masking: bool = True,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        ids = special_token_ids(tokenizer, ("pad", "cls", "mask"))
        if ids["pad"] != config.pad_token_id:
            raise ValueError(
                f"tokenizer pad id ({ids['pad']}) differs from config.pad_token_id ({config.pad_token_id})"
            )
        if len(tokenizer) > config.vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens but config.vocab_size is {config.vocab_size}")
        if not 0.0 <= mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1), got {mlm_probability}")
        self.item_tokenizer = ItemTokenizer.from_config(tokenizer, config)
        self.pad_id, self.cls_id, self.mask_id = ids["pad"], ids["cls"], ids["mask"]
        self.max_token_num = config.max_token_num
        self.max_items = config.max_item_embeddings - 1
        self.mlm_probability = mlm_probability
        self.whole_word_masking = whole_word_masking
        special = set(tokenizer.all_special_ids)
        self.random_ids = np.array([i for i in range(len(tokenizer)) if i not in special], dtype=np.int64)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def reseed(self, seed: int) -> None:
        """Restart the masking stream, e.g. in a DataLoader ``worker_init_fn`` with a per-worker seed."""
        self.rng = np.random.default_rng(seed)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate ``examples`` (see the class docstring) into a dict of tensors for ``model(**batch)``."""
        if not examples:
            raise ValueError("cannot collate an empty batch")
        optional = [k for k in ("next_item", "next_item_id", "label") if k in examples[0]]
        for index, example in enumerate(examples):
            if "items" not in example:
                raise ValueError(f"example {index} has no 'items'")
            if (have := [k for k in ("next_item", "next_item_id", "label") if k in example]) != optional:
                raise ValueError(f"example {index} has optional keys {have} but example 0 has {optional}")

        rows = [self._layout(example["items"]) for example in examples]
        batch = self._pad(rows)
        if self.mlm_probability > 0:
            batch["input_ids"], batch["mlm_labels"] = self._mask(batch["input_ids"], self._pad_words(rows))
        batch = {name: torch.from_numpy(array) for name, array in batch.items()}
        if "next_item" in optional:
            items = self.collate_items([example["next_item"] for example in examples])
            batch.update({f"next_{name}": tensor for name, tensor in items.items()})
        if "next_item_id" in optional:
            batch["item_ids"] = torch.tensor([int(ex["next_item_id"]) for ex in examples], dtype=torch.long)
        if "label" in optional:
            batch["labels"] = torch.tensor([int(ex["label"]) for ex in examples], dtype=torch.long)
        return batch

    def collate_items(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        """Each item alone (CLS + its sentence, item position 1), unmasked: the inputs of an item table."""
        batch = self._pad([self._layout([item]) for item in items])
        return {name: torch.from_numpy(array) for name, array in batch.items()}

    def _layout(self, items: Sequence[Item]) -> _Row:
        """CLS then the newest ``max_items`` items, newest first, cut to ``max_token_num`` tokens."""
        ids, types, positions, words = [[self.cls_id]], [[TokenType.CLS]], [[0]], [[NOT_MASKABLE]]
        total, num_words = 1, 0
        for position, item in enumerate(reversed(items[-self.max_items :]), start=1):
            room = self.max_token_num - total
            if room <= 0:
                break
            tokens = self.item_tokenizer(item)
            n = min(len(tokens), room)
            ids.append(tokens.input_ids[:n])
            types.append(tokens.token_type_ids[:n])
            positions.append(np.full(n, position, dtype=np.int64))
            item_words = tokens.word_ids[:n]
            words.append(np.where(item_words >= 0, item_words + num_words, NOT_MASKABLE))
            total += n
            num_words += tokens.num_words
        return _Row(
            input_ids=np.concatenate(ids).astype(np.int64),
            token_type_ids=np.concatenate(types).astype(np.int64),
            item_position_ids=np.concatenate(positions).astype(np.int64),
            word_ids=np.concatenate(words).astype(np.int64),
            num_words=num_words,
        )

    def _pad(self, rows: Sequence[_Row]) -> dict[str, np.ndarray]:
        """Right-pad rows to the longest: pad id, attention 0, type PAD, item position 0."""
        length = max(len(row.input_ids) for row in rows)
        shape = (len(rows), length)
        batch = {
            "input_ids": np.full(shape, self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros(shape, dtype=np.int64),
            "token_type_ids": np.full(shape, int(TokenType.PAD), dtype=np.int64),
            "item_position_ids": np.zeros(shape, dtype=np.int64),
        }
        for i, row in enumerate(rows):
            n = len(row.input_ids)
            batch["input_ids"][i, :n] = row.input_ids
            batch["attention_mask"][i, :n] = 1
            batch["token_type_ids"][i, :n] = row.token_type_ids
            batch["item_position_ids"][i, :n] = row.item_position_ids
        return batch

    @staticmethod
    def _pad_words(rows: Sequence[_Row]) -> np.ndarray:
        """``(B, L)`` word ids unique across the batch, :data:`NOT_MASKABLE` on CLS, keys and padding."""
        length = max(len(row.word_ids) for row in rows)
        words = np.full((len(rows), length), NOT_MASKABLE, dtype=np.int64)
        offset = 0
        for i, row in enumerate(rows):
            n = len(row.word_ids)
            words[i, :n] = np.where(row.word_ids >= 0, row.word_ids + offset, NOT_MASKABLE)
            offset += row.num_words
        return words

    def _mask(self, input_ids: np.ndarray, word_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BERT masking of value tokens (whole words or single tokens); returns (masked ids, labels)."""
        maskable = word_ids >= 0  # (B, L)
        if self.whole_word_masking:
            num_words = max(int(word_ids.max()) + 1, 1)  # at least 1 so the lookup below is valid
            chosen_words = self.rng.random(num_words) < self.mlm_probability  # (W,)
            chosen = maskable & chosen_words[np.maximum(word_ids, 0)]  # (B, L)
        else:
            chosen = maskable & (self.rng.random(input_ids.shape) < self.mlm_probability)  # (B, L)
        labels = np.where(chosen, input_ids, IGNORE_INDEX)
        action = self.rng.random(input_ids.shape)  # (B, L): < 0.8 mask, < 0.9 random token, else keep
        masked = input_ids.copy()
        masked[chosen & (action < 0.8)] = self.mask_id
        to_random = chosen & (action >= 0.8) & (action < 0.9)
        masked[to_random] = self.rng.choice(self.random_ids, size=int(to_random.sum()))
        return masked, labels


__all__ = ["NOT_MASKABLE", "Item", "ItemTokenizer", "SessionCollator", "TokenizedItem"]
