"""Hybrid: features by hand, ranker labels from held-out training sessions only, no test-label leak,
end-to-end shapes and exclusions, determinism, ablations; the flat top-k against ``rank_candidates``."""

import inspect
import shutil

import numpy as np
import pandas as pd
import pytest

from recformer_m2.constants import LOCALES, PRODUCT_COLUMNS
from recformer_m2.data import M2Data, validation_split
from recformer_m2.heuristics import CoVisitation, Popularity
from recformer_m2.data.m2 import Catalog, Sessions
from recformer_m2.hybrid import (ID_ONLY_FOLDS, SOURCE_GROUPS, Hybrid, ModelSource, catalog_has_text, default_sources, fold_splits,
                                 held_out_split, id_sources, session_keys)
from recformer_m2.ranking import top_candidates
from recformer_m2.synth import generate

from .conftest import write_m2_folder

DE = LOCALES.index("DE")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hybrid") / "data"
    generate(folder, scale="tiny", seed=0)
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder, tmp_path_factory) -> M2Data:
    return M2Data(tiny_folder, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def fitted(tiny) -> Hybrid:
    return Hybrid(valid_fraction=0.3, seed=0).fit(tiny.catalog, tiny.train)


# --- features on a hand-made example ----------------------------------------------------------------
@pytest.fixture
def shop(tmp_path, cache_dir) -> M2Data:
    products = [  # id, title, brand, price
        ("A", "alpha kettle", "Acme", 10.0), ("B", "alpha kettle large", "Acme", 20.0),
        ("C", "zeta toaster", "Zeta", 5.0), ("D", "acme mug", " acme ", 40.0), ("E", "plain cup", "", None),
    ]
    sessions = [(["A"], "B", "DE"), (["A"], "B", "DE"), (["A", "C"], "D", "DE"), (["C"], "E", "DE"), (["E"], "C", "DE")]
    folder = write_m2_folder(tmp_path / "shop", [(p[0], "DE", p[1]) for p in products], sessions,
                             {1: [(["C", "A"], "DE")]})
    rows = []
    for pid, title, brand, price in products:
        row = dict.fromkeys(PRODUCT_COLUMNS, "")
        row.update(id=pid, locale="DE", title=title, brand=brand, price=price)
        rows.append(row)
    pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS)).to_csv(folder / "products_train.csv", index=False)
    return M2Data(folder, cache_dir=cache_dir)


def test_features_by_hand(shop):
    sources = {"popularity": Popularity(), "covisitation": CoVisitation()}
    model = Hybrid(sources=sources, per_source=2)
    model.fit_sources(shop.catalog, shop.train)
    sessions = shop.test(1)  # [C, A]: A is the last item
    rows, codes, features = model.features(sessions)
    name = {i: shop.catalog.ids[c] for i, c in enumerate(codes)}
    by_name = features.set_index(pd.Index([name[i] for i in range(len(codes))]))
    assert set(by_name.index) <= {"B", "D", "E"}, "session items are never candidates"
    assert (rows == 0).all()
    # DE occurrences: A 3, C 3, B 2, E 2, D 1; without the session's A and C: B first, then E (D not in the top 2).
    assert by_name.loc["B", "popularity_rank"] == 0 and by_name.loc["E", "popularity_rank"] == 1
    assert by_name.loc["B", "popularity"] == pytest.approx(1000 * 2 / 5)  # per 1000 DE training sessions
    # Each source's rank is its position in its own recommendation list; absent: rank per_source, score NaN.
    covis = CoVisitation().fit(shop.catalog, shop.train).recommend(sessions, k=2, progress=False)[0]
    for position, code in enumerate(covis):
        assert by_name.loc[shop.catalog.ids[code], "covisitation_rank"] == position
    for item in by_name.index:
        if item not in shop.catalog.ids[covis]:
            assert by_name.loc[item, "covisitation_rank"] == 2 and np.isnan(by_name.loc[item, "covisitation_score"])
    if "D" in by_name.index:
        assert by_name.loc["D", "popularity_rank"] == 2 and np.isnan(by_name.loc["D", "popularity_score"])
        assert by_name.loc["D", "same_brand"] == 1  # " acme " is the brand Acme
        assert by_name.loc["D", "price_ratio"] == pytest.approx(4.0)
    assert by_name.loc["B", "same_brand"] == 1 and by_name.loc["B", "price_ratio"] == pytest.approx(2.0)
    assert by_name.loc["E", "same_brand"] == 0 and np.isnan(by_name.loc["E", "price_ratio"])  # no brand, no price
    assert by_name.loc["B", "title_sim_last"] > 0.3 and by_name.loc["E", "title_sim_last"] == 0
    assert by_name.loc["B", "related_steps_back"] == 0  # most like A, the last item
    assert (by_name["session_length"] == 2).all() and (by_name["locale"] == DE).all()
    assert by_name.loc["B", "n_sources"] == 2


