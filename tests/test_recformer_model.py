"""Recformer config, encoder and heads on tiny configs (hidden 32, 2 layers, window 4): shapes, padding,
losses against hand computations, training steps, strict save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from recformer_m2.models import (
    RecformerConfig,
    RecformerForPretraining,
    RecformerForSeqRec,
    RecformerModel,
    SessionCollator,
    item_contrastive_loss,
    table_contrastive_loss,
)
from recformer_m2.models import modeling_recformer
from tests.test_collator import build_tiny_tokenizer, tiny_config

ENCODER_KEYS = ("input_ids", "attention_mask", "token_type_ids", "item_position_ids")

ITEMS = [
    [("title", "anker powerline usbc kabel"), ("brand", "anker"), ("color", "schwarz")],
    [("title", "samsung galaxy handy hülle"), ("brand", "samsung")],
    [("title", "iphone lade kabel"), ("color", "weiss")],
    [("title", "wireless charger stand"), ("brand", "anker")],
    [("title", "phone case blue")],
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def make_model(cls, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return cls(tiny_config(**overrides)).eval()


def encoder_inputs(batch: dict) -> dict:
    return {key: batch[key] for key in ENCODER_KEYS}


def pretraining_batch(tokenizer, **config_overrides) -> dict:
    collator = SessionCollator(tokenizer, tiny_config(**config_overrides), mlm_probability=0.3, rng=0)
    examples = [
        {"items": [ITEMS[0], ITEMS[1]], "next_item": ITEMS[2], "next_item_id": 2},
        {"items": [ITEMS[3]], "next_item": ITEMS[4], "next_item_id": 4},
        {"items": [ITEMS[2], ITEMS[0], ITEMS[3]], "next_item": ITEMS[1], "next_item_id": 1},
    ]
    return collator(examples)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, r"hidden size \(30\) is not a multiple .* heads \(4\)"),
        ({"attention_window": 3}, r"even and positive, got \[3\]"),
        ({"attention_window": [4, 0]}, r"even and positive, got \[0\]"),
        ({"attention_window": [4, 4, 4]}, r"3 entries .* num_hidden_layers is 2"),
        ({"pooler_type": "max"}, r"pooler_type .* got 'max'"),
        ({"temperature": 0.0}, r"temperature must be positive, got 0.0"),
        ({"max_token_num": 128}, r"max_position_embeddings \(64\) is smaller than max_token_num \(128\)"),
        ({"max_item_embeddings": 1}, r"max_item_embeddings must be at least 2"),
        ({"token_type_size": 2}, r"token_type_size \(2\)"),
        ({"mlm_weight": -1.0}, r"mlm_weight=-1.0"),
    ],
)
def test_config_validation_names_the_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_config_fields_are_type_checked():
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises(StrictDataclassFieldValidationError, match="max_attr_num"):
        tiny_config(max_attr_num=2.5)


def test_config_round_trip_and_auto_registration(tmp_path):
    config = tiny_config(pooler_type="mean", temperature=0.1)
    assert config.attention_window == [4, 4]
    config.save_pretrained(tmp_path)
    loaded = RecformerConfig.from_pretrained(tmp_path, local_files_only=True)
    assert (loaded.pooler_type, loaded.temperature, loaded.max_item_embeddings) == ("mean", 0.1, 8)
    torch.manual_seed(0)
    RecformerModel(config).save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path, local_files_only=True), RecformerModel)


def test_output_shapes(tokenizer):
    batch = pretraining_batch(tokenizer)
    B, L = batch["input_ids"].shape
    encoder = make_model(RecformerModel)
    out = encoder(**encoder_inputs(batch), output_hidden_states=True)
    assert out.last_hidden_state.shape == (B, L, 32) and out.pooler_output.shape == (B, 32)
    assert len(out.hidden_states) == 3 and all(h.shape == (B, L, 32) for h in out.hidden_states)

    pre = make_model(RecformerForPretraining)(**batch)
    num_masked = int((batch["mlm_labels"] != -100).sum())
    assert pre.mlm_logits.shape == (num_masked, 64)
    assert pre.session_embeddings.shape == pre.item_embeddings.shape == (B, 32)
    assert pre.loss.ndim == 0 and 0 <= int(pre.cl_correct) <= B

    seqrec = make_model(RecformerForSeqRec)
    seqrec.set_item_embeddings(torch.randn(7, 32))
    scores = seqrec(**encoder_inputs(batch), labels=torch.tensor([0, 3, 6])).scores
    assert scores.shape == (B, 7)
    sampled = seqrec(**encoder_inputs(batch), labels=torch.tensor([0, 3, 6]), num_negatives=4).scores
    assert sampled.shape == (B, 5)


@pytest.mark.parametrize("implementation", ["longformer", "dense"])
@pytest.mark.parametrize("window", [4, [4, 6]])
def test_pads_to_the_attention_window_and_unpads(tokenizer, window, implementation):
    model = make_model(RecformerModel, attention_window=window, attention_implementation=implementation)
    batch = {
        "input_ids": torch.tensor([[3, 6, 7, 8, 9]]),
        "attention_mask": torch.ones(1, 5, dtype=torch.long),
        "token_type_ids": torch.tensor([[0, 1, 2, 2, 2]]),
        "item_position_ids": torch.tensor([[0, 1, 1, 1, 1]]),
    }
    out = model(**batch, output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, 5, 32)
    assert all(h.shape == (1, 5, 32) for h in out.hidden_states)
    if implementation == "longformer":  # lcm, so every layer's window divides the length
        assert model.pad_multiple == (4 if window == 4 else 12)
    else:  # dense: 8-aligned SDPA masks
        assert model.pad_multiple == 8


@pytest.mark.parametrize("pooler_type", ["cls", "mean", "mean_last"])
def test_padding_invariance(tokenizer, pooler_type):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    model = make_model(RecformerModel, pooler_type=pooler_type)
    short = [ITEMS[4]]
    alone = collator([{"items": short}])
    batched = collator([{"items": short}, {"items": ITEMS[:4]}])
    assert batched["input_ids"].shape[1] > alone["input_ids"].shape[1] + 4  # padded past one more window
    with torch.no_grad():
        single = model(**alone).pooler_output[0]
        in_batch = model(**batched).pooler_output[0]
    torch.testing.assert_close(single, in_batch, atol=1e-5, rtol=0)


def test_mean_last_pooling_by_hand(tokenizer):
    """Normalised session mean plus the learned weight times the normalised encoding of the newest item alone."""
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    sessions = [ITEMS[:3], [ITEMS[4]], ITEMS[1:4]]
    batch = collator([{"items": items} for items in sessions])
    model = make_model(RecformerModel, pooler_type="mean_last")
    mean = make_model(RecformerModel, pooler_type="mean")  # same seed: same weights
    assert model.last_item_weight.item() == RecformerModel.LAST_ITEM_WEIGHT_INIT
    with torch.no_grad():
        model.last_item_weight.fill_(0.7)
        pooled = model(**batch).pooler_output
        sessions_mean = mean(**batch).pooler_output
        newest_alone = mean(**collator.collate_items([items[-1] for items in sessions])).pooler_output  # written last
        items_pooled = model(**collator.collate_items(ITEMS)).pooler_output
        items_mean = mean(**collator.collate_items(ITEMS)).pooler_output
    expected = F.normalize(sessions_mean, dim=-1) + 0.7 * F.normalize(newest_alone, dim=-1)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=0)
    # An item alone points where "mean" pooling puts it: item tables are the same under both poolers.
    torch.testing.assert_close(F.normalize(items_pooled, dim=-1), F.normalize(items_mean, dim=-1), atol=1e-5, rtol=0)


def test_mean_last_weight_learns_and_loads(tokenizer, tmp_path):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": ITEMS[:i], "label": i} for i in range(1, 5)])
    model = make_model(RecformerForSeqRec, pooler_type="mean_last")
    with torch.no_grad():
        model.set_item_embeddings(model.recformer(**collator.collate_items(ITEMS)).pooler_output)
    model.train()
    model(**batch).loss.backward()
    assert model.recformer.last_item_weight.grad is not None and model.recformer.last_item_weight.grad != 0
    model.save_pretrained(tmp_path / "seqrec")
    loaded = RecformerForSeqRec.from_pretrained_strict(tmp_path / "seqrec")
    assert loaded.config.pooler_type == "mean_last"
    assert torch.equal(loaded.recformer.last_item_weight, model.recformer.last_item_weight)
    # A mean-pooled checkpoint can be finetuned with mean_last: the weight is new and must be allowed as such.
    make_model(RecformerForSeqRec, pooler_type="mean").save_pretrained(tmp_path / "mean")
    with pytest.raises(ValueError, match=r"missing from the checkpoint .*'recformer\.last_item_weight'"):
        RecformerForSeqRec.from_pretrained_strict(tmp_path / "mean", pooler_type="mean_last")
    switched = RecformerForSeqRec.from_pretrained_strict(tmp_path / "mean", pooler_type="mean_last",
                                                         allow_missing=["recformer.last_item_weight"])
    assert switched.recformer.last_item_weight.item() == RecformerModel.LAST_ITEM_WEIGHT_INIT


def test_session_and_item_encoders_agree_on_one_item_session(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    examples = [{"items": [item], "next_item": item, "next_item_id": i} for i, item in enumerate(ITEMS)]
    with torch.no_grad():
        out = make_model(RecformerForPretraining)(**collator(examples))
    torch.testing.assert_close(out.session_embeddings, out.item_embeddings, atol=1e-6, rtol=0)
    assert int(out.cl_correct) == len(ITEMS)


def test_mlm_loss_ignores_unlabelled_positions(tokenizer):
    batch = pretraining_batch(tokenizer)
    model = make_model(RecformerForPretraining)
    labels = batch["mlm_labels"]
    assert (labels != -100).sum() > 0 and (labels == -100).sum() > 0
    with torch.no_grad():
        out = model(**{k: v for k, v in batch.items() if not k.startswith("next_")})
        hidden = model.recformer(**encoder_inputs(batch)).last_hidden_state
        full_logits = model.lm_head(hidden)  # (B, L, V)
    expected = F.cross_entropy(full_logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.mlm_loss, expected)
    assert out.item_cl_loss is None
    torch.testing.assert_close(out.loss, model.config.mlm_weight * expected)

    # No labelled position: a zero loss that still backpropagates, not NaN.
    empty = model(**{**encoder_inputs(batch), "mlm_labels": torch.full_like(labels, -100)})
    assert empty.mlm_loss.item() == 0.0 and empty.mlm_loss.requires_grad


def test_contrastive_loss_masks_in_batch_duplicates():
    torch.manual_seed(0)
    sessions, items = torch.randn(4, 8), torch.randn(4, 8)
    item_ids = torch.tensor([5, 9, 5, 7])  # rows 0 and 2 share their next item
    loss, correct, logits = item_contrastive_loss(sessions, items, 0.05, item_ids)

    cos = F.normalize(sessions, dim=-1) @ F.normalize(items, dim=-1).T / 0.05
    cos[0, 2] = cos[2, 0] = float("-inf")  # the same item is not a negative of its own positive
    torch.testing.assert_close(logits, cos)
    torch.testing.assert_close(loss, F.cross_entropy(cos, torch.arange(4)))
    assert int(correct) == int((cos.argmax(-1) == torch.arange(4)).sum())

    unmasked, _, _ = item_contrastive_loss(sessions, items, 0.05)
    assert not torch.isclose(loss, unmasked)


def test_contrastive_candidates_gathered_across_ranks(monkeypatch):
    """Simulated rank 1 of 2: candidates are [rank 0's rows, own rows], gradient reaches own rows only."""
    other_items, other_ids = torch.randn(2, 8), torch.tensor([3, 9])
    fake_dist = modeling_recformer.dist
    monkeypatch.setattr(fake_dist, "is_initialized", lambda: True)
    monkeypatch.setattr(fake_dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(fake_dist, "get_rank", lambda: 1)

    def all_gather(parts, tensor):
        parts[0].copy_(other_ids if tensor.dtype == torch.long else other_items)
        parts[1].copy_(tensor)

    monkeypatch.setattr(fake_dist, "all_gather", all_gather)
    sessions = torch.randn(2, 8)
    items = torch.randn(2, 8, requires_grad=True)
    loss, _, logits = item_contrastive_loss(sessions, items, 0.1, torch.tensor([9, 4]))
    assert logits.shape == (2, 4)
    assert logits[0, 1] == float("-inf")  # rank 0's item 9 duplicates row 0's positive
    candidates = F.normalize(torch.cat([other_items, items.detach()]), dim=-1)
    expected = F.normalize(sessions, dim=-1) @ candidates.T / 0.1
    expected[0, 1] = float("-inf")
    torch.testing.assert_close(loss, F.cross_entropy(expected, torch.tensor([2, 3])))
    loss.backward()
    assert items.grad is not None and items.grad.abs().sum() > 0


def test_table_contrastive_loss_by_hand():
    """Two sessions, a 4-row table in two locales: each competes with its positive's locale only."""
    sessions = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    table = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]), dim=-1)
    groups = torch.tensor([0, 0, 1, 1])
    labels = torch.tensor([1, 2])  # session 0 in locale 0, session 1 in locale 1
    loss, correct, logits = table_contrastive_loss(sessions, table, labels, 0.5, groups)
    r = 2 ** -0.5
    inf = float("-inf")
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0, inf, inf], [inf, inf, 2 * r, 0.0]]))
    # row 0: -log(e^0 / (e^2 + e^0)); row 1: -log(e^{2r} / (e^{2r} + e^0))
    want = (torch.log1p(torch.exp(torch.tensor(2.0))) + torch.log1p(torch.exp(torch.tensor(-2 * r)))) / 2
    torch.testing.assert_close(loss, want)
    assert int(correct) == 1  # session 1 ranks its positive first, session 0 does not
    plain, _, all_logits = table_contrastive_loss(sessions, table, labels, 0.5)
    assert torch.isfinite(all_logits).all() and plain > loss
    # a bias of 2 on row 1 lifts session 0's positive level with row 0: loss -log(1/2) for that row
    biased, correct, logits = table_contrastive_loss(sessions, table, labels, 0.5, groups,
                                                     torch.tensor([0.0, 2.0, 0.0, 0.0]))
    torch.testing.assert_close(logits[0, :2], torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(biased, (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(-2 * r)))) / 2)


