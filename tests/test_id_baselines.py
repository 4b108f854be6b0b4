"""ID baselines (id_baselines/): shapes, the SR-GNN session graph, exclusion, transfer, a smoke run per model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from id_baselines import MODELS, BaselineConfig, build_model, load_baseline, train_baseline, transfer_weights
from id_baselines.api import BaselineRecommender
from id_baselines.data import (
    GraphCollator, ItemVocab, LengthBucketBatches, PadCollator, SessionExamples, session_graph, sessions_to_vocab,
)
from id_baselines.training import BaselineModule, checkpoint_state
from recformer_m2.constants import LOCALES, TASK_LOCALES
from recformer_m2.data import M2Data, Sessions
from recformer_m2.metrics import evaluate_rankings, rank_metrics
from recformer_m2.synth import generate

TINY = {
    "embedding_size": 32, "hidden_size": 32, "num_layers": 2, "transformer_layers": 2, "num_heads": 2,
    "inner_size": 64, "gnn_steps": 2, "max_length": 4, "batch_size": 64, "eval_batch_size": 64,
    "max_epochs": 1, "progress": False, "max_valid_per_locale": 20,
}
"""Tiny model for tests: hidden 32, 2 layers, window 4."""


def tiny_config(**changes) -> BaselineConfig:
    return BaselineConfig(**{**TINY, **changes})


def make_sessions(lists: list[list[int]], targets: list[int], locale: int = 0) -> Sessions:
    lengths = [len(s) for s in lists]
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in lists]) if sum(lengths) else np.zeros(0, np.int32)
    return Sessions(flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                    np.full(len(lists), locale, np.int8), np.asarray(targets, np.int32))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("m2tiny")
    generate(folder, scale="tiny", seed=0)
    return folder


@pytest.fixture(scope="module")
def tiny_data(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> M2Data:
    return M2Data(tiny_dir, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def trained(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every registered model trained one epoch on task 1 of the tiny synthetic data."""
    root = tmp_path_factory.mktemp("runs")
    return {name: train_baseline(name, tiny_dir, 1, "supervised", root / name, overrides=TINY) for name in MODELS}


# --- data --------------------------------------------------------------------------------------------

def test_augmented_examples_drop_targets_already_in_their_prefix():
    sessions = make_sessions([[1, 2, 1], [4]], [3, 5])
    ex = SessionExamples.for_training(sessions, augment=True)
    got = [(ex.flat[s:e].tolist(), int(t)) for s, e, t in zip(ex.starts, ex.ends, ex.targets)]
    # [1] -> 2, [1, 2] -> 1 (dropped: 1 is in the prefix), [1, 2, 1] -> 3, [4] -> 5
    assert got == [([1], 2), ([1, 2, 1], 3), ([4], 5)]
    plain = SessionExamples.for_training(sessions, augment=False)
    assert [int(t) for t in plain.targets] == [3, 5]


def test_pad_collator_keeps_the_last_items_and_pads_right():
    ex = SessionExamples.for_prediction(make_sessions([[1, 2, 3, 4, 5, 6], [7], []], [8, 9, 0]))
    batch = PadCollator(ex, max_length=4)([0, 1, 2])
    assert batch.items.tolist() == [[3, 4, 5, 6], [7, 0, 0, 0], [0, 0, 0, 0]]
    assert batch.lengths.tolist() == [4, 1, 1]  # an empty session reads as one padding item


@pytest.mark.parametrize("pool", [0, 4])
def test_length_bucket_batches_cover_every_example_once_per_epoch(pool: int):
    lengths = np.random.default_rng(0).integers(1, 30, size=1000)
    sampler = LengthBucketBatches(lengths, batch_size=32, seed=0, pool=pool)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler) == 32
    assert sorted(i for batch in epoch0 for i in batch) == list(range(1000))
    sampler.set_epoch(1)
    assert list(sampler) != epoch0  # a new order every epoch, the same for the same (seed, epoch)
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    spread = np.mean([np.ptp(lengths[batch]) for batch in epoch0])
    assert (spread < 10) if pool else (spread > 20)  # bucketed batches hold similar lengths


