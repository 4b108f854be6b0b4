"""Encode items and sessions with a Recformer encoder, and retrieve next items by similarity.

One obvious API in the shape of sentence-transformers' ``encode``: inputs in, numpy out, eval mode
without gradients, batches sorted by length for speed with the caller's order restored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .constants import ATTRIBUTES, TOP_K
from .data.m2 import Catalog, Sessions, file_digest
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


# --- content keys and checked array files ---------------------------------------------------------------

KEY_VERSION = "1"
"""Bumped when what an embedding file holds changes meaning; part of every key below."""


def digest_parts(*parts: str | bytes) -> str:
    """Hex digest of parts, each length-prefixed (so ``("ab", "c")`` and ``("a", "bc")`` differ)."""
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def encoder_digest(encoder: "RecformerEncoder") -> str:
    """Identity of what an encoder computes: every weight's bytes in name order, its config and its
    tokenizer. A cache keyed by the weights alone would survive a changed pooler or vocabulary."""
    h = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(encoder.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    config = encoder.model.config.to_dict()
    config.pop("transformers_version", None)
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    tokenizer = backend.to_str() if backend is not None else json.dumps(sorted(encoder.tokenizer.get_vocab().items()))
    return digest_parts(KEY_VERSION, h.hexdigest(), json.dumps(config, sort_keys=True, default=str), tokenizer)


def catalog_key(encoder_id: str, catalog: Catalog, attributes: tuple[str, ...] = ATTRIBUTES) -> str:
    """Key of a whole catalog's item embeddings (rows in catalog order) by one encoder
    (:func:`encoder_digest`): what ``recformer-m2 encode --what catalog`` writes and the Recommender reads."""
    return digest_parts(KEY_VERSION, "catalog", encoder_id, catalog.digest or catalog.source, ",".join(attributes))


def file_checksum(path: Path) -> str:
    """The 16-byte blake2b of a file's bytes (header included) that cache records hold."""
    return file_digest(path, digest_size=16)


def npy_record(path: Path) -> dict:
    """What :func:`npy_problem` checks a ``.npy`` file against later: shape, dtype, size and checksum."""
    array = np.load(path, mmap_mode="r")
    return {"shape": list(array.shape), "dtype": str(array.dtype), "bytes": path.stat().st_size,
            "blake2b": file_checksum(path)}


def npy_problem(path: Path, record: dict, checksum: bool = True) -> str | None:
    """Why ``path`` is not the array ``record`` describes (missing, wrong size, bad header, other shape or
    dtype, checksum mismatch), or None when it is. The size and header checks are cheap; ``checksum``
    reads the whole file."""
    if not path.is_file():
        return "file missing"
    size = path.stat().st_size
    if size != record.get("bytes"):
        return f"{size} bytes, expected {record.get('bytes')} (truncated or overwritten)"
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if reader is None:
                return f"unsupported .npy version {version}"
            shape, _, dtype = reader(f)
            offset = f.tell()
    except (ValueError, OSError, SyntaxError) as err:
        return f"unreadable .npy header ({err})"
    if list(shape) != list(record.get("shape", [])) or str(dtype) != record.get("dtype"):
        return f"holds {dtype}{list(shape)}, expected {record.get('dtype')}{record.get('shape')}"
    if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != size:
        return "size does not match its header"
    if checksum and file_checksum(path) != record.get("blake2b"):
        return "checksum mismatch (damaged bytes)"
    return None


