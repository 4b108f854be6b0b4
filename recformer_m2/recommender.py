"""The Python API: recommend next products with a trained Recformer, at catalog scale.

    from recformer_m2 import Recommender
    rec = Recommender.from_pretrained("runs/finetune/best", data="data/small")
    rec.recommend([{"items": ["B0A1B2C3D4", "B0E5F6G7H8"], "locale": "DE"}], k=100)  # -> [[id, ...]]

Catalog item embeddings are encoded in chunks (bounded memory, length-sorted, bf16 on GPU), kept as
float16 in a memory-mapped file whose name is a hash of the model weights and of the catalog content,
so a changed checkpoint or catalog never reuses stale embeddings.

Inputs are checked up front (:class:`InputError` names the argument): ``items`` must be a list (a bare
string is refused rather than read as one id or split into characters, as either guess hides mistakes
such as ``"B01,B02"``), ``locale`` one of the six, ``k`` a positive integer. A session with nothing to
encode (empty, or only ids unknown in its locale) gets its locale's most popular products, counted in a
warning; a locale the model was not trained on is served with a warning, or refused with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .constants import ATTRIBUTES, LOCALES, TOP_K
from .data import Catalog, M2Data, Sessions
from .data.m2 import default_cache_dir
from .encode import RecformerEncoder, catalog_embeddings, session_items
from .index import IndexConfig, ItemIndex, lookup_rows, retrieval_queries
from .lexical import TitleSimilarity, fused_top_k
from .models.folders import ModelFolderError, check_model_folder

logger = logging.getLogger(__name__)

ENCODE_CHUNK = 50_000
"""Catalog rows encoded per chunk: bounds the memory of attribute lists and embeddings."""


def item_cache_dir() -> Path:
    """Where catalog embeddings are cached: ``item-embeddings`` under the one cache root."""
    return default_cache_dir() / "item-embeddings"


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
    return catalog_embeddings(encoder, catalog, codes, locales, cache_dir or item_cache_dir(), attributes,
                              progress, chunk=ENCODE_CHUNK)


@dataclass
class RetrievalTable:
    """A finetuned model's frozen item table as retrieval reads it: row ``i`` of each field is one item."""

    ids: np.ndarray  # (N,) product ids
    locales: np.ndarray  # (N,) index into LOCALES
    embeddings: np.ndarray  # (N, D) float32, L2-normalised (as stored, float16 precision)
    bias: np.ndarray | None  # (N,) the popularity prior in cosine units (what is added to each cosine); None: none

    @classmethod
    def of_model(cls, model, path: Path) -> "RetrievalTable":
        """The table a ``RecformerForSeqRec`` was loaded with; one that lacks ids or locales is refused naming
        the file, as retrieval could not tell which product a row is."""
        from .finetuning import item_bias
        from .models import TABLE_FILE

        names = model.item_group_names
        if model.item_ids is None or model.item_groups is None or names is None:
            raise ModelFolderError(path / TABLE_FILE, f"{path / TABLE_FILE}: an item table without product ids "
                                                      "or locales cannot be served")
        if unknown := sorted(set(names) - set(LOCALES)):
            raise ModelFolderError(path / TABLE_FILE, f"{path / TABLE_FILE}: unknown locale(s) {unknown}")
        to_locale = np.array([LOCALES.index(x) for x in names], dtype=np.int64)
        return cls(np.asarray(model.item_ids, dtype=object), to_locale[model.item_groups.cpu().numpy()],
                   model.item_embeddings.detach().float().cpu().numpy(), item_bias(model))

    def locale_names(self) -> set[str]:
        return {LOCALES[x] for x in np.unique(self.locales)}


