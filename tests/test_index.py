"""FAISS retrieval against exact torch.topk on seeded data; approximate indexes keep Recall@100 >= 0.95."""

import numpy as np
import pytest
import torch

from recformer_m2.index import IndexConfig, ItemIndex, lookup_rows, retrieval_queries


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around a few hundred centres: the structure item embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(8, n // 50), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_topk(items, codes, queries, k, exclude, bias=None):
    scores = torch.from_numpy(queries) @ torch.from_numpy(items).T  # (n, D) x (D, N) -> (n, N)
    if bias is not None:
        scores = scores + torch.from_numpy(bias)[None, :]
    for i, ex in enumerate(exclude):
        scores[i, np.isin(codes, ex)] = -torch.inf
    top = torch.topk(scores, k, dim=1)
    return codes[top.indices.numpy()], top.values.numpy()


@pytest.fixture(scope="module")
def world():
    items = clustered(6000, 32, 0)
    codes = np.arange(6000) * 3 + 7  # codes need not be positions
    locales = np.where(np.arange(6000) < 4000, 1, 4)
    queries = clustered(200, 32, 1)
    q_locales = np.where(np.arange(200) % 3 == 0, 4, 1)
    rng = np.random.default_rng(2)
    exclude = [rng.choice(codes[locales == loc], size=rng.integers(0, 6), replace=False) for loc in q_locales]
    return items, codes, locales, queries, q_locales, exclude


def test_flat_matches_exact_search(world):
    items, codes, locales, queries, q_locales, exclude = world
    got, got_scores = ItemIndex(IndexConfig("flat")).build(items, codes, locales).search(queries, q_locales, 100, exclude)
    for loc in (1, 4):
        rows = q_locales == loc
        want, want_scores = exact_topk(items[locales == loc], codes[locales == loc], queries[rows], 100,
                                       [exclude[i] for i in np.flatnonzero(rows)])
        np.testing.assert_allclose(got_scores[rows], want_scores, atol=1e-5)
        assert (got[rows] == want).mean() > 0.999  # ids equal up to exact ties
    for row, ex in zip(got, exclude):
        assert not set(row) & set(ex)
    assert set(got[q_locales == 4].ravel()) <= set(codes[locales == 4])


@pytest.mark.parametrize("with_bias", [False, True])
def test_torch_flat_backend_matches_exact_search(world, with_bias):
    """The torch search (what a GPU without faiss-gpu runs), here on the CPU in blocks of a few queries."""
    items, codes, locales, queries, q_locales, exclude = world
    bias = (0.05 * np.random.default_rng(3).random(len(items))).astype(np.float32) if with_bias else None
    cfg = IndexConfig("flat", backend="torch", torch_score_bytes=4 * 4000 * 7)  # 7 queries per block
    index = ItemIndex(cfg).build(items, codes, locales, bias)
    assert index.placement.backend == "torch" and index._indexes[1].block == 7
    got, got_scores = index.search(queries, q_locales, 100, exclude)
    for loc in (1, 4):
        rows, mine = q_locales == loc, locales == loc
        want, want_scores = exact_topk(items[mine], codes[mine], queries[rows], 100,
                                       [exclude[i] for i in np.flatnonzero(rows)],
                                       None if bias is None else bias[mine])
        np.testing.assert_allclose(got_scores[rows], want_scores, atol=1e-5)
        assert (got[rows] == want).mean() > 0.999
    faiss_codes, _ = ItemIndex(IndexConfig("flat", backend="faiss")).build(items, codes, locales, bias).search(
        queries, q_locales, 100, exclude)
    assert (got == faiss_codes).mean() > 0.999


def test_item_bias_matches_exact_search_of_cosine_plus_bias(world):
    items, codes, locales, queries, q_locales, exclude = world
    # the scale of a finetuned prior: temperature 0.05 x weight about 1 x log(1 + long-tailed counts)
    bias = (0.05 * np.log1p(10 * np.random.default_rng(3).pareto(1.5, len(items)))).astype(np.float32)
    index = ItemIndex(IndexConfig("flat")).build(items, codes, locales, bias)
    got, got_scores = index.search(queries, q_locales, 100, exclude)
    plain, _ = ItemIndex(IndexConfig("flat")).build(items, codes, locales).search(queries, q_locales, 100, exclude)
    assert (got != plain).mean() > 0.5  # the bias changes the ranking
    for loc in (1, 4):
        rows, mine = q_locales == loc, locales == loc
        want, want_scores = exact_topk(items[mine], codes[mine], queries[rows], 100,
                                       [exclude[i] for i in np.flatnonzero(rows)], bias[mine])
        np.testing.assert_allclose(got_scores[rows], want_scores, atol=1e-5)
        assert (got[rows] == want).mean() > 0.999
    for kind in ("hnsw", "ivf"):
        approx, _ = ItemIndex(IndexConfig(kind)).build(items, codes, locales, bias).search(queries, q_locales, 100,
                                                                                            exclude)
        recall = np.mean([len(set(a) & set(e)) / 100 for a, e in zip(approx, got)])
        assert recall >= 0.95, f"{kind} with bias: recall@100 relative to exact {recall:.3f}"
    with pytest.raises(ValueError, match="bias must have shape"):
        ItemIndex().build(items, codes, locales, bias[:10])


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_100(world, kind):
    items, codes, locales, queries, q_locales, exclude = world
    exact, _ = ItemIndex(IndexConfig("flat")).build(items, codes, locales).search(queries, q_locales, 100, exclude)
    approx, _ = ItemIndex(IndexConfig(kind)).build(items, codes, locales).search(queries, q_locales, 100, exclude)
    recall = np.mean([len(set(a) & set(e)) / 100 for a, e in zip(approx, exact)])
    assert recall >= 0.95, f"{kind} recall@100 relative to exact: {recall:.3f}"


def test_small_locale_pads_and_unknown_kind_raises(world):
    items, codes, locales, *_ = world
    index = ItemIndex().build(items[:5], codes[:5], np.zeros(5, dtype=int))
    got, scores = index.search(items[:1], np.array([0]), k=10, exclude=[codes[:1]])
    assert list(got[0, 4:]) == [-1] * 6 and np.isneginf(scores[0, 4:]).all()
    assert codes[0] not in got[0]
    with pytest.raises(ValueError, match="index kind 'pq'"):
        IndexConfig("pq")
    with pytest.raises(KeyError, match="locale index 3"):
        index.search(items[:1], np.array([3]), k=10)


def test_encode_catalog_does_not_grow_the_encoders_token_cache(tmp_path, monkeypatch):
    """Catalog encoding tokenises every product once: caching those tokens only grew memory with the
    catalog (about 2 KB a product, GBs at 1.41M products). The cache is emptied after every chunk."""
    import recformer_m2.recommender as recommender
    from recformer_m2 import RecformerConfig, RecformerModel
    from recformer_m2.data import M2Data
    from recformer_m2.encode import RecformerEncoder, catalog_items
    from recformer_m2.synth import generate
    from recformer_m2.tokenizer import train_tokenizer

    generate(tmp_path / "data", scale="tiny", seed=0)
    catalog = M2Data(tmp_path / "data", cache_dir=tmp_path / "cache").catalog
    tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), tmp_path / "tok", vocab_size=800)
    torch.manual_seed(0)
    config = RecformerConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64, attention_window=4, max_position_embeddings=256, max_token_num=256)
    encoder = RecformerEncoder(RecformerModel(config), tokenizer, batch_size=8)
    own = encoder.collator
    rows = np.arange(40)
    monkeypatch.setattr(recommender, "ENCODE_CHUNK", 16)  # three chunks
    table = recommender.encode_catalog(encoder, catalog, catalog.table["code"].to_numpy()[rows],
                                       catalog.table["locale_idx"].to_numpy()[rows].astype(np.int64),
                                       tmp_path / "items", progress=False)
    assert encoder.collator is own and len(own.item_tokenizer) == 0
    np.testing.assert_allclose(np.asarray(table, np.float32), encoder.encode_items(catalog_items(catalog, rows)),
                               atol=2e-3)  # float16 table