def test_srgnn_graph_matches_hand_built_adjacency():
    a, b, c = 5, 7, 9
    items = torch.tensor([[a, b, a, c], [b, b, 0, 0]])
    alias, nodes, adjacency = session_graph(items, torch.tensor([4, 2]))
    assert nodes.tolist() == [[a, b, c], [b, 0, 0]]  # distinct items in order of first appearance
    assert alias.tolist() == [[0, 1, 0, 2], [0, 0, 0, 0]]
    # Session [A, B, A, C]: edges A->B, B->A, A->C. In-degrees A 1, B 1, C 1; out-degrees A 2, B 1, C 0.
    a_in = [[0, 1, 0],  # A receives from B
            [1, 0, 0],  # B receives from A
            [1, 0, 0]]  # C receives from A
    a_out = [[0, 0.5, 0.5],  # A -> B, A -> C
             [1, 0, 0],  # B -> A
             [0, 0, 0]]
    assert torch.allclose(adjacency[0], torch.tensor([r_in + r_out for r_in, r_out in zip(a_in, a_out)]))
    # Session [B, B]: a self-loop, in and out degree 1.
    assert torch.allclose(adjacency[1, 0], torch.tensor([1.0, 0, 0, 1.0, 0, 0]))


def reference_graph(session: list[int], n: int) -> tuple[list[int], list[int], np.ndarray]:
    """Plain per-session loop (the SR-GNN authors' construction, nodes in first-appearance order)."""
    nodes = list(dict.fromkeys(session))
    alias = [nodes.index(x) for x in session]
    adj = np.zeros((n, n))
    for u, v in zip(alias[:-1], alias[1:]):
        adj[u, v] = 1
    indeg, outdeg = adj.sum(0), adj.sum(1)
    a_in = adj.T / np.where(indeg == 0, 1, indeg)[:, None]
    a_out = adj / np.where(outdeg == 0, 1, outdeg)[:, None]
    return nodes, alias, np.concatenate([a_in, a_out], axis=1)


def test_vectorised_graph_collator_matches_plain_loop():
    rng = np.random.default_rng(0)
    lists = [rng.integers(1, 6, size=rng.integers(1, 9)).tolist() for _ in range(50)]
    ex = SessionExamples.for_prediction(make_sessions(lists, [1] * len(lists)))
    batch = GraphCollator(ex, max_length=8)(np.arange(len(lists)))
    n = batch.nodes.size(1)
    for i, session in enumerate(lists):
        nodes, alias, adjacency = reference_graph(session, n)
        assert batch.nodes[i, :len(nodes)].tolist() == nodes
        assert batch.alias[i, :len(alias)].tolist() == alias
        assert np.allclose(batch.adjacency[i].numpy(), adjacency)


# --- models ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_shapes_loss_and_gradients(name: str):
    torch.manual_seed(0)
    config = tiny_config()
    model = build_model(name, 20, config)
    ex = SessionExamples.for_training(make_sessions([[1, 2, 3, 2, 5, 6], [7], [8, 9]], [4, 10, 11]), augment=False)
    batch = type(model).collator(ex, config.max_length)(np.arange(3))
    assert model.session_embedding(batch).shape == (3, config.embedding_size)
    assert model.item_embeddings().shape == (20, config.embedding_size)
    scores = model(batch)
    assert scores.shape == (3, 20) and torch.isinf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    loss = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.item_embedding.weight.grad is not None
    assert torch.equal(model.item_embedding.weight[0], torch.zeros(config.embedding_size))  # padding row