# --- where the labels come from ----------------------------------------------------------------------
class SpyPopularity(Popularity):
    """Popularity that remembers the sessions it was last fitted on."""

    def fit(self, catalog, train):
        self.fitted_on = train
        return super().fit(catalog, train)


def test_labels_come_from_held_out_training_sessions_only(tiny):
    spy = SpyPopularity()
    model = Hybrid(sources={**default_sources(without=["popularity"]), "popularity": spy}, valid_fraction=0.3)
    data = model.training_data(tiny.catalog, tiny.train)
    fit_idx, valid_idx = validation_split(tiny.train, 0.3, 0, model.max_valid_per_locale)
    assert np.isin(data.sessions, valid_idx).all()
    # The sources saw exactly the other training sessions.
    np.testing.assert_array_equal(spy.fitted_on.next_item, tiny.train.select(fit_idx).next_item)
    np.testing.assert_array_equal(spy.fitted_on.offsets, tiny.train.select(fit_idx).offsets)
    # One positive per group: the held-out session's own next item.
    group = np.repeat(np.arange(len(data.groups)), data.groups)
    assert (np.bincount(group, weights=data.labels) == 1).all()
    np.testing.assert_array_equal(data.codes[data.labels == 1], tiny.train.next_item[data.sessions])
    summary = model.training_summary
    assert summary["held_out_sessions"] == len(valid_idx)
    assert summary["sessions_dropped"] == len(valid_idx) - len(data.groups) and len(data.groups) > 0
    assert len(data.features) == len(data.labels) == data.groups.sum()


def test_test_ground_truth_never_reaches_the_ranker(tiny_folder, fitted, tmp_path):
    assert list(inspect.signature(Hybrid.fit).parameters) == ["self", "catalog", "train"]
    garbled = tmp_path / "garbled"
    shutil.copytree(tiny_folder, garbled)
    rng = np.random.default_rng(1)
    ids = pd.read_csv(garbled / "products_train.csv")["id"].to_numpy()
    for task in (1, 2, 3):
        truth = pd.read_csv(garbled / f"gt_task{task}.csv")
        column = truth.columns[0]
        # Next items become random products; titles (task 3) are shuffled between rows.
        truth[column] = rng.choice(ids, len(truth)) if task < 3 else rng.permutation(truth[column].to_numpy())
        truth.to_csv(garbled / f"gt_task{task}.csv", index=False)
    other = M2Data(garbled, cache_dir=tmp_path / "cache")
    original = M2Data(tiny_folder, cache_dir=tmp_path / "cache")
    assert not other.truth(1)["next_item"].equals(original.truth(1)["next_item"])
    refitted = Hybrid(valid_fraction=0.3, seed=0).fit(other.catalog, other.train)
    for task in (1, 2):
        np.testing.assert_array_equal(refitted.recommend(other.test(task), progress=False),
                                      fitted.recommend(other.test(task), progress=False))


