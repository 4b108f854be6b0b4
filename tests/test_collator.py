"""SessionCollator and ItemTokenizer: layout, truncation, whole-word masking, determinism.

Also home of the tiny offline tokenizer and config that the model tests reuse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from recformer_m2.models import NOT_MASKABLE, ItemTokenizer, RecformerConfig, SessionCollator, TokenType

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", "<s>", "<sep>", "<mask>")
"""Same ids as the project's catalog tokenizer: pad 0, eos 1, unk 2, cls 3, sep 4, mask 5."""

WORDS = (
    "title brand color size model material desc anker kabel usb power iii schwarz weiss rot blau "
    "case handy hülle sam galaxy apple i lade gerät pro max mini neu und für mit - , "
    "cable charger black white red blue phone cover fast wireless stand"
).split()
PIECES = ("##c", "##line", "##sung", "##er", "##s", "##ing", "##phone")
CLS, PAD, MASK = 3, 0, 5


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A ~60-token lowercasing WordPiece fast tokenizer with the project's special tokens, built offline."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + tuple(WORDS) + PIECES)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        cls_token="<s>",
        bos_token="<s>",
        sep_token="<sep>",
        mask_token="<mask>",
    )


def tiny_config(**overrides) -> RecformerConfig:
    """Hidden 32, 2 layers, 2 heads, window 4, no dropout (so training-step tests are deterministic)."""
    kwargs = dict(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        attention_window=4,
        max_position_embeddings=64,
        max_token_num=64,
        max_item_embeddings=8,
        max_attr_num=4,
        max_attr_length=8,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    kwargs.update(overrides)
    return RecformerConfig(**kwargs)


def ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


OLD = [("title", "anker kabel")]
NEW = [("brand", "samsung"), ("title", "case")]


def test_two_item_session_layout_most_recent_first(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": [OLD, NEW]}, {"items": [OLD]}])

    samsung = tokenizer.convert_tokens_to_ids(["sam", "##sung"])
    new_ids = ids(tokenizer, "brand") + samsung + ids(tokenizer, "title") + ids(tokenizer, "case")
    old_ids = ids(tokenizer, "title") + ids(tokenizer, "anker kabel")
    K, V = TokenType.KEY, TokenType.VALUE
    assert len(ids(tokenizer, "samsung")) == 2  # a two-piece word, "sam ##sung"
    assert batch["input_ids"][0].tolist() == [CLS] + new_ids + old_ids
    assert batch["token_type_ids"][0].tolist() == [TokenType.CLS, K, V, V, K, V, K, V, V]
    assert batch["item_position_ids"][0].tolist() == [0, 1, 1, 1, 1, 1, 2, 2, 2]
    assert batch["attention_mask"][0].tolist() == [1] * 9
    # The shorter row is padded: pad id, attention 0, PAD type, item position 0.
    assert batch["input_ids"][1].tolist() == [CLS] + old_ids + [PAD] * 5
    assert batch["attention_mask"][1].tolist() == [1] * 4 + [0] * 5
    assert batch["token_type_ids"][1].tolist() == [TokenType.CLS, K, V, V] + [TokenType.PAD] * 5
    assert batch["item_position_ids"][1].tolist() == [0, 1, 1, 1] + [0] * 5
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "item_position_ids"}
    assert all(t.dtype == torch.long for t in batch.values())


def test_truncation_keeps_the_most_recent_tokens(tokenizer):
    items = [[("title", f"{word} case")] for word in ("rot", "blau", "schwarz")]  # 3 tokens each, oldest first
    collator = SessionCollator(tokenizer, tiny_config(max_token_num=6), mlm_probability=0.0)
    row = collator([{"items": items}])
    newest = ids(tokenizer, "title schwarz case")
    middle = ids(tokenizer, "title blau")  # cut after 2 of its 3 tokens
    assert row["input_ids"][0].tolist() == [CLS] + newest + middle
    assert row["item_position_ids"][0].tolist() == [0, 1, 1, 1, 2, 2]

    # At most max_item_embeddings - 1 items, the newest ones.
    collator = SessionCollator(tokenizer, tiny_config(max_item_embeddings=3), mlm_probability=0.0)
    row = collator([{"items": items}])
    assert row["input_ids"][0].tolist() == [CLS] + newest + ids(tokenizer, "title blau case")
    assert row["item_position_ids"][0].max().item() == 2


def test_item_tokenizer_limits_skips_missing_and_caches(tokenizer):
    item_tokenizer = ItemTokenizer(tokenizer, max_attr_num=2, max_attr_length=3)
    item = [
        ("desc", float("nan")),
        ("title", "anker powerline usbc kabel"),
        ("brand", "  "),
        ("color", "rot"),
        ("size", "mini"),
    ]
    tokens = item_tokenizer(item)
    # NaN / blank values are skipped; 2 attributes kept; the value is cut to 3 tokens (mid-word).
    assert tokens.input_ids.tolist() == ids(tokenizer, "title anker powerline color rot")
    assert tokens.word_ids.tolist() == [NOT_MASKABLE, 0, 1, 1, NOT_MASKABLE, 2]
    assert tokens.num_words == 3
    assert item_tokenizer(list(item)) is tokens  # same content, served from the cache
    assert item_tokenizer([("desc", float("nan"))] + item[1:]) is tokens  # a NaN is no content
    assert len(item_tokenizer) == 1


def _word_groups(collator: SessionCollator, batch_items: list) -> np.ndarray:
    rows = [collator._layout(items) for items in batch_items]
    return collator._pad_words(rows)


def test_whole_word_masking_masks_words_together_and_never_cls_keys_or_padding(tokenizer):
    sessions = [
        [[("title", "samsung galaxy handy hülle"), ("brand", "samsung")], [("title", "iphone powerline charger")]],
        [[("title", "usbc kabel schwarz")]],
    ]
    examples = [{"items": s} for s in sessions]
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.5, rng=0)
    plain = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)(examples)["input_ids"].numpy()
    words = _word_groups(collator, sessions)
    assert (words[:, 0] == NOT_MASKABLE).all() and (words[1, 6:] == NOT_MASKABLE).all()  # CLS, padding
    whole_multi_piece_words = 0
    for _ in range(30):
        batch = collator(examples)
        labels = batch["mlm_labels"].numpy()
        chosen = labels != -100
        assert not chosen[words < 0].any()  # CLS, keys, padding never chosen
        assert (batch["token_type_ids"].numpy()[chosen] == TokenType.VALUE).all()
        for word in np.unique(words[words >= 0]):
            in_word = chosen[words == word]
            assert in_word.all() or not in_word.any()
            whole_multi_piece_words += int(in_word.all() and in_word.size > 1)
        assert (labels[chosen] == plain[chosen]).all()  # labels are the original tokens
        assert (batch["input_ids"].numpy()[~chosen] == plain[~chosen]).all()  # nothing else changes
    assert whole_multi_piece_words > 0