@pytest.mark.parametrize("name", sorted(MODELS))
def test_scores_do_not_depend_on_the_padding_of_the_batch(name: str):
    # RecBole's STAMP reads its padding (see stamp.py); ours must score a session the same alone or
    # padded beside a longer one.
    torch.manual_seed(0)
    config = tiny_config(max_length=6)
    model = build_model(name, 20, config).eval()
    with torch.no_grad():
        model.item_embedding.weight[0].normal_()  # padding is never read, whatever its row holds
    ex = SessionExamples.for_prediction(make_sessions([[1, 2], [3, 4, 5, 6, 7, 8]], [9, 10]))
    collate = type(model).collator(ex, config.max_length)
    with torch.no_grad():
        alone, padded = model(collate([0])), model(collate([0, 1]))[:1]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-6)


def test_stamp_empty_slots_count_what_the_window_lacks():
    torch.manual_seed(0)
    plain = build_model("stamp", 20, tiny_config(max_length=4, stamp_empty_slots=False)).eval()
    slots = build_model("stamp", 20, tiny_config(max_length=4)).eval()
    slots.load_state_dict({**plain.state_dict(), "empty_slot": torch.randn(TINY["embedding_size"])})
    ex = SessionExamples.for_prediction(make_sessions([[1, 2], [3, 4, 5, 6, 7]], [9, 10]))
    batch = PadCollator(ex, 4)([0, 1])
    with torch.no_grad():
        a, b = plain.session_embedding(batch), slots.session_embedding(batch)
    assert not torch.allclose(a[0], b[0])  # two of four slots empty
    torch.testing.assert_close(a[1], b[1])  # a full window has no empty slot: the paper's STAMP


def test_stamp_null_logit_keeps_padding_at_zero_in_the_loss_only():
    torch.manual_seed(0)
    null = build_model("stamp", 20, tiny_config()).eval()
    plain = build_model("stamp", 20, tiny_config(stamp_null_logit=False)).eval()
    plain.load_state_dict(null.state_dict())
    batch = PadCollator(SessionExamples.for_training(make_sessions([[1, 2], [3]], [4, 5]), augment=False), 4)([0, 1])
    with torch.no_grad():
        scores = null.session_embedding(batch) @ null.item_embedding.weight.T  # (B, N); column 0 is 0
        assert torch.equal(scores[:, 0], torch.zeros(2))
        torch.testing.assert_close(null.loss(batch), torch.nn.functional.cross_entropy(scores, batch.targets))
        torch.testing.assert_close(plain.loss(batch), torch.nn.functional.cross_entropy(scores[:, 1:], batch.targets - 1))
        assert torch.equal(null(batch), plain(batch))  # ranking never sees padding


def test_srgnn_refuses_a_batch_without_its_graph():
    config = tiny_config()
    model = build_model("srgnn", 12, config)
    batch = PadCollator(SessionExamples.for_prediction(make_sessions([[1, 2]], [3])), 4)([0])
    with pytest.raises(ValueError, match="GraphCollator"):
        model(batch)


def test_full_sort_predict_excludes_session_items():
    # CORE-ave without dropout: a one-item session is its own item's direction, so that item scores highest.
    config = tiny_config(core_variant="ave", session_dropout=0.0, item_dropout=0.0)
    torch.manual_seed(0)
    model = build_model("core", 30, config).eval()
    ex = SessionExamples.for_prediction(make_sessions([[i] for i in range(1, 30)], [0] * 29))
    batch = PadCollator(ex, config.max_length)(np.arange(29))
    with torch.no_grad():
        assert model.full_sort_predict(batch, exclude_session_items=False).argmax(1).tolist() == list(range(1, 30))
        excluded = model.full_sort_predict(batch)
    assert torch.isinf(excluded.gather(1, batch.items)).all()
    assert (excluded.argmax(1) != batch.items[:, 0]).all()


