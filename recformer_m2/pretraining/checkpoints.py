"""DeepSpeed checkpoints with per-rank RNG state, an atomic ``latest`` file, a fallback to the newest readable
checkpoint, and export.

RNG states are safetensors plus JSON (:mod:`recformer_m2.state_files`), never pickles; each checkpoint also
holds the pretraining config it was written under (``pretrain_config.json``), read before anything is loaded
so that a resume under another config is refused naming the fields.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..models import RecformerConfig, RecformerForPretraining
from ..models.folders import ModelFolderError, check_safetensors
from ..state_files import read_state, save_state
from ..tokenizer import load_tokenizer
from .config import LATEST, TAG_PREFIX
from .distributed import DistEnv

logger = logging.getLogger(__name__)


def checkpoint_tag(step: int) -> str:
    return f"{TAG_PREFIX}{step:08d}"


def latest_tag(checkpoint_dir: str | Path) -> str | None:
    """Tag named by ``latest`` (always a complete checkpoint), or None when there is none."""
    path = Path(checkpoint_dir) / LATEST
    if not path.is_file():
        return None
    tag = path.read_text(encoding="utf-8").strip()
    if not (Path(checkpoint_dir) / tag).is_dir():
        raise FileNotFoundError(f"{path} names {tag!r}, which is not a folder in {checkpoint_dir}")
    return tag


RUN_CONFIG = "pretrain_config.json"
"""Written into every checkpoint folder: the config the run had when it wrote it."""


def _rng_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rng_state_{rank:05d}.safetensors"


def save_rng_state(path: Path) -> None:
    """This process's RNG states (python, numpy's legacy global, torch CPU and every CUDA device): the
    tensors as safetensors, python's and numpy's as JSON lists."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_state(path, tensors, {"python": [version, list(words), gauss],
                               "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]})


