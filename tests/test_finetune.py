"""Two-stage finetuning end to end on tiny data: both stages, exact resume, the embedding cache key, the API."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from recformer_m2 import Recommender
from recformer_m2 import finetuning as ft
from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.finetuning import FinetuneConfig, run_finetuning
from recformer_m2.recommender import encode_catalog

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> FinetuneConfig:
    values = dict(batch_size=8, lr=1e-3, stage1_epochs=2, stage2_epochs=1, patience=5, max_valid_per_locale=8,
                  encode_batch_size=32, scratch_config=str(ROOT / "pretrain/configs/tiny.json"), device="cpu")
    values.update(overrides)
    return FinetuneConfig(**values)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("ft")
    generate(root / "data", scale="tiny", seed=0, style="classic")  # m2 has items of equal text: tied top scores
    return root


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    best = run_finetuning(tiny_data / "data", "none", out, tiny_config())
    return out, best


def test_both_stages_run_and_best_loads(finished_run, tiny_data):
    out, best = finished_run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1)]
    assert all(np.isfinite(r["train_loss"]) and 0 <= r["mrr@100"] <= 1 for r in records)
    assert json.loads((best / "metrics.json").read_text())["mrr@100"] == max(r["mrr@100"] for r in records)
    # the popularity prior: learned weight times log(1 + training occurrences), served per item in cosine units
    rec = Recommender.from_pretrained(best, tiny_data / "data", device="cpu")
    weight = json.loads((best / "metrics.json").read_text())["prior_weight"]
    bias = rec.item_table.bias
    assert bias.max() > 0 and (bias >= 0).all() == (weight >= 0)
    test = M2Data(tiny_data / "data").test(2)
    ranked = rec.recommend_codes(test, k=20, progress=False)
    assert ranked.shape == (len(test), 20)
    for row, session in zip(ranked, test.to_lists()):
        assert not set(row[row >= 0]) & set(session)


class SimulatedKill(Exception):
    """Raised inside training as a stand-in for ``kill -9`` (Lightning turns a KeyboardInterrupt into an exit)."""


def _last_weights(out: Path) -> dict[str, torch.Tensor]:
    tensors, _ = ft.read_state(out / "checkpoints" / ft.LAST)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def test_crash_after_last_mid_stage_resumes_and_gives_the_same_model(finished_run, tiny_data, tmp_path, monkeypatch,
                                                                     caplog):
    """Killed right after the first ``last`` is written (stage 1, epoch 1 of 2), the rerun resumes from it:
    the log says so, the history holds each epoch once, and best metrics and final weights are the
    uninterrupted run's. With the resume branch removed the rerun starts over and this fails."""
    out_full, _ = finished_run
    out = tmp_path / "crashy"
    real_save = ft.save_state

    def crash_after_first_last(path, tensors, values):
        real_save(path, tensors, values)
        if path.name == ft.LAST:
            raise SimulatedKill("simulated kill right after the first last checkpoint")

    monkeypatch.setattr(ft, "save_state", crash_after_first_last)
    with pytest.raises(SimulatedKill):
        run_finetuning(tiny_data / "data", "none", out, tiny_config())
    saved = ft.read_state_values(out / "checkpoints" / ft.LAST)
    assert (saved["stage"], saved["epoch"]) == (1, 1)  # mid-stage: stage 1 has two epochs
    monkeypatch.setattr(ft, "save_state", real_save)
    with caplog.at_level("INFO", logger="recformer_m2.finetuning"):
        run_finetuning(tiny_data / "data", "none", out, tiny_config())
    assert "resuming from" in caplog.text and "stage 1, 1 epoch(s) done" in caplog.text
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (1, 2), (2, 1)]  # no epoch trained twice
    full_records = [json.loads(line) for line in (out_full / "metrics.jsonl").read_text().splitlines()]
    assert records == full_records
    assert json.loads((out / "best" / "metrics.json").read_text()) == json.loads(
        (out_full / "best" / "metrics.json").read_text())
    full, resumed = _last_weights(out_full), _last_weights(out)
    assert full.keys() == resumed.keys()
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-6, msg=name)


