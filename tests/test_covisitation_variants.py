"""Co-visitation variants (forward-only, gap and position weights, lift, cross-locale, the ranked sessions'
own prev_items) and session-learned item embeddings, on hand-made catalogs and sessions."""

import numpy as np
import pandas as pd
import pytest

from recformer_m2.constants import LOCALES, PRODUCT_COLUMNS
from recformer_m2.data.m2 import Catalog, Sessions
from recformer_m2.embeddings_sources import ItemEmbeddings
from recformer_m2.heuristics import CoVisitation

DE, UK = LOCALES.index("DE"), LOCALES.index("UK")


def catalog_of(sold: dict[str, str]) -> Catalog:
    """A text-less catalog: ``sold`` maps a locale to the ids it sells (one letter each)."""
    pairs = [(pid, loc) for loc, ids in sold.items() for pid in ids]
    table = pd.DataFrame({c: "" for c in PRODUCT_COLUMNS}, index=range(len(pairs)))
    table["id"], table["locale"] = [p for p, _ in pairs], [loc for _, loc in pairs]
    table["price"] = np.nan
    return Catalog(table)


def sessions_of(catalog: Catalog, rows: list[tuple]) -> Sessions:
    """Sessions from (prev ids, next id or None, locale) tuples."""
    lengths = [len(prev) for prev, _, _ in rows]
    items = catalog.codes([pid for prev, _, _ in rows for pid in prev])
    nxt = np.array([catalog.codes([n])[0] if n else -1 for _, n, _ in rows], dtype=np.int32)
    return Sessions(items.astype(np.int32), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                    np.array([LOCALES.index(loc) for _, _, loc in rows], dtype=np.int8), nxt)


def names(catalog: Catalog, ranked: np.ndarray) -> list[list[str]]:
    return [[catalog.ids[c] for c in row if c >= 0] for row in ranked]


def weight(model: CoVisitation, catalog: Catalog, a: str, b: str, locale: int = DE) -> float:
    code = dict(zip(catalog.ids, range(catalog.num_ids)))
    return float(model.weights(np.array([locale]), np.array([code[a]]), np.array([code[b]]))[0])


def test_forward_only_has_no_backward_pairs_and_no_nan():
    catalog = catalog_of({"DE": "ABC"})
    train = sessions_of(catalog, [(["A", "B"], "C", "DE")])
    model = CoVisitation(window=2, backward_weight=0.0).fit(catalog, train)
    assert np.isfinite(model.matrix.data).all() and (model.matrix.data > 0).all()
    assert weight(model, catalog, "C", "A") == 0 and weight(model, catalog, "B", "A") == 0
    # Row A: B at gap 1 (1), C at gap 2 (1/2), normalised to sum to one.
    assert weight(model, catalog, "A", "B") == pytest.approx(2 / 3)
    assert weight(model, catalog, "A", "C") == pytest.approx(1 / 3)


def test_gap_and_position_weights_by_hand():
    catalog = catalog_of({"DE": "ABCD"})
    train = sessions_of(catalog, [(["A", "B", "C"], "D", "DE")])  # full sequence A B C D, positions 0..3
    late = CoVisitation(window=1, backward_weight=0.0, position_weight=3.0, normalize=False).fit(catalog, train)
    # Pair weight 1 * (1 + 3 * p), p = position of the later item / 3.
    assert weight(late, catalog, "A", "B") == pytest.approx(2.0)
    assert weight(late, catalog, "B", "C") == pytest.approx(3.0)
    assert weight(late, catalog, "C", "D") == pytest.approx(4.0)
    flat = CoVisitation(window=2, backward_weight=0.0, gap_power=0.0, normalize=False).fit(catalog, train)
    assert weight(flat, catalog, "A", "C") == pytest.approx(1.0)  # 1 / 2**0, not 1/2


