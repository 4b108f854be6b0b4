"""Item sentences tokenised once per content, as a ``datasets.Dataset`` cached on disk.

The trainers read every catalog item many times (each epoch's sessions, each table refresh). The
collator's item tokenizer already tokenises a distinct item once per process; this builds those tokens
with ``Dataset.map(batched=True)`` into an Arrow file named by a fingerprint of everything that shapes
them (the tokenizer, the attribute limits and the items' text), so a rerun, a resume or the other
finetuning of the main job reads them back instead of tokenising the catalog again, and preloads the
collator's cache from it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cache import cache_dir as kind_dir
from .encode import digest_parts
from .models import Item, ItemTokenizer, TokenizedItem

logger = logging.getLogger(__name__)

CACHE_KIND = "tokenized-items"
FORMAT_VERSION = "1"
"""Bumped when the columns or their meaning change; part of every fingerprint."""


def item_fingerprint(items: Sequence[Item], item_tokenizer: ItemTokenizer) -> str:
    """Digest of what the tokens of ``items`` depend on: the tokenizer's definition, the attribute limits
    and each item's (key, value) pairs in order."""
    tokenizer = item_tokenizer.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    texts = json.dumps([ItemTokenizer.cache_key(item) for item in items], ensure_ascii=False)
    return digest_parts(FORMAT_VERSION, definition, str(item_tokenizer.max_attr_num),
                        str(item_tokenizer.max_attr_length), texts)


def _tokenize_batch(batch: dict[str, list], item_tokenizer: ItemTokenizer) -> dict[str, list]:
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "word_ids": [], "num_words": []}
    for keys, values in zip(batch["keys"], batch["values"]):
        tokens = item_tokenizer.tokenize(list(zip(keys, values)))
        out["input_ids"].append(tokens.input_ids)
        out["token_type_ids"].append(tokens.token_type_ids)
        out["word_ids"].append(tokens.word_ids)
        out["num_words"].append(tokens.num_words)
    return out


def tokenized_items(items: Sequence[Item], item_tokenizer: ItemTokenizer, cache_dir: Path | None = None,
                    num_proc: int | None = None):
    """A ``datasets.Dataset`` of the items' tokens (``input_ids``, ``token_type_ids``, ``word_ids``,
    ``num_words``; row ``i`` is item ``i``), mapped in batches and cached as ``items-FINGERPRINT.arrow``
    under ``cache_dir`` (default: the ``tokenized-items`` cache). A damaged cache file is rebuilt with a warning."""
    import datasets

    fingerprint = item_fingerprint(items, item_tokenizer)
    folder = Path(cache_dir) if cache_dir is not None else kind_dir(CACHE_KIND)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"items-{fingerprint}.arrow"
    if path.is_file():
        try:
            table = datasets.Dataset.from_file(str(path))
            if len(table) == len(items):
                logger.info("tokenized items from cache %s", path)
                return table
            problem = f"{len(table)} rows for {len(items)} items"
        except (OSError, ValueError) as err:
            problem = str(err)
        logger.warning("tokenized-item cache %s is damaged (%s): rebuilding it", path, problem)
        path.unlink(missing_ok=True)
    pairs = [ItemTokenizer.cache_key(item) for item in items]
    raw = datasets.Dataset.from_dict({"keys": [[k for k, _ in p] for p in pairs],
                                      "values": [[v for _, v in p] for p in pairs]})
    tmp = folder / f".items-{fingerprint}.tmp{os.getpid()}.arrow"  # ranks of one run may build it at once
    mapped = raw.map(_tokenize_batch, batched=True, fn_kwargs={"item_tokenizer": item_tokenizer},
                     remove_columns=["keys", "values"], new_fingerprint=fingerprint, cache_file_name=str(tmp),
                     load_from_cache_file=False, num_proc=num_proc, desc="tokenize items")
    del mapped  # written completely: rename into place, then read the final name
    tmp.replace(path)
    return datasets.Dataset.from_file(str(path))


def preload_items(item_tokenizers: ItemTokenizer | Sequence[ItemTokenizer], items: Sequence[Item],
                  cache_dir: Path | None = None) -> None:
    """Fill the cache of each item tokenizer (all of one tokenizer and limits) with the tokens of ``items``
    from :func:`tokenized_items`; they share the token arrays."""
    tokenizers = [item_tokenizers] if isinstance(item_tokenizers, ItemTokenizer) else list(item_tokenizers)
    first = tokenizers[0]
    for other in tokenizers[1:]:
        if (other.tokenizer, other.max_attr_num, other.max_attr_length) != (
                first.tokenizer, first.max_attr_num, first.max_attr_length):
            raise ValueError("preload_items: the item tokenizers differ (tokenizer or attribute limits)")
    table = tokenized_items(items, first, cache_dir).with_format("numpy")
    tokenized = []
    for batch in table.iter(batch_size=10_000):
        for ids, types, words, n in zip(batch["input_ids"], batch["token_type_ids"], batch["word_ids"],
                                        batch["num_words"]):
            tokenized.append(TokenizedItem(np.asarray(ids, dtype=np.int64), np.asarray(types, dtype=np.int64),
                                           np.asarray(words, dtype=np.int64), int(n)))
    for tokenizer in tokenizers:
        tokenizer.preload(items, tokenized)


__all__ = ["CACHE_KIND", "item_fingerprint", "preload_items", "tokenized_items"]
