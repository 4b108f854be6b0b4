"""Export a data folder's splits as RecBole atomic files, so RecBole runs on exactly our splits.

RecBole reads pre-split benchmark files ``NAME.train.inter``, ``NAME.valid.inter`` and ``NAME.test.inter``
(set ``benchmark_filename: [train, valid, test]``); each row is a session: its previous items and its
next item. The validation split is ``validation_split`` of the training sessions (same seed, same rule);
the test file is written only when the folder has ground truth for the task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .constants import TASK_LOCALES
from .data import M2Data, Sessions, validation_split

HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"


def _write_inter(path: Path, sessions: Sessions, ids: np.ndarray, targets: np.ndarray, prefix: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for i, (items, target) in enumerate(zip(sessions.to_lists(), targets)):
            f.write(f"{prefix}{i}\t{' '.join(ids[items])}\t{ids[target]}\n")


def export_recbole(
    data: M2Data, out: str | Path, name: str = "m2", task: int = 2, valid_fraction: float = 0.1, seed: int = 0
) -> list[Path]:
    """Write ``out/NAME/NAME.{train,valid[,test]}.inter`` for the locales of ``task``; returns the paths."""
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    ids = data.catalog.ids
    train = data.train.select(data.train.in_locales(TASK_LOCALES[task]))
    fit_idx, valid_idx = validation_split(train, valid_fraction, seed)
    paths = []
    for split, sessions in (("train", train.select(fit_idx)), ("valid", train.select(valid_idx))):
        paths.append(folder / f"{name}.{split}.inter")
        _write_inter(paths[-1], sessions, ids, sessions.next_item, f"{split}-")
    if data.has_truth(task) and task != 3:
        test = data.test(task)
        targets = data.catalog.codes(data.truth(task)["next_item"].to_numpy())
        known = (targets >= 0) & (test.lengths > 0)
        paths.append(folder / f"{name}.test.inter")
        _write_inter(paths[-1], test.select(known), ids, targets[known], "test-")
    return paths