def test_item_cache_is_keyed_by_weights_and_catalog(finished_run, tiny_data, tmp_path, monkeypatch):
    _, best = finished_run
    rec = Recommender.from_pretrained(best, tiny_data / "data", device="cpu")
    catalog = rec.catalog
    codes = catalog.locale_codes("ES")
    locales = np.full(len(codes), 3)
    first = np.asarray(encode_catalog(rec.encoder, catalog, codes, locales, tmp_path, progress=False))
    assert len(list(tmp_path.glob("items-*.npy"))) == 1

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded again although the cache holds these weights and this catalog")

    monkeypatch.setattr(rec.encoder, "encode_items", no_encoding)
    np.testing.assert_array_equal(np.asarray(encode_catalog(rec.encoder, catalog, codes, locales, tmp_path)), first)
    monkeypatch.undo()
    with torch.no_grad():
        rec.encoder.model.embeddings.word_embeddings.weight.mul_(1.5)  # a changed checkpoint
    changed = np.asarray(encode_catalog(rec.encoder, catalog, codes, locales, tmp_path, progress=False))
    assert len(list(tmp_path.glob("items-*.npy"))) == 2
    assert not np.allclose(changed, first)


def test_api_keeps_caller_order_and_takes_attribute_dicts(finished_run, tiny_data):
    _, best = finished_run
    rec = Recommender.from_pretrained(best, tiny_data / "data", device="cpu")
    test = M2Data(tiny_data / "data").test(2)
    sessions = [{"items": list(rec.catalog.ids[s]), "locale": "ESFRIT"[2 * (loc - 3):2 * (loc - 3) + 2]}
                for s, loc in zip(test.to_lists()[:6], test.locale[:6])]
    forward = rec.encode_sessions(sessions)
    np.testing.assert_allclose(rec.encode_sessions(sessions[::-1])[::-1], forward, atol=1e-5)
    ids = rec.recommend(sessions, k=10)
    assert len(ids) == 6 and all(len(x) == 10 and not set(x) & set(s["items"]) for x, s in zip(ids, sessions))
    cold = [{"title": "Brand-new gadget", "brand": "Nobody"}, {"title": "Another thing", "color": "red"}]
    assert rec.encode_sessions([cold]).shape == (1, rec.encoder.model.config.hidden_size)
    with pytest.raises(KeyError, match="not in the catalog for locale ES"):
        rec.encode_items(["B0NOTREAL0"], locale="ES")


def test_recommender_ranks_by_cosine_plus_the_saved_prior(finished_run, tiny_data, tmp_path):
    """The API's scores are the frozen table's cosine plus each item's saved bias, best first, checked
    against a brute-force pass over the locale's items."""
    from recformer_m2.encode import session_items

    from recformer_m2.models import AutoModelForSeqRec

    _, best = finished_run
    model_alone = tmp_path / "model-alone"
    AutoModelForSeqRec.from_pretrained(best).save_pretrained(model_alone, config_updates={"lexical_weight": 0.0})
    rec = Recommender.from_pretrained(model_alone, tiny_data / "data", device="cpu")
    keys = rec.item_table
    assert np.abs(keys.bias).max() > 0
    test = M2Data(tiny_data / "data").test(2)
    codes, scores = rec.recommend_codes_with_scores(test, k=5, progress=False)
    queries = rec.encoder.encode_sessions(session_items(rec.catalog, test))
    table = keys.embeddings
    item_codes = rec.catalog.codes(keys.ids)
    for i, (session, loc) in enumerate(zip(test.to_lists(), test.locale)):
        mine = (keys.locales == loc) & ~np.isin(item_codes, session)
        brute = table[mine] @ queries[i] + keys.bias[mine]
        order = np.argsort(-brute)[:5]
        np.testing.assert_allclose(scores[i], brute[order], atol=1e-4)
        assert codes[i][0] == item_codes[mine][order[0]]


