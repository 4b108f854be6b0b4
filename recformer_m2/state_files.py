"""Training state as safetensors with JSON values in its header: resume files that load without unpickling.

Why: ``torch.load(..., weights_only=False)`` on a resume file runs whatever code the file names, and a run
folder may come from someone else. Tensors (weights, optimizer slots, RNG states) go in the safetensors
body; progress, hyper-parameters, configurations and python/numpy RNG states go in one JSON header value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .models.folders import ModelFolderError, check_safetensors


def save_state(path: Path, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    """``tensors`` as safetensors with ``values`` as JSON in its header; written to a temporary name and
    renamed, so a crash mid-write never leaves a broken file. Loading it unpickles nothing."""
    from safetensors.torch import save_file

    plain, storages = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        if tensor.numel() and tensor.untyped_storage().data_ptr() in storages:
            tensor = tensor.clone()  # safetensors refuses tensors sharing memory
        if tensor.numel():
            storages.add(tensor.untyped_storage().data_ptr())
        plain[name] = tensor
    tmp = path.with_name(path.name + ".tmp")
    save_file(plain, str(tmp), metadata={"state": json.dumps(values)})
    os.replace(tmp, path)


def read_state_values(path: Path) -> dict[str, Any]:
    """The JSON values of a :func:`save_state` file, from its header only."""
    from safetensors import SafetensorError, safe_open

    check_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("state", "{}"))
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelFolderError(path, f"{path}: damaged resume file ({err}); delete it to start over") from None


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, values) of a :func:`save_state` file; a missing or damaged file raises naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ModelFolderError(path, f"{path}: missing; delete {path.parent} to start over")
    values = read_state_values(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, values
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelFolderError(path, f"{path}: damaged resume file ({err}); delete it to start over") from None
