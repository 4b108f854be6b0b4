"""The main job's task-3 stage: one mT5 title model, scored with K = 1, 2, 3 previous titles as input
(the paper's ablation), plus generation speed and a few examples.

How the ablation fits the budget: a single model is trained with K drawn per training pair from ``ks``
(``TitleConfig.train_ks``), then generates the test titles once per K. Separate models per K would triple
the training time (about 4 minutes each on 2 CPU cores) for a comparison that asks how much the extra
titles help a model that has learned to read them, which the shared model answers too.

    result = title_stage(data, split.fit, split.test, targets, out / "titles", TitleConfig())
    result.table      # locale, method, BLEU, n  (method "mt5 (K=1)", ...)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import LOCALES
from ..data import M2Data, Sessions
from .heuristics import last_titles
from ..metrics import title_bleu
from .config import TitleConfig
from .generator import CONFIG_FILE, TitleGenerator

logger = logging.getLogger(__name__)

RUN_ONLY = frozenset({"progress", "resume", "extra", "num_threads", "generate_batch_size"})
"""TitleConfig fields that do not change what a finished model folder holds (ignored when reusing it)."""
TUNED = frozenset({"edit_gate", "draft_bias"})
"""TitleConfig fields that training tunes when given None (a saved value then matches None)."""


@dataclass
class TitleStageResult:
    """What the task-3 stage reports."""

    table: pd.DataFrame
    """BLEU per method and locale (``overall`` included): columns locale, method, BLEU, n, as
    ``title_bleu(...)`` with ``insert(0, "method", name)`` and ``reset_index()`` (the pipeline's task-3 tables)."""
    examples: pd.DataFrame
    """A few test sessions per locale: columns locale, last title, generated, truth."""
    titles_per_second: float
    """Generation speed of the mT5 model at the largest K (CPU, the config's beams and thread count)."""
    train_seconds: float
    """Training wall time of the model (from its ``metrics.json`` when a finished folder was reused)."""
    model_dir: Path
    generated: dict[int, list[str]]
    """The test titles generated with each K."""


def stage_config(config: TitleConfig, ks: tuple[int, ...]) -> TitleConfig:
    """``config`` training one model for every K of ``ks`` (and generating with the largest by default)."""
    return dataclasses.replace(config, k=max(ks), train_ks=tuple(sorted(set(ks))))


def finished_model(out: Path, config: TitleConfig) -> bool:
    """True when ``out`` holds a finished model trained with ``config``; raises when it holds another's."""
    if not ((out / "metrics.json").is_file() and (out / CONFIG_FILE).is_file()):
        return False
    saved = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples as lists, like the saved file
    differ = sorted(k for k in wanted if k not in RUN_ONLY and saved.get(k) != wanted[k]
                    and not (k in TUNED and wanted[k] is None))
    if differ:
        raise ValueError(f"{out} holds a title model trained with other settings ({', '.join(differ)}); "
                         "remove the folder or pass the same TitleConfig")
    return True


def title_stage(data: M2Data, fit: Sessions, test: Sessions, targets: list[str], out: str | Path,
                config: TitleConfig, ks: tuple[int, ...] = (1, 2, 3), examples_per_locale: int = 2) -> TitleStageResult:
    """Train (or reuse) one title model on ``fit`` and score it on ``test`` against ``targets`` at every K.

    ``fit`` alone trains the model (a validation split is carved from it); ``test`` and ``targets`` are
    only scored. A folder ``out`` with a finished model of the same settings is reused; an unfinished one
    resumes from its last checkpoint.
    """
    from .train import fit_title_model

    out = Path(out)
    config = stage_config(config, tuple(ks))
    if finished_model(out, config):
        logger.info("title stage: reusing the finished model in %s", out)
        generator = TitleGenerator.from_pretrained(out).fit(data.catalog)
        # generation settings of the caller's config win over the saved ones
        generator.config = dataclasses.replace(generator.config, **{
            f: getattr(config, f) for f in ("num_threads", "generate_batch_size", "progress")})
    else:
        generator = fit_title_model(data.catalog, fit, out, config)
    train_seconds = float(json.loads((out / "metrics.json").read_text(encoding="utf-8"))["train_seconds"])

    locales = [LOCALES[x] for x in test.locale]
    tables, generated, speed = [], {}, 0.0
    for k in sorted(set(ks)):
        start = time.perf_counter()
        generated[k] = generator.with_k(k).generate(test, progress=config.progress)
        seconds = time.perf_counter() - start
        speed = len(test) / max(seconds, 1e-9)  # kept for the largest K
        table = title_bleu(generated[k], targets, locales)
        table.insert(0, "method", f"mt5 (K={k})")
        tables.append(table.reset_index())
        logger.info("title stage: mt5 K=%d BLEU %.4f overall, %.0f titles/s", k,
                    table.loc["overall", "BLEU"], len(test) / max(seconds, 1e-9))
    return TitleStageResult(
        table=pd.concat(tables, ignore_index=True),
        examples=pick_examples(last_titles(data.catalog, test), generated[max(ks)], targets, locales,
                               examples_per_locale, config.seed),
        titles_per_second=speed, train_seconds=train_seconds, model_dir=out, generated=generated,
    )


def pick_examples(last: list[str], generated: list[str], truth: list[str], locales: list[str], per_locale: int,
                  seed: int) -> pd.DataFrame:
    """``per_locale`` seeded test sessions of every locale side by side: half of them (rounded up) where the
    generator changed the last title, when it did anywhere, the rest drawn from all sessions."""
    rng = np.random.default_rng(seed)
    rows = []
    for loc in LOCALES:
        idx = [i for i, x in enumerate(locales) if x == loc]
        changed = [i for i in idx if generated[i] != last[i]]
        half = min(-(-per_locale // 2), len(changed))
        picked = rng.choice(changed, size=half, replace=False).tolist() if changed else []
        rest = [i for i in idx if i not in picked]
        if rest:
            picked += rng.choice(rest, size=min(per_locale - len(picked), len(rest)), replace=False).tolist()
        for i in sorted(picked):
            rows.append({"locale": loc, "last title": last[i], "generated": generated[i], "truth": truth[i]})
    return pd.DataFrame(rows, columns=["locale", "last title", "generated", "truth"])