def test_finetuning_can_switch_a_checkpoint_to_mean_last_pooling(finished_run, tiny_data, tmp_path):
    _, best = finished_run
    data = M2Data(tiny_data / "data")
    kept, _ = ft.load_seqrec(best, data, tiny_config(), tmp_path)
    switched, _ = ft.load_seqrec(best, data, tiny_config(pooler_type="mean_last"), tmp_path)
    assert kept.config.pooler_type == "mean" and not hasattr(kept.recformer, "last_item_weight")
    assert switched.config.pooler_type == "mean_last"
    assert switched.recformer.last_item_weight.item() == switched.recformer.LAST_ITEM_WEIGHT_INIT
    assert all(torch.equal(p, switched.state_dict()[k]) for k, p in kept.state_dict().items())


def test_newest_item_and_table_row_weights_are_the_validation_best_of_their_grids(finished_run, tiny_data, tmp_path):
    """The two-encoding shortcut scores each (newest-item weight, table-row weight) pair as the model
    itself would retrieve with those weights."""
    from recformer_m2.encode import RecformerEncoder

    _, best = finished_run
    data = M2Data(tiny_data / "data")
    config = tiny_config(pooler_type="mean_last", last_item_grid=(0.0, 0.5, 2.0), table_item_grid=(0.0, 1.0))
    model, tokenizer = ft.load_seqrec(best, data, config, tmp_path)
    assert model.config is model.recformer.config       # what evaluate sets on the encoder, best/ saves
    fdata = ft.prepare_data(data, config)
    encoder = RecformerEncoder(model.recformer, tokenizer, batch_size=16)
    table = encoder.encode_items(fdata.items)
    weight = model.recformer.last_item_weight
    direct = {}
    for w in config.last_item_grid:  # the slow way: the model's own queries at each pair of weights
        for v in config.table_item_grid:
            with torch.no_grad():
                weight.fill_(w)
            direct[w, v] = ft.evaluate(encoder, table, fdata, data.catalog, fdata.valid, fdata.valid_targets,
                                       table_item_weight=v)
    assert len({round(r["mrr@100"], 6) for r in direct.values()}) > 2  # both weights change the ranking here
    with torch.no_grad():
        weight.fill_(0.7)
    tuned = ft.evaluate(encoder, table, fdata, data.catalog, fdata.valid, fdata.valid_targets,
                        last_item_grid=config.last_item_grid, table_item_grid=config.table_item_grid)
    chosen = max(direct, key=lambda wv: direct[wv]["mrr@100"])
    assert (tuned["last_item_weight"], tuned["table_item_weight"]) == chosen
    # evaluating changes neither the model nor its config: the caller applies the pair (best/ saves it)
    assert weight.item() == pytest.approx(0.7) and model.config.table_item_weight == 0.0
    for name, value in direct[chosen].items():
        assert tuned[name] == pytest.approx(value, abs=1e-6), name


