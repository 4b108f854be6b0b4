"""The dense attention path against transformers' Longformer sliding chunks (the slow exact one): random weights,
fp32 on the CPU, eval mode, padded batches of different lengths with global attention on CLS."""

from __future__ import annotations

import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from recformer_m2.models import RecformerConfig, RecformerForPretraining, RecformerModel, SessionCollator
from recformer_m2.models.attention import DenseEncoder, DenseSelfAttention
from tests.test_collator import build_tiny_tokenizer, tiny_config
from tests.test_recformer_model import ITEMS

IMPLEMENTATIONS = ("longformer", "dense")
TOLERANCE = dict(atol=1e-5, rtol=1e-5)


def pair(cls, seed: int = 0, **overrides) -> dict[str, torch.nn.Module]:
    """The same model (same seed, so the same weights) with each attention implementation, in eval mode."""
    models = {}
    for implementation in IMPLEMENTATIONS:
        torch.manual_seed(seed)
        models[implementation] = cls(tiny_config(attention_implementation=implementation, **overrides)).eval()
    return models


def random_batch(lengths: list[int], vocab: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded ``(B, max(lengths))`` inputs in the collator's layout: CLS first, item positions from 1."""
    g = torch.Generator().manual_seed(seed)
    batch_size, seq_len = len(lengths), max(lengths)
    mask = (torch.arange(seq_len)[None] < torch.tensor(lengths)[:, None]).long()  # (B, L)
    input_ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g) * mask
    input_ids[:, 0] = 3  # CLS
    token_type_ids = torch.where(mask.bool(), torch.randint(1, 3, (batch_size, seq_len), generator=g), 3)
    token_type_ids[:, 0] = 0
    item_positions = torch.sort(torch.randint(1, 5, (batch_size, seq_len), generator=g), dim=1).values * mask
    item_positions[:, 0] = 0
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_type_ids,
            "item_position_ids": item_positions}


def collated_batch(**config_overrides) -> dict[str, torch.Tensor]:
    """Sessions of 1 to 3 items through the real collator, with MLM masking and next items."""
    collator = SessionCollator(build_tiny_tokenizer(), tiny_config(**config_overrides), mlm_probability=0.3, rng=0)
    return collator([
        {"items": [ITEMS[0], ITEMS[1], ITEMS[3]], "next_item": ITEMS[2], "next_item_id": 2},
        {"items": [ITEMS[4]], "next_item": ITEMS[0], "next_item_id": 0},
        {"items": [ITEMS[2], ITEMS[0]], "next_item": ITEMS[1], "next_item_id": 1},
    ])


def encoder_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "item_position_ids")}


def test_same_modules_keys_and_seeded_weights():
    models = pair(RecformerForPretraining, attention_window=[4, 6])
    slow, fast = (models[i].state_dict() for i in IMPLEMENTATIONS)
    assert list(slow) == list(fast)
    assert all(torch.equal(slow[k], fast[k]) for k in slow)  # building the dense path draws no random numbers
    assert isinstance(models["dense"].recformer.encoder, DenseEncoder)
    assert all(isinstance(layer.attention.self, DenseSelfAttention)
               for layer in models["dense"].recformer.encoder.layer)
    assert not any(p.is_meta for p in models["dense"].parameters())


@pytest.mark.parametrize("window", [4, [4, 6], 16])
@pytest.mark.parametrize("pooler_type", ["cls", "mean", "mean_last"])
def test_dense_model_equals_longformer(window, pooler_type):
    models = pair(RecformerModel, attention_window=window, pooler_type=pooler_type)
    batch = random_batch([37, 9, 1, 20, 36])  # padding, different lengths, one CLS-only row
    out = {i: m(**batch, output_hidden_states=True) for i, m in models.items()}
    torch.testing.assert_close(out["dense"].last_hidden_state, out["longformer"].last_hidden_state, **TOLERANCE)
    torch.testing.assert_close(out["dense"].pooler_output, out["longformer"].pooler_output, **TOLERANCE)
    assert len(out["dense"].hidden_states) == len(out["longformer"].hidden_states) == 3
    for fast, slow in zip(out["dense"].hidden_states, out["longformer"].hidden_states):
        torch.testing.assert_close(fast, slow, **TOLERANCE)


def test_dense_pretraining_loss_and_gradients_equal_longformer():
    models = pair(RecformerForPretraining, attention_window=[4, 6], pooler_type="mean_last", contrast_unmasked=True)
    batch = collated_batch()
    assert batch["attention_mask"].shape[1] > 6 and not batch["attention_mask"].all()  # bands and padding matter
    losses, grads = {}, {}
    for implementation, model in models.items():
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
        out.loss.backward()
        losses[implementation] = (out.loss.detach(), out.mlm_loss.detach(), out.item_cl_loss.detach())
        grads[implementation] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses["dense"], losses["longformer"], **TOLERANCE)
    assert set(grads["dense"]) == set(grads["longformer"])
    assert any("query_global" in n for n in grads["dense"])  # CLS's own projections are trained too
    for name, slow in grads["longformer"].items():
        torch.testing.assert_close(grads["dense"][name], slow, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


def test_config_json_without_the_field_loads_as_before(tmp_path):
    torch.manual_seed(0)
    saved = RecformerModel(tiny_config(attention_implementation="longformer")).eval()
    saved.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["attention_implementation"]  # a folder written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(config))

    loaded = RecformerModel.from_pretrained(tmp_path).eval()
    assert loaded.config.attention_implementation == "dense"
    assert isinstance(loaded.encoder, DenseEncoder)
    slow = RecformerModel.from_pretrained(tmp_path, attention_implementation="longformer").eval()
    assert slow.config.attention_implementation == "longformer" and not isinstance(slow.encoder, DenseEncoder)
    batch = random_batch([12, 5, 9])
    expected = saved(**batch).last_hidden_state
    torch.testing.assert_close(loaded(**batch).last_hidden_state, expected, **TOLERANCE)
    assert torch.equal(slow(**batch).last_hidden_state, expected)


def test_state_dicts_load_across_implementations():
    models = pair(RecformerModel, seed=1)
    torch.manual_seed(2)
    other = RecformerModel(tiny_config(attention_implementation="longformer")).eval()
    models["dense"].load_state_dict(other.state_dict())  # strict: every key matches
    batch = random_batch([15, 7])
    torch.testing.assert_close(models["dense"](**batch).last_hidden_state, other(**batch).last_hidden_state,
                               **TOLERANCE)


def host_reads(model: torch.nn.Module, batch: dict) -> int:
    """How many times a forward pass reads a value from the device to the host (``.item()``, ``nonzero``)."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(**batch)
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::_local_scalar_dense", "aten::nonzero"))


def test_dense_encoder_reads_nothing_back_from_the_device():
    models = pair(RecformerModel, pooler_type="mean")
    batch = random_batch([30, 11, 4])
    assert host_reads(models["longformer"], batch) > 0  # the sliding chunks' global indices, in every layer
    assert host_reads(models["dense"], batch) == 0


def test_dense_refuses_attention_probabilities_and_unknown_implementations():
    model = pair(RecformerModel)["dense"]
    with pytest.raises(ValueError, match="attention_implementation='longformer'"):
        model(**random_batch([6, 3]), output_attentions=True)
    with pytest.raises(ValueError, match=r"attention_implementation must be one of .*'flash'"):
        RecformerConfig(attention_implementation="flash")
