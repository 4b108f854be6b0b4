"""TextKNN: the chunked sparse search against dense brute force, exclusions, locales, recency weights by hand."""

import math

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from recformer_m2 import textknn as textknn_module
from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.synth import generate
from recformer_m2.textknn import TextKNN, title_tfidf

from .conftest import write_m2_folder

DE = LOCALES.index("DE")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> M2Data:
    folder = tmp_path_factory.mktemp("tiny")
    generate(folder / "data", scale="tiny", seed=0)
    return M2Data(folder / "data", cache_dir=folder / "cache")


def brute_force(model: TextKNN, sessions) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """Dense exact ranking per session from full (products x products) cosine matrices: every recommendable
    code with a positive text score, best first, their scores, and the score of every code of the locale."""
    out = []
    cosines = {}
    for i, session in enumerate(sessions.to_lists()):
        loc = int(sessions.locale[i])
        if loc not in cosines:
            vectors = model.vectors[loc].toarray().astype(np.float64)
            cosines[loc] = vectors @ vectors.T  # (N, N), rows of unit (or zero) vectors
        cosine = cosines[loc]
        codes = model.codes[loc]
        local = {int(c): j for j, c in enumerate(codes)}
        score = np.zeros(len(codes))
        for steps_back, code in enumerate(session[::-1][:model.last_items]):
            if int(code) in local:
                score += model.decay ** steps_back * cosine[local[int(code)]]
        has_text = score > 0
        score[has_text] += model.popularity_weight * model.prior[loc, codes[has_text]]
        allowed = has_text & ~np.isin(codes, session)
        order = np.lexsort((codes[allowed], -score[allowed]))
        out.append((codes[allowed][order], score[allowed][order], dict(zip(codes.tolist(), score.tolist()))))
    return out


@pytest.mark.parametrize("padded_entries", [1 << 23, 64])
def test_sparse_search_matches_dense_brute_force(tiny, monkeypatch, padded_entries):
    # A tiny padded-block budget forces the row-blocked argpartition path; batch 7 forces many products.
    monkeypatch.setattr(textknn_module, "_PADDED_ENTRIES", padded_entries)
    model = TextKNN(backfill=False, batch=7, max_df=40, max_ngrams=20).fit(tiny.catalog, tiny.train)
    sessions = tiny.train.select(np.arange(0, len(tiny.train), 5))  # every locale, lengths 1 to many
    k = 15
    ranked = model.recommend(sessions, k=k, progress=False)
    compared = total = 0
    for i, (want, want_scores, score_of) in enumerate(brute_force(model, sessions)):
        got = ranked[i][ranked[i] >= 0]
        assert len(got) == min(k, len(want))
        # Same score at every rank; the same item wherever that score is not tied with another item's.
        got_scores = np.array([score_of[int(c)] for c in got])
        np.testing.assert_allclose(got_scores, want_scores[:len(got)], rtol=1e-5, atol=1e-6)
        gaps = np.abs(np.diff(np.r_[np.inf, want_scores, -np.inf]))
        untied = (gaps[:-1] > 1e-4) & (gaps[1:] > 1e-4)  # score differs from both neighbours
        np.testing.assert_array_equal(got[untied[:len(got)]], want[:len(got)][untied[:len(got)]])
        compared, total = compared + untied[:len(got)].sum(), total + len(got)
    assert compared > 0.5 * total  # most items are compared one by one, not only their scores


def test_tfidf_pruning_and_unpruned_equals_sklearn():
    titles = ["red cotton shirt", "blue cotton shirt", "red wool scarf", "ペットボトル 500ml", ""]
    pruned = title_tfidf(titles, (3, 5), max_df=2, max_ngrams=5)
    assert (np.diff(pruned.indptr) <= 5).all()
    norms = np.sqrt(np.asarray(pruned.multiply(pruned).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1, 1, 1, 1, 0], atol=1e-6)
    full = title_tfidf(titles, (3, 5), max_df=100, max_ngrams=10_000)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(titles)
    np.testing.assert_allclose((full @ full.T).toarray(), (reference @ reference.T).toarray(), atol=1e-6)


