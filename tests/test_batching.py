import numpy as np
import pytest

from recformer_m2.batching import length_grouped
from recformer_m2.pretraining import epoch_batches


def test_length_grouped_is_a_permutation_of_complete_groups():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 11, size=103)
    order = rng.permutation(103)
    out = length_grouped(order, lengths, group=8, window=4, rng=np.random.default_rng(1))
    assert len(out) == 96  # 103 // 8 * 8: the incomplete last group is dropped
    assert sorted(out.tolist()) == sorted(order[:96].tolist())


def test_length_grouped_groups_have_similar_lengths_and_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 11, size=4000)
    order = rng.permutation(4000)
    grouped = length_grouped(order, lengths, group=32, window=50, rng=np.random.default_rng(1))
    padded = lambda o: lengths[o].reshape(-1, 32).max(axis=1).sum()  # noqa: E731 - tokens after padding
    spread = lambda o: np.ptp(lengths[o].reshape(-1, 32), axis=1).mean()  # noqa: E731
    assert spread(grouped) <= 1.0 < spread(order)
    assert padded(grouped) < 0.75 * padded(order)


def test_length_grouped_window_one_keeps_order_and_rejects_bad_group():
    order = np.arange(10)
    np.testing.assert_array_equal(length_grouped(order, np.arange(10), 3, 1, np.random.default_rng(0)), order[:9])
    with pytest.raises(ValueError, match="group"):
        length_grouped(order, np.arange(10), 0, 4, np.random.default_rng(0))


def test_epoch_batches_grouped_by_length_are_deterministic_and_disjoint_across_ranks():
    lengths = np.random.default_rng(3).integers(1, 11, size=500)
    parts = [epoch_batches(500, 4, 2, rank, seed=5, epoch=1, accumulation=2, lengths=lengths, group_window=10)
             for rank in range(2)]
    again = epoch_batches(500, 4, 2, 1, seed=5, epoch=1, accumulation=2, lengths=lengths, group_window=10)
    np.testing.assert_array_equal(parts[1], again)
    flat = np.concatenate([p.reshape(-1) for p in parts])
    assert len(set(flat.tolist())) == len(flat) == 500 // 16 * 16
    # One optimizer step = 2 micro-batches on each of 2 ranks: all 16 examples of a step have similar lengths.
    steps = np.stack([p.reshape(-1, 8) for p in parts], axis=1).reshape(-1, 16)
    assert np.ptp(lengths[steps], axis=1).mean() < 2.0
