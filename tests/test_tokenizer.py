"""The catalog tokenizer: training, transformers compatibility, loading, and word grouping."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from recformer_m2.tokenizer import (
    SPM_MODEL_FILE,
    WORD_BOUNDARY,
    encode_words,
    load_tokenizer,
    special_token_ids,
    train_tokenizer,
)

VOCAB_SIZE = 500

# Per language: product nouns, colours, extras; titles are "brand noun extra size colour" (JP: its own order).
_WORDS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": (["USB Type-C Cable", "Wireless Mouse", "Coffee Machine", "Phone Case", "Garden Hose",
            "Kids Backpack"],
           ["Black", "White", "Red", "Blue", "Green"],
           ["for iPhone 14", "Fast Charging", "Waterproof", "2 Pack", "Stainless Steel"]),
    "de": (["USB-C Ladekabel", "Kabellose Maus", "Kaffeemaschine", "Handyhülle", "Gartenschlauch",
            "Kinderrucksack"],
           ["Schwarz", "Weiß", "Rot", "Blau", "Grün"],
           ["für iPhone 14", "Schnellladung", "Wasserdicht", "2er Pack", "Edelstahl"]),
    "ja": (["USB Type-C ケーブル", "ワイヤレスマウス", "コーヒーメーカー", "スマホケース", "ガーデンホース",
            "キッズリュック"],
           ["ブラック", "ホワイト", "レッド", "ブルー", "グリーン"],
           ["iPhone 14 対応", "急速充電", "防水", "2個セット", "ステンレス製"]),
    "es": (["Cable USB Tipo C", "Ratón Inalámbrico", "Cafetera", "Funda para Móvil", "Manguera de Jardín",
            "Mochila"],
           ["Negro", "Blanco", "Rojo", "Azul", "Verde"],
           ["para iPhone 14", "Carga Rápida", "Impermeable", "Pack de 2", "Acero Inoxidable"]),
    "fr": (["Câble USB Type C", "Souris Sans Fil", "Cafetière", "Coque de Téléphone", "Tuyau d'Arrosage",
            "Sac à Dos"],
           ["Noir", "Blanc", "Rouge", "Bleu", "Vert"],
           ["pour iPhone 14", "Charge Rapide", "Étanche", "Lot de 2", "Acier Inoxydable"]),
    "it": (["Cavo USB Tipo C", "Mouse Senza Fili", "Macchina da Caffè", "Custodia per Cellulare", "Tubo da Giardino",
            "Zaino per Bambini"],
           ["Nero", "Bianco", "Rosso", "Blu", "Verde"],
           ["per iPhone 14", "Ricarica Rapida", "Impermeabile", "Confezione da 2", "Acciaio Inossidabile"]),
}
_BRANDS = ["Elecom", "Anker", "Bosch", "Philips", "Sony", "Tefal", "Lego", "Samsung", "エレコム", "サンワサプライ"]

# Held-out titles, one per language; each has characters the corpus never shows (byte fallback).
UNSEEN = {
    "en": "Anker PowerCore 10000mAh Portable Charger, Quartz Grey ☃",
    "de": "Bosch Akku-Bohrschrauber 18V für Heimwerker, Größe XL – Ölbeständig",
    "ja": "エレコム USB Type-C ケーブル 1.0m ブラック 猫耳ヘッドホン【正規品】",
    "es": "Cafetera Italiana de Aluminio, 6 Tazas, Ñandú Edición",
    "fr": "Œuvre complète : Bouilloire électrique 1,7 L, façon « rétro »",
    "it": "Macchina per caffè espresso, perché è più buona — Però sì",
}


def catalog_lines(per_language: int = 60, seed: int = 0) -> list[str]:
    """A few hundred product-title-like lines in six languages, deterministic."""
    rng = random.Random(seed)
    lines = []
    for language, (nouns, colours, extras) in _WORDS.items():
        for _ in range(per_language):
            brand, noun = rng.choice(_BRANDS), rng.choice(nouns)
            colour, extra = rng.choice(colours), rng.choice(extras)
            size = f"{rng.randint(1, 3)}.{rng.randint(0, 9)}m"
            if language == "ja":
                lines.append(f"{brand} {noun} {size} {colour} {extra}")
            else:
                lines.append(f"{brand} {noun} {extra} {size} {colour}")
    return lines


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[PreTrainedTokenizerFast, Path]:
    """One tokenizer trained for the whole module (training takes well under a second)."""
    out = tmp_path_factory.mktemp("catalog_tok")
    return train_tokenizer(catalog_lines(), out, vocab_size=VOCAB_SIZE), out


@pytest.fixture(scope="module")
def tok(trained: tuple[PreTrainedTokenizerFast, Path]) -> PreTrainedTokenizerFast:
    return trained[0]


def test_trained_folder_holds_transformers_files_and_spm_model(trained):
    tokenizer, out = trained
    assert {"tokenizer.json", "tokenizer_config.json", SPM_MODEL_FILE} <= {p.name for p in out.iterdir()}
    assert tokenizer.is_fast
    assert len(tokenizer) == tokenizer.vocab_size == VOCAB_SIZE


@pytest.mark.parametrize("language", sorted(UNSEEN))
def test_round_trip_every_language_without_unk(tok, language):
    for text in [UNSEEN[language], *catalog_lines(per_language=3, seed=7)]:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == text


def test_japanese_title_pieces(tok):
    text = "エレコム USB Type-C ケーブル 1.0m ブラック"
    tokens = tok.convert_ids_to_tokens(tok(text, add_special_tokens=False)["input_ids"])
    assert tokens[0].startswith(WORD_BOUNDARY)
    assert sum(t.startswith(WORD_BOUNDARY) for t in tokens) == len(text.split())
    assert tok.convert_tokens_to_string(tokens) == text


def test_unseen_characters_fall_back_to_bytes(tok):
    tokens = tok.tokenize("☃")
    assert any(t.startswith("<0x") for t in tokens) and tok.unk_token not in tokens
    assert tok.decode(tok.convert_tokens_to_ids(tokens)) == "☃"


def test_nfkc_and_whitespace_normalisation(tok):
    ids = tok("ＵＳＢ　ケーブル\tﾌﾞﾗｯｸ  x")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "USB ケーブル ブラック x"


def test_matches_sentencepiece_segmentation(trained):
    tokenizer, out = trained
    sp = spm.SentencePieceProcessor(model_file=str(out / SPM_MODEL_FILE))
    assert sp.get_piece_size() == len(tokenizer)
    for text in catalog_lines() + list(UNSEEN.values()):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == sp.encode(text), text


def test_special_tokens_distinct_present_and_t5_layout(tok):
    ids = special_token_ids(tok)
    assert ids == {"pad": 0, "unk": 2, "cls": 3, "eos": 1, "sep": 4, "mask": 5}
    assert len(set(ids.values())) == len(ids)
    assert tok.bos_token_id == tok.cls_token_id
    assert tok.convert_tokens_to_ids(["<pad>", "</s>", "<unk>", "<s>", "<sep>", "<mask>"]) == [0, 1, 2, 3, 4, 5]
    assert set(ids.values()) <= set(tok.all_special_ids)
    # T5: labels from text_target end with eos; decoder_start_token_id is pad
    labels = tok(text_target=["Sony Wireless Mouse"])["input_ids"][0]
    assert labels[-1] == tok.eos_token_id and tok.pad_token_id not in labels
    assert tok("a", "b")["input_ids"].count(tok.eos_token_id) == 2


def test_special_token_ids_names_missing_tokens():
    wordlevel = _wordlevel_tokenizer()
    with pytest.raises(ValueError, match="mask_token"):
        special_token_ids(wordlevel, ("pad", "mask"))


def test_training_is_deterministic(tmp_path):
    lines = catalog_lines()
    first = train_tokenizer(lines, tmp_path / "a", vocab_size=VOCAB_SIZE)
    second = train_tokenizer(iter(lines), tmp_path / "b", vocab_size=VOCAB_SIZE)
    assert first.get_vocab() == second.get_vocab()
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_sampling_is_bounded_and_seeded(tmp_path, caplog):
    lines = catalog_lines()
    with caplog.at_level(logging.INFO, logger="recformer_m2.tokenizer"):
        a = train_tokenizer(lines, tmp_path / "a", vocab_size=400, max_sentences=80, seed=3)
    assert f"Sampled 80 of {len(lines)}" in caplog.text
    b = train_tokenizer(lines, tmp_path / "b", vocab_size=400, max_sentences=80, seed=3)
    assert a.get_vocab() == b.get_vocab()


def test_small_corpus_shrinks_vocab_with_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="recformer_m2.tokenizer"):
        small = train_tokenizer(catalog_lines(per_language=5), tmp_path / "s", vocab_size=50_000)
    assert len(small) < 50_000
    assert "too small for vocab_size=50000" in caplog.text
    assert small.decode(small("Sony ブラック")["input_ids"], skip_special_tokens=True) == "Sony ブラック"


def test_bad_training_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no non-empty text"):
        train_tokenizer(["", "   ", None], tmp_path / "e")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        train_tokenizer(catalog_lines(), tmp_path / "v", vocab_size=100)
    with pytest.raises(ValueError, match="vocab_size=300"):  # below the corpus's required characters
        train_tokenizer(catalog_lines(), tmp_path / "v", vocab_size=300)


def test_save_pretrained_and_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path / "saved")
    texts = list(UNSEEN.values())
    auto = AutoTokenizer.from_pretrained(str(tmp_path / "saved"), local_files_only=True)
    for reloaded in (load_tokenizer(tmp_path / "saved"), auto):
        assert reloaded(texts)["input_ids"] == tok(texts)["input_ids"]
        assert special_token_ids(reloaded) == special_token_ids(tok)
        assert len(reloaded) == len(tok)
        assert reloaded.batch_decode(tok(texts)["input_ids"], skip_special_tokens=True) == texts


def test_autotokenizer_loads_trained_folder(trained):
    tokenizer, out = trained
    auto = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    text = UNSEEN["ja"]
    assert auto(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert auto.mask_token_id == tokenizer.mask_token_id


def _wordlevel_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "[PAD]": 1, "usb": 2, "cable": 3, "black": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")


def test_load_other_local_hf_tokenizer(tmp_path):
    _wordlevel_tokenizer().save_pretrained(tmp_path / "wordlevel")
    other = load_tokenizer(tmp_path / "wordlevel")
    assert other("usb cable red")["input_ids"] == [2, 3, 0]
    assert other.pad_token_id == 1


def test_load_errors_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no tokenizer files"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing: does not exist"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "model")):
        load_tokenizer(tmp_path / "model")


def test_batch_padding_and_truncation(tok):
    texts = [UNSEEN["en"], "Sony", UNSEEN["ja"]]
    fixed = tok(texts, padding="max_length", truncation=True, max_length=8, return_tensors="pt")
    assert tuple(fixed["input_ids"].shape) == tuple(fixed["attention_mask"].shape) == (3, 8)
    assert fixed["input_ids"][0, -1].item() == tok.eos_token_id  # truncation keeps eos
    short = fixed["input_ids"][1].tolist()
    assert short[short.index(tok.eos_token_id) + 1:] == [tok.pad_token_id] * (8 - short.index(tok.eos_token_id) - 1)
    assert fixed["attention_mask"][1].sum().item() == short.index(tok.eos_token_id) + 1

    longest = tok(texts, padding=True, return_tensors="pt")
    lengths = [len(ids) for ids in tok(texts)["input_ids"]]
    assert tuple(longest["input_ids"].shape) == (3, max(lengths))
    assert longest["attention_mask"].sum(dim=1).tolist() == lengths


def test_encode_words_english(tok):
    text = "Anker USB Type-C Cable, 2 Pack"
    groups = encode_words(tok, text)
    assert [tok.decode(g) for g in groups] == text.split()
    assert [i for g in groups for i in g] == tok(text, add_special_tokens=False)["input_ids"]
    assert all(tok.convert_ids_to_tokens(g[0]).startswith(WORD_BOUNDARY) for g in groups)


def test_encode_words_japanese(tok):
    text = "エレコム USB Type-C ケーブル 1.0m ブラック　ワイヤレスマウス急速充電"
    groups = encode_words(tok, text)
    assert [tok.decode(g) for g in groups] == text.split()  # full-width space separates too
    assert len(groups[-1]) > 1  # an unspaced Japanese run is one word of several pieces
    assert [i for g in groups for i in g] == tok(text, add_special_tokens=False)["input_ids"]
    # agrees with the fast tokenizer's own word ids on this tokenizer
    encoding = tok(text, add_special_tokens=False)
    assert [len(g) for g in groups] == [encoding.word_ids().count(w) for w in range(len(groups))]
    assert encode_words(tok, "  \t ") == []


def test_encode_words_byte_level_bpe_keeps_whole_chunks():
    """On a Longformer-style byte-level BPE tokenizer word_ids() would split 'Type-C'; encode_words does not."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(catalog_lines(), trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bpe = PreTrainedTokenizerFast(tokenizer_object=backend)
    text = "Anker  USB Type-C ケーブル"
    groups = encode_words(bpe, text)
    assert len(groups) == 4
    assert [i for g in groups for i in g] == bpe(text, add_special_tokens=False)["input_ids"]
    assert bpe.decode([i for g in groups[2:] for i in g]) == " Type-C ケーブル"