class InputError(ValueError):
    """An argument of the Python API that cannot be served; the message names the argument."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError("k", f"a positive integer is needed, got {k!r}")
    return int(k)


def _check_locale(locale: Any, argument: str) -> int:
    if locale not in LOCALES:
        raise InputError(argument, f"{locale!r} is not a locale; one of {', '.join(LOCALES)}")
    return LOCALES.index(locale)


def _check_list(value: Any, argument: str, what: str) -> Sequence:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        hint = f" (wrap one in a list: [{value!r}])" if isinstance(value, (str, Mapping)) else ""
        raise InputError(argument, f"a list of {what} is needed, got {type(value).__name__}{hint}")
    return value


class Recommender:
    """Sessions and items in one space; the next item is the nearest product of the session's locale.

    ``data`` (the training sessions) serves popularity to sessions with nothing to encode; without it the
    finetuned popularity prior does, or the catalog order. ``training_locales``: the locales the model was
    trained for (None: unknown, no warning)."""

    def __init__(self, encoder: RecformerEncoder, catalog: Catalog, index_config: IndexConfig | None = None,
                 item_table: RetrievalTable | None = None, cache_dir: Path | None = None, data: M2Data | None = None,
                 training_locales: Sequence[str] | None = None, lexical_weight: float | None = None):
        self.encoder = encoder
        self.catalog = catalog
        self.index_config = index_config or IndexConfig()
        self.item_table = item_table
        self.cache_dir = cache_dir
        self.data = data
        self.training_locales = None if training_locales is None else tuple(training_locales)
        self._popular: dict[int, np.ndarray] = {}
        self._index: ItemIndex | None = None
        self._indexed: tuple[int, ...] = ()
        self._indexed_items: tuple | None = None  # (embeddings, codes, locales, prior or None) of the index
        if lexical_weight is None:
            lexical_weight = encoder.model.config.lexical_weight
        self.lexical_weight = float(lexical_weight)
        """Weight of the title TF-IDF similarity added to each item's score (:mod:`recformer_m2.lexical`);
        None given: the model's ``lexical_weight``, chosen on validation by finetuning. 0: the model alone,
        searched in the index."""
        self._lexical: TitleSimilarity | None = None
        self._lexical_locales: tuple[int, ...] = ()

    @classmethod
    def from_pretrained(cls, path: str | Path, data: str | Path | M2Data, device: str | None = None,
                        index_config: IndexConfig | None = None, cache_dir: Path | None = None,
                        lexical: bool = True) -> "Recommender":
        """Load a finetuning ``best`` folder (or a pretraining ``final`` folder) over a data folder's catalog.

        A finetuned folder is what ``RecformerForSeqRec.save_pretrained`` writes (weights, item table, tokenizer,
        retrieval weights in its config) and is read as ``RecformerForSeqRec.from_pretrained`` reads it (strictly:
        a missing or unused weight raises naming it); its frozen table serves the products it covers, others
        are encoded with the encoder. A folder without an item table (a pretraining ``final``) is served by
        the encoder alone, with a warning; a finetuning folder (``finetune_config.json``) without its table
        is refused naming the file. ``lexical=False`` serves the model's scores alone, without the title
        similarity its ``lexical_weight`` adds.
        """
        from .finetuning import CONFIG_FILE
        from .models import TABLE_FILE, RecformerForSeqRec
        from .models.item_table import LEGACY_KEYS_FILE, LEGACY_TABLE_FILE

        path = check_model_folder(path)  # before the data: a mistyped path fails at once, naming it
        data = data if isinstance(data, M2Data) else M2Data(data)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tables = (TABLE_FILE, LEGACY_TABLE_FILE, LEGACY_KEYS_FILE)
        if not any((path / name).is_file() for name in (*tables, CONFIG_FILE)):
            logger.warning("%s has no item table (%s; a pretraining folder): every item is encoded by the encoder "
                           "and no popularity prior is added", path, TABLE_FILE)
            encoder = RecformerEncoder.from_pretrained(path, device=device)
            return cls(encoder, data.catalog, index_config, None, cache_dir, data, _training_locales(path, None))
        model = RecformerForSeqRec.from_pretrained_strict(path)
        if model.item_embeddings is None:
            raise ModelFolderError(path / TABLE_FILE, f"{path}: {TABLE_FILE} missing (the finetuned item table and "
                                                      f"popularity prior that {CONFIG_FILE} says it was trained with)")
        table = RetrievalTable.of_model(model, path)  # on the CPU: only the encoder goes to the device
        if model.tokenizer is None:
            from .tokenizer import load_tokenizer

            model.tokenizer = load_tokenizer(path)  # raises naming the folder
        encoder = RecformerEncoder(model.recformer.to(device), model.tokenizer)
        return cls(encoder, data.catalog, index_config, table, cache_dir, data, _training_locales(path, table),
                   lexical_weight=None if lexical else 0.0)

    # --- encoding -------------------------------------------------------------------------------------
    def _item_sentence(self, item: Any, locale: str | None) -> list[tuple[str, str]]:
        """An item given as an id (with the locale), an attribute dict, or (key, value) pairs."""
        if isinstance(item, str) and locale is not None:
            _check_locale(locale, "locale")
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

    def _session_sentences(self, session: Any, argument: str) -> tuple[list, str | None]:
        if isinstance(session, Mapping):
            if "items" not in session:
                raise InputError(argument, 'a session dict needs "items" (a list of ids or attribute dicts)')
            locale = session.get("locale")
            if locale is not None:
                _check_locale(locale, f'{argument}["locale"]')
            items = _check_list(session["items"], f'{argument}["items"]', "ids or attribute dicts")
            return [self._item_sentence(x, locale) for x in items], locale
        items = _check_list(session, argument, "attribute dicts")
        return [self._item_sentence(x, None) for x in items], None

    def encode_items(self, items: Sequence[Any], locale: str | None = None, batch_size: int | None = None,
                     normalize: bool = True, progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of items: ids of ``locale``'s catalog, attribute dicts, or (key, value) lists."""
        items = _check_list(items, "items", "ids or attribute dicts")
        return self.encoder.encode_items([self._item_sentence(x, locale) for x in items], batch_size, normalize,
                                         progress)

    def encode_sessions(self, sessions: Sequence[Any], batch_size: int | None = None, normalize: bool = True,
                        progress: bool = False) -> np.ndarray:
        """(N, D) embeddings of sessions: ``{"items": [ids], "locale": "DE"}`` or lists of attribute dicts."""
        sessions = _check_list(sessions, "sessions", "sessions")
        sentences = [self._session_sentences(s, f"sessions[{i}]")[0] for i, s in enumerate(sessions)]
        empty = [i for i, items in enumerate(sentences) if not items]
        if empty:
            raise InputError(f"sessions[{empty[0]}]", f"an empty session has no embedding ({len(empty)} empty)")
        return self.encoder.encode_sessions(sentences, batch_size, normalize, progress)

    # --- retrieval ------------------------------------------------------------------------------------
    def _ensure_index(self, locales: np.ndarray) -> ItemIndex:
        wanted = tuple(sorted(int(x) for x in np.unique(locales)))
        if self._index is None or not set(wanted) <= set(self._indexed):
            codes = np.concatenate([self.catalog.locale_codes(loc) for loc in wanted])
            item_locales = np.concatenate([np.full(len(self.catalog.locale_codes(loc)), loc) for loc in wanted])
            embeddings = np.asarray(encode_catalog(self.encoder, self.catalog, codes, item_locales, self.cache_dir),
                                    dtype=np.float32)
            bias = None
            table = self.item_table
            if table is not None:
                keys = pd.DataFrame({"id": self.catalog.ids[codes], "locale": np.asarray(item_locales, np.int64)})
                table_keys = pd.DataFrame({"id": table.ids, "locale": table.locales, "row": np.arange(len(table.ids))})
                matched = keys.merge(table_keys, on=["id", "locale"], how="left")["row"].to_numpy()
                covered = ~np.isnan(matched)
                rows = matched[covered].astype(np.int64)
                embeddings[covered] = table.embeddings[rows]
                logger.info("%d of %d items use the finetuned frozen table", covered.sum(), len(codes))
                if table.bias is not None:  # the popularity prior; items it never saw get the prior of 0 occurrences
                    bias = np.zeros(len(codes), dtype=np.float32)
                    bias[covered] = table.bias[rows]
            self._index = ItemIndex(self.index_config).build(embeddings, codes, item_locales, bias)
            self._indexed = wanted
            self._indexed_items = (embeddings, codes, item_locales, bias)
        return self._index

    def recommend_codes(self, sessions: Sessions, k: int = TOP_K, progress: bool = True) -> np.ndarray:
        """Top-k item codes (n, k) for coded sessions (e.g. ``M2Data.test(task)``), never a session item."""
        return self.recommend_codes_with_scores(sessions, k, progress)[0]

    def recommend_codes_with_scores(self, sessions: Sessions, k: int = TOP_K,
                                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes (n, k) and their scores (n, k), padded with -1 / -inf: the cosine similarity, plus
        the item's popularity prior when the model was finetuned with one, plus ``lexical_weight`` times
        the item's title similarity to the session's last products. The query is the session's
        vector plus ``config.table_item_weight`` times the newest item's indexed embedding, normalised.
        A session with no item sold in its locale gets the locale's most popular items (scores NaN)."""
        from .encode import newest_items

        k = _check_k(k)
        return self._search(session_items(self.catalog, sessions), sessions.locale, sessions.to_lists(),
                            newest_items(self.catalog, sessions), k, progress)

    def _search(self, texts: list, locales: np.ndarray, exclude: list[np.ndarray], newest: np.ndarray, k: int,
                progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-k codes and scores of sessions given as item sentences (``texts``), with the codes never
        returned (``exclude``) and each one's newest catalog item (-1: none, e.g. an attribute dict)."""
        self._warn_untrained_locales(locales)
        codes = np.full((len(texts), k), -1, dtype=np.int64)
        scores = np.full((len(texts), k), -np.inf, dtype=np.float32)
        empty = np.array([not items for items in texts], dtype=bool)
        if empty.any():
            logger.warning("%d of %d session(s) have no item to encode (empty, or no product known in their "
                           "locale): served the most popular products of their locale", empty.sum(), len(texts))
            for i in np.flatnonzero(empty):
                popular = self._popular_codes(int(locales[i]))
                popular = popular[~np.isin(popular, exclude[i])][:k]
                codes[i, :len(popular)], scores[i, :len(popular)] = popular, np.nan
        keep = np.flatnonzero(~empty)
        if len(keep):
            index = self._ensure_index(locales[keep])
            queries = self.encoder.encode_sessions([texts[i] for i in keep], progress=progress)
            embeddings, item_codes, item_locales, bias = self._indexed_items
            rows = lookup_rows(item_codes, item_locales, newest[keep], locales[keep])
            queries = retrieval_queries(queries, self.encoder.model.config.table_item_weight, embeddings, rows)
            if self.lexical_weight:  # every product of the locale scored exactly, the index is not used
                found, found_scores = fused_top_k(queries, locales[keep], [exclude[i] for i in keep], embeddings,
                                                  item_codes, item_locales, bias, self._title_similarity(),
                                                  self.lexical_weight, k)
            else:
                found, found_scores = index.search(queries, locales[keep], k, exclude=[exclude[i] for i in keep])
            codes[keep], scores[keep] = found, found_scores
        return codes, scores

    def _title_similarity(self) -> TitleSimilarity:
        """The title TF-IDF of the indexed locales, fitted once (refitted when more locales are indexed)."""
        if self._lexical is None or self._lexical_locales != self._indexed:
            self._lexical = TitleSimilarity.fit(self.catalog, self._indexed)
            self._lexical_locales = self._indexed
        return self._lexical

    def _warn_untrained_locales(self, locales: np.ndarray) -> None:
        if self.training_locales is None:
            return
        outside = [LOCALES[x] for x in np.unique(locales) if LOCALES[x] not in self.training_locales]
        if outside:
            logger.warning("%d session(s) in locale(s) %s, which the model was not trained for (%s): served anyway",
                           int(np.isin(locales, [LOCALES.index(x) for x in outside]).sum()), ", ".join(outside),
                           ", ".join(self.training_locales))

    def _popular_codes(self, locale: int) -> np.ndarray:
        """The locale's products, most popular first: training-session occurrences when the data is known,
        else the finetuned prior, else catalog order."""
        if locale not in self._popular:
            codes = np.asarray(self.catalog.locale_codes(locale), dtype=np.int64)
            if self.data is not None:
                from .heuristics import occurrence_counts

                counts = occurrence_counts(self.data.train, self.catalog.num_ids)[locale, codes]
            elif self.item_table is not None and self.item_table.bias is not None:
                mine = self.item_table.locales == locale
                bias = dict(zip(self.catalog.codes(self.item_table.ids[mine]).tolist(),
                                self.item_table.bias[mine].tolist()))
                counts = np.array([bias.get(c, 0.0) for c in codes.tolist()])
            else:
                counts = np.zeros(len(codes))
            self._popular[locale] = codes[np.argsort(-counts, kind="stable")]
        return self._popular[locale]

    def recommend(self, sessions: Sequence[Mapping[str, Any]], k: int = TOP_K, strict: bool = False
                  ) -> list[list[str]]:
        """Top-k product ids per session ``{"items": [...], "locale": "DE"}``, best first, never a session item.

        Items are ids of the locale's catalog or attribute dicts (``{"title": ..., "brand": ...}``, products
        the catalog lacks), as :meth:`encode_sessions` takes them. Unknown ids are ignored (counted in a
        warning); a session left with nothing gets its locale's most popular products. ``strict``: refuse a
        locale the model was not trained for instead of warning."""
        k = _check_k(k)
        sessions = _check_list(sessions, "sessions", "session dicts")
        texts, locales, exclude, newest = [], [], [], []
        unknown = 0
        for i, session in enumerate(sessions):
            argument = f"sessions[{i}]"
            if not isinstance(session, Mapping):
                raise InputError(argument, f'a dict {{"items": [...], "locale": ...}} is needed, got '
                                           f"{type(session).__name__}")
            if "locale" not in session:
                raise InputError(f'{argument}["locale"]', f"missing; one of {', '.join(LOCALES)}")
            locale = _check_locale(session["locale"], f'{argument}["locale"]')
            if strict and self.training_locales is not None and LOCALES[locale] not in self.training_locales:
                raise InputError(f'{argument}["locale"]', f"{LOCALES[locale]} is not a locale the model was trained "
                                                          f"for ({', '.join(self.training_locales)}); strict=True")
            items = _check_list(session.get("items"), f'{argument}["items"]', "ids or attribute dicts")
            sentences, codes, last = [], [], -1
            for item in items:
                if isinstance(item, str):
                    code = int(self.catalog.codes([item])[0])
                    row = int(self.catalog.rows(np.array([code]), locale)[0]) if code >= 0 else -1
                    if row < 0:
                        unknown += 1
                        continue
                    sentences.append(self.catalog.attributes(row))
                    codes.append(code)
                    last = code
                elif isinstance(item, Mapping):
                    sentences.append(self._item_sentence(item, None))
                    last = -1  # the newest item has no catalog row
                else:
                    raise InputError(f'{argument}["items"]', f"an item is an id (str) or an attribute dict, got "
                                                             f"{type(item).__name__}")
            texts.append(sentences)
            locales.append(locale)
            exclude.append(np.asarray(codes, dtype=np.int64))
            newest.append(last)
        if unknown:
            logger.warning("%d session item(s) are not in the catalog for their locale and are ignored", unknown)
        ranked, _ = self._search(texts, np.asarray(locales, dtype=np.int8), exclude, np.asarray(newest, np.int64), k,
                                 progress=len(sessions) > 1000)
        return [list(self.catalog.ids[row[row >= 0]]) for row in ranked]


def _training_locales(folder: Path, table: RetrievalTable | None) -> tuple[str, ...] | None:
    """The locales a model folder was trained for: its item table's, else its pretraining run's
    (``pretrain_config.json`` beside a ``final`` folder); None when unknown."""
    import json

    if table is not None:
        return tuple(loc for loc in LOCALES if loc in table.locale_names())
    config = folder.parent / "pretrain_config.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        return tuple(values.get("locales", ())) or None
    return None
