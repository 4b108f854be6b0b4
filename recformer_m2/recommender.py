"""The Python API: recommend next products with a trained Recformer, at catalog scale.

    from recformer_m2 import Recommender
    rec = Recommender.from_pretrained("runs/finetune/best", data="data/small")
    rec.recommend([{"items": ["B0A1B2C3D4", "B0E5F6G7H8"], "locale": "DE"}], k=100)  # -> [[id, ...]]

Catalog item embeddings are encoded in chunks (bounded memory, length-sorted, bf16 on GPU), kept as
float16 in a memory-mapped file whose name is a hash of the model weights and of the catalog content,
so a changed checkpoint or catalog never reuses stale embeddings.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .constants import ATTRIBUTES, LOCALES, TOP_K
from .data import Catalog, M2Data, Sessions
from .encode import RecformerEncoder, catalog_embeddings, newest_item_rows, session_items
from .index import IndexConfig, ItemIndex, retrieval_queries

logger = logging.getLogger(__name__)

ENCODE_CHUNK = 50_000
"""Catalog rows encoded per chunk: bounds the memory of attribute lists and embeddings."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("RECFORMER_M2_CACHE", Path.home() / ".cache" / "recformer-m2")) / "item-embeddings"


def model_digest(model: torch.nn.Module) -> str:
    """Digest of every weight's bytes, in name order: the identity of a checkpoint's content."""
    h = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def encode_catalog(encoder: RecformerEncoder, catalog: Catalog, codes: np.ndarray, locales: np.ndarray,
                   cache_dir: Path | None = None, attributes: tuple[str, ...] = ATTRIBUTES,
                   progress: bool = True) -> np.ndarray:
    """Normalised float16 embeddings ``(N, D)`` of catalog products (code, locale): from a matching
    ``recformer-m2 encode`` output, or a checked, content-keyed cache (:func:`encode.catalog_embeddings`)."""
    return catalog_embeddings(encoder, catalog, codes, locales, cache_dir or default_cache_dir(), attributes,
                              progress, chunk=ENCODE_CHUNK)


