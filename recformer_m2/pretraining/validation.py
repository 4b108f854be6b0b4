"""Held-out losses and next-item retrieval of a pretraining run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..constants import LOCALES
from ..data import Catalog, Sessions
from ..metrics import rank_metrics
from ..models import RecformerForPretraining
from .config import PretrainConfig
from .data import MicroBatches, PretrainData, batch_loader
from .distributed import DistEnv

def retrieval_metrics(encoder, catalog: Catalog, sessions: Sessions, ks: Sequence[int], progress: bool = False
                      ) -> dict[str, float]:
    """Recall@K of next-item retrieval among each locale's products (``encode.retrieve``), overall and per locale."""
    from ..encode import retrieve

    ranked = retrieve(encoder, catalog, sessions, k=max(ks), progress=progress)
    out: dict[str, float] = {}
    for k in ks:
        hits = rank_metrics(ranked, sessions.next_item, k)["recall"]
        for loc in np.unique(sessions.locale):
            out[f"recall@{k}/{LOCALES[loc]}"] = float(hits[sessions.locale == loc].mean())
    return out


@torch.no_grad()
def validate(model: RecformerForPretraining, batches: MicroBatches, env: DistEnv, data: PretrainData,
             config: PretrainConfig, tokenizer) -> dict[str, float]:
    """Held-out losses and contrastive accuracy (every rank, its share of batches, summed across ranks),
    then Recall@K by retrieval on rank 0 (the others wait). Leaves the model in train mode."""
    from ..encode import RecformerEncoder

    model.eval()
    totals = torch.zeros(5, dtype=torch.float64)  # mlm loss sum, cl loss sum, correct, sessions, batches
    for batch in batch_loader(batches, 0, config.num_workers, env.device.type == "cuda"):
        batch = {k: v.to(env.device) for k, v in batch.items()}
        out = model(**batch)
        n = batch["input_ids"].shape[0]
        totals += torch.tensor([out.mlm_loss.item(), out.item_cl_loss.item(), out.cl_correct.item(), n, 1.0],
                               dtype=torch.float64)
    if env.world_size > 1:
        totals = totals.to(env.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(totals)
    mlm, cl, correct, sessions, count = totals.cpu().tolist()
    metrics = {
        "valid_mlm_loss": mlm / max(count, 1),
        "valid_cl_loss": cl / max(count, 1),
        "valid_cl_accuracy": correct / max(sessions, 1),
        "valid_sessions": int(sessions),
        "cl_candidates": batches.batches.shape[1] * env.world_size,
    }
    metrics["valid_loss"] = model.config.mlm_weight * metrics["valid_mlm_loss"] + \
        model.config.item_cl_weight * metrics["valid_cl_loss"]
    if env.is_main and config.max_retrieval_sessions > 0 and len(data.retrieval):
        start = time.perf_counter()
        encoder = RecformerEncoder(model.recformer, tokenizer, batch_size=config.encode_batch_size)
        per_locale = retrieval_metrics(encoder, data.catalog, data.retrieval, config.recall_ks)
        metrics.update(per_locale)
        for k in config.recall_ks:
            for name, group in (("train_locales", config.locales), ("zero_shot", config.zero_shot_locales)):
                mask = np.isin(data.retrieval.locale, [LOCALES.index(loc) for loc in group])
                if mask.any():
                    values = [per_locale[f"recall@{k}/{LOCALES[loc]}"] for loc in data.retrieval.locale[mask]]
                    metrics[f"recall@{k}/{name}"] = float(np.mean(values))  # micro-average over sessions
        metrics["retrieval_seconds"] = round(time.perf_counter() - start, 2)
    dist.barrier()
    model.train()
    return metrics


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records after ``step``: a crashed run may have validated past the checkpoint it resumes from."""
    if not path.exists():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