def test_recommender_adds_the_newest_items_table_row_to_the_query(finished_run, tiny_data, tmp_path):
    """With ``table_item_weight`` the API's query is the session vector plus that weight times the newest
    item's frozen-table row, normalised: checked against a brute-force pass."""
    from recformer_m2.encode import newest_items, session_items

    from recformer_m2.models import AutoModelForSeqRec

    _, best = finished_run
    model = AutoModelForSeqRec.from_pretrained(best)
    model.save_pretrained(tmp_path / "weighted", config_updates={"table_item_weight": 1.5, "lexical_weight": 0.0})
    assert model.config.table_item_weight == 0.0  # written into the saved config only
    rec = Recommender.from_pretrained(tmp_path / "weighted", tiny_data / "data", device="cpu")
    assert rec.encoder.model.config.table_item_weight == 1.5
    keys = rec.item_table
    test = M2Data(tiny_data / "data").test(2)
    codes, scores = rec.recommend_codes_with_scores(test, k=5, progress=False)
    sessions = rec.encoder.encode_sessions(session_items(rec.catalog, test))
    table = keys.embeddings
    item_codes = rec.catalog.codes(keys.ids)
    newest = newest_items(rec.catalog, test)
    for i, (session, loc) in enumerate(zip(test.to_lists(), test.locale)):
        mine = keys.locales == loc
        row = np.flatnonzero(mine & (item_codes == newest[i]))
        query = sessions[i] + 1.5 * table[row[0]]
        query /= np.linalg.norm(query)
        mine &= ~np.isin(item_codes, session)
        brute = table[mine] @ query + keys.bias[mine]
        order = np.argsort(-brute)[:5]
        np.testing.assert_allclose(scores[i], brute[order], atol=1e-4)


def test_lexical_weight_is_the_validation_best_of_its_grid_and_best_keeps_it(finished_run, tiny_data, tmp_path):
    """Each lexical weight is scored as fused retrieval would rank with it; the best on validation is
    returned and written into best/'s config; the model-alone metrics are unchanged by the grid."""
    from recformer_m2.encode import RecformerEncoder, newest_item_rows, session_items
    from recformer_m2.index import retrieval_queries
    from recformer_m2.lexical import fused_top_k
    from recformer_m2.metrics import rank_metrics
    from recformer_m2.models import RecformerConfig

    out, best = finished_run
    saved = json.loads((best / "metrics.json").read_text())
    assert saved["lexical_weight"] in tiny_config().lexical_grid
    assert RecformerConfig.from_pretrained(best).lexical_weight == saved["lexical_weight"]
    data = M2Data(tiny_data / "data")
    config = tiny_config()
    model, tokenizer = ft.load_seqrec(best, data, config, tmp_path)
    fdata = ft.prepare_data(data, config)
    encoder = RecformerEncoder(model.recformer, tokenizer, batch_size=16)
    table = encoder.encode_items(fdata.items)
    bias = ft.item_bias(model)
    grid = (0.0, 0.5, 4.0)
    plain = ft.evaluate(encoder, table, fdata, data.catalog, fdata.valid, fdata.valid_targets, bias=bias)
    tuned = ft.evaluate(encoder, table, fdata, data.catalog, fdata.valid, fdata.valid_targets, bias=bias,
                        lexical_grid=grid)
    assert tuned["mrr@100"] == plain["mrr@100"]
    rows = newest_item_rows(data.catalog, fdata.valid, fdata.codes, fdata.locales)
    queries = retrieval_queries(encoder.encode_sessions(session_items(data.catalog, fdata.valid)),
                                model.config.table_item_weight, table, rows)
    direct = {}
    for w in grid:  # the slow way: fused retrieval at each weight, scored
        ranked, _ = fused_top_k(queries, fdata.valid.locale, fdata.valid.to_lists(), table, fdata.codes,
                                fdata.locales, bias, fdata.lexical, w, 100)
        direct[w] = float(rank_metrics(ranked, fdata.valid_targets, 100)["mrr"].mean())
    assert len(set(round(v, 6) for v in direct.values())) > 1  # the weight matters here
    chosen = max(direct, key=direct.get)
    assert tuned["lexical_weight"] == chosen
    assert tuned["lexical_mrr@100"] == pytest.approx(direct[chosen], abs=1e-6)
    assert direct[0.0] == pytest.approx(plain["mrr@100"], abs=1e-6)  # weight 0: the index's ranking


