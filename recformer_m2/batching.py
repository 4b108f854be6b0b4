"""Length-grouped batch order, shared by pretraining and finetuning.

A batch is padded to its longest session, and Longformer's cost grows with the padded length. Session
lengths are skewed (on the synthetic data the median session has 89 tokens and the longest fill the
256-token budget), so a random batch of 32 is almost always padded to the budget. Sorting the examples
by length inside windows of a few dozen batches, then shuffling whole batches, keeps batches of similar
length without giving up the randomness of the epoch's order (the same idea as transformers' Trainer
``group_by_length``).
"""

from __future__ import annotations

import numpy as np


def length_grouped(order: np.ndarray, lengths: np.ndarray, group: int, window: int, rng: np.random.Generator
                   ) -> np.ndarray:
    """``order`` (a permutation of example indices) rearranged so each run of ``group`` examples has similar lengths.

    ``order`` is cut into windows of ``group * window`` examples; each window is sorted by
    ``lengths[order]`` (stable, so ties keep the random order), cut into groups of ``group``, and the
    groups of the whole epoch are shuffled by ``rng``. The result is a permutation of ``order``'s first
    ``len(order) // group * group`` entries (an incomplete last group is dropped). ``window <= 1``
    returns that prefix of ``order`` unchanged.
    """
    if group < 1:
        raise ValueError(f"group ({group}) must be at least 1")
    usable = len(order) // group * group
    order = np.asarray(order)[:usable]
    if window <= 1 or usable == 0:
        return order
    span = group * window
    pieces = []
    for start in range(0, usable, span):
        chunk = order[start:start + span]
        pieces.append(chunk[np.argsort(lengths[chunk], kind="stable")])
    groups = np.concatenate(pieces).reshape(-1, group)
    return groups[rng.permutation(len(groups))].reshape(-1)