def test_pretraining_against_an_item_table(tokenizer):
    """With a table, ``labels`` replace the next-item pass: the loss is MLM plus the table softmax, it trains
    the session encoder, and mixing the two contrasts or forgetting the table is refused."""
    batch = pretraining_batch(tokenizer)
    inputs = {k: v for k, v in batch.items() if not k.startswith("next_") and k != "item_ids"}
    model = make_model(RecformerForPretraining)
    with torch.no_grad():  # the table: every item encoded alone, as the pretraining run does
        table = model.recformer(**SessionCollator(tokenizer, tiny_config(), 0.0).collate_items(ITEMS)).pooler_output
    labels = torch.tensor([2, 4, 1])  # the next items of pretraining_batch
    with pytest.raises(RuntimeError, match="set_item_embeddings"):
        model(**inputs, labels=labels)
    model.set_item_embeddings(table, groups=torch.zeros(table.shape[0], dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        model(**batch, labels=labels)
    out = model(**inputs, labels=labels)
    with torch.no_grad():
        sessions = model.recformer(**encoder_inputs(inputs)).pooler_output
    want_cl, _, _ = table_contrastive_loss(sessions, model.item_embeddings, labels, 0.05, model.item_groups)
    torch.testing.assert_close(out.item_cl_loss, want_cl, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, model.config.mlm_weight * out.mlm_loss + want_cl, atol=1e-5, rtol=1e-5)
    bias = torch.linspace(0.0, 1.0, table.shape[0])
    model.set_item_embeddings(table, torch.zeros(table.shape[0], dtype=torch.long), bias)
    with torch.no_grad():
        biased = model(**inputs, labels=labels)
    want_biased, _, _ = table_contrastive_loss(sessions, model.item_embeddings, labels, 0.05, None, bias)
    torch.testing.assert_close(biased.item_cl_loss, want_biased, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="item bias must have shape"):
        model.set_item_embeddings(table, bias=bias[:2])
    first, final = _train(model, {**inputs, "labels": labels})
    assert final < first
    assert not {"item_embeddings", "item_bias", "item_groups"} & set(model.state_dict())  # derived: never saved


@pytest.mark.parametrize("unmasked", [False, True])
def test_contrast_reads_the_masked_or_the_written_session(tokenizer, unmasked):
    """MLM always reads the masked session; the contrastive loss reads it too, or with ``contrast_unmasked``
    the session as written (mask tokens put back to the words they hid)."""
    masked = pretraining_batch(tokenizer)
    assert (masked["mlm_labels"] != -100).any()
    written = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)(
        [{"items": [ITEMS[0], ITEMS[1]]}, {"items": [ITEMS[3]]}, {"items": [ITEMS[2], ITEMS[0], ITEMS[3]]}])
    restored = torch.where(masked["mlm_labels"] != -100, masked["mlm_labels"], masked["input_ids"])
    torch.testing.assert_close(restored, written["input_ids"])
    model = make_model(RecformerForPretraining, contrast_unmasked=unmasked)
    with torch.no_grad():
        out = model(**masked)
        read = written if unmasked else masked
        sessions = model.recformer(**encoder_inputs(read)).pooler_output
        items = model.recformer(**{k[len("next_"):]: v for k, v in masked.items() if k.startswith("next_")})
        want, _, _ = item_contrastive_loss(sessions, items.pooler_output, 0.05, masked["item_ids"])
        mlm_only = model(**{k: v for k, v in masked.items() if k in (*ENCODER_KEYS, "mlm_labels")})
    torch.testing.assert_close(out.item_cl_loss, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mlm_loss, mlm_only.mlm_loss)
    torch.testing.assert_close(out.session_embeddings, sessions, atol=1e-5, rtol=1e-5)


def test_seqrec_full_softmax_matches_hand_computation(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": ITEMS[:2], "label": 3}, {"items": [ITEMS[4]], "label": 0}])
    model = make_model(RecformerForSeqRec)
    torch.manual_seed(1)
    table = torch.randn(6, 32)
    model.set_item_embeddings(table)
    with torch.no_grad():
        out = model(**batch)
        sessions = model.recformer(**encoder_inputs(batch)).pooler_output
    scores = F.cosine_similarity(sessions[:, None, :], table[None, :, :], dim=-1) / 0.05  # (B, N)
    torch.testing.assert_close(out.scores, scores, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.loss, F.cross_entropy(scores, batch["labels"]), atol=1e-5, rtol=1e-5)


def test_popularity_prior_adds_weight_times_prior_and_learns_its_weight(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": ITEMS[:2], "label": 3}, {"items": [ITEMS[4]], "label": 0}])
    model = make_model(RecformerForSeqRec)
    assert float(model.prior_weight) == RecformerForSeqRec.PRIOR_WEIGHT_INIT
    table, prior = torch.randn(6, 32), torch.tensor([0.0, 1.0, 2.0, 0.5, 0.0, 3.0])
    model.set_item_embeddings(table)
    with torch.no_grad():
        plain = model(**batch).scores
    model.set_item_embeddings(table, prior)
    out = model(**batch)
    torch.testing.assert_close(out.scores, plain + 0.5 * prior[None, :], atol=1e-5, rtol=1e-5)
    out.loss.backward()
    assert model.prior_weight.grad is not None and model.prior_weight.grad != 0
    sampled = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=batch["labels"], num_negatives=3,
                    generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(sampled.loss)
    with pytest.raises(ValueError, match="item prior must have shape"):
        model.set_item_embeddings(table, prior[:4])


def test_item_groups_keep_each_session_to_its_own_groups_items(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": ITEMS[:2], "label": 3}, {"items": [ITEMS[4]], "label": 0}])
    model = make_model(RecformerForSeqRec)
    table, groups = torch.randn(6, 32), torch.tensor([0, 1, 0, 1, 0, 1])
    model.set_item_embeddings(table, groups=groups)
    with torch.no_grad():
        plain = model(**batch).scores
        out = model(**batch, groups=torch.tensor([1, 0]))
    mine = torch.tensor([[False, True, False, True, False, True], [True, False, True, False, True, False]])
    torch.testing.assert_close(out.scores[mine], plain[mine])
    assert torch.isinf(out.scores[~mine]).all()
    # the loss is the softmax over the session's group only
    want = F.cross_entropy(plain[mine].view(2, 3), torch.tensor([1, 0]))
    torch.testing.assert_close(out.loss, want, atol=1e-5, rtol=1e-5)
    model.set_item_embeddings(table)
    with pytest.raises(ValueError, match="groups given but the item table has none"):
        model(**batch, groups=torch.tensor([1, 0]))


def test_sampled_negatives_never_include_the_positive(tokenizer):
    labels = torch.tensor([0, 1, 2, 2, 0])
    generator = torch.Generator().manual_seed(0)
    negatives = RecformerForSeqRec.sample_negatives(labels, 3, 200, generator)
    assert negatives.shape == (5, 200)
    assert not (negatives == labels[:, None]).any()
    assert negatives.min() >= 0 and negatives.max() <= 2
    for row, label in enumerate(labels.tolist()):  # every other item is reachable
        assert set(negatives[row].tolist()) == {0, 1, 2} - {label}

    model = make_model(RecformerForSeqRec)
    model.set_item_embeddings(torch.randn(3, 32))
    batch = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)([{"items": [item]} for item in ITEMS])
    with torch.no_grad():
        out = model(**batch, labels=labels, num_negatives=4, generator=torch.Generator().manual_seed(1))
        sessions = F.normalize(model.recformer(**batch).pooler_output, dim=-1)
    negatives = RecformerForSeqRec.sample_negatives(labels, 3, 4, torch.Generator().manual_seed(1))
    candidates = torch.cat([labels[:, None], negatives], dim=1)  # positive first
    expected = (sessions[:, None, :] * model.item_embeddings[candidates]).sum(-1) / 0.05
    torch.testing.assert_close(out.scores, expected, atol=1e-5, rtol=1e-5)
    zeros = torch.zeros(5, dtype=torch.long)
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, zeros), atol=1e-5, rtol=1e-5)


def _train(model, batch: dict, steps: int = 5) -> tuple[float, float]:
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = model(**batch).loss.item()
    return losses[0], final


def test_training_steps_reduce_pretraining_loss(tokenizer):
    batch = pretraining_batch(tokenizer)
    first, final = _train(make_model(RecformerForPretraining), batch)
    assert final < first


def test_training_steps_reduce_seqrec_loss(tokenizer):
    collator = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)
    batch = collator([{"items": ITEMS[:i], "label": i} for i in range(1, 5)])
    model = make_model(RecformerForSeqRec)
    with torch.no_grad():
        model.set_item_embeddings(model.recformer(**collator.collate_items(ITEMS)).pooler_output)
    first, final = _train(model, batch)
    assert final < first


