"""Items tokenised once into a datasets.Dataset cached by a content fingerprint (issue 18, item 3)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recformer_m2.item_dataset import item_fingerprint, preload_items, tokenized_items
from recformer_m2.models import ItemTokenizer
from tests.test_collator import build_tiny_tokenizer, tiny_config
from tests.test_recformer_model import ITEMS


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def _same(a, b) -> bool:
    return (np.array_equal(a.input_ids, b.input_ids) and np.array_equal(a.token_type_ids, b.token_type_ids)
            and np.array_equal(a.word_ids, b.word_ids) and a.num_words == b.num_words)


def test_dataset_tokens_equal_the_item_tokenizers_and_are_read_back_from_the_cache(tokenizer, tmp_path,
                                                                                   monkeypatch):
    items = ITEMS + [[("title", "odd"), ("price", float("nan"))]]
    reference = ItemTokenizer.from_config(tokenizer, tiny_config())
    table = tokenized_items(items, reference, tmp_path)
    assert len(table) == len(items) and len(list(tmp_path.glob("items-*.arrow"))) == 1
    expected = [reference.tokenize(x) for x in items]
    preloaded = ItemTokenizer.from_config(tokenizer, tiny_config())
    calls = []
    monkeypatch.setattr("recformer_m2.item_dataset._tokenize_batch", lambda *a, **k: calls.append(1))
    preload_items(preloaded, items, tmp_path)  # from the cache file: nothing is mapped again
    assert not calls

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again although the cache holds these items")

    monkeypatch.setattr(ItemTokenizer, "_tokenize", no_tokenizing)
    assert all(_same(preloaded(x), want) for x, want in zip(items, expected))


def test_the_fingerprint_covers_limits_tokenizer_and_text(tokenizer):
    base = ItemTokenizer.from_config(tokenizer, tiny_config())
    key = item_fingerprint(ITEMS, base)
    assert key == item_fingerprint(ITEMS, ItemTokenizer.from_config(tokenizer, tiny_config()))
    assert key != item_fingerprint(ITEMS, ItemTokenizer(tokenizer, base.max_attr_num, base.max_attr_length + 1))
    assert key != item_fingerprint(ITEMS, ItemTokenizer(tokenizer, base.max_attr_num + 1, base.max_attr_length))
    assert key != item_fingerprint(ITEMS[::-1], base)
    assert key != item_fingerprint([[("title", "changed")]] + list(ITEMS[1:]), base)
    other = build_tiny_tokenizer()
    other.add_tokens(["zzzunseen"])
    assert key != item_fingerprint(ITEMS, ItemTokenizer.from_config(other, tiny_config()))


def test_a_damaged_cache_file_is_rebuilt_with_a_warning(tokenizer, tmp_path, caplog):
    item_tokenizer = ItemTokenizer.from_config(tokenizer, tiny_config())
    tokenized_items(ITEMS, item_tokenizer, tmp_path)
    (path,) = tmp_path.glob("items-*.arrow")
    path.write_bytes(path.read_bytes()[:50])
    with caplog.at_level(logging.WARNING):
        table = tokenized_items(ITEMS, item_tokenizer, tmp_path)
    assert "is damaged" in caplog.text and len(table) == len(ITEMS)
    assert all(np.array_equal(np.asarray(row), item_tokenizer.tokenize(x).input_ids)
               for row, x in zip(table["input_ids"], ITEMS))
