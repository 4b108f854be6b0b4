"""Checks of a model folder before transformers reads it, so a wrong or damaged folder is refused with a
message naming the folder and the file, instead of a hub connection attempt, a 99-line load report or a
low-level reader error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..errors import DataFormatError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
BASELINE_FILE = "model.json"
"""Written by ``train-baseline`` into an ID-baseline folder (never by a Recformer folder)."""


class ModelFolderError(DataFormatError):
    """A model folder or training artifact that is missing, of another kind, incomplete or damaged.

    A :class:`~recformer_m2.errors.DataFormatError`, so the command line prints it as one line."""

    def __init__(self, path: str | Path, message: str):
        ValueError.__init__(self, message)
        self.path, self.row, self.field = str(path), None, None


def check_safetensors(path: str | Path) -> None:
    """Raise :class:`ModelFolderError` naming ``path`` unless it is a complete safetensors file: its
    header parses and the file is as long as the header's largest tensor end says (catches truncation)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                raise ModelFolderError(path, f"{path}: truncated ({size} bytes; its header alone needs {8 + length})")
            header = json.loads(f.read(length))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as err:
        raise ModelFolderError(path, f"{path}: damaged safetensors file ({err})") from None
    if size < 8 + length + end:
        raise ModelFolderError(path, f"{path}: truncated ({size} bytes, its header needs {8 + length + end})")


def check_model_folder(path: str | Path) -> Path:
    """``path`` as a folder that transformers can load a Recformer from, checked without reading weights:
    it exists (never a hub name), is not an ID-baseline folder, has ``config.json`` and complete weights."""
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(folder, f"no such model folder: {folder}")
    if (folder / BASELINE_FILE).is_file():
        try:
            name = json.loads((folder / BASELINE_FILE).read_text(encoding="utf-8")).get("model", "<its model>")
        except (ValueError, AttributeError):
            name = "<its model>"
        raise ModelFolderError(folder, f"{folder} is an ID-baseline folder ({BASELINE_FILE}); use --method {name}")
    if not (folder / CONFIG_FILE).is_file():
        raise ModelFolderError(folder, f"{folder}: {CONFIG_FILE} missing")
    if (folder / WEIGHTS_INDEX).is_file():
        shards = sorted(set(json.loads((folder / WEIGHTS_INDEX).read_text(encoding="utf-8"))["weight_map"].values()))
    elif (folder / WEIGHTS_FILE).is_file():
        shards = [WEIGHTS_FILE]
    else:
        raise ModelFolderError(folder, f"{folder}: {WEIGHTS_FILE} missing")
    for shard in shards:
        if not (folder / shard).is_file():
            raise ModelFolderError(folder, f"{folder}: {shard} missing")
        check_safetensors(folder / shard)
    return folder


class ConfigMismatchError(ModelFolderError):
    """A run asked to resume from a checkpoint saved under another configuration."""


def config_changes(saved: dict, now: dict, ignored: tuple[str, ...] = ()) -> dict[str, tuple]:
    """``{field: (saved value, new value)}`` for every field whose value differs (JSON-normalised values)."""
    return {k: (saved.get(k), v) for k, v in now.items() if k not in ignored and saved.get(k) != v}


def check_resume_config(checkpoint: str | Path, saved: dict, now: dict, force: bool,
                        ignored: tuple[str, ...] = ()) -> None:
    """Refuse (:class:`ConfigMismatchError`) to resume ``checkpoint`` under a changed configuration, naming
    the fields that differ; with ``force`` resume anyway, with a warning naming them."""
    import logging

    changes = config_changes(saved, now, ignored)
    if not changes:
        return
    listed = ", ".join(f"{k} (saved {a!r}, now {b!r})" for k, a, b in ((k, *v) for k, v in changes.items()))
    if not force:
        raise ConfigMismatchError(checkpoint, f"{checkpoint}: cannot resume with a changed configuration: {listed}; "
                                              "rerun with the saved settings, or pass --force-new-config to continue "
                                              "under the new ones")
    logging.getLogger(__name__).warning("%s: resuming under a changed configuration (--force-new-config): %s",
                                        checkpoint, listed)