def test_recommender_adds_the_weighted_title_similarity(finished_run, tiny_data, tmp_path):
    """With ``lexical_weight`` the API's scores are cosine + prior + weight x textknn's text score (no
    popularity), checked against a brute-force pass over the locale's items."""
    from recformer_m2.encode import session_items
    from recformer_m2.models import AutoModelForSeqRec
    from recformer_m2.textknn import TextKNN

    _, best = finished_run
    AutoModelForSeqRec.from_pretrained(best).save_pretrained(
        tmp_path / "fused", config_updates={"table_item_weight": 0.0, "lexical_weight": 0.8})
    rec = Recommender.from_pretrained(tmp_path / "fused", tiny_data / "data", device="cpu")
    assert rec.lexical_weight == 0.8
    data = M2Data(tiny_data / "data")
    test = data.test(2)
    codes, scores = rec.recommend_codes_with_scores(test, k=5, progress=False)
    queries = rec.encoder.encode_sessions(session_items(rec.catalog, test))
    text = TextKNN(popularity_weight=0.0, backfill=False).fit(data.catalog, data.train)
    keys = rec.item_table
    item_codes = rec.catalog.codes(keys.ids)
    changed = 0
    for i, (session, loc) in enumerate(zip(test.to_lists(), test.locale)):
        words = text.scores(test.select([i]), int(loc)).toarray()[0]
        column = {int(c): j for j, c in enumerate(text.codes[loc])}
        mine = (keys.locales == loc) & ~np.isin(item_codes, session)
        lexical = np.array([words[column[int(c)]] for c in item_codes[mine]])
        alone = keys.embeddings[mine] @ queries[i] + keys.bias[mine]
        brute = alone + 0.8 * lexical
        order = np.argsort(-brute)[:5]
        np.testing.assert_allclose(scores[i], brute[order], atol=1e-4)
        assert codes[i][0] == item_codes[mine][order[0]]
        changed += int(np.argsort(-alone)[0] != order[0])
    assert changed  # the text term moves some session's first item


def _signatures(sessions) -> Counter:
    return Counter((tuple(sessions[i].tolist()), int(sessions.next_item[i]), int(sessions.locale[i]))
                   for i in range(len(sessions)))


def test_train_fraction_keeps_a_seeded_share_of_training_sessions_and_the_same_validation(tiny_data):
    data = M2Data(tiny_data / "data")
    config = dict(prefix_examples=False, popularity_prior=False)
    full = ft.prepare_data(data, tiny_config(**config))
    half = ft.prepare_data(data, tiny_config(**config, train_fraction=0.5))
    again = ft.prepare_data(data, tiny_config(**config, train_fraction=0.5))
    assert _signatures(half.valid) == _signatures(full.valid)
    kept = _signatures(half.train)
    assert not kept - _signatures(full.train)  # a sub-multiset of the full training sessions
    assert 0.25 * len(full.train) < len(half.train) < 0.75 * len(full.train)
    assert kept == _signatures(again.train)  # the same share on every run (resume, comparisons)
    with pytest.raises(ValueError, match="train_fraction"):
        ft.prepare_data(data, tiny_config(train_fraction=0.0))
    with pytest.raises(ValueError, match="keeps none"):
        ft.prepare_data(data, tiny_config(train_fraction=1e-9))


def test_transductive_adds_the_ranked_sessions_prev_items_and_none_of_their_targets(tiny_data):
    """The sessions to rank (validation, the task's test file) add their own items as targets, with their
    real targets withheld (``Sessions.inputs_as_sessions`` never reads them: tests/test_data.py)."""
    data = M2Data(tiny_data / "data")
    config = dict(prefix_examples=False, popularity_prior=False)
    plain = ft.prepare_data(data, tiny_config(**config))
    both = ft.prepare_data(data, tiny_config(**config, transductive=True))
    ranked = ft.ranked_inputs(data, plain.valid, 2)
    assert (ranked.next_item == -1).all()
    assert len(ranked) == len(plain.valid) + int(data.test(2).in_locales(["ES", "FR", "IT"]).sum())
    added = _signatures(both.train) - _signatures(plain.train)
    assert sum(added.values()) == len(both.train) - len(plain.train) > 0
    assert not added - _signatures(ranked.inputs_as_sessions())  # only the ranked sessions' own items
    assert _signatures(both.valid) == _signatures(plain.valid)