class Recommender:
    """Sessions and items in one space; the next item is the nearest product of the session's locale."""

    def __init__(self, encoder: RecformerEncoder, catalog: Catalog, index_config: IndexConfig | None = None,
                 item_table: pd.DataFrame | None = None, cache_dir: Path | None = None):
        self.encoder = encoder
        self.catalog = catalog
        self.index_config = index_config or IndexConfig()
        self.item_table = item_table
        self.cache_dir = cache_dir
        self._index: ItemIndex | None = None
        self._indexed: tuple[int, ...] = ()
        self._indexed_items: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (embeddings, codes, locales)

    @classmethod
    def from_pretrained(cls, path: str | Path, data: str | Path | M2Data, device: str | None = None,
                        index_config: IndexConfig | None = None, cache_dir: Path | None = None) -> "Recommender":
        """Load a finetuning ``best`` folder (or a pretraining ``final`` folder) over a data folder's catalog.

        A finetuned folder carries the frozen item table its sessions were trained against (stage 2); its
        rows are used for the products it covers, others are encoded with the encoder.
        """
        from .finetuning import TABLE_FILE, TABLE_KEYS_FILE

        path = Path(path)
        data = data if isinstance(data, M2Data) else M2Data(data)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        encoder = RecformerEncoder.from_pretrained(path, device=device)
        table = None
        if (path / TABLE_FILE).exists():
            table = pd.read_parquet(path / TABLE_KEYS_FILE)
            table["row"] = np.arange(len(table))
            table.attrs["embeddings"] = np.load(path / TABLE_FILE, mmap_mode="r")
        return cls(encoder, data.catalog, index_config, table, cache_dir)

    # --- encoding -------------------------------------------------------------------------------------
    def _item_sentence(self, item: Any, locale: str | None) -> list[tuple[str, str]]:
        """An item given as an id (with the locale), an attribute dict, or (key, value) pairs."""
        if isinstance(item, str):
            if locale is None:
                raise ValueError(f"item {item!r} is an id: its locale must be given")
            code = self.catalog.codes([item])[0]
            row = self.catalog.rows(np.array([max(code, 0)]), LOCALES.index(locale))[0] if code >= 0 else -1
            if row < 0:
                raise KeyError(f"product {item!r} is not in the catalog for locale {locale}")
            return self.catalog.attributes(int(row))
        if isinstance(item, Mapping):
            return [(k, " ".join(str(item[k]).split())) for k in ATTRIBUTES if item.get(k) not in (None, "")]
        return list(item)

    def _session_sentences(self, session: Any) -> tuple[list, str | None]:
        if isinstance(session, Mapping):
            locale = session.get("locale")
            return [self._item_sentence(x, locale) for x in session["items"]], locale
        return [self._item_sentence(x, None) for x in session], None

    def encode_items(self, items: Sequence[Any], locale: str | None = None, batch_size: int | None = None,
                     normalize: bool = True, progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of items: ids of ``locale``'s catalog, attribute dicts, or (key, value) lists."""
        return self.encoder.encode_items([self._item_sentence(x, locale) for x in items], batch_size, normalize,
                                         progress)

    def encode_sessions(self, sessions: Sequence[Any], batch_size: int | None = None, normalize: bool = True,
                        progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of sessions: ``{"items": [ids], "locale": "DE"}`` or lists of attribute dicts."""
        return self.encoder.encode_sessions([self._session_sentences(s)[0] for s in sessions], batch_size,
                                            normalize, progress)

    # --- retrieval ------------------------------------------------------------------------------------
    def _ensure_index(self, locales: np.ndarray) -> ItemIndex:
        wanted = tuple(sorted(int(x) for x in np.unique(locales)))
        if self._index is None or not set(wanted) <= set(self._indexed):
            codes = np.concatenate([self.catalog.locale_codes(loc) for loc in wanted])
            item_locales = np.concatenate([np.full(len(self.catalog.locale_codes(loc)), loc) for loc in wanted])
            embeddings = np.asarray(encode_catalog(self.encoder, self.catalog, codes, item_locales, self.cache_dir),
                                    dtype=np.float32)
            bias = None
            if self.item_table is not None:
                keys = pd.DataFrame({"id": self.catalog.ids[codes], "locale": [LOCALES[x] for x in item_locales]})
                matched = keys.merge(self.item_table, on=["id", "locale"], how="left")["row"].to_numpy()
                covered = ~np.isnan(matched)
                rows = matched[covered].astype(np.int64)
                frozen = self.item_table.attrs["embeddings"]
                embeddings[covered] = np.asarray(frozen[rows], dtype=np.float32)
                logger.info("%d of %d items use the finetuned frozen table", covered.sum(), len(codes))
                if "bias" in self.item_table:  # the popularity prior; items it never saw get the prior of 0 occurrences
                    bias = np.zeros(len(codes), dtype=np.float32)
                    bias[covered] = self.item_table["bias"].to_numpy(np.float32)[rows]
            self._index = ItemIndex(self.index_config).build(embeddings, codes, item_locales, bias)
            self._indexed = wanted
            self._indexed_items = (embeddings, codes, item_locales)
        return self._index

    def recommend_codes(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        """Top-k item codes (n, k) for coded sessions (e.g. ``M2Data.test(task)``), never a session item."""
        return self.recommend_codes_with_scores(sessions, k, progress)[0]

    def recommend_codes_with_scores(self, sessions: Sessions, k: int = TOP_K,
                                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes (n, k) and their scores (n, k), padded with -1 / -inf: the cosine similarity, plus
        the item's popularity prior when the model was finetuned with one. The query is the session's
        vector plus ``config.table_item_weight`` times the newest item's indexed embedding, normalised."""
        index = self._ensure_index(sessions.locale)
        queries = self.encoder.encode_sessions(session_items(self.catalog, sessions), progress=progress)
        embeddings, codes, locales = self._indexed_items
        rows = newest_item_rows(self.catalog, sessions, codes, locales)
        queries = retrieval_queries(queries, self.encoder.model.config.table_item_weight, embeddings, rows)
        return index.search(queries, sessions.locale, k, exclude=sessions.to_lists())

    def recommend(self, sessions: Sequence[Mapping[str, Any]], k: int = TOP_K) -> list[list[str]]:
        """Top-k product ids per session ``{"items": [ids], "locale": "DE"}``, best first."""
        locales = np.array([LOCALES.index(s["locale"]) for s in sessions], dtype=np.int8)
        item_lists = [self.catalog.codes(list(s["items"])) for s in sessions]
        unknown = sum(int((c < 0).sum()) for c in item_lists)
        if unknown:
            logger.warning("%d session item(s) are not in the catalog and are ignored", unknown)
        item_lists = [c[c >= 0] for c in item_lists]
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in item_lists])]).astype(np.int64)
        coded = Sessions(np.concatenate(item_lists + [np.zeros(0, np.int32)]).astype(np.int32), offsets, locales,
                         np.full(len(sessions), -1, np.int32))
        ranked = self.recommend_codes(coded, k, progress=len(sessions) > 1000)
        return [list(self.catalog.ids[row[row >= 0]]) for row in ranked]