def test_lift_demotes_an_item_popular_everywhere():
    catalog = catalog_of({"DE": "ABCDFGH"})
    rows = [(["A"], "C", "DE"), (["A"], "C", "DE"), (["A"], "B", "DE")]
    rows += [([x], "C", "DE") for x in "DFGH"]  # C occurs 6 times, B once
    train = sessions_of(catalog, rows)
    query = sessions_of(catalog, [(["A"], None, "DE")])
    plain = CoVisitation(window=1, backward_weight=0.0).fit(catalog, train)
    lifted = CoVisitation(window=1, backward_weight=0.0, lift=1.0, normalize=False).fit(catalog, train)
    assert names(catalog, plain.recommend(query, k=1, progress=False)) == [["C"]]
    assert names(catalog, lifted.recommend(query, k=1, progress=False)) == [["B"]]
    assert weight(lifted, catalog, "A", "C") == pytest.approx(2 / 7)  # 2 / (6 + 1)
    assert weight(lifted, catalog, "A", "B") == pytest.approx(1 / 2)  # 1 / (1 + 1)


def test_cross_locale_serves_pairs_learned_elsewhere_where_sold():
    catalog = catalog_of({"DE": "ABC", "UK": "AB"})
    train = sessions_of(catalog, [(["A"], "B", "DE"), (["A"], "C", "DE")])
    query = sessions_of(catalog, [(["A"], None, "UK")])
    per_locale = CoVisitation().fit(catalog, train)
    cross = CoVisitation(cross_locale=True).fit(catalog, train)
    assert names(catalog, per_locale.recommend(query, k=5, progress=False)) == [[]]
    # B was seen after A in DE and is sold in UK; C is not sold in UK.
    assert names(catalog, cross.recommend(query, k=5, progress=False)) == [["B"]]


def test_query_evidence_uses_prev_items_of_the_ranked_sessions_never_their_next_items():
    catalog = catalog_of({"DE": "ABCDE"})
    train = sessions_of(catalog, [(["A"], "B", "DE")])
    queries = [(["C", "D"], None, "DE"), (["C"], None, "DE")]
    plain = CoVisitation().fit(catalog, train)
    seen = CoVisitation(query_evidence=1.0).fit(catalog, train)
    ranked = seen.recommend(sessions_of(catalog, queries), k=5, progress=False)
    assert names(catalog, ranked)[1][0] == "D", "C -> D comes from the other query's prev_items"
    assert "D" not in names(catalog, plain.recommend(sessions_of(catalog, queries), k=5, progress=False))[1]
    # Their next items, whatever they are, change nothing.
    for labels in (["E", "E"], ["A", "B"]):
        labelled = sessions_of(catalog, [(prev, label, loc) for (prev, _, loc), label in zip(queries, labels)])
        np.testing.assert_array_equal(seen.recommend(labelled, k=5, progress=False), ranked)
    # Evidence is per call: alone, [C] has nothing to learn C -> D from, and the table is unchanged.
    assert "D" not in names(catalog, seen.recommend(sessions_of(catalog, queries[1:]), k=5, progress=False))[0]
    assert seen.matrix.nnz == plain.matrix.nnz


@pytest.mark.parametrize("method", ["svd", "als"])
def test_item_embeddings_prefer_items_of_the_same_sessions(method):
    if method == "als":
        pytest.importorskip("implicit")
    catalog = catalog_of({"DE": "ABCDEFG", "UK": "ABC"})
    rows = [(["A", "B"], "C", "DE"), (["B", "C"], "A", "DE"), (["C", "A"], "B", "DE")] * 4
    rows += [(["D", "E"], "F", "DE"), (["E", "F"], "D", "DE"), (["F", "D"], "E", "DE")] * 4
    train = sessions_of(catalog, rows + [(["G"], "A", "DE")])
    model = ItemEmbeddings(method=method, factors=2, iterations=5, window=2).fit(catalog, train)
    queries = sessions_of(catalog, [(["A"], None, "DE"), (["E"], None, "DE"), (["A"], None, "UK")])
    ranked = names(catalog, model.recommend(queries, k=6, progress=False))
    assert set(ranked[0][:2]) == {"B", "C"} and "A" not in ranked[0]
    assert set(ranked[1][:2]) == {"D", "F"}
    assert set(ranked[2]) <= {"B", "C"}, "only items sold in the session's locale"
    again = ItemEmbeddings(method=method, factors=2, iterations=5, window=2).fit(catalog, train)
    np.testing.assert_array_equal(again.recommend(queries, k=6, progress=False),
                                  model.recommend(queries, k=6, progress=False))
