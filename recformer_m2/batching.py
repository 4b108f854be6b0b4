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


def length_grouped_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, window: int,
                           rng: np.random.Generator, drop_last: bool) -> list[np.ndarray]:
    """Batches of ``order`` (a permutation of example indices) with similar lengths, in shuffled order.

    ``order`` is cut into windows of ``batch_size * window`` examples; with ``window > 0`` each window is
    sorted by ``lengths`` (stable, so ties keep the random order); each window is cut into batches, and
    the batches of the whole epoch are shuffled by ``rng``. ``drop_last`` first drops the entries of
    ``order`` past its last complete batch; otherwise the last batch may be smaller.
    """
    if batch_size < 1:
        raise ValueError(f"batch size ({batch_size}) must be at least 1")
    order = np.asarray(order)
    if drop_last:
        order = order[:len(order) // batch_size * batch_size]
    span = batch_size * max(window, 1)
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        if window > 0:
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def length_grouped(order: np.ndarray, lengths: np.ndarray, group: int, window: int, rng: np.random.Generator
                   ) -> np.ndarray:
    """``order`` (a permutation of example indices) rearranged so each run of ``group`` examples has similar lengths.

    The concatenated :func:`length_grouped_batches` of ``order`` with ``drop_last``: a permutation of
    ``order``'s first ``len(order) // group * group`` entries. ``window <= 1`` returns that prefix of
    ``order`` unchanged.
    """
    if group < 1:
        raise ValueError(f"group ({group}) must be at least 1")
    usable = len(order) // group * group
    if window <= 1 or usable == 0:
        return np.asarray(order)[:usable]
    return np.concatenate(length_grouped_batches(order, lengths, group, window, rng, drop_last=True))
