"""The frozen item table a finetuned ``RecformerForSeqRec`` scores against, as one safetensors file beside
its weights (``item_table.safetensors``), so that ``save_pretrained`` / ``from_pretrained`` carry the whole
model in one folder.

Layout (tensors; every one but ``embeddings`` optional):

- ``embeddings`` ``(N, D)`` float16: the L2-normalised item vectors (half the bytes of float32; the model
  reads them back as float32 without renormalising, so a load and a save give back the same bytes);
- ``prior`` ``(N,)`` float32: the popularity prior values (log(1 + training occurrences)); the score bias is
  ``prior_weight * prior``, ``prior_weight`` being a weight of ``model.safetensors``;
- ``groups`` ``(N,)`` int64: each row's group (its locale), named by the header's ``group_names``;
- ``ids`` ``(B,)`` uint8: the rows' product ids as UTF-8, joined by newlines (ids never hold one).

Header metadata: ``format`` (:data:`TABLE_FORMAT`) and ``group_names`` (a JSON list).
Folders of earlier versions held ``item_table.npy`` and ``item_table.parquet`` (``id``, ``locale``, ``bias``):
:func:`read_legacy_table` reads them, and a load then a save converts such a folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .folders import ModelFolderError, check_safetensors

logger = logging.getLogger(__name__)

TABLE_FILE = "item_table.safetensors"
TABLE_FORMAT = "recformer-item-table/1"
LEGACY_TABLE_FILE = "item_table.npy"
LEGACY_KEYS_FILE = "item_table.parquet"


@dataclass
class ItemTable:
    """An item table as stored: rows ``i`` of every field describe the same item."""

    embeddings: torch.Tensor  # (N, D) L2-normalised
    prior: torch.Tensor | None = None  # (N,) prior values; the model's prior_weight scales them
    groups: torch.Tensor | None = None  # (N,) group index of each row
    ids: list[str] | None = None  # (N,) product ids
    group_names: list[str] | None = None  # name of each group index


def write_table(path: Path, table: ItemTable) -> None:
    """Write ``table`` to ``path`` (safetensors, layout in the module docstring)."""
    from safetensors.torch import save_file

    tensors = {"embeddings": table.embeddings.detach().to("cpu", torch.float16).contiguous()}
    if table.prior is not None:
        tensors["prior"] = table.prior.detach().to("cpu", torch.float32).contiguous()
    if table.groups is not None:
        tensors["groups"] = table.groups.detach().to("cpu", torch.int64).contiguous()
    if table.ids is not None:
        if any("\n" in x for x in table.ids):
            raise ValueError("item ids must not contain a newline (the table joins them with newlines)")
        joined = "\n".join(table.ids).encode("utf-8")
        tensors["ids"] = torch.from_numpy(np.frombuffer(joined, dtype=np.uint8).copy())
    metadata = {"format": TABLE_FORMAT}
    if table.group_names is not None:
        metadata["group_names"] = json.dumps(list(table.group_names))
    save_file(tensors, str(path), metadata=metadata)


def read_table(path: Path, hidden_size: int) -> ItemTable:
    """Read and check a table written by :func:`write_table`; a damaged file, or fields of other row counts
    or another width than the model's ``hidden_size``, raise :class:`ModelFolderError` naming the file."""
    from safetensors import SafetensorError, safe_open

    check_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelFolderError(path, f"{path}: damaged ({err})") from None
    if metadata.get("format") != TABLE_FORMAT:
        raise ModelFolderError(path, f"{path}: format {metadata.get('format')!r}, expected {TABLE_FORMAT!r}")
    if "embeddings" not in tensors:
        raise ModelFolderError(path, f"{path}: no 'embeddings' tensor")
    embeddings = tensors["embeddings"]
    if embeddings.dim() != 2 or embeddings.shape[1] != hidden_size:
        raise ModelFolderError(path, f"{path}: embeddings of shape {tuple(embeddings.shape)}, expected "
                                     f"(N, {hidden_size}) (the model's hidden size)")
    ids = None
    if "ids" in tensors:
        text = bytes(tensors["ids"].numpy()).decode("utf-8")
        ids = text.split("\n") if len(embeddings) else []
    group_names = json.loads(metadata["group_names"]) if "group_names" in metadata else None
    rows = {"ids": None if ids is None else len(ids),
            **{k: len(tensors[k]) for k in ("prior", "groups") if k in tensors}}
    for name, count in rows.items():
        if count is not None and count != len(embeddings):
            raise ModelFolderError(path, f"{path} has {len(embeddings)} embedding rows but {count} {name}")
    return ItemTable(embeddings, tensors.get("prior"), tensors.get("groups"), ids, group_names)


def read_legacy_table(folder: Path, hidden_size: int, temperature: float, locales: tuple[str, ...]) -> ItemTable:
    """The table of a folder of an earlier version (``item_table.npy`` + ``item_table.parquet`` whose ``bias``
    is in cosine units), as an :class:`ItemTable` whose ``prior`` is that bias over the temperature, to be
    scaled by a ``prior_weight`` of 1 (equal to the saved bias up to float rounding)."""
    import pandas as pd

    table_path, keys_path = folder / LEGACY_TABLE_FILE, folder / LEGACY_KEYS_FILE
    for path in (table_path, keys_path):
        if not path.is_file():
            raise ModelFolderError(path, f"{folder}: {path.name} missing (an item table of an earlier version)")
    try:
        embeddings = np.load(table_path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise ModelFolderError(table_path, f"{table_path}: damaged ({err})") from None
    try:
        keys = pd.read_parquet(keys_path)
    except (ValueError, OSError) as err:
        raise ModelFolderError(keys_path, f"{keys_path}: damaged ({err})") from None
    if embeddings.ndim != 2 or embeddings.shape[1] != hidden_size:
        raise ModelFolderError(table_path, f"{table_path}: shape {embeddings.shape}, expected (N, {hidden_size})")
    if len(embeddings) != len(keys):
        raise ModelFolderError(table_path, f"{table_path} has {len(embeddings)} rows but {keys_path.name} has "
                                           f"{len(keys)}")
    if missing := {"id", "locale"} - set(keys.columns):
        raise ModelFolderError(keys_path, f"{keys_path}: column(s) {sorted(missing)} missing")
    unknown = sorted(set(keys["locale"]) - set(locales))
    if unknown:
        raise ModelFolderError(keys_path, f"{keys_path}: unknown locale(s) {unknown}")
    prior = None
    if "bias" in keys:
        prior = torch.from_numpy(keys["bias"].to_numpy(np.float32) / np.float32(temperature))
    groups = torch.tensor([locales.index(x) for x in keys["locale"]], dtype=torch.int64)
    return ItemTable(torch.from_numpy(np.array(embeddings, dtype=np.float16)), prior, groups,
                     keys["id"].astype(str).tolist(), list(locales))


__all__ = ["LEGACY_KEYS_FILE", "LEGACY_TABLE_FILE", "TABLE_FILE", "TABLE_FORMAT", "ItemTable", "read_legacy_table",
           "read_table", "write_table"]