def test_validation_counts_ties_against_the_target(monkeypatch: pytest.MonkeyPatch):
    # All weights zero: every item scores 0, so the target ties with all 19 unmasked items (20 columns, padding
    # masked) and ranks 19th: MRR 1/19. Ranks that broke ties in the target's favour gave MRR 1 and Recall 1.
    model = build_model("gru4rec", 21, tiny_config())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    module = BaselineModule(model, tiny_config())
    logged: dict[str, float] = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, value))
    # one session item excluded (-inf) besides padding: 21 - 2 = 19 columns tie with the target
    batch = PadCollator(SessionExamples.for_prediction(make_sessions([[1], [2]], [5, 7])), 4)([0, 1])
    module.on_validation_epoch_start()
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    assert logged["val_mrr"] == pytest.approx(1 / 19) and logged["val_recall"] == 1.0


# --- transfer (finetune mode) ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_transfer_keeps_shared_item_embeddings_and_starts_new_ones_fresh(name: str):
    config = tiny_config()
    source_vocab = ItemVocab(np.array(["A", "B", "C"], dtype=object))
    target_vocab = ItemVocab(np.array(["B", "D", "C", "E"], dtype=object))
    torch.manual_seed(1)
    source = build_model(name, len(source_vocab), config)
    torch.manual_seed(2)
    target = build_model(name, len(target_vocab), config)
    torch.manual_seed(2)
    fresh = build_model(name, len(target_vocab), config)
    assert transfer_weights(source, source_vocab, target, target_vocab) == 2
    src, tgt, new = source.item_embedding.weight, target.item_embedding.weight, fresh.item_embedding.weight
    assert torch.equal(tgt[1], src[2]) and torch.equal(tgt[3], src[3])  # B and C keep their learned rows
    assert torch.equal(tgt[2], new[2]) and torch.equal(tgt[4], new[4])  # D and E: the fresh initialisation
    for (key, value), (_, source_value) in zip(target.state_dict().items(), source.state_dict().items()):
        if key != "item_embedding.weight":
            assert torch.equal(value, source_value), key


def test_finetune_mode_pretrains_on_uk_de_jp_then_trains_on_es_fr_it(tiny_dir: Path, tiny_data: M2Data, tmp_path: Path):
    out = train_baseline("stamp", tiny_dir, 2, "finetune", tmp_path / "ft", overrides=TINY)
    pre = json.loads((out / "pretrain" / "model.json").read_text())
    fine = json.loads((out / "model.json").read_text())
    assert pre["locales"] == list(TASK_LOCALES[1]) and fine["locales"] == list(TASK_LOCALES[2])
    pre_vocab, vocab = ItemVocab.load(out / "pretrain" / "vocab.txt"), ItemVocab.load(out / "vocab.txt")
    assert np.isin(vocab.ids, pre_vocab.ids).any()  # DE products sold in ES/FR/IT share ids
    ranked = load_baseline(out, tiny_data.catalog).recommend(tiny_data.test(2), progress=False)
    assert ranked.shape == (len(tiny_data.test(2)), 100)
    with pytest.raises(ValueError, match="task 2"):
        train_baseline("stamp", tiny_dir, 1, "finetune", tmp_path / "bad", overrides=TINY)