def test_masking_replacement_split_is_80_10_10(tokenizer):
    session = [[("title", " ".join(WORDS[7:40]))], [("title", " ".join(WORDS[10:45]))]]
    collator = SessionCollator(tokenizer, tiny_config(max_attr_length=64), mlm_probability=0.5, rng=1)
    plain = SessionCollator(tokenizer, tiny_config(max_attr_length=64), mlm_probability=0.0)([{"items": session}])
    counts = np.zeros(3)
    for _ in range(100):
        batch = collator([{"items": session}])
        chosen = batch["mlm_labels"][0] != -100
        got = batch["input_ids"][0][chosen]
        counts += [(got == MASK).sum(), (got == plain["input_ids"][0][chosen]).sum(), 0]
        counts[2] += chosen.sum()
        assert not np.isin(got.numpy(), [0, 1, 2, 3, 4]).any()  # random replacements are never special tokens
    masked_share, kept_share = counts[0] / counts[2], counts[1] / counts[2]
    assert math.isclose(masked_share, 0.8, abs_tol=0.04)
    assert 0.08 < kept_share < 0.15  # 10% kept, plus random picks that hit the same token


def test_masking_is_deterministic_for_a_seed(tokenizer):
    sessions = [{"items": [[("title", "samsung galaxy handy hülle schwarz")], [("title", "anker usbc kabel")]]}] * 3
    first = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.3, rng=7)
    second = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.3, rng=np.random.default_rng(7))
    other = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.3, rng=8)
    a, b, c = (collator(sessions) for collator in (first, second, other))
    for key in ("input_ids", "mlm_labels"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["mlm_labels"], c["mlm_labels"])
    first.reseed(7)
    assert torch.equal(first(sessions)["mlm_labels"], a["mlm_labels"])


