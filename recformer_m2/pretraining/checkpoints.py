"""DeepSpeed checkpoints with per-rank RNG state, an atomic ``latest`` file, and export."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..models import RecformerConfig, RecformerForPretraining
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


def _rng_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rng_state_{rank:05d}.pt"


def rng_state() -> dict[str, Any]:
    """This process's RNG states: python, numpy (legacy global), torch CPU and every CUDA device."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


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
    torch.save(rng_state(), _rng_file(tag_dir, env.rank))
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
    set_rng_state(torch.load(rng_path, weights_only=False))
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
