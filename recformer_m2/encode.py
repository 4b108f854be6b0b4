"""Encode items and sessions with a Recformer encoder, and retrieve next items by similarity.

One obvious API in the shape of sentence-transformers' ``encode``: inputs in, numpy out, eval mode
without gradients, batches sorted by length for speed with the caller's order restored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .constants import ATTRIBUTES, TOP_K
from .data.m2 import Catalog, Sessions
from .index import IndexConfig, ItemIndex, lookup_rows, retrieval_queries
from .models import Item, RecformerModel, SessionCollator

logger = logging.getLogger(__name__)


def catalog_items(catalog: Catalog, rows: np.ndarray, attributes: tuple[str, ...] = ATTRIBUTES) -> list[Item]:
    """Attribute sentences of catalog rows (the model truncates values to its token budget)."""
    return [catalog.attributes(int(r), attributes) for r in rows]


def newest_items(catalog: Catalog, sessions: Sessions) -> np.ndarray:
    """Code of each session's newest item sold in its locale (the last of :func:`session_items`); -1 if none."""
    newest = catalog.newest_sold(sessions)
    return np.where(newest >= 0, sessions.items[np.maximum(newest, 0)].astype(np.int64), -1)


def newest_item_rows(catalog: Catalog, sessions: Sessions, codes: np.ndarray, locales: np.ndarray) -> np.ndarray:
    """Row of each session's newest item (:func:`newest_items`) among the item rows (``codes``, ``locales``)
    a query is built against (:func:`~recformer_m2.index.retrieval_queries`); -1 where it has none."""
    return lookup_rows(codes, locales, newest_items(catalog, sessions), sessions.locale)


def session_items(catalog: Catalog, sessions: Sessions, attributes: tuple[str, ...] = ATTRIBUTES) -> list[list[Item]]:
    """Each session's items (oldest first) as attribute sentences; items not sold in the session's
    locale have no text there and are left out."""
    rows = catalog.rows(sessions.items, sessions.locale[sessions.session_index])
    cache: dict[int, Item] = {}
    out = []
    for start, end in zip(sessions.offsets[:-1], sessions.offsets[1:]):
        session = []
        for r in rows[start:end]:
            if r >= 0:
                if r not in cache:
                    cache[r] = catalog.attributes(int(r), attributes)
                session.append(cache[r])
        out.append(session)
    return out


class RecformerEncoder:
    """Sessions and items in one embedding space, from a ``RecformerModel`` and its tokenizer."""

    def __init__(self, model: RecformerModel, tokenizer, batch_size: int = 64):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.collator = SessionCollator(tokenizer, model.config, mlm_probability=0.0)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None, **kwargs) -> "RecformerEncoder":
        """Load the encoder and tokenizer saved in one folder (a pretraining or finetuning output).

        Heads saved beside the encoder (the MLM head of pretraining) are expected and left out;
        any other missing or unexpected weight raises.
        """
        from .tokenizer import load_tokenizer

        model = RecformerModel.from_pretrained_strict(path, allow_unexpected=("lm_head",))
        if device is not None:
            model = model.to(device)
        return cls(model, load_tokenizer(path), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _encode(self, inputs: Sequence, lengths: list[int], collate, batch_size: int | None, normalize: bool,
                progress: bool, desc: str) -> np.ndarray:
        batch_size = batch_size or self.batch_size
        order = np.argsort(-np.asarray(lengths), kind="stable")  # longest first: similar lengths share a batch
        out = np.zeros((len(inputs), self.model.config.hidden_size), dtype=np.float32)
        starts = range(0, len(inputs), batch_size)
        with torch.inference_mode(), self._autocast():
            for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
                index = order[start:start + batch_size]
                batch = {k: v.to(self.device) for k, v in collate([inputs[i] for i in index]).items()}
                pooled = self.model(**batch).pooler_output.float()  # (B, D)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[index] = pooled.cpu().numpy()
        return out

    def encode_items(self, items: Sequence[Item], batch_size: int | None = None, normalize: bool = True,
                     progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of items, each a list of (key, value) attribute pairs."""
        return self._encode(items, [self._tokens(x) for x in items], self.collator.collate_items,
                            batch_size, normalize, progress, "encode items")

    def encode_sessions(self, sessions: Sequence[Sequence[Item]], batch_size: int | None = None,
                        normalize: bool = True, progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of sessions, each a list of items, oldest first."""
        def collate(chunk):
            return self.collator([{"items": s} for s in chunk])

        config = self.model.config
        lengths = [min(config.max_token_num, 1 + sum(self._tokens(x) for x in s[-(config.max_item_embeddings - 1):]))
                   for s in sessions]
        return self._encode(sessions, lengths, collate, batch_size, normalize, progress, "encode sessions")

    def _tokens(self, item: Item) -> int:
        """Tokens of an item as the model reads it (values cut to the token budget), which is what a batch
        pads to; characters are a poor proxy (rank correlation 0.14 on the synthetic catalog). The tokens
        stay in the collator's cache for the batch that follows."""
        return len(self.collator.item_tokenizer(item).input_ids)


def retrieve(
    encoder: RecformerEncoder, catalog: Catalog, sessions: Sessions, k: int = TOP_K, progress: bool = False,
    index_config: IndexConfig | None = None,
) -> np.ndarray:
    """Top-k item codes per session by cosine similarity among the products of the session's locale,
    never an item of the session (exact search unless ``index_config`` asks for an approximate index);
    the query adds the model's ``table_item_weight`` times the newest item's embedding, as ``Recommender``."""
    locales = np.unique(sessions.locale)
    codes = np.concatenate([catalog.locale_codes(int(loc)) for loc in locales])
    item_locales = np.concatenate([np.full(len(catalog.locale_codes(int(loc))), loc) for loc in locales])
    items = encoder.encode_items(catalog_items(catalog, catalog.rows(codes, item_locales)), progress=progress)
    index = ItemIndex(index_config).build(items, codes, item_locales)
    queries = encoder.encode_sessions(session_items(catalog, sessions), progress=progress)
    rows = newest_item_rows(catalog, sessions, codes, item_locales)
    queries = retrieval_queries(queries, encoder.model.config.table_item_weight, items, rows)
    ranked, _ = index.search(queries, sessions.locale, k, exclude=sessions.to_lists())
    return ranked