def test_token_level_masking_still_skips_keys(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.9, whole_word_masking=False, rng=0)
    batch = collator([{"items": [[("title", "samsung galaxy"), ("brand", "samsung")]]}])
    chosen = batch["mlm_labels"][0] != -100
    assert chosen.any()
    assert (batch["token_type_ids"][0][chosen] == TokenType.VALUE).all()


def test_one_item_session_equals_item_alone(tokenizer):
    item = [("title", "samsung galaxy handy hülle"), ("brand", "samsung"), ("color", "schwarz")]
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    as_session = collator([{"items": [item]}])
    alone = collator.collate_items([item])
    assert set(as_session) == set(alone)
    for key in alone:
        assert torch.equal(as_session[key], alone[key]), key


def test_pretraining_and_ranking_keys(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.2, rng=0)
    examples = [
        {"items": [OLD], "next_item": NEW, "next_item_id": 11, "label": 3},
        {"items": [NEW, OLD], "next_item": OLD, "next_item_id": 10, "label": 1},
    ]
    batch = collator(examples)
    assert set(batch) == {
        "input_ids", "attention_mask", "token_type_ids", "item_position_ids", "mlm_labels",
        "next_input_ids", "next_attention_mask", "next_token_type_ids", "next_item_position_ids",
        "item_ids", "labels",
    }
    alone = collator.collate_items([NEW, OLD])
    for key, tensor in alone.items():
        assert torch.equal(batch[f"next_{key}"], tensor)  # next items are never masked
    assert batch["item_ids"].tolist() == [11, 10] and batch["labels"].tolist() == [3, 1]

    with pytest.raises(ValueError, match="example 1 has optional keys"):
        collator([examples[0], {"items": [OLD]}])


def test_tokenizer_config_mismatch_is_reported(tokenizer):
    with pytest.raises(ValueError, match="pad id"):
        SessionCollator(tokenizer, tiny_config(pad_token_id=1))
    with pytest.raises(ValueError, match="vocab_size"):
        SessionCollator(tokenizer, tiny_config(vocab_size=10))


def test_catalog_sentencepiece_tokenizer_words_and_pretraining_step(tmp_path):
    """With the project's own tokenizer: a masked word is a whole '▁'-started run of pieces, and the batch trains."""
    from recformer_m2.models import RecformerForPretraining
    from recformer_m2.tokenizer import WORD_BOUNDARY, train_tokenizer

    lines = [
        "Anker PowerLine III USB-C Kabel Schwarz", "Samsung Galaxy Handyhülle transparent",
        "ソニー ワイヤレスイヤホン ブラック", "Apple iPhone Ladekabel weiß 2m", "Anker Powerbank 10000mAh",
    ] * 20
    tokenizer = train_tokenizer(lines, tmp_path / "tok", vocab_size=400)
    config = tiny_config(vocab_size=len(tokenizer), max_attr_length=32)
    collator = SessionCollator(tokenizer, config, mlm_probability=0.5, rng=0)
    session = [[("title", lines[0]), ("brand", "Anker")], [("title", lines[2])]]
    examples = [{"items": session, "next_item": [("title", lines[3])], "next_item_id": 0}]
    plain = SessionCollator(tokenizer, config, mlm_probability=0.0)(examples)["input_ids"][0]
    pieces = tokenizer.convert_ids_to_tokens(plain.tolist())
    words = _word_groups(collator, [session])[0]
    for _ in range(10):
        batch = collator(examples)
        chosen = (batch["mlm_labels"][0] != -100).numpy()
        for word in np.unique(words[words >= 0]):
            in_word = chosen[words == word]
            assert in_word.all() or not in_word.any()
    # Every value word starts with the boundary marker, and no other piece does.
    value = [i for i in range(len(words)) if words[i] >= 0]
    starts = [i for i in value if words[i] != words[i - 1]]
    assert len(starts) == len(np.unique(words[words >= 0])) >= 9
    assert all(pieces[i].startswith(WORD_BOUNDARY) for i in starts)
    assert not any(pieces[i].startswith(WORD_BOUNDARY) for i in set(value) - set(starts))
    torch.manual_seed(0)
    out = RecformerForPretraining(config)(**batch)
    assert torch.isfinite(out.loss)