def test_save_and_load_round_trip(tokenizer, tmp_path):
    batch = pretraining_batch(tokenizer)
    model = make_model(RecformerForPretraining, seed=3)
    model.save_pretrained(tmp_path / "pre")
    loaded = RecformerForPretraining.from_pretrained_strict(tmp_path / "pre").eval()
    assert loaded.lm_head.decoder.weight is loaded.recformer.embeddings.word_embeddings.weight  # still tied
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    for name in ("loss", "mlm_logits", "session_embeddings", "item_embeddings"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name

    seqrec = make_model(RecformerForSeqRec, seed=4)
    table = torch.randn(5, 32)
    seqrec.set_item_embeddings(table, prior=torch.arange(5.0), groups=torch.tensor([0, 0, 1, 1, 1]),
                               ids=list("abcde"), group_names=["UK", "DE"])
    seqrec.save_pretrained(tmp_path / "seqrec")
    reloaded = RecformerForSeqRec.from_pretrained_strict(tmp_path / "seqrec").eval()
    # the table is saved with the model (float16), with its prior, groups and ids
    assert torch.equal(reloaded.item_embeddings, F.normalize(table, dim=-1).half().float())
    assert torch.equal(reloaded.item_prior, torch.arange(5.0)) and reloaded.item_groups.tolist() == [0, 0, 1, 1, 1]
    assert (reloaded.item_ids, reloaded.item_group_names) == (list("abcde"), ["UK", "DE"])
    reloaded.set_item_embeddings(table, prior=torch.arange(5.0), groups=torch.tensor([0, 0, 1, 1, 1]))
    with torch.no_grad():
        assert torch.equal(seqrec(**encoder_inputs(batch)).scores, reloaded(**encoder_inputs(batch)).scores)


def test_loading_seqrec_from_pretraining_folder_must_name_the_lm_head(tmp_path):
    make_model(RecformerForPretraining).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"unused by RecformerForSeqRec: \['lm_head\.bias', 'lm_head\.dense\.bias'"):
        RecformerForSeqRec.from_pretrained_strict(tmp_path)
    with pytest.raises(ValueError, match=r"missing from the checkpoint .*\['prior_weight'\]"):
        RecformerForSeqRec.from_pretrained_strict(tmp_path, allow_unexpected=["lm_head"])
    model = RecformerForSeqRec.from_pretrained_strict(tmp_path, allow_unexpected=["lm_head"],
                                                      allow_missing=["prior_weight"])
    assert isinstance(model, RecformerForSeqRec)
    assert float(model.prior_weight) == RecformerForSeqRec.PRIOR_WEIGHT_INIT  # a new weight starts where it should

    # The other way round the LM head is new, and must be named as such.
    RecformerModel(tiny_config()).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match=r"missing from the checkpoint .*'lm_head\.dense\.weight'"):
        RecformerForPretraining.from_pretrained_strict(tmp_path / "encoder")
    RecformerForPretraining.from_pretrained_strict(tmp_path / "encoder", allow_missing=["lm_head"])