# --- end to end ---------------------------------------------------------------------------------------
def test_recommend_shapes_exclusions_and_locales(tiny, fitted):
    for task in (1, 2):
        sessions = tiny.test(task)
        ranked = fitted.recommend(sessions, k=100, progress=False)
        assert ranked.shape == (len(sessions), 100) and ranked.dtype == np.int32
        for row, session, loc in zip(ranked, sessions.to_lists(), sessions.locale):
            got = row[row >= 0]
            assert (row[len(got):] == -1).all(), "padding only at the end"
            assert not set(got.tolist()) & set(session.tolist())
            assert len(set(got.tolist())) == len(got)
            assert (tiny.catalog.rows(got, loc) >= 0).all()
    importance = fitted.feature_importance()
    assert set(importance.index) == set(fitted.feature_names) and (importance >= 0).all()
    expected = {"covisitation_rank", "textknn_score", "same_brand", "price_ratio", "title_sim_last"}
    assert expected <= set(importance.index)


def test_deterministic_with_a_seed(tiny, fitted):
    again = Hybrid(valid_fraction=0.3, seed=0).fit(tiny.catalog, tiny.train)
    sessions = tiny.test(1)
    np.testing.assert_array_equal(again.recommend(sessions, progress=False), fitted.recommend(sessions, progress=False))
    pd.testing.assert_series_equal(again.feature_importance(), fitted.feature_importance())


def test_ablation_without_a_source(tiny):
    model = Hybrid(sources=default_sources(without=["textknn"]), valid_fraction=0.3).fit(tiny.catalog, tiny.train)
    assert not any(name.startswith("textknn_") for name in model.feature_names)
    assert "title_sim_last" in model.feature_names  # title features stay: they are not a source
    ranked = model.recommend(tiny.test(2), k=20, progress=False)
    assert ranked.shape == (len(tiny.test(2)), 20)
    with pytest.raises(ValueError, match="unknown source"):
        default_sources(without=["nope"])


@pytest.mark.parametrize("seed", range(5))
def test_top_candidates_matches_plain_loop_with_scores(seed):
    # The one top-k (it replaced hybrid.top_with_priority): order as the plain loop, best score kept.
    from .test_heuristics import rank_candidates_reference

    rng = np.random.default_rng(seed)
    n_rows, n = 7, 400
    rows, codes = rng.integers(0, n_rows, n), rng.integers(0, 50, n)
    priority = rng.integers(0, 20, n).astype(float)  # many ties
    ex_rows, ex_codes = rng.integers(0, n_rows, 30), rng.integers(0, 50, 30)
    expected = rank_candidates_reference(n_rows, 10, rows, codes, priority, ex_rows, ex_codes)
    out_rows, out_codes, out_rank, score = top_candidates(10, rows, codes, priority, ex_rows, ex_codes)
    got = np.full((n_rows, 10), -1, dtype=np.int32)
    got[out_rows, out_rank] = out_codes
    np.testing.assert_array_equal(got, expected)
    for r, c, s in zip(out_rows, out_codes, score):
        assert s == -priority[(rows == r) & (codes == c)].min()


class RecommendOnly:
    """A trained-model stand-in: ``recommend`` only, no ``fit`` and no ``_candidates``."""

    def __init__(self, inner):
        self.inner = inner

    def recommend(self, sessions, k=100, progress=True):
        return self.inner.recommend(sessions, k=k, progress=progress)


def test_prefitted_recommend_only_source(tiny):
    outside = RecommendOnly(CoVisitation(window=1).fit(tiny.catalog, tiny.train))
    sources = {**default_sources(), "outside": outside}
    model = Hybrid(sources=sources, fitted=["outside"], valid_fraction=0.3, per_source=10)
    model.fit_sources(tiny.catalog, tiny.train)
    sessions = tiny.test(1)
    rows, codes, features = model.features(sessions)
    ranked = outside.recommend(sessions, k=10, progress=False)
    proposed = features["outside_rank"].to_numpy() < 10
    np.testing.assert_array_equal(ranked[rows[proposed], features["outside_rank"].to_numpy()[proposed].astype(int)],
                                  codes[proposed])
    assert proposed.sum() == (ranked >= 0).sum()
    with pytest.raises(ValueError, match="not sources"):
        Hybrid(fitted=["nope"])