def load_rng_state(path: Path) -> None:
    """Restore what :func:`save_rng_state` wrote."""
    tensors, values = read_state(path)
    version, words, gauss = values["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def checkpoint_problem(tag_dir: Path, world_size: int) -> str | None:
    """Why the checkpoint folder cannot be resumed from (missing or damaged files), or None when every file
    reads: the RNG files of ``world_size`` ranks, the run config, and a CRC check of each torch zip file."""
    if not tag_dir.is_dir():
        return f"{tag_dir} is not a folder"
    for rank in range(world_size):
        if not _rng_file(tag_dir, rank).is_file():
            return (f"{_rng_file(tag_dir, rank)} is missing: the checkpoint was written by fewer ranks than this "
                    f"run's {world_size}; resume with the same number of ranks")
    for path in sorted(tag_dir.iterdir()):
        try:
            if path.suffix == ".safetensors":
                check_safetensors(path)
            elif path.suffix == ".pt":
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    return f"{path}: damaged (member {bad} fails its CRC check)"
            elif path.name == RUN_CONFIG:
                json.loads(path.read_text(encoding="utf-8"))
        except (ModelFolderError, zipfile.BadZipFile, OSError, ValueError) as err:
            return f"{path}: damaged ({err})"
    if not list(tag_dir.glob("*model_states.pt")):
        return f"{tag_dir}: no model states file"
    return None


def resume_tag(checkpoint_dir: str | Path, world_size: int) -> str | None:
    """The newest checkpoint that can be resumed from: the one ``latest`` names, or, when it is missing or
    damaged, the newest older one that reads (with a warning naming what is wrong); None when there is none."""
    checkpoint_dir = Path(checkpoint_dir)
    named = (checkpoint_dir / LATEST).read_text(encoding="utf-8").strip() if (checkpoint_dir / LATEST).is_file() else None
    if named is None:
        return None
    tags = sorted((p.name for p in checkpoint_dir.glob(f"{TAG_PREFIX}*") if p.is_dir() and p.name <= named),
                  reverse=True)
    if named not in tags:
        tags.insert(0, named)
    for tag in tags:
        problem = checkpoint_problem(checkpoint_dir / tag, world_size)
        if problem is None:
            if tag != named:
                logger.warning("resuming from the older checkpoint %s instead", tag)
            return tag
        if "fewer ranks" in problem:
            raise ModelFolderError(checkpoint_dir / tag, problem)
        logger.warning("checkpoint %s cannot be resumed from: %s", tag, problem)
    raise ModelFolderError(checkpoint_dir, f"{checkpoint_dir}: no readable checkpoint left (see the warnings above); "
                                           f"delete {checkpoint_dir} to start over")


def saved_run_config(checkpoint_dir: str | Path, tag: str) -> dict[str, Any] | None:
    """The pretraining config a checkpoint was written under (None for a checkpoint of an earlier version)."""
    path = Path(checkpoint_dir) / tag / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def save_checkpoint(engine, checkpoint_dir: Path, step: int, client_state: dict[str, Any], env: DistEnv,
                    keep: int) -> str:
    """Write a checkpoint on every rank, then point ``latest`` at it and drop all but the newest ``keep``.

    A half-written folder of the same tag (left by a crash) is removed first; ``latest`` is replaced
    atomically after a barrier, so it only ever names a complete checkpoint.
    """
    tag = checkpoint_tag(step)
    tag_dir = checkpoint_dir / tag
    if env.is_main:
        if tag_dir.exists() and latest_tag(checkpoint_dir) != tag:
            shutil.rmtree(tag_dir)
        tag_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    save_rng_state(_rng_file(tag_dir, env.rank))
    if env.is_main and "pretrain_config" in client_state:
        (tag_dir / RUN_CONFIG).write_text(json.dumps(client_state["pretrain_config"], indent=2) + "\n", encoding="utf-8")
    engine.save_checkpoint(str(checkpoint_dir), tag=tag, client_state=client_state, save_latest=False)
    dist.barrier()  # every rank's files are on disk
    if env.is_main:
        tmp = checkpoint_dir / f"{LATEST}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(tag)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, checkpoint_dir / LATEST)
        tags = sorted(p.name for p in checkpoint_dir.glob(f"{TAG_PREFIX}*") if p.is_dir() and p.name <= tag)
        for old in tags[:-keep]:
            shutil.rmtree(checkpoint_dir / old)
        logger.info("checkpoint %s written", tag_dir)
    dist.barrier()
    return tag


def load_checkpoint(engine, checkpoint_dir: Path, tag: str, env: DistEnv) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this rank's RNG states; returns the client state."""
    rng_path = _rng_file(checkpoint_dir / tag, env.rank)
    if not rng_path.is_file():
        raise FileNotFoundError(f"{rng_path} is missing: the checkpoint was written by fewer ranks than "
                                f"this run's {env.world_size}; resume with the same number of ranks")
    path, client = engine.load_checkpoint(str(checkpoint_dir), tag=tag, load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {checkpoint_dir / tag}")
    load_rng_state(rng_path)
    return client


def export_checkpoint(checkpoint_dir: str | Path, out_dir: str | Path, tag: str | None = None) -> Path:
    """Consolidate a ZeRO checkpoint's fp32 weights into a plain ``save_pretrained`` folder.

    Uses DeepSpeed's ``get_fp32_state_dict_from_zero_checkpoint`` and the ``config.json`` and tokenizer
    that the run saved in ``checkpoint_dir``; the weights are loaded strictly (a missing or unused
    tensor raises) into :class:`RecformerForPretraining`. ``out_dir`` is written through a temporary
    folder and renamed, so it is either complete or absent.
    """
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    checkpoint_dir, out = Path(checkpoint_dir), Path(out_dir)
    tag = tag or latest_tag(checkpoint_dir)
    if tag is None:
        raise FileNotFoundError(f"{checkpoint_dir}: no {LATEST} file; pass the tag of the checkpoint to export")
    config = RecformerConfig.from_pretrained(str(checkpoint_dir), local_files_only=True)
    tokenizer = load_tokenizer(checkpoint_dir)
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag=tag)
    model = RecformerForPretraining(config)
    model.load_state_dict(state, strict=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    logger.info("exported %s/%s to %s", checkpoint_dir, tag, out)
    return out