def test_missing_weight_raises_naming_it(tmp_path):
    make_model(RecformerForSeqRec).save_pretrained(tmp_path)
    weights_file = Path(tmp_path) / "model.safetensors"
    weights = load_file(weights_file)
    dropped = "recformer.embeddings.item_position_embeddings.weight"
    del weights[dropped]
    save_file(weights, weights_file, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"missing from the checkpoint .*'{dropped}'"):
        RecformerForSeqRec.from_pretrained_strict(tmp_path)


def test_seqrec_without_item_table_says_what_to_do(tokenizer):
    batch = SessionCollator(tokenizer, tiny_config(), mlm_probability=0.0)([{"items": [ITEMS[0]]}])
    with pytest.raises(RuntimeError, match="set_item_embeddings"):
        make_model(RecformerForSeqRec)(**batch)
    with pytest.raises(ValueError, match=r"shape \(num_items, 32\), got \(4, 16\)"):
        make_model(RecformerForSeqRec).set_item_embeddings(torch.zeros(4, 16))


def test_encoder_matches_transformers_longformer_with_global_cls(tokenizer):
    """With item-position embeddings at zero and the same weights, RecformerModel is LongformerModel
    with global attention on CLS: checks the attention-mask convention and the window padding."""
    from transformers import LongformerConfig, LongformerModel

    config = tiny_config()
    torch.manual_seed(0)
    reference = LongformerModel(
        LongformerConfig(
            vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            attention_window=4, max_position_embeddings=66, type_vocab_size=4, pad_token_id=0,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        ),
        add_pooling_layer=False,
    ).eval()
    model = RecformerModel(config).eval()
    model.encoder.load_state_dict(reference.encoder.state_dict())
    ours, theirs = model.embeddings, reference.embeddings
    with torch.no_grad():
        ours.word_embeddings.weight.copy_(theirs.word_embeddings.weight)
        ours.token_type_embeddings.weight.copy_(theirs.token_type_embeddings.weight)
        # RoBERTa-style positions start at pad_token_id + 1 (= 1 here); ours start at 0.
        ours.position_embeddings.weight.copy_(theirs.position_embeddings.weight[1:65])
        ours.item_position_embeddings.weight.zero_()
        ours.LayerNorm.load_state_dict(theirs.LayerNorm.state_dict())

    batch = SessionCollator(tokenizer, config, mlm_probability=0.0)([{"items": [ITEMS[4]]}, {"items": ITEMS[:3]}])
    global_cls = torch.zeros_like(batch["input_ids"])
    global_cls[:, 0] = 1
    with torch.no_grad():
        expected = reference(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], global_attention_mask=global_cls,
            token_type_ids=batch["token_type_ids"],
        ).last_hidden_state
        got = model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