# --- one epoch per registered model, reload, prediction, metrics --------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_epoch_smoke_checkpoint_and_identical_reload(name: str, trained: dict[str, Path], tiny_data: M2Data):
    out = trained[name]
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"]) and 0 <= history[0]["val_mrr"] <= 1
    assert (out / "checkpoints" / "best.ckpt").exists() and (out / "checkpoints" / "last.ckpt").exists()
    recommender = load_baseline(out, tiny_data.catalog)
    again = build_model(name, len(recommender.vocab), recommender.config)
    again.load_state_dict(checkpoint_state(out / "checkpoints" / "best.ckpt"))
    again.eval()
    test = tiny_data.test(1)
    examples = SessionExamples.for_prediction(sessions_to_vocab(test, recommender.vocab.index_of(tiny_data.catalog.ids)))
    batch = type(again).collator(examples, recommender.config.max_length)(np.arange(len(test)))
    with torch.no_grad():
        assert torch.equal(recommender.model(batch), again(batch))
    first = recommender.recommend(test, k=100, progress=False)
    assert np.array_equal(first, load_baseline(out, tiny_data.catalog).recommend(test, k=100, progress=False))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recommendations_are_catalog_codes_never_session_items(name: str, trained: dict[str, Path], tiny_data: M2Data):
    test = tiny_data.test(1)
    ranked = load_baseline(trained[name], tiny_data.catalog).recommend(test, k=100, progress=False)
    assert ranked.dtype == np.int32 and ranked.shape == (len(test), 100)
    for i in range(len(test)):
        row = ranked[i][ranked[i] >= 0]
        assert len(np.unique(row)) == len(row)
        assert not np.isin(row, test[i]).any()
        assert (tiny_data.catalog.rows(row, test.locale[i]) >= 0).all()  # sold in the session's locale


def test_unbound_recommender_and_unknown_ids(trained: dict[str, Path], tiny_data: M2Data):
    recommender = load_baseline(trained["stamp"])
    with pytest.raises(RuntimeError, match="catalog"):
        recommender.recommend(tiny_data.test(1))
    # A vocabulary id the catalog lacks is never recommended: it can only leave -1 padding behind.
    vocab = ItemVocab(np.concatenate([recommender.vocab.ids[:-1], ["NOT-IN-CATALOG"]]))
    odd = BaselineRecommender("stamp", recommender.model, vocab, recommender.config).fit(tiny_data.catalog)
    ranked = odd.recommend(tiny_data.test(1), k=len(vocab), progress=False)
    assert (ranked >= -1).all() and (ranked[:, -1] == -1).all()


def test_metrics_of_predictions_match_hand_computed_ranks(trained: dict[str, Path], tiny_data: M2Data):
    test = tiny_data.test(1)
    ranked = load_baseline(trained["narm"], tiny_data.catalog).recommend(test, k=100, progress=False)
    targets = tiny_data.catalog.codes(tiny_data.truth(1)["next_item"].to_numpy())
    locales = [LOCALES[x] for x in test.locale]
    table = evaluate_rankings(ranked, targets, locales)
    assert list(table.index) == ["UK", "DE", "JP", "overall"]
    reciprocal = [1.0 / (list(row).index(t) + 1) if t in row else 0.0 for row, t in zip(ranked, targets)]
    assert table.loc["overall", "MRR@100"] == pytest.approx(np.mean(reciprocal))
    assert table.loc["overall", "MRR@100"] == pytest.approx(rank_metrics(ranked, targets)["mrr"].mean())


def test_validation_mrr_counts_every_held_out_session(tiny_data: M2Data, tmp_path: Path):
    # Validation keeps sessions whose target the model cannot know (outside its vocabulary): they count as
    # misses, as they would on test. The logged MRR equals the MRR of the model's own recommendations for
    # every held-out session; validation that dropped those sessions (filtered by its labels) did not.
    from id_baselines.api import train_on_sessions
    from recformer_m2.data import validation_split

    sessions = tiny_data.train.select(tiny_data.train.in_locales(TASK_LOCALES[1]))
    fit_idx, valid_idx = validation_split(sessions, 0.2, 0, None)
    train, valid = sessions.select(fit_idx), sessions.select(valid_idx)
    vocab = ItemVocab.from_sessions(tiny_data.catalog, train)
    # sessions with an item the model knows (an all-unknown session scores every item alike: ties)
    known = np.isin(tiny_data.catalog.ids[valid.items], vocab.ids)
    valid = valid.select(np.bincount(valid.session_index[known], minlength=len(valid)) > 0)
    assert not np.isin(tiny_data.catalog.ids[valid.next_item], vocab.ids).all()  # some targets are unknowable
    result = train_on_sessions("narm", tiny_config(), tiny_data.catalog, train, tmp_path, valid=valid)
    ranked = load_baseline(tmp_path, tiny_data.catalog).recommend(valid, k=100, progress=False)
    assert result.best_mrr == pytest.approx(rank_metrics(ranked, valid.next_item, 100)["mrr"].mean(), abs=1e-6)