# --- trained models as sources ------------------------------------------------------------------------
class StubModel:
    """A trained-model stand-in: co-visitation's lists with made-up descending scores, calls recorded."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def recommend(self, sessions, k=100, progress=True):
        self.calls.append(sessions)
        return self.inner.recommend(sessions, k=k, progress=False)

    def recommend_with_scores(self, sessions, k=100, progress=True):
        ranked = self.recommend(sessions, k, progress)
        scores = np.where(ranked >= 0, 1.0 / (2.0 + np.arange(ranked.shape[1])), -np.inf)
        return ranked, scores


def test_session_keys_match_by_content(tiny):
    train = tiny.train
    keys = session_keys(train)
    index = np.array([5, 3, 17, 3])
    np.testing.assert_array_equal(session_keys(train.select(index)), keys[index])
    distinct = pd.DataFrame({"s": [tuple(s) for s in train.to_lists()], "n": train.next_item, "l": train.locale})
    assert len(np.unique(keys)) == len(distinct.drop_duplicates())


def test_held_out_split_restricted_to_eligible(tiny):
    train = tiny.train
    for fraction, cap in ((0.3, None), (0.2, 15)):
        expected = validation_split(train, fraction, 4, cap)
        for got, want in zip(held_out_split(train, fraction, 4, cap), expected):
            np.testing.assert_array_equal(got, want)
    eligible = (train.locale != DE) | (np.arange(len(train)) % 4 == 0)  # a quarter of DE is eligible
    fit_idx, valid_idx = held_out_split(train, 0.2, 4, None, eligible)
    assert eligible[valid_idx].all() and len(fit_idx) + len(valid_idx) == len(train)
    assert not np.isin(fit_idx, valid_idx).any()
    n_de = (train.locale == DE).sum()
    assert abs((train.locale[valid_idx] == DE).sum() - 0.2 * n_de) < 0.1 * n_de  # about the usual share


def test_model_source_features(tiny):
    stub = StubModel(CoVisitation(window=1).fit(tiny.catalog, tiny.train))
    source = ModelSource(stub, "stub", locales=[DE])
    model = Hybrid(sources={**default_sources(), "stub": source}, per_source=10)
    assert "stub" in model.fitted
    model.fit_sources(tiny.catalog, tiny.train)
    sessions = tiny.test(1)
    rows, codes, features = model.features(sessions)
    de = np.flatnonzero(sessions.locale == DE)
    assert len(stub.calls) == 1 and len(stub.calls[0]) == len(de), "only sessions of the served locales"
    ranked, scores = stub.recommend_with_scores(sessions.select(de), 10)
    proposed = features["stub_rank"].to_numpy() < 10
    assert np.isin(rows[proposed], de).all() and proposed.sum() == (ranked >= 0).sum()
    position = np.searchsorted(de, rows[proposed])
    rank = features["stub_rank"].to_numpy()[proposed].astype(int)
    np.testing.assert_array_equal(ranked[position, rank], codes[proposed])
    np.testing.assert_allclose(features["stub_score"].to_numpy()[proposed], scores[position, rank], rtol=1e-6)
    assert features["stub_score"][~proposed].isna().all()
    assert (features["n_sources"][proposed] >= 1).all()


def test_model_source_ranker_learns_on_unseen_sessions_only(tiny):
    train = tiny.train
    unseen_idx = np.flatnonzero((train.locale == DE) & (np.arange(len(train)) % 3 == 0))
    stub = StubModel(CoVisitation(window=1).fit(tiny.catalog, train))
    source = ModelSource(stub, "stub", locales=[DE], unseen=train.select(unseen_idx))
    np.testing.assert_array_equal(np.flatnonzero(source.unseen_mask(train) & (train.locale == DE)), unseen_idx)
    model = Hybrid(sources={**default_sources(), "stub": source}, valid_fraction=0.3, per_source=20)
    data = model.training_data(tiny.catalog, train)
    learned_de = data.sessions[train.locale[data.sessions] == DE]
    assert len(learned_de) and np.isin(learned_de, unseen_idx).all()
    assert (train.locale[data.sessions] != DE).any(), "other locales keep the usual split"
    assert model.training_summary["optimistic_model_sources"] == 0
    # Without known unseen sessions the model is used anyway and counted as optimistic.
    blind = Hybrid(sources={**default_sources(), "stub": ModelSource(stub, "stub", locales=[DE])}, valid_fraction=0.3)
    blind.training_data(tiny.catalog, train)
    assert blind.training_summary["optimistic_model_sources"] == 1


def test_model_source_never_sees_test_ground_truth(tiny_folder, tmp_path):
    """Same model source, same training sessions, garbled test truth: identical recommendations; the
    model and the ranker are only ever given sessions, and test sessions carry no next item."""
    original = M2Data(tiny_folder, cache_dir=tmp_path / "cache")
    garbled = tmp_path / "garbled"
    shutil.copytree(tiny_folder, garbled)
    ids = pd.read_csv(garbled / "products_train.csv")["id"].to_numpy()
    for task in (1, 2):
        truth = pd.read_csv(garbled / f"gt_task{task}.csv")
        truth["next_item"] = np.random.default_rng(task).choice(ids, len(truth))
        truth.to_csv(garbled / f"gt_task{task}.csv", index=False)
    results = []
    for data in (original, M2Data(garbled, cache_dir=tmp_path / "cache2")):
        stub = StubModel(CoVisitation(window=1).fit(data.catalog, data.train))
        sources = {**default_sources(), "stub": ModelSource(stub, "stub", unseen=data.train.select(np.arange(0, len(data.train), 2)))}
        model = Hybrid(sources=sources, valid_fraction=0.3).fit(data.catalog, data.train)
        results.append(model.recommend(data.test(2), progress=False))
        assert all((s.next_item[s.next_item >= 0] >= 0).all() for s in stub.calls)
        assert (stub.calls[-1].next_item == -1).all(), "test sessions reach the model without targets"
    np.testing.assert_array_equal(*results)


TINY_BASELINE = {
    "embedding_size": 16, "hidden_size": 16, "num_layers": 1, "transformer_layers": 1, "num_heads": 2,
    "inner_size": 32, "gnn_steps": 1, "max_length": 4, "batch_size": 64, "eval_batch_size": 64,
    "max_epochs": 1, "progress": False, "max_valid_per_locale": 20,
}


def test_predict_hybrid_with_model_folders(tiny_folder, tmp_path, monkeypatch):
    """End to end: train-baseline folders as hybrid sources, through ``predict --model A,B``."""
    from id_baselines.api import train_baseline

    from recformer_m2.cli import main
    from recformer_m2.methods import load_model_source, ranking_method
    from recformer_m2.submission import read_submission

    monkeypatch.setenv("RECFORMER_M2_CACHE", str(tmp_path / "cache"))
    stamp = train_baseline("stamp", tiny_folder, 2, "supervised", tmp_path / "stamp", overrides=TINY_BASELINE)
    narm = train_baseline("narm", tiny_folder, 2, "supervised", tmp_path / "narm", overrides=TINY_BASELINE)
    data = M2Data(tiny_folder, cache_dir=tmp_path / "cache")
    source = load_model_source(stamp, data)
    assert sorted(LOCALES[x] for x in source.locales) == ["ES", "FR", "IT"]
    # Its unseen sessions are exactly the baseline's validation split of the task 2 sessions.
    task2 = data.train.select(data.train.in_locales(["ES", "FR", "IT"]))
    assert len(source.unseen) == len(validation_split(task2, 0.1, 0, 20)[1])
    model = ranking_method("hybrid", data, model=[stamp, narm, stamp])
    assert {"stamp", "narm", "stamp_2"} <= set(model.sources)
    assert {"stamp_rank", "narm_score", "stamp_2_rank"} <= set(model.feature_names)
    assert model.training_summary["optimistic_model_sources"] == 0
    out = tmp_path / "task2.parquet"
    main(["predict", "--data", str(tiny_folder), "--task", "2", "--method", "hybrid",
          "--model", f"{stamp},{narm}", "--out", str(out)])
    submission = read_submission(out)
    sessions = data.test(2)
    assert len(submission) == len(sessions)
    for row, prev in zip(submission.next_item_prediction, sessions.to_lists()):
        assert 0 < len(row) == len(set(row)) <= 100 and not set(row) & set(data.catalog.ids[prev])
    with pytest.raises(ValueError, match="neither a Recformer folder"):
        load_model_source(tmp_path, data)


# --- id-only sources, no text, queries' prev_items but never their labels ---------------------------------
def without_text(catalog: Catalog) -> Catalog:
    """The same products with every attribute emptied: what a folder of real session ids gives."""
    table = catalog.table[list(PRODUCT_COLUMNS)].copy()
    for column in PRODUCT_COLUMNS:
        if column not in ("id", "locale"):
            table[column] = np.nan if column == "price" else ""
    return Catalog(table)


@pytest.fixture(scope="module")
def id_hybrid(tiny) -> Hybrid:
    catalog = without_text(tiny.catalog)
    return Hybrid(sources=id_sources(text=True), valid_fraction=0.3, folds=2, seed=0).fit(catalog, tiny.train)


def test_id_sources_without_text_skip_text_and_rank(tiny, id_hybrid):
    assert catalog_has_text(tiny.catalog) and not catalog_has_text(id_hybrid.catalog)
    assert "textknn" in id_hybrid.sources and "textknn" not in id_hybrid.active
    names = set(id_hybrid.feature_names)
    assert not {"same_brand", "price_ratio", "title_sim_last"} & names
    assert not any(name.startswith("textknn_") for name in names)
    expected = {"covis-queries_score", "covis-cross_rank", "embeddings_score", "covis-lift_last", "best_rank",
                "query_popularity", "popularity_all_locales", "next_popularity", "session_repeats"}
    assert expected <= names
    assert id_hybrid.training_summary["folds"] == 2
    sessions = tiny.test(2)
    ranked = id_hybrid.recommend(sessions, k=50, progress=False)
    for row, session in zip(ranked, sessions.to_lists()):
        assert not set(row[row >= 0].tolist()) & set(session.tolist())


def test_queries_prev_items_reach_the_ranker_but_never_their_labels(tiny, id_hybrid):
    sessions = tiny.test(2)
    truth = tiny.catalog.codes(tiny.truth(2)["next_item"].to_numpy())
    reference = id_hybrid.recommend(sessions, k=100, progress=False)
    rng = np.random.default_rng(0)
    for labels in (truth, rng.integers(0, tiny.catalog.num_ids, len(sessions)), np.full(len(sessions), -1)):
        labelled = Sessions(sessions.items, sessions.offsets, sessions.locale, labels.astype(np.int32))
        np.testing.assert_array_equal(id_hybrid.recommend(labelled, k=100, progress=False), reference)
    # Each session ranked alone loses the other sessions' prev_items as evidence: some lists change.
    alone = np.concatenate([id_hybrid.recommend(sessions.select([i]), k=100, progress=False)
                            for i in range(len(sessions))])
    assert (alone != reference).any(axis=1).mean() > 0.05


def test_fold_splits_are_disjoint_and_the_first_is_the_validation_split(tiny):
    train = tiny.train
    splits = fold_splits(train, 3, 0.25, 4, None)
    np.testing.assert_array_equal(splits[0][1], validation_split(train, 0.25, 4, None)[1])
    held = np.concatenate([valid for _, valid in splits])
    assert len(np.unique(held)) == len(held)
    for fit_idx, valid_idx in splits:
        assert len(fit_idx) + len(valid_idx) == len(train) and not np.isin(fit_idx, valid_idx).any()
    with pytest.raises(ValueError, match="folds"):
        Hybrid(folds=5, valid_fraction=0.3)


def test_source_groups_ablate(tiny):
    for group, members in SOURCE_GROUPS.items():
        kept = id_sources(without_group=group, text=True)
        assert not set(members) & set(kept) and "covisitation" in kept
    with pytest.raises(ValueError, match="unknown source group"):
        id_sources(without_group="nope")


def test_new_features_by_hand():
    catalog = without_text(Catalog(pd.DataFrame({"id": list("ABCD"), "locale": ["DE"] * 4, "title": list("abcd"),
                                                 "price": [1.0] * 4, **{c: "" for c in PRODUCT_COLUMNS[4:]}})))
    codes = dict(zip(catalog.ids, range(catalog.num_ids)))
    train = Sessions(np.array([codes["A"], codes["B"]], np.int32), np.array([0, 1, 2]), np.array([DE, DE], np.int8),
                     np.array([codes["B"], codes["C"]], np.int32))
    model = Hybrid(sources={"covisitation": CoVisitation(), "popularity": Popularity()}, per_source=5)
    model.fit_sources(catalog, train)
    # Queries [A, B, A] and [D]: B, A, A and D among the ranked sessions' prev_items.
    queries = Sessions(np.array([codes["A"], codes["B"], codes["A"], codes["D"]], np.int32), np.array([0, 3, 4]),
                       np.array([DE, DE], np.int8), np.array([-1, -1], np.int32))
    rows, cand, features = model.features(queries)
    first = features[rows == 0].set_index(catalog.ids[cand[rows == 0]])
    assert first.loc["C", "query_popularity"] == 0
    second = features[rows == 1].set_index(catalog.ids[cand[rows == 1]])
    assert second.loc["A", "query_popularity"] == pytest.approx(1000 * 2 / 2)  # A twice, per 1000 of 2 sessions
    assert second.loc["B", "next_popularity"] == pytest.approx(1000 * 1 / 2)  # B once a next item, 2 sessions
    assert second.loc["C", "popularity_all_locales"] == pytest.approx(1000 * 1 / 2)
    assert (first["session_repeats"] == 1).all() and (first["session_distinct"] == 2).all()
    assert (second["session_repeats"] == 0).all()
    assert first.loc["C", "best_rank"] == 0  # co-visitation's first pick after B -> C


def test_per_locale_rankers(tiny):
    model = Hybrid(valid_fraction=0.3, per_locale=True, seed=0).fit(tiny.catalog, tiny.train)
    data_locales = set(np.unique(tiny.train.locale).tolist())
    assert None in model.rankers and set(model.rankers) - {None} <= data_locales and len(model.rankers) > 2
    sessions = tiny.test(2)
    ranked = model.recommend(sessions, k=20, progress=False)
    agnostic = Hybrid(valid_fraction=0.3, seed=0).fit(tiny.catalog, tiny.train).recommend(sessions, k=20, progress=False)
    assert ranked.shape == agnostic.shape and (ranked != agnostic).any()
    assert set(model.feature_importance().index) == set(model.feature_names)


def test_default_hybrid_switches_to_id_sources_without_text(tiny):
    """Left to its defaults, the hybrid on a text-less catalog (real session ids) uses the id source set with
    ID_ONLY_FOLDS folds; with text it keeps the default sources."""
    hybrid = Hybrid().fit(without_text(tiny.catalog), tiny.train)
    assert set(hybrid.sources) == set(id_sources())
    assert hybrid.training_summary["folds"] == ID_ONLY_FOLDS
    chosen = Hybrid(sources=default_sources())
    assert not chosen.default_sources and Hybrid().default_sources
