"""scripts/save_longformer_ckpt.py on a tiny random Longformer (hidden 32, 2 layers, window 4) and an
offline RoBERTa-layout tokenizer: what is copied, sliced, expanded and new, equality of the token
states with the source Longformer, strict reloading, and the errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import LongformerConfig, LongformerForMaskedLM, LongformerModel, PreTrainedTokenizerFast

from recformer_m2.models import RecformerForPretraining, RecformerModel, TokenType
from recformer_m2.tokenizer import load_tokenizer

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "save_longformer_ckpt.py"
_spec = importlib.util.spec_from_file_location("save_longformer_ckpt", SCRIPT)
ckpt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ckpt  # dataclasses look their module up there
_spec.loader.exec_module(ckpt)

SPECIAL = ("<s>", "<pad>", "</s>", "<unk>")
"""RoBERTa's layout: cls/bos 0, pad 1, eos/sep 2, unk 3 (mask comes last), so positions start at row 2."""
WORDS = "title brand color anker kabel usb power schwarz weiss case handy hülle cable charger black phone".split()
PAD = 1
POSITIONS = 64
"""Token positions of the converted model: the Longformer has POSITIONS + PAD + 1 rows."""
MAX_TOKEN_NUM = 48
TEXTS = ["title anker usb kabel brand anker color schwarz", "title phone case"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer with Longformer's special tokens and ``<s> text </s>`` framing, built offline."""
    vocab = {token: i for i, token in enumerate(SPECIAL + tuple(WORDS) + ("<mask>",))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(  # RoBERTa's <s> text </s>
        single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", cls_token="<s>", eos_token="</s>", sep_token="</s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )


def build_longformer(cls=LongformerForMaskedLM, seed: int = 0):
    """A tiny random Longformer; every weight is perturbed so that no copy check passes by accident (ones, zeros)."""
    config = LongformerConfig(
        vocab_size=len(build_tokenizer()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, attention_window=4, max_position_embeddings=POSITIONS + PAD + 1, type_vocab_size=1,
        pad_token_id=PAD, bos_token_id=0, eos_token_id=2, sep_token_id=2,
    )
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


def save_source(folder: Path, model) -> Path:
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(source LongformerForMaskedLM, its state dict, output folder, report), converted through the CLI entry point."""
    root = tmp_path_factory.mktemp("ckpt")
    source = build_longformer()
    src = save_source(root / "longformer", source)
    out = root / "recformer"
    report = ckpt.main([
        "--longformer", str(src), "--out", str(out),
        "--max-token-num", str(MAX_TOKEN_NUM), "--max-item-embeddings", "9",
    ])
    return source, source.state_dict(), out, report


def test_weights_are_copied_sliced_expanded_and_new_as_documented(converted):
    _, src, out, report = converted
    ours = load_file(str(out / "model.safetensors"))
    words = ours["recformer.embeddings.word_embeddings.weight"]
    assert torch.equal(words, src["longformer.embeddings.word_embeddings.weight"])
    layer_keys = [k for k in src if k.startswith("longformer.encoder.")]
    assert len(layer_keys) == 2 * 22  # 22 tensors per layer, global q/k/v included
    for key in layer_keys + ["longformer.embeddings.LayerNorm.weight", "longformer.embeddings.LayerNorm.bias"]:
        assert torch.equal(ours["recformer." + key[len("longformer."):]], src[key]), key
    for key in ("lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight", "lm_head.layer_norm.bias",
                "lm_head.bias"):
        assert torch.equal(ours[key], src[key]), key

    types = ours["recformer.embeddings.token_type_embeddings.weight"]
    assert types.shape == (len(TokenType), 32)
    for row in types:
        assert torch.equal(row, src["longformer.embeddings.token_type_embeddings.weight"][0])

    positions = ours["recformer.embeddings.position_embeddings.weight"]
    assert positions.shape == (POSITIONS, 32)
    assert torch.equal(positions, src["longformer.embeddings.position_embeddings.weight"][PAD + 1 :])
    assert torch.equal(ours["recformer.embeddings.item_position_embeddings.weight"], torch.zeros(9, 32))

    assert report.new == ["recformer.embeddings.item_position_embeddings.weight (zeros)"]
    assert report.expanded == [
        "recformer.embeddings.token_type_embeddings.weight "
        "(longformer.embeddings.token_type_embeddings.weight row 0 copied into each of 4 rows)"
    ]
    assert report.sliced == [
        "recformer.embeddings.position_embeddings.weight "
        f"(row i = longformer.embeddings.position_embeddings.weight row i + 2, i < {POSITIONS})"
    ]
    assert "longformer.embeddings.position_embeddings.weight[:2]" in report.dropped
    assert json.loads((out / "conversion.json").read_text())["copied"] == report.copied


def test_loads_strictly_with_its_tokenizer(converted):
    _, src, out, _ = converted
    model = RecformerForPretraining.from_pretrained_strict(out)
    assert model.lm_head.decoder.weight is model.recformer.embeddings.word_embeddings.weight
    assert torch.equal(model.lm_head.decoder.weight, src["longformer.embeddings.word_embeddings.weight"])
    assert model.config.pad_token_id == PAD and model.config.max_position_embeddings == POSITIONS
    assert model.config.max_token_num == MAX_TOKEN_NUM and model.config.attention_window == [4, 4]
    tokenizer = load_tokenizer(out)
    assert tokenizer(TEXTS)["input_ids"] == build_tokenizer()(TEXTS)["input_ids"]
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.mask_token_id) == (PAD, 0, len(tokenizer) - 1)


def test_token_states_match_the_longformer_on_plain_text(converted):
    source, _, out, _ = converted
    batch = build_tokenizer()(TEXTS, padding=True, return_tensors="pt")  # <s> ... </s> <pad>...
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids[0, 0] == 0 and (mask == 0).any()
    global_mask = torch.zeros_like(mask)
    global_mask[:, 0] = 1
    with torch.no_grad():
        expected = source.longformer(ids, attention_mask=mask, global_attention_mask=global_mask).last_hidden_state
        model = RecformerModel.from_pretrained_strict(out, allow_unexpected=["lm_head"]).eval()
        token_types = torch.full_like(ids, int(TokenType.VALUE))  # every row is a copy: any type would do
        got = model(ids, mask, token_types, torch.zeros_like(ids)).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=0)


def test_bare_longformer_model_drops_the_pooler_and_gets_a_new_lm_head(tmp_path):
    source = build_longformer(LongformerModel)
    src = save_source(tmp_path / "bare", source)
    report = ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM)
    assert set(report.dropped) >= {"pooler.dense.weight", "pooler.dense.bias"}
    assert sorted(report.new) == sorted(
        ["recformer.embeddings.item_position_embeddings.weight (zeros)"]
        + [f"lm_head.{name} (model init)" for name in ("bias", "dense.weight", "dense.bias", "layer_norm.weight",
                                                       "layer_norm.bias")]
    )
    model = RecformerForPretraining.from_pretrained_strict(tmp_path / "out")
    assert torch.equal(model.lm_head.bias, torch.zeros(len(build_tokenizer())))
    assert torch.equal(model.recformer.embeddings.word_embeddings.weight, source.embeddings.word_embeddings.weight)


def test_old_bin_checkpoint_with_tied_decoder_and_position_ids_buffer(tmp_path):
    source = build_longformer()
    src = save_source(tmp_path / "old", source)
    state = {key: value.clone() for key, value in source.state_dict().items()}  # decoder weight and bias included
    state["longformer.embeddings.position_ids"] = torch.arange(POSITIONS + PAD + 1).unsqueeze(0)
    (src / "model.safetensors").unlink()
    torch.save(state, src / "pytorch_model.bin")
    report = ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM)
    assert report.dropped["lm_head.decoder.weight"] == "tied to the word embeddings"
    assert "longformer.embeddings.position_ids" in report.dropped

    untied = dict(state, **{"lm_head.decoder.weight": state["lm_head.decoder.weight"] + 1.0})
    torch.save(untied, src / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"lm_head\.decoder\.weight differs from the word embeddings"):
        ckpt.convert(src, tmp_path / "out2", max_token_num=MAX_TOKEN_NUM)


def test_unknown_source_weight_is_named(tmp_path):
    src = save_source(tmp_path / "extra", build_longformer())
    state = load_file(str(src / "model.safetensors"))
    state["longformer.adapter.weight"] = torch.zeros(3)
    save_file(state, str(src / "model.safetensors"))
    with pytest.raises(ValueError, match=r"neither used nor deliberately dropped: \['longformer\.adapter\.weight'\]"):
        ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM)
    assert not (tmp_path / "out").exists()


def test_weight_missing_from_the_source_is_named(tmp_path):
    src = save_source(tmp_path / "short", build_longformer())
    state = load_file(str(src / "model.safetensors"))
    del state["longformer.encoder.layer.1.output.dense.bias"]
    save_file(state, str(src / "model.safetensors"))
    with pytest.raises(ValueError, match=r"nothing for the Recformer weights \['recformer\.encoder\.layer\.1\.output"):
        ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM)


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Longformer checkpoint folder .*nowhere does not exist"):
        ckpt.main(["--longformer", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])


def test_too_many_positions_and_non_longformer_configs_are_refused(tmp_path):
    src = save_source(tmp_path / "src", build_longformer())
    with pytest.raises(ValueError, match=rf"max_position_embeddings=100 but the Longformer has {POSITIONS + 2} .* "
                                         rf"{POSITIONS} follow the padding row"):
        ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM, max_position_embeddings=100)
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(config, model_type="roberta")))
    with pytest.raises(ValueError, match=r"model_type is 'roberta', expected 'longformer'"):
        ckpt.convert(src, tmp_path / "out", max_token_num=MAX_TOKEN_NUM)


def test_refuses_to_overwrite_without_the_flag(converted, tmp_path):
    _, _, out, _ = converted
    src = save_source(tmp_path / "src", build_longformer())
    with pytest.raises(FileExistsError, match="--overwrite"):
        ckpt.convert(src, out, max_token_num=MAX_TOKEN_NUM)


def test_item_positions_can_take_the_models_normal_init(tmp_path):
    src = save_source(tmp_path / "src", build_longformer())
    report = ckpt.convert(src, tmp_path / "out", item_position_init="normal", max_token_num=MAX_TOKEN_NUM,
                          max_item_embeddings=51)
    assert report.new == ["recformer.embeddings.item_position_embeddings.weight (normal)"]
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    rows = weights["recformer.embeddings.item_position_embeddings.weight"]
    assert rows.shape == (51, 32) and 0.015 < rows.std().item() < 0.025  # initializer_range 0.02