def test_cross_locale_reads_other_locales_sessions_in_a_task_locale_that_sells_their_target(tiny_data):
    data = M2Data(tiny_data / "data")
    catalog = data.catalog
    config = dict(prefix_examples=False, popularity_prior=False)
    plain = ft.prepare_data(data, tiny_config(**config))
    both = ft.prepare_data(data, tiny_config(**config, cross_locale=True))
    moved = ft.moved_sessions(catalog, data.train, ("ES", "FR", "IT"))
    assert len(moved) > 0 and set(moved.locale.tolist()) <= {LOCALES.index(x) for x in ("ES", "FR", "IT")}
    assert (catalog.rows(moved.next_item, moved.locale) >= 0).all()  # the locale sells the target
    assert (catalog.newest_sold(moved) >= 0).all()  # and at least one item of the session
    # each is a UK/DE/JP training session, unchanged but for its locale (one copy per locale selling the target)
    source = data.train.select(data.train.in_locales(["UK", "DE", "JP"]))
    originals = {(tuple(source[i].tolist()), int(source.next_item[i])) for i in range(len(source))}
    assert {(tuple(moved[i].tolist()), int(moved.next_item[i])) for i in range(len(moved))} <= originals
    assert _signatures(both.train) - _signatures(plain.train) == _signatures(moved)
    assert _signatures(both.valid) == _signatures(plain.valid)


