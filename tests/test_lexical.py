"""Lexical fusion: session tails by hand, the title score against textknn's, and the exact fused search
against a slow per-item loop and against the index at weight 0."""

import numpy as np
import pytest

from recformer_m2 import lexical as lexical_module
from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.index import ItemIndex
from recformer_m2.lexical import TitleSimilarity, fused_top_k, session_tails
from recformer_m2.synth import generate
from recformer_m2.textknn import TextKNN

ES, FR = LOCALES.index("ES"), LOCALES.index("FR")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> M2Data:
    folder = tmp_path_factory.mktemp("tiny")
    generate(folder / "data", scale="tiny", seed=0)
    return M2Data(folder / "data", cache_dir=folder / "cache")


def test_session_tails_by_hand():
    rows, codes, back = session_tails([np.array([5, 6, 7, 8]), np.array([], np.int64), np.array([9])], last=3)
    assert rows.tolist() == [0, 0, 0, 2]
    assert codes.tolist() == [6, 7, 8, 9]
    assert back.tolist() == [2, 1, 0, 0]
    assert all(len(x) == 0 for x in session_tails([np.array([], np.int64)], last=3))


def test_title_scores_are_textknns_without_popularity(tiny):
    sessions = tiny.test(2)
    sessions = sessions.select(np.flatnonzero(sessions.locale == ES))
    text = TextKNN(popularity_weight=0.0, backfill=False).fit(tiny.catalog, tiny.train)
    expected = text.scores(sessions, ES).toarray()  # columns: text.codes[ES]
    similarity = TitleSimilarity.fit(tiny.catalog, (ES,))
    shuffled = np.random.default_rng(0).permutation(text.codes[ES])
    got = similarity.scores(sessions.to_lists(), ES, shuffled)
    column = {int(c): j for j, c in enumerate(text.codes[ES])}
    np.testing.assert_allclose(got, expected[:, [column[int(c)] for c in shuffled]], rtol=1e-5, atol=1e-6)
    assert (got > 0).any()
    # products outside the given codes are dropped, not misplaced
    part = shuffled[:10]
    np.testing.assert_allclose(similarity.scores(sessions.to_lists(), ES, part), got[:, :10], rtol=1e-6)


def slow_fused(queries, locales, session_codes, embeddings, codes, item_locales, bias, text, weight, k):
    """Every item's fused score one at a time, then a full sort (score, then item row)."""
    out = []
    for i, q in enumerate(queries):
        scored = []
        for j in np.flatnonzero(item_locales == locales[i]):
            if codes[j] in set(session_codes[i].tolist()):
                continue
            value = float(np.dot(q, embeddings[j])) + (0.0 if bias is None else float(bias[j]))
            value += weight * text(i, int(locales[i]), int(codes[j]))
            scored.append((-value, j))
        out.append([int(codes[j]) for _, j in sorted(scored)[:k]])
    return out


@pytest.mark.parametrize("block_entries", [1 << 24, 50])
def test_fused_search_matches_a_slow_loop(tiny, monkeypatch, block_entries):
    monkeypatch.setattr(lexical_module, "_BLOCK_ENTRIES", block_entries)
    catalog = tiny.catalog
    sessions = tiny.test(2)
    codes = np.concatenate([catalog.locale_codes(ES), catalog.locale_codes(FR)])
    item_locales = np.concatenate([np.full(len(catalog.locale_codes(ES)), ES), np.full(len(catalog.locale_codes(FR)), FR)])
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(len(codes), 8)).astype(np.float32)
    bias = rng.uniform(0, 0.3, size=len(codes)).astype(np.float32)
    sessions = sessions.select(np.flatnonzero(np.isin(sessions.locale, [ES, FR]))[:12])
    queries = rng.normal(size=(len(sessions), 8)).astype(np.float32)
    similarity = TitleSimilarity.fit(catalog, (ES, FR))
    lists = sessions.to_lists()
    dense = {loc: similarity.scores(lists, loc, catalog.locale_codes(loc)) for loc in (ES, FR)}
    position = {loc: {int(c): j for j, c in enumerate(catalog.locale_codes(loc))} for loc in (ES, FR)}

    def text(i, loc, code):
        return float(dense[loc][i, position[loc][code]])

    for weight in (0.0, 3.0):
        got, scores = fused_top_k(queries, sessions.locale, lists, embeddings, codes, item_locales, bias,
                                  similarity, weight, k=7)
        want = slow_fused(queries, sessions.locale, lists, embeddings, codes, item_locales, bias, text, weight, 7)
        assert got.tolist() == want
        assert (np.diff(scores, axis=1) <= 1e-6).all()
    # the text term changes the ranking here (else the check above says little)
    plain, _ = fused_top_k(queries, sessions.locale, lists, embeddings, codes, item_locales, bias, similarity, 0.0, 7)
    fused, _ = fused_top_k(queries, sessions.locale, lists, embeddings, codes, item_locales, bias, similarity, 3.0, 7)
    assert (plain != fused).any()


def test_weight_zero_is_the_exact_index_and_short_locales_are_padded(tiny):
    catalog = tiny.catalog
    sessions = tiny.test(2)
    codes = catalog.locale_codes(ES)
    item_locales = np.full(len(codes), ES)
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(len(codes), 6)).astype(np.float32)
    bias = rng.uniform(0, 0.2, size=len(codes)).astype(np.float32)
    sessions = sessions.select(np.flatnonzero(sessions.locale == ES))
    queries = rng.normal(size=(len(sessions), 6)).astype(np.float32)
    index = ItemIndex().build(embeddings, codes, item_locales, bias)
    expected, expected_scores = index.search(queries, sessions.locale, 20, exclude=sessions.to_lists())
    got, scores = fused_top_k(queries, sessions.locale, sessions.to_lists(), embeddings, codes, item_locales, bias,
                              None, 0.0, 20)
    assert got.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    # a locale with fewer products than k: -1 / -inf padding after them; none at all: all padding
    few = 3
    short, short_scores = fused_top_k(queries[:2], np.array([ES, FR]), sessions.to_lists()[:2], embeddings[:few],
                                      codes[:few], item_locales[:few], None, None, 0.0, 5)
    kept = [c for c in codes[:few] if c not in set(sessions.to_lists()[0].tolist())]
    assert sorted(short[0][short[0] >= 0].tolist()) == sorted(int(c) for c in kept)
    assert (short[0][len(kept):] == -1).all() and np.isneginf(short_scores[0][len(kept):]).all()
    assert (short[1] == -1).all()
