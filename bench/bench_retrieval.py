"""Catalog encoding speed and retrieval throughput/latency at Amazon-M2 scale (1.41M items), exact vs approximate.

Targets (issue 4): items encoded per second (CPU, ``small`` config; GPU ``base`` only when one is
lent), and retrieval throughput and latency over a 1.41M-item index, exact (flat, the named
baseline) vs approximate (HNSW, IVF), with the Recall@100 of each approximate index relative to exact
(target: >= 0.95, the bar the tests hold ``ItemIndex`` to).

Part A, encoding. A random-init Recformer with ``pretrain/configs/small.json``'s architecture and a
catalog tokenizer trained on ``small`` synthetic data (or ``--data``) encode ``--encode-items``
catalog products through the library's own paths:

- ``encode_catalog`` (what ``Recommender`` uses): catalog text read per row, chunked encoding
  (``--catalog-chunk`` rows per chunk, the library's ``ENCODE_CHUNK`` when 0), float16 table written
  to a memory-mapped cache file; then the same call again, served from the cache. Peak RSS growth
  during the call is measured (the kernel's high-water mark is reset first where Linux allows it);
- ``RecformerEncoder.encode_items`` on the same items in one call (the library sorts by text length
  in characters), against one call per ``batch_size`` slice of a given order (each call can only sort
  within its own batch): a shuffled order (unsorted batching) and an order sorted by each item's real
  token count (what the library's sort approximates). The runs take turns, best of ``--rounds``; all
  must give the same embeddings. Padded token slots per real token of each order are counted from the
  collator's real token lengths. These runs find every item already in the collator's item-token
  cache (counting the token lengths filled it), so they time collation and the model;
  ``encode_catalog`` also reads the catalog text and tokenises each item once, as a real catalog
  encode does, and is the figure to extrapolate from.

Items/s are extrapolated to the 1.41M products of Amazon-M2.

Part B, retrieval. ``--items`` (default 350,000; the full 1,410,000 does not fit the ~10 minute budget
on 2 shared CPU cores, mostly HNSW and IVF build: give ``--items 1410000`` for the full size) unit
vectors of ``--dim`` dimensions (128, ``small``'s hidden size; 768 for ``base``) split across the six
locales in Amazon-M2's proportions (UK ~500k, DE ~520k, JP ~395k, ES/FR/IT ~40k each, scaled to the
total). Vectors are clustered, as item embeddings are: each locale has one centre per ~``--cluster-size``
items and an item is its centre plus Gaussian noise, normalised. ``--queries`` sessions each take 1-5
items of one cluster; the session embedding is their mean plus noise, normalised, and the session's
items are excluded from its results (the library's exclusion path). Queries are spread over locales in
proportion to their items.

Before timing, flat search on a slice (``--check-items`` items of one locale) is checked against
``torch.topk`` over exact scores with the same exclusions. Then for each ``IndexConfig`` kind (library
defaults: HNSW M=32, efConstruction=80, efSearch=256; IVF ~4*sqrt(N) lists per locale, nprobe=32):
build seconds, batched queries/s (all queries in one ``ItemIndex.search`` call), single-query latency
p50/p99 (``--latency-queries`` calls of one query each, same path), Recall@100 relative to flat and
index memory (serialised size of the per-locale faiss indexes), each with its ratio to flat.

Threads: one torch and one faiss thread by default (``--threads``). On a CPU shared with other jobs,
a second OpenMP thread spins waiting for a descheduled partner: measured here under load ~7 on 2
cores, a ``small`` forward of 64 items took 2.1-2.8 s with 2 torch threads and 0.12 s with 1, and a
single-query flat search 15-29 ms with 2 faiss threads and 2 ms with 1, while HNSW building gained
nothing from the second thread. Give ``--threads 0`` on a machine of your own.

    nice -n 10 python bench/bench_retrieval.py                       # defaults, ~10 min on 2 shared cores
    nice -n 10 python bench/bench_retrieval.py --items 1410000 --skip-encode
    python bench/bench_retrieval.py --dim 768 --items 1410000 --kinds flat,ivf
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch

import recformer_m2.recommender as recommender_module
from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.encode import RecformerEncoder, catalog_items
from recformer_m2.index import KINDS, IndexConfig, ItemIndex
from recformer_m2.models import RecformerModel
from recformer_m2.pretraining import PretrainConfig, model_config
from recformer_m2.recommender import encode_catalog
from recformer_m2.tokenizer import train_tokenizer

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
FULL_ITEMS = 1_410_000
"""Products of Amazon-M2 (``products_train.csv`` rows)."""
LOCALE_ITEMS = {"UK": 500_000, "DE": 520_000, "JP": 395_000, "ES": 40_000, "FR": 40_000, "IT": 40_000}
"""Approximate products per locale in Amazon-M2; only their proportions are used."""
BASELINE = "flat"
RECALL_TARGET = 0.95
K = 100


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as err:
        logger.warning("cannot reset the peak RSS (%s): peak growth is measured from the process peak so far", err)
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Part A: encoding
# --------------------------------------------------------------------------------------------------
def build_encoder(args: argparse.Namespace, work: Path) -> tuple[RecformerEncoder, M2Data]:
    """A random-init ``small`` Recformer and a catalog tokenizer trained on the (synthetic) data."""
    if args.data:
        data = M2Data(args.data)
    else:
        from recformer_m2.synth import generate

        generate(work / "synthetic-small", scale="small", seed=args.seed)
        data = M2Data(work / "synthetic-small", cache_dir=work / "parse-cache")
    catalog = data.catalog
    raw = json.loads(Path(args.config).read_text())
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    config = PretrainConfig(**{k: v for k, v in raw.items() if k in names})
    start = time.perf_counter()
    tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), work / "tokenizer",
                                vocab_size=config.vocab_size, seed=args.seed)
    logger.info("tokenizer (%d tokens) trained on %d products in %.1f s", len(tokenizer), len(catalog),
                time.perf_counter() - start)
    torch.manual_seed(args.seed)
    model = RecformerModel(model_config(config, tokenizer))
    logger.info("model: hidden %d, %d layers, %d parameters", model.config.hidden_size,
                model.config.num_hidden_layers, sum(p.numel() for p in model.parameters()))
    return RecformerEncoder(model, tokenizer, batch_size=args.batch_size), data


def bench_encoding(args: argparse.Namespace, work: Path) -> dict:
    encoder, data = build_encoder(args, work)
    catalog = data.catalog
    rng = np.random.default_rng(args.seed)
    n = min(args.encode_items, len(catalog))
    rows = np.sort(rng.choice(len(catalog), size=n, replace=False))
    codes = catalog.table["code"].to_numpy()[rows]
    locales = catalog.table["locale_idx"].to_numpy()[rows].astype(np.int64)
    if args.catalog_chunk:
        recommender_module.ENCODE_CHUNK = args.catalog_chunk
    chunk = recommender_module.ENCODE_CHUNK
    out: dict = {"items": n, "dim": encoder.model.config.hidden_size, "chunk": chunk}

    # encode_catalog: text -> chunks -> float16 memmap cache, then a cache hit.
    reset_ok = reset_peak_rss()
    rss0 = _status_kb("VmRSS")
    start = time.perf_counter()
    table = encode_catalog(encoder, catalog, codes, locales, cache_dir=work / "item-cache", progress=False)
    out["catalog_s"] = time.perf_counter() - start
    out["peak_growth_mb"] = (_status_kb("VmHWM") - rss0) / 1024 if reset_ok else float("nan")
    out["table_dtype"], out["table_mb"] = str(table.dtype), table.nbytes / 2**20
    out["memmap"] = isinstance(table, np.memmap)
    start = time.perf_counter()
    again = encode_catalog(encoder, catalog, codes, locales, cache_dir=work / "item-cache", progress=False)
    out["cache_hit_s"] = time.perf_counter() - start
    if not np.array_equal(np.asarray(again), np.asarray(table)):
        raise AssertionError("the cached item table differs from the one just written")

    # encode_items: one call (the library sorts by text length) vs one call per batch of a given order.
    items = catalog_items(catalog, rows)
    bs = encoder.batch_size
    tokens = np.concatenate([encoder.collator.collate_items(items[s:s + bs])["attention_mask"].sum(1).numpy()
                             for s in range(0, n, bs)])  # real token count of each item, CLS included
    orders = {"shuffled": rng.permutation(n), "token_sorted": np.argsort(-tokens, kind="stable")}

    def per_batch(order: np.ndarray) -> np.ndarray:
        parts = [encoder.encode_items([items[i] for i in order[s:s + bs]]) for s in range(0, n, bs)]
        result = np.empty((n, parts[0].shape[1]), dtype=parts[0].dtype)
        result[order] = np.concatenate(parts)
        return result

    runs = {"library": lambda: encoder.encode_items(items), "shuffled": lambda: per_batch(orders["shuffled"]),
            "token_sorted": lambda: per_batch(orders["token_sorted"])}
    best = dict.fromkeys(runs, float("inf"))
    results = {}
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            start = time.perf_counter()
            results[name] = runs[name]()
            best[name] = min(best[name], time.perf_counter() - start)
            logger.info("encode_items %s, round %d: %.1f s", name, r, time.perf_counter() - start)
    max_diff = max(float(np.abs(results["library"] - results[name]).max()) for name in names)
    max_diff_table = float(np.abs(results["library"] - np.asarray(table, dtype=np.float32)).max())
    if max_diff > 1e-4 or max_diff_table > 2e-3:  # float16 table: ~5e-4 rounding on unit vectors
        raise AssertionError(f"orders disagree: up to {max_diff:.2e}, vs the float16 table {max_diff_table:.2e}")
    text_order = np.argsort(-np.array([sum(len(k) + len(v) for k, v in x) for x in items]), kind="stable")
    for name, order in (("library", text_order), *orders.items()):  # library: encode.py's text-length sort
        slots = sum(len(c) * tokens[c].max() for c in np.array_split(order, range(bs, n, bs)))
        out[f"pad_{name}"] = slots / tokens.sum()
    out.update({f"{name}_s": s for name, s in best.items()}, mean_tokens=float(tokens.mean()))
    return out


def report_encoding(r: dict) -> None:
    n = r["items"]
    lines = [
        f"Part A: encoding {n:,} catalog items, random-init `small` Recformer (hidden {r['dim']}), CPU, "
        f"torch threads {torch.get_num_threads()}",
        "| path | seconds | items/s | 1.41M items (extrapolated) | time ratio to library encode_items |",
        "|---|---|---|---|---|",
    ]
    for label, key in (("encode_items, one call (library: sorted by text length)", "library_s"),
                       ("encode_items per batch, batches sorted by token count", "token_sorted_s"),
                       ("encode_items per batch, shuffled (unsorted batching)", "shuffled_s"),
                       (f"encode_catalog (text + chunks of {r['chunk']:,} + float16 memmap)", "catalog_s"),
                       ("encode_catalog again (cache hit)", "cache_hit_s")):
        s = r[key]
        lines.append(f"| {label} | {s:.2f} | {n / s:,.0f} | {FULL_ITEMS / (n / s) / 60:.1f} min | "
                     f"{s / r['library_s']:.3f} |")
    lines += [
        f"padded token slots / real tokens (mean {r['mean_tokens']:.1f} tokens an item): library order "
        f"{r['pad_library']:.3f}, token-sorted {r['pad_token_sorted']:.3f}, shuffled {r['pad_shuffled']:.3f}",
        f"item table: {r['table_dtype']}, {r['table_mb']:.2f} MiB, memory-mapped: {r['memmap']} "
        f"(1.41M items: {FULL_ITEMS * r['dim'] * 2 / 2**20:,.0f} MiB on disk); "
        f"peak RSS growth during encode_catalog: {r['peak_growth_mb']:.1f} MiB",
    ]
    logger.info("\n%s", "\n".join(lines))


# --------------------------------------------------------------------------------------------------
# Part B: retrieval
# --------------------------------------------------------------------------------------------------
def locale_sizes(total: int) -> np.ndarray:
    """Items per locale (LOCALES order) in Amazon-M2's proportions, summing to ``total``."""
    shares = np.array([LOCALE_ITEMS[loc] for loc in LOCALES], dtype=np.float64)
    sizes = np.floor(shares / shares.sum() * total).astype(np.int64)
    sizes[np.argmax(shares)] += total - sizes.sum()
    return sizes


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_world(total: int, dim: int, n_queries: int, cluster_size: int, seed: int) -> dict:
    """Clustered unit item vectors per locale, codes, and sessions (queries, their locales, their items)."""
    rng = np.random.default_rng(seed)
    sizes = locale_sizes(total)
    items = np.empty((total, dim), dtype=np.float32)
    locales = np.repeat(np.arange(len(LOCALES)), sizes)
    clusters = np.empty(total, dtype=np.int64)
    start, next_cluster = 0, 0
    for size in sizes:
        n_centres = max(1, size // cluster_size)
        centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
        assign = rng.integers(0, n_centres, size)
        for s in range(0, size, 200_000):  # bounded temporaries
            part = assign[s:s + 200_000]
            block = centres[part] + 0.6 * rng.standard_normal((len(part), dim), dtype=np.float32)
            items[start + s:start + s + len(part)] = _normalise(block)
        clusters[start:start + size] = next_cluster + assign
        start, next_cluster = start + size, next_cluster + n_centres
    codes = rng.permutation(total).astype(np.int64)  # codes need not be positions
    by_cluster = np.argsort(clusters, kind="stable")
    bounds = np.searchsorted(clusters[by_cluster], np.arange(next_cluster + 1))
    seeds = rng.choice(total, size=n_queries, replace=False)  # locales in proportion to their items
    queries = np.empty((n_queries, dim), dtype=np.float32)
    exclude = []
    for i, seed_row in enumerate(seeds):
        c = clusters[seed_row]
        members = by_cluster[bounds[c]:bounds[c + 1]]
        session = np.unique(np.concatenate([[seed_row], rng.choice(members, size=rng.integers(0, 5))]))
        queries[i] = items[session].mean(0) + 0.03 * rng.standard_normal(dim, dtype=np.float32)
        exclude.append(codes[session])
    return {"items": items, "codes": codes, "locales": locales, "queries": _normalise(queries),
            "q_locales": locales[seeds], "exclude": exclude, "sizes": sizes}


def exact_topk(items: np.ndarray, codes: np.ndarray, queries: np.ndarray, exclude: list, k: int):
    """Codes and scores of the k best items by exact inner product (torch), excluded codes removed."""
    scores = torch.from_numpy(queries) @ torch.from_numpy(items).T  # (n, D) x (D, N) -> (n, N)
    for i, ex in enumerate(exclude):
        scores[i, torch.from_numpy(np.isin(codes, ex))] = -torch.inf
    top = torch.topk(scores, k, dim=1)
    return codes[top.indices.numpy()], top.values.numpy()


def check_flat(world: dict, n_items: int, n_queries: int) -> None:
    """Flat ItemIndex against torch.topk on a slice of the largest locale; raises on a mismatch."""
    loc = int(np.argmax(world["sizes"]))
    rows = np.flatnonzero(world["locales"] == loc)[:n_items]
    items, codes = world["items"][rows], world["codes"][rows]
    rng = np.random.default_rng(1)
    picked = rng.choice(len(rows), size=n_queries, replace=False)
    queries = _normalise(items[picked] + 0.1 * rng.standard_normal(items[picked].shape, dtype=np.float32))
    exclude = [np.concatenate([codes[p:p + 1], rng.choice(codes, size=rng.integers(0, 4))]) for p in picked]
    got, got_scores = ItemIndex(IndexConfig("flat", use_gpu=False)).build(items, codes, np.full(len(rows), loc)) \
        .search(queries, np.full(n_queries, loc), K, exclude)
    want, want_scores = exact_topk(items, codes, queries, exclude, K)
    score_err = float(np.abs(got_scores - want_scores).max())
    same = float((got == want).mean())
    leaked = sum(bool(set(g) & set(e)) for g, e in zip(got, exclude))
    if score_err > 1e-5 or same < 0.999 or leaked:
        raise AssertionError(f"flat vs torch.topk: max score error {score_err:.2e}, same ids {same:.4f}, "
                             f"{leaked} queries returned an excluded item")
    logger.info("check: flat ItemIndex == torch.topk on %d items x %d queries (max score error %.1e, "
                "same ids %.4f, no excluded item returned)", len(rows), n_queries, score_err, same)


def index_bytes(index: ItemIndex) -> int:
    return sum(int(faiss.serialize_index(i).nbytes) for i in index._indexes.values())


def bench_kind(kind: str, world: dict, n_latency: int) -> tuple[dict, np.ndarray]:
    config = IndexConfig(kind, use_gpu=False)
    start = time.perf_counter()
    index = ItemIndex(config).build(world["items"], world["codes"], world["locales"])
    build_s = time.perf_counter() - start
    logger.info("%s: built in %.1f s", kind, build_s)
    queries, q_locales, exclude = world["queries"], world["q_locales"], world["exclude"]
    start = time.perf_counter()
    ranked, _ = index.search(queries, q_locales, K, exclude)
    batch_s = time.perf_counter() - start
    latencies = []
    for i in range(min(n_latency, len(queries))):
        start = time.perf_counter()
        index.search(queries[i:i + 1], q_locales[i:i + 1], K, exclude[i:i + 1])
        latencies.append(time.perf_counter() - start)
    lat_ms = 1000 * np.array(latencies)
    out = {"kind": kind, "build_s": build_s, "qps": len(queries) / batch_s, "p50_ms": float(np.median(lat_ms)),
           "p99_ms": float(np.percentile(lat_ms, 99)), "mem_mb": index_bytes(index) / 2**20}
    logger.info("%s: %.0f queries/s batched, p50 %.2f ms, p99 %.2f ms single", kind, out["qps"], out["p50_ms"],
                out["p99_ms"])
    return out, ranked


def bench_retrieval(args: argparse.Namespace) -> list[dict]:
    start = time.perf_counter()
    world = synthetic_world(args.items, args.dim, args.queries, args.cluster_size, args.seed)
    logger.info("%d x %d items (%s), %d queries generated in %.1f s", args.items, args.dim,
                ", ".join(f"{loc} {n:,}" for loc, n in zip(LOCALES, world["sizes"])), args.queries,
                time.perf_counter() - start)
    check_flat(world, min(args.check_items, int(world["sizes"].max())), 100)
    kinds = [BASELINE] + [k for k in args.kinds.split(",") if k and k != BASELINE]
    rows, exact = [], None
    for kind in kinds:
        row, ranked = bench_kind(kind, world, args.latency_queries)
        if exact is None:
            exact = ranked
        row["recall"] = float(np.mean([len(set(a[a >= 0]) & set(e[e >= 0])) / max(1, (e >= 0).sum())
                                       for a, e in zip(ranked, exact)]))
        logger.info("%s: Recall@100 relative to flat %.4f, %.0f MiB", kind, row["recall"], row["mem_mb"])
        rows.append(row)
    return rows


def report_retrieval(rows: list[dict], args: argparse.Namespace) -> None:
    base = rows[0]
    lines = [
        f"Part B: retrieval, {args.items:,} items x {args.dim} (6 locales), {args.queries:,} sessions, top-{K} "
        f"with session items excluded, CPU, faiss threads {faiss.omp_get_max_threads()}; "
        f"latency over {args.latency_queries} single-query calls",
        "| index | build s | queries/s (batched) | p50 ms | p99 ms | Recall@100 vs flat | memory MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['build_s']:.1f} | {r['qps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['recall']:.4f} | {r['mem_mb']:,.0f} |")
    for r in rows[1:]:
        lines.append(f"| {r['kind']}/{BASELINE} | {r['build_s'] / base['build_s']:.2f} | {r['qps'] / base['qps']:.2f} | "
                     f"{r['p50_ms'] / base['p50_ms']:.3f} | {r['p99_ms'] / base['p99_ms']:.3f} | "
                     f"{r['recall']:.4f} (target >= {RECALL_TARGET}) | {r['mem_mb'] / base['mem_mb']:.2f} |")
    logger.info("\n%s", "\n".join(lines))
    missed = [r["kind"] for r in rows[1:] if r["recall"] < RECALL_TARGET]
    if missed:
        logger.warning("Recall@100 relative to exact below %.2f: %s", RECALL_TARGET, ", ".join(missed))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(REPO / "pretrain" / "configs" / "small.json"))
    p.add_argument("--data", help="an Amazon-M2 data folder (default: `small` synthetic data in --work)")
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    p.add_argument("--encode-items", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--catalog-chunk", type=int, default=1000,
                   help="rows per encode_catalog chunk (0: the library's ENCODE_CHUNK)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--items", type=int, default=350_000, help=f"retrieval index size (full: {FULL_ITEMS})")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--latency-queries", type=int, default=300)
    p.add_argument("--cluster-size", type=int, default=100, help="items per cluster centre, on average")
    p.add_argument("--check-items", type=int, default=20_000)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--skip-encode", action="store_true")
    p.add_argument("--skip-retrieval", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and faiss threads (0: their defaults); see the module docstring for why 1")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        encoding = None if args.skip_encode else bench_encoding(args, work)
    retrieval = None if args.skip_retrieval else bench_retrieval(args)
    if encoding:
        report_encoding(encoding)
    if retrieval:
        report_retrieval(retrieval, args)
    logger.info("total %.1f min", (time.perf_counter() - start) / 60)


if __name__ == "__main__":
    main()
