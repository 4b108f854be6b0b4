"""Process-group setup and the DeepSpeed JSON filled from the typed config."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import PretrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs: ranks, device and the collective backend."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_distributed() -> DistEnv:
    """Start torch.distributed through DeepSpeed: under its launcher (env vars set) or as one plain process.

    A plain ``python pretrain.py`` has none of ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``; DeepSpeed would then look for MPI, so they are set for a world of one (a free
    local port). Without CUDA: ``DS_ACCELERATOR=cpu``, the gloo backend, and torch threads split
    between the ranks of this machine unless ``OMP_NUM_THREADS`` is set.
    """
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)  # before NCCL starts, so its barriers use this rank's GPU
    backend = "nccl" if cuda else "gloo"
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, verbose=False)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if cuda:
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        if "OMP_NUM_THREADS" not in os.environ:
            local_size = int(os.environ.get("LOCAL_SIZE", os.environ.get("LOCAL_WORLD_SIZE", "1")))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_size, 1)))
    return DistEnv(rank, local_rank, world_size, device, backend)


SHM_DIR = Path("/dev/shm")
"""Where DeepSpeed's CPU accelerator keeps its shared-memory all-reduce buffers."""


def release_shm_buffers(env: DistEnv) -> None:
    """Unlink this rank's DeepSpeed CPU all-reduce buffer file once no collective is left to run.

    DeepSpeed never removes it (69 MB per rank and run of ``small``), so a machine that pretrains
    repeatedly fills ``/dev/shm``, which is RAM. The mapping stays valid until the process exits.
    """
    if env.device.type != "cpu" or not SHM_DIR.is_dir():
        return
    pattern = f"deepspeed_allreduce_buffer_*_{os.environ.get('MASTER_ADDR', '')}_{os.environ.get('MASTER_PORT', '')}" \
              f"_{env.local_rank}"
    for path in SHM_DIR.glob(pattern):
        path.unlink(missing_ok=True)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` on CPU (whatever was asked); ``auto`` on GPU is bf16 where supported, else fp16."""
    if device.type != "cuda":
        if precision not in ("auto", "fp32"):
            logger.warning("precision %s asked for, but there is no GPU: training in fp32", precision)
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def _fill(section: dict, key: str, value: Any, where: str) -> None:
    """Set ``section[key]`` to ours when absent or ``"auto"``; a different concrete value raises."""
    current = section.get(key, "auto")
    if current == "auto":
        section[key] = value
    elif current != value:
        raise ValueError(
            f"DeepSpeed config sets {where}{key}={current!r} but the pretraining config gives {value!r}; "
            f"set it to \"auto\" in the DeepSpeed JSON and change it in the pretraining config (or on the command line)"
        )


def _find_auto(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _find_auto(value, f"{path}{key}.")]
    return [path.rstrip(".")] if node == "auto" else []


def deepspeed_config(path: str | Path, config: PretrainConfig, env: DistEnv, total_steps: int) -> dict[str, Any]:
    """DeepSpeed's JSON with every ``"auto"`` filled from ``config``: batch sizes, accumulation, clipping,
    AdamW lr and weight decay, the WarmupDecayLR schedule and bf16/fp16. On CPU, ``torch_adam``
    (DeepSpeed's fused Adam needs CUDA) and fp32. An ``"auto"`` left anywhere else raises."""
    with open(path, encoding="utf-8") as f:
        ds = json.load(f)
    _fill(ds, "train_micro_batch_size_per_gpu", config.batch_size, "")
    _fill(ds, "gradient_accumulation_steps", config.gradient_accumulation_steps, "")
    _fill(ds, "train_batch_size", config.batch_size * config.gradient_accumulation_steps * env.world_size, "")
    _fill(ds, "gradient_clipping", config.max_grad_norm, "")
    if "optimizer" not in ds:
        raise ValueError(f"{path}: no \"optimizer\" section; pretraining expects AdamW configured there")
    opt = ds["optimizer"].setdefault("params", {})
    _fill(opt, "lr", config.lr, "optimizer.params.")
    _fill(opt, "weight_decay", config.weight_decay, "optimizer.params.")
    if env.device.type != "cuda":
        opt.setdefault("torch_adam", True)
    if "scheduler" in ds:
        sched = ds["scheduler"].setdefault("params", {})
        _fill(sched, "total_num_steps", total_steps, "scheduler.params.")
        _fill(sched, "warmup_num_steps", min(config.warmup_steps, total_steps), "scheduler.params.")
        _fill(sched, "warmup_max_lr", config.lr, "scheduler.params.")
        _fill(sched, "warmup_min_lr", 0.0, "scheduler.params.")
    precision = resolve_precision(config.precision, env.device)
    for name in ("bf16", "fp16"):
        section = ds.setdefault(name, {})
        if section.get("enabled", "auto") == "auto" or env.device.type != "cuda":
            section["enabled"] = precision == name
        elif section["enabled"] != (precision == name):
            raise ValueError(f"DeepSpeed config sets {name}.enabled={section['enabled']} but precision is {precision}")
    left = _find_auto(ds)
    if left:
        raise ValueError(f"{path}: \"auto\" at {left}, which the pretraining config does not fill; give values")
    return ds


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices and embeddings, none on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