def write_json_atomic(path: Path, value: dict) -> None:
    """Write JSON to a temporary name and rename it into place, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- catalog embeddings: from an `encode` output, or the item-embedding cache ---------------------------

def registration_path(cache_dir: Path, key: str) -> Path:
    """Where ``recformer-m2 encode`` records the OUT folder holding the catalog embeddings of ``key``."""
    return cache_dir / f"encoded-{key}.json"


def encoded_catalog(encoder_id: str, catalog: Catalog, cache_dir: Path,
                    attributes: tuple[str, ...] = ATTRIBUTES) -> np.ndarray | None:
    """The whole catalog's embeddings ``(len(catalog), D)`` (memory-mapped) written by ``recformer-m2 encode``
    for this encoder and catalog, or None when there are none. A registered output that fails its checks
    (moved, rewritten, truncated, damaged) is reported once and unregistered; the caller encodes instead."""
    key = catalog_key(encoder_id, catalog, attributes)
    pointer = registration_path(cache_dir, key)
    if not pointer.is_file():
        return None
    try:
        out = Path(json.loads(pointer.read_text(encoding="utf-8"))["out"])
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("content") != key:
            problem = f"{out} now holds other embeddings"
        else:
            problem = npy_problem(out / "embeddings.npy", manifest["files"]["embeddings.npy"])
            problem = problem and f"{out / 'embeddings.npy'}: {problem}"
    except (OSError, ValueError, KeyError, TypeError) as err:
        problem = f"unreadable ({err})"
    if problem is not None:
        logger.warning("encode output registered in %s is unusable (%s): encoding the catalog instead; "
                       "unregistered", pointer, problem)
        pointer.unlink(missing_ok=True)
        return None
    logger.info("item embeddings from encode output %s", out)
    return np.load(out / "embeddings.npy", mmap_mode="r")


def catalog_embeddings(encoder: "RecformerEncoder", catalog: Catalog, codes: np.ndarray, locales: np.ndarray,
                       cache_dir: Path, attributes: tuple[str, ...] = ATTRIBUTES, progress: bool = True,
                       chunk: int = 50_000) -> np.ndarray:
    """Normalised embeddings ``(N, D)`` of catalog products (code, locale): rows of a matching
    ``recformer-m2 encode`` output when there is one, else a float16 memory-mapped cache file.

    The cache is keyed by the encoder (weights, config, tokenizer), the catalog's content, the rows asked
    for and the attribute order, and is written under a temporary name and renamed when complete. A
    record beside it (shape, dtype, size, checksum) is checked on every read; a damaged file (truncated,
    overwritten, flipped bytes) is rebuilt with a warning instead of failing every later run.
    """
    rows = catalog.rows(np.asarray(codes), np.asarray(locales))
    if (rows < 0).any():
        raise KeyError(f"{int((rows < 0).sum())} (code, locale) pairs are not in the catalog")
    encoder_id = encoder_digest(encoder)
    full = encoded_catalog(encoder_id, catalog, cache_dir, attributes)
    if full is not None:
        return np.asarray(full[rows])
    key = digest_parts(catalog_key(encoder_id, catalog, attributes), np.asarray(codes, np.int64).tobytes(),
                       np.asarray(locales, np.int64).tobytes())
    path = cache_dir / f"items-{key}.npy"
    record_path = path.with_suffix(".json")
    if path.exists() or record_path.exists():
        try:
            problem = npy_problem(path, json.loads(record_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            problem = f"its record {record_path.name} is unreadable ({err})"
        if problem is None:
            logger.info("item embeddings from cache %s", path)
            return np.load(path, mmap_mode="r")
        logger.warning("item-embedding cache %s is damaged (%s): rebuilding it", path, problem)
        path.unlink(missing_ok=True)
        record_path.unlink(missing_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    table = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                      shape=(len(rows), encoder.model.config.hidden_size))
    # Each product is tokenised once here, so the collator's item-token cache would only grow (about 2 KB a
    # product with `small`: GBs for 1.41M): it is emptied after every chunk.
    for start in tqdm(range(0, len(rows), chunk), desc="encode catalog", disable=not progress):
        part = rows[start:start + chunk]
        table[start:start + len(part)] = encoder.encode_items(catalog_items(catalog, part, attributes))
        encoder.collator.item_tokenizer.clear()
    table.flush()
    del table
    record = npy_record(tmp)
    os.replace(tmp, path)
    write_json_atomic(record_path, record)  # last: an array without its record counts as damaged
    return np.load(path, mmap_mode="r")


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

        Heads saved beside the encoder (the MLM head of pretraining, the prior weight of finetuning) are
        expected and left out; any other missing or unexpected weight raises.
        """
        from .tokenizer import load_tokenizer

        model = RecformerModel.from_pretrained_strict(path, allow_unexpected=("lm_head", "prior_weight"))
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