def test_best_folder_round_trips_through_the_auto_class_with_identical_recommendations(finished_run, tiny_data,
                                                                                        tmp_path):
    """Issue 18's round trip: ``AutoModelForSeqRec.from_pretrained(best)`` restores the whole model (weights,
    item table with ids, locales and prior, tokenizer, retrieval weights), and its ``save_pretrained`` folder
    serves exactly the original's recommendations and scores."""
    from safetensors.torch import load_file

    from recformer_m2.models import TABLE_FILE, AutoModelForSeqRec, RecformerForSeqRec

    _, best = finished_run
    model = AutoModelForSeqRec.from_pretrained(best)
    assert isinstance(model, RecformerForSeqRec) and model.item_embeddings is not None
    assert model.tokenizer is not None and len(model.item_ids) == len(model.item_embeddings)
    model.save_pretrained(tmp_path / "again")
    for name in (TABLE_FILE, "model.safetensors"):
        first, second = load_file(best / name), load_file(tmp_path / "again" / name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name
    data = M2Data(tiny_data / "data")
    test = data.test(2)
    sessions = [{"items": list(data.catalog.ids[s]), "locale": "ESFRIT"[2 * (loc - 3):2 * (loc - 3) + 2]}
                for s, loc in zip(test.to_lists()[:20], test.locale[:20])]
    original = Recommender.from_pretrained(best, data, device="cpu", cache_dir=tmp_path / "c1")
    restored = Recommender.from_pretrained(tmp_path / "again", data, device="cpu", cache_dir=tmp_path / "c2")
    assert restored.recommend(sessions, k=20) == original.recommend(sessions, k=20)
    for a, b in zip(original.recommend_codes_with_scores(test, k=20, progress=False),
                    restored.recommend_codes_with_scores(test, k=20, progress=False)):
        np.testing.assert_array_equal(a, b)


def test_a_load_that_drops_or_misses_weights_raises_naming_them(finished_run, tmp_path):
    """Through the Auto classes too: the encoder's Auto class on a finetuned folder would drop the prior
    weight, and a folder missing a weight would be initialised at random."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    from recformer_m2.models import AutoModelForSeqRec

    _, best = finished_run
    with pytest.raises(ValueError, match=r"unused by RecformerModel: \['prior_weight'\]"):
        AutoModel.from_pretrained(best)
    folder = tmp_path / "dropped"
    shutil.copytree(best, folder)
    weights = load_file(folder / "model.safetensors")
    del weights["prior_weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing from the checkpoint .*\['prior_weight'\]"):
        AutoModelForSeqRec.from_pretrained(folder)


def test_a_folder_of_the_earlier_layout_is_served_and_converted_by_a_load_and_a_save(finished_run, tiny_data,
                                                                                     tmp_path):
    """Folders written before the item table moved into safetensors (encoder weights, ``item_table.npy``,
    ``item_table.parquet`` with a per-item bias) still serve the same recommendations, and
    ``from_pretrained`` then ``save_pretrained`` rewrites them in the current layout."""
    import shutil

    import pandas as pd

    from recformer_m2.constants import LOCALES
    from recformer_m2.models import TABLE_FILE, AutoModelForSeqRec

    _, best = finished_run
    data = M2Data(tiny_data / "data")
    current = Recommender.from_pretrained(best, data, device="cpu", cache_dir=tmp_path / "c0")
    legacy = tmp_path / "legacy"
    model = AutoModelForSeqRec.from_pretrained(best)
    model.recformer.save_pretrained(legacy)  # the encoder alone, as best/ used to hold
    model.tokenizer.save_pretrained(legacy)
    shutil.copy(best / ft.CONFIG_FILE, legacy / ft.CONFIG_FILE)
    table = current.item_table
    np.save(legacy / "item_table.npy", table.embeddings.astype(np.float16))
    pd.DataFrame({"id": table.ids.astype(str), "locale": [LOCALES[x] for x in table.locales],
                  "bias": table.bias}).to_parquet(legacy / "item_table.parquet", index=False)
    test = data.test(2)
    expected = current.recommend_codes_with_scores(test, k=20, progress=False)
    old = Recommender.from_pretrained(legacy, data, device="cpu", cache_dir=tmp_path / "c1")
    AutoModelForSeqRec.from_pretrained(legacy).save_pretrained(tmp_path / "converted")
    assert (tmp_path / "converted" / TABLE_FILE).is_file()
    new = Recommender.from_pretrained(tmp_path / "converted", data, device="cpu", cache_dir=tmp_path / "c2")
    for rec in (old, new):
        codes, scores = rec.recommend_codes_with_scores(test, k=20, progress=False)
        np.testing.assert_array_equal(codes, expected[0])
        np.testing.assert_allclose(scores, expected[1], atol=1e-6)  # bias / temperature * temperature


def test_lora_best_folder_holds_merged_weights_and_loads_strictly(tiny_data, tmp_path):
    """With LoRA, ``best/`` is saved from a merged copy: a plain ``RecformerForSeqRec`` folder (no adapter
    weights, nothing missing) with its item table, while training continues on the unmerged model."""
    from safetensors.torch import load_file

    from recformer_m2.models import AutoModelForSeqRec

    best = run_finetuning(tiny_data / "data", "none", tmp_path / "out",
                          tiny_config(lora=True, lora_r=2, stage1_epochs=1, stage2_epochs=1))
    assert not [k for k in load_file(best / "model.safetensors") if "lora" in k]
    model = AutoModelForSeqRec.from_pretrained(best)
    assert model.item_embeddings is not None and len(model.item_ids) == len(model.item_embeddings)


def test_finetuning_reads_item_tokens_from_the_datasets_cache(finished_run, tiny_data, tmp_path, monkeypatch):
    """Item sentences are tokenised into a cached ``datasets.Dataset`` (``item_dataset``): a second run over
    the same catalog, tokenizer and limits tokenises nothing itself."""
    from recformer_m2.models import ItemTokenizer

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("an item was tokenised inline although the datasets cache holds it")

    monkeypatch.setattr(ItemTokenizer, "_tokenize", no_tokenizing)
    run_finetuning(tiny_data / "data", "none", tmp_path / "again", tiny_config(stage1_epochs=1, stage2_epochs=1))