def test_training_resumes_from_the_last_checkpoint(tiny_dir: Path, tmp_path: Path):
    out = train_baseline("stamp", tiny_dir, 1, "supervised", tmp_path / "r", overrides=TINY)
    first = json.loads((out / "history.json").read_text())
    train_baseline("stamp", tiny_dir, 1, "supervised", out, overrides={**TINY, "max_epochs": 2, "patience": 5})
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[0] == first[0]  # epoch 0 was not run again


def test_config_is_validated_and_unknown_models_refused(tiny_dir: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="num_heads"):
        BaselineConfig(embedding_size=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown ID baseline"):
        train_baseline("bert4rec", tiny_dir, 1, "supervised", tmp_path / "x", overrides=TINY)
    with pytest.raises(ValueError, match="unknown BaselineConfig field"):
        train_baseline("narm", tiny_dir, 1, "supervised", tmp_path / "x", overrides={"hidden": 3})


# --- the main job's hook and the time cap ---------------------------------------------------------------

def test_max_minutes_stops_training_and_keeps_a_validated_best_model(tiny_dir: Path, tmp_path: Path):
    out = train_baseline("gru4rec", tiny_dir, 1, "supervised", tmp_path / "capped",
                         overrides={**TINY, "max_epochs": 1000, "patience": 1000, "max_minutes": 1e-4})
    history = json.loads((out / "history.json").read_text())
    assert len(history) < 1000 and "val_mrr" in history[-1]
    assert (out / "checkpoints" / "best.ckpt").exists()
    with pytest.raises(ValueError, match="max_minutes"):
        BaselineConfig(max_minutes=0)


def test_pipeline_baselines_trains_both_tasks_from_training_sessions_only(tiny_dir: Path, tmp_path: Path):
    from id_baselines.api import pipeline_baselines

    folder = tmp_path / "data"
    shutil.copytree(tiny_dir, folder)
    for path in [*folder.glob("sessions_test_*"), *folder.glob("gt_*")]:  # test files must never be needed
        path.unlink()
    config = tiny_config(resume=False)
    runs = pipeline_baselines(folder, tmp_path / "runs", models=("stamp", "srgnn"), budget_seconds=30, config=config)
    assert set(runs) == {1, 2}
    assert set(runs[1]) == {"stamp", "srgnn"}
    assert set(runs[2]) == {f"{m} ({k})" for m in ("stamp", "srgnn") for k in ("supervised", "pretrain+ft")}
    for task, methods in runs.items():
        for label, (method, path) in methods.items():
            info = json.loads((path / "model.json").read_text())
            assert info["model"] == method and info["task"] == task and (path / "done").exists()
            assert info["locales"] == list(TASK_LOCALES[task])
            assert info["training_cap_seconds"] >= 5.0
    finetuned = json.loads((runs[2]["stamp (pretrain+ft)"][1] / "model.json").read_text())
    assert finetuned["mode"] == "finetune" and finetuned["pretrained_from"] == str(runs[1]["stamp"][1])
    stamp = runs[1]["stamp"][1] / "model.pt"
    before = stamp.stat().st_mtime_ns
    assert pipeline_baselines(folder, tmp_path / "runs", models=("stamp", "srgnn"), config=config) == runs
    assert stamp.stat().st_mtime_ns == before  # finished runs are skipped
    with pytest.raises(ValueError, match="unknown ID baseline"):
        pipeline_baselines(folder, tmp_path / "runs", models=("bert4rec",))
