"""bench/bench_real_m2.py: the per-locale split is seeded and complete, the catalog and the queries carry
no test label, and the whole benchmark runs end to end on a few hundred made-up sessions."""

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def bench():
    spec = importlib.util.spec_from_file_location("bench_real_m2", ROOT / "bench" / "bench_real_m2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sessions(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Made-up sessions walking along a ring of 60 products per locale (so co-visitation has signal)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        locale = ("ES", "FR", "IT")[i % 3]
        start, length = rng.integers(0, 60), rng.integers(1, 5)
        walk = [f"P{(start + 2 * step) % 60:02d}" for step in range(length + 1)]
        rows.append({"prev_items": walk[:-1], "next_item": walk[-1], "locale": locale})
    return pd.DataFrame(rows)


def test_split_is_per_locale_seeded_and_complete():
    module, frame = bench(), sessions()
    kept, held = module.split_per_locale(frame, 0.2, 0)
    assert len(kept) + len(held) == len(frame)
    assert (held["locale"].value_counts() == 20).all()  # 100 sessions per locale, 20% of each
    again = module.split_per_locale(frame, 0.2, 0)[1]
    pd.testing.assert_frame_equal(held, again)
    assert not module.split_per_locale(frame, 0.2, 1)[1].equals(held)


def test_catalog_and_queries_carry_no_test_label():
    module, frame = bench(), sessions()
    train, queries = frame.iloc[:200].reset_index(drop=True), frame.iloc[200:].reset_index(drop=True)
    queries.loc[0, "next_item"] = "ONLY-A-LABEL"
    catalog = module.id_catalog(train, queries)
    assert catalog.codes(["ONLY-A-LABEL"])[0] == -1
    query_sessions = module.to_sessions(queries, catalog, with_target=False)
    assert (query_sessions.next_item == -1).all()
    assert (module.to_sessions(train, catalog, with_target=True).next_item >= 0).all()


def test_runs_end_to_end(tmp_path):
    module = bench()
    path = tmp_path / "sessions.parquet"
    sessions(600).to_parquet(path)
    args = argparse.Namespace(sessions=str(path), seed=0, test_fraction=0.2, evaluate_on="test",
                              methods="popularity,covisitation,covis-queries", bootstrap=20, importance=5,
                              folds=1, valid_fraction=0.2, per_locale=False, query_evidence=1.0,
                              embeddings="svd", query_windows="3")
    result = module.run(args)
    table = result["table"].set_index(["method", "locale"])
    assert result["split"] == "test" and set(table.index.get_level_values(1)) == {"ES", "FR", "IT", "overall"}
    assert table.loc[("covisitation", "overall"), "MRR@100"] > table.loc[("popularity", "overall"), "MRR@100"]
    assert table.loc[("covisitation", "overall"), "MRR ratio"] == 1.0
    assert any("test" in line for line in module.report(result))
