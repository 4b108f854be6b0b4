"""bench/bench_transfer.py: the text-only kind-to-kind slice (title word overlap of the newest item and the target)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from recformer_m2.data import M2Data
from tests.conftest import write_m2_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_transfer", ROOT / "bench" / "bench_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_title_overlap_is_the_jaccard_of_the_newest_sold_items_and_the_targets_words(bench, tmp_path, cache_dir):
    products = [("A", "ES", "red wool socks"), ("B", "ES", "blue wool socks"), ("C", "ES", "garden hose"),
                ("D", "DE", "only sold in DE")]
    sessions = [
        (["C", "A"], "B", "ES"),  # newest A: {wool, socks} shared of {red, blue, wool, socks} -> 2/4
        (["A", "C"], "B", "ES"),  # newest C: nothing shared -> 0
        (["A", "D"], "C", "ES"),  # D has no ES row: the newest sold item is A -> 0
        (["A"], "A", "ES"),  # the same title -> 1
    ]
    data = M2Data(write_m2_folder(tmp_path / "d", products, sessions), cache_dir=cache_dir)
    train = data.train
    overlap = bench.title_overlap(data, train, train.next_item)
    assert overlap.tolist() == pytest.approx([0.5, 0.0, 0.0, 1.0])
    unknown = np.array([-2, -2, -2, -2])  # a target id the catalog does not know: no overlap
    assert bench.title_overlap(data, train, unknown).tolist() == [0.0] * 4