def test_session_items_excluded_and_locale_respected(tiny):
    model = TextKNN().fit(tiny.catalog, tiny.train)
    for task in (1, 2):
        sessions = tiny.test(task)
        ranked = model.recommend(sessions, k=50, progress=False)
        assert ranked.shape == (len(sessions), 50) and ranked.dtype == np.int32
        for row, session, loc in zip(ranked, sessions.to_lists(), sessions.locale):
            got = row[row >= 0]
            assert not set(got.tolist()) & set(session.tolist())
            assert len(set(got.tolist())) == len(got)
            assert (tiny.catalog.rows(got, loc) >= 0).all(), "recommended a product not sold in the locale"


@pytest.fixture
def three_products(tmp_path, cache_dir) -> M2Data:
    # n-grams of "aaa" are in A and X, of "bbb" in B and Y, of "ccc" only in X, of "ddd" only in Y.
    products = [("A", "DE", "aaa"), ("B", "DE", "bbb"), ("X", "DE", "aaa ccc"), ("Y", "DE", "bbb ddd"),
                ("X", "UK", "aaa ccc")]
    sessions = [(["A"], "B", "DE"), (["X"], "Y", "DE")]
    tests = {1: [(["A", "B"], "DE"), (["B", "A"], "DE"), (["A"], "UK")]}
    return M2Data(write_m2_folder(tmp_path / "three", products, sessions, tests), cache_dir=cache_dir)


def test_recency_weighting_by_hand(three_products):
    data = three_products
    model = TextKNN(decay=0.5, last_items=3, popularity_weight=0.0, backfill=False).fit(data.catalog, data.train)
    # Each word yields 6 n-grams of tf 1 (" aa", "aaa", "aa ", " aaa", "aaa ", " aaa "); idf with 4 DE titles:
    # shared words ln(5/3) + 1, own words ln(5/2) + 1. cos(A, X) = cos(B, Y) = i2 / sqrt(i2^2 + i1^2); A, B and
    # X, Y share nothing else.
    i2, i1 = math.log(5 / 3) + 1, math.log(5 / 2) + 1
    c = i2 / math.sqrt(i2**2 + i1**2)
    code = dict(zip(data.catalog.ids, range(data.catalog.num_ids)))
    sessions = data.test(1)
    scores = model.scores(sessions.select([0, 1]), DE).toarray()  # (2, DE products)
    col = {name: int(np.flatnonzero(model.codes[DE] == code[name])[0]) for name in "ABXY"}
    # Session [A, B]: B is last (weight 1), A one step back (weight 0.5).
    assert scores[0, col["Y"]] == pytest.approx(c, rel=1e-5)
    assert scores[0, col["X"]] == pytest.approx(0.5 * c, rel=1e-5)
    assert scores[1, col["X"]] == pytest.approx(c, rel=1e-5)
    assert scores[1, col["Y"]] == pytest.approx(0.5 * c, rel=1e-5)
    ranked = model.recommend(sessions, k=3, progress=False)
    names = [[data.catalog.ids[x] for x in row if x >= 0] for row in ranked]
    # UK sells only X, whose title has no UK neighbour: nothing to recommend without backfill.
    assert names == [["Y", "X"], ["X", "Y"], []]
    only_last = TextKNN(last_items=1, popularity_weight=0.0, backfill=False).fit(data.catalog, data.train)
    assert [data.catalog.ids[x] for x in only_last.recommend(sessions, k=3, progress=False)[0] if x >= 0] == ["Y"]


def test_similarity_of_pairs(three_products):
    data = three_products
    model = TextKNN().fit(data.catalog, data.train)
    code = dict(zip(data.catalog.ids, range(data.catalog.num_ids)))
    a = np.array([code["A"], code["A"], code["X"], code["A"]])
    b = np.array([code["X"], code["B"], code["X"], code["X"]])
    locale = np.array([DE, DE, DE, LOCALES.index("UK")])
    sims = model.similarity(locale, a, b)
    assert sims[0] > 0.5 and sims[1] == 0.0 and sims[2] == pytest.approx(1.0, rel=1e-5)
    assert sims[3] == 0.0  # A is not sold in UK