def test_lookup_rows_matches_a_dictionary():
    rng = np.random.default_rng(0)
    codes = rng.permutation(500)[:200]
    locales = rng.integers(0, 6, size=200)
    where = {(int(c), int(loc)): i for i, (c, loc) in enumerate(zip(codes, locales))}
    query_codes = np.concatenate([codes[:50], rng.integers(0, 600, size=50), [-1]])
    query_locales = np.concatenate([locales[:50], rng.integers(0, 6, size=50), [0]])
    expected = [where.get((int(c), int(loc)), -1) if c >= 0 else -1 for c, loc in zip(query_codes, query_locales)]
    assert lookup_rows(codes, locales, query_codes, query_locales).tolist() == expected
    assert lookup_rows(codes[:0], locales[:0], query_codes, query_locales).tolist() == [-1] * len(query_codes)


def test_retrieval_queries_add_the_weighted_row_and_normalise():
    sessions = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    table = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    out = retrieval_queries(sessions, 2.0, table, np.array([1, -1]))
    np.testing.assert_allclose(out, [[5 / np.hypot(5, 4), 4 / np.hypot(5, 4)], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(retrieval_queries(sessions, 0.0, table, np.array([1, 0])), [[0.6, 0.8], [1.0, 0.0]])
    assert sessions[0, 0] == 3.0                    # the caller's array is left alone


def test_placement_is_chosen_from_what_is_installed_and_visible(monkeypatch):
    import faiss

    from recformer_m2 import index as index_module
    from recformer_m2.index import Placement, choose_placement, faiss_gpus

    cfg = IndexConfig("flat")
    assert choose_placement(cfg, False, 0) == Placement(0, "single", cfg.cpu_search_batch)
    assert choose_placement(cfg, False, 4) == Placement(0, "single", cfg.cpu_search_batch)  # faiss-cpu: GPUs unused
    assert choose_placement(cfg, True, 0).gpus == 0
    assert choose_placement(cfg, True, 1) == Placement(1, "single", cfg.gpu_search_batch)
    assert choose_placement(cfg, True, 4) == Placement(4, "shards", cfg.gpu_search_batch)
    assert choose_placement(IndexConfig("ivf", multi_gpu="replicas", max_gpus=2), True, 4) == \
        Placement(2, "replicas", cfg.gpu_search_batch)
    assert choose_placement(IndexConfig("hnsw"), True, 4).gpus == 0       # no GPU HNSW
    assert choose_placement(IndexConfig("flat", use_gpu=False), True, 4).gpus == 0
    with pytest.raises(RuntimeError, match="use_gpu=True but faiss has no GPU support"):
        choose_placement(IndexConfig("flat", use_gpu=True), False, 2)
    # a GPU torch sees but faiss cannot use (faiss-cpu on a CUDA machine): exact search in torch there
    assert choose_placement(cfg, False, 0, 1) == Placement(1, "single", cfg.gpu_search_batch, "torch")
    assert choose_placement(cfg, True, 2, 2).backend == "faiss"                  # faiss-gpu comes first
    assert choose_placement(IndexConfig("ivf"), False, 0, 1) == Placement(0, "single", cfg.cpu_search_batch)
    assert choose_placement(IndexConfig("flat", use_gpu=False), False, 0, 1).gpus == 0
    assert choose_placement(IndexConfig("flat", backend="faiss"), False, 0, 1).gpus == 0
    assert choose_placement(IndexConfig("flat", use_gpu=True), False, 0, 1).backend == "torch"
    assert choose_placement(IndexConfig(backend="torch"), False, 0, 0) == \
        Placement(0, "single", cfg.cpu_search_batch, "torch")
    with pytest.raises(RuntimeError, match="use_gpu=True but faiss has no GPU support"):
        choose_placement(IndexConfig("ivf", use_gpu=True), False, 0, 1)
    with pytest.raises(ValueError, match="torch backend searches exactly"):
        IndexConfig("ivf", backend="torch")
    with pytest.raises(ValueError, match="multi_gpu 'mirror'"):
        IndexConfig(multi_gpu="mirror")
    # detection reads the faiss module: faiss-cpu has no StandardGpuResources
    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
    assert faiss_gpus() == (False, 0)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 3, raising=False)
    monkeypatch.setattr(index_module, "torch_gpus", lambda: 0)
    assert faiss_gpus() == (True, 3)
    assert ItemIndex(IndexConfig("flat")).placement == Placement(3, "shards", cfg.gpu_search_batch)
    assert index_module.faiss is faiss


@pytest.mark.parametrize("kind,multi", [("flat", "shards"), ("flat", "replicas"), ("ivf", "shards"),
                                        ("ivf", "replicas")])
def test_multi_gpu_layouts_match_exact_search(world, monkeypatch, kind, multi):
    """The sharded and replicated layouts, with CPU indexes standing in for GPUs (same faiss classes, same
    id bookkeeping), in small search batches: flat equals torch.topk, IVF keeps Recall@100 >= 0.95."""
    import faiss

    from recformer_m2 import index as index_module

    items, codes, locales, queries, q_locales, exclude = world
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: None, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 3, raising=False)
    monkeypatch.setattr(index_module, "torch_gpus", lambda: 0)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", faiss.clone_index, raising=False)
    monkeypatch.setattr(ItemIndex, "_to_gpu", lambda self, index, device: faiss.clone_index(index))
    index = ItemIndex(IndexConfig(kind, multi_gpu=multi, gpu_search_batch=37)).build(items, codes, locales)
    assert index.placement.gpus == 3 and index.placement.multi == multi
    wrapper = faiss.IndexShards if multi == "shards" else faiss.IndexReplicas
    assert all(isinstance(x, wrapper) for x in index._indexes.values())
    got, got_scores = index.search(queries, q_locales, 100, exclude)
    for loc in (1, 4):
        rows, mine = q_locales == loc, locales == loc
        want, want_scores = exact_topk(items[mine], codes[mine], queries[rows], 100,
                                       [exclude[i] for i in np.flatnonzero(rows)])
        if kind == "flat":
            np.testing.assert_allclose(got_scores[rows], want_scores, atol=1e-5)
            assert (got[rows] == want).mean() > 0.999
        else:
            recall = np.mean([len(set(a) & set(e)) / 100 for a, e in zip(got[rows], want)])
            assert recall >= 0.95, f"{kind}/{multi} recall@100 relative to exact: {recall:.3f}"
    for row, ex in zip(got, exclude):
        assert not set(row) & set(ex)
