"""The encode API keeps the caller's order, agrees with direct model calls, and retrieval matches brute force."""

import numpy as np
import pytest
import torch

from recformer_m2 import RecformerConfig, RecformerModel
from recformer_m2.data import M2Data
from recformer_m2.encode import RecformerEncoder, catalog_items, newest_items, retrieve, session_items
from recformer_m2.tokenizer import train_tokenizer

from .conftest import write_m2_folder


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("enc")
    generate(root / "data", scale="tiny", seed=0)
    data = M2Data(root / "data", cache_dir=root / "cache")
    catalog = data.catalog
    tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), root / "tok", vocab_size=800)
    torch.manual_seed(0)
    config = RecformerConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        attention_window=4, max_position_embeddings=256, max_token_num=256, max_item_embeddings=8,
    )
    return data, RecformerEncoder(RecformerModel(config), tokenizer, batch_size=3)


def test_encode_restores_order_and_matches_direct_calls(tiny_setup):
    data, encoder = tiny_setup
    items = catalog_items(data.catalog, np.arange(7))
    batched = encoder.encode_items(items)
    one_by_one = np.stack([encoder.encode_items([x], batch_size=1)[0] for x in items])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    sessions = session_items(data.catalog, data.test(1))[:5]
    forward = encoder.encode_sessions(sessions)
    backward = encoder.encode_sessions(sessions[::-1])[::-1]
    np.testing.assert_allclose(forward, backward, atol=1e-5)


def test_one_item_session_equals_the_item(tiny_setup):
    data, encoder = tiny_setup
    items = catalog_items(data.catalog, np.arange(3))
    np.testing.assert_allclose(encoder.encode_sessions([[x] for x in items]), encoder.encode_items(items), atol=1e-5)


def test_retrieve_matches_brute_force(tiny_setup):
    data, encoder = tiny_setup
    sessions = data.test(1).select(np.arange(6))
    ranked = retrieve(encoder, data.catalog, sessions, k=10)
    texts = session_items(data.catalog, sessions)
    for i in range(len(sessions)):
        loc = int(sessions.locale[i])
        codes = data.catalog.locale_codes(loc)
        items = encoder.encode_items(catalog_items(data.catalog, data.catalog.rows(codes, loc)))
        scores = items @ encoder.encode_sessions([texts[i]])[0]
        scores[np.isin(codes, sessions[i])] = -np.inf
        expected = np.sort(scores)[::-1][:10]
        got = scores[np.searchsorted(codes, ranked[i])]  # codes are ascending
        np.testing.assert_allclose(got, expected, atol=1e-5)  # same scores in the same order (ties may swap ids)
        assert not set(ranked[i]) & set(sessions[i])


def test_newest_items_skip_products_not_sold_in_the_locale(tmp_path, cache_dir):
    products = [("A", "DE", "a"), ("B", "DE", "b"), ("C", "UK", "c")]
    sessions = [(["A", "B"], "A", "DE"), (["B", "C"], "A", "DE"), (["C"], "A", "DE"), (["A", "C"], "A", "UK")]
    data = M2Data(write_m2_folder(tmp_path / "d", products, sessions), cache_dir=cache_dir)
    b, c = data.catalog.codes(["B", "C"])
    assert newest_items(data.catalog, data.train).tolist() == [b, b, -1, c]
    # the same positions give the titles heuristics' rows: the session's own-locale row, -1 when none
    from recformer_m2.titles.grid import _last_rows
    newest = data.catalog.newest_sold(data.train)
    assert newest.tolist() == [1, 2, -1, 6]  # positions in the flat item array (sessions of 2, 2, 1, 2 items)
    expected = [data.catalog.rows(np.array([code]), loc)[0] if code >= 0 else -1
                for code, loc in zip(newest_items(data.catalog, data.train), data.train.locale)]
    assert _last_rows(data.catalog, data.train).tolist() == expected


def test_damaged_item_embedding_cache_is_rebuilt_with_a_warning(tiny_setup, tmp_path, caplog):
    """Issue 20 case 3: a truncated cache .npy made every later run fail (``mmap length is greater than file
    size``); a same-size file with flipped bytes was served silently. Both are now detected and rebuilt."""
    import logging

    from recformer_m2.recommender import encode_catalog

    data, encoder = tiny_setup
    codes = data.catalog.locale_codes("ES")
    locales = np.full(len(codes), 3)
    first = np.array(encode_catalog(encoder, data.catalog, codes, locales, tmp_path, progress=False))  # a copy
    (path,) = tmp_path.glob("items-*.npy")
    whole = path.read_bytes()
    damages = {"truncated": whole[:-100], "flipped": whole[:-100] + bytes(b ^ 0xFF for b in whole[-100:])}
    for name, damaged in damages.items():
        path.write_bytes(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="recformer_m2.encode"):
            again = np.asarray(encode_catalog(encoder, data.catalog, codes, locales, tmp_path, progress=False))
        assert "is damaged" in caplog.text and "rebuilding it" in caplog.text, name
        assert ("truncated" if name == "truncated" else "checksum mismatch") in caplog.text
        np.testing.assert_array_equal(again, first)
        assert path.read_bytes() == whole
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="recformer_m2.encode"):
        encode_catalog(encoder, data.catalog, codes, locales, tmp_path, progress=False)
    assert caplog.text == ""  # an intact cache is read without a word
