"""One GPU check, one table: what a lent GPU does with this project, measured in a few minutes.

Rows (bf16 autocast over fp32 weights on CUDA; ``--dry-run`` shrinks every row to a tiny CPU run so CI
keeps the script working):

- pretraining steps/s and tokens/s of ``RecformerForPretraining`` (session pass with MLM, next-item
  pass, in-batch contrastive loss, AdamW) for the ``small`` and ``base`` architectures of
  ``pretrain/configs/*.json`` at their batch sizes, with MFU: model FLOPs per non-padding token
  ``6 N + 12 L D (w + 1)`` (``N`` encoder matrix weights, window ``w``; as ``bench_encoder.py``) against
  the device's peak dense bf16 FLOP/s, looked up by its name (unknown device: n/a); the models compute
  attention as their config says by default (``attention_implementation``: dense masked SDPA), and ``base`` is
  run once more with ``"longformer"`` (transformers' sliding chunks, the same weights and result) for the ratio;
- finetuning steps/s of ``RecformerForSeqRec`` (full softmax over an item table of ``--table-items``
  rows with the popularity prior and locale groups, as stage 2 of finetuning) for ``small`` and ``base``;
- catalog encoding at ``base``: ``RecformerEncoder.encode_items`` over distinct synthetic products
  (text read and tokenised, length-sorted batches), items/s and the projected time for Amazon-M2's
  1.41M products;
- retrieval over ``--items`` (1.41M) x ``--dim`` (768) clustered unit vectors: exact search with
  ``torch.topk`` on the device (the reference), then ``ItemIndex`` flat and IVF through the library's own
  placement (faiss-gpu when installed and a GPU is visible): build seconds, queries/s, Recall@100
  against the exact result. Without faiss-gpu those rows say so and the exact row still runs.

Model data: the ``small`` synthetic world (``--dry-run``: ``tiny``) and a catalog tokenizer trained on
it; the model's vocabulary is the config's ``vocab_size`` (the tokenizer uses the first ids), so the
MLM head costs what it would with a full-size tokenizer. Nothing is downloaded.

    bash bench/gpu_check.sh              # on a GPU machine, after scripts/install.sh and pip install -e .[gpu]
    bash bench/gpu_check.sh --dry-run    # tiny, on the CPU (CI)
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("gpu_check")

ROOT = Path(__file__).resolve().parents[1]
M2_PRODUCTS = 1_410_000

PEAK_BF16_TFLOPS = {  # dense (no sparsity), per device, from the vendors' data sheets
    "H200": 989.0, "H100": 989.0, "GH200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0,
    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "A6000": 155.0, "RTX 4090": 165.0,
    "B200": 2250.0,
}


def peak_tflops(device_name: str) -> float | None:
    """Peak dense bf16 TFLOP/s of a device by its name (longest matching key first); None when unknown."""
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key.lower() in device_name.lower():
            return PEAK_BF16_TFLOPS[key]
    return None


@dataclass
class CheckConfig:
    """Sizes of every row; :meth:`dry` is the tiny CPU version."""

    dry_run: bool = False
    device: str = "cuda"
    scale: str = "small"
    vocab: int = 8000
    configs: dict = field(default_factory=lambda: {"small": "pretrain/configs/small.json",
                                                   "base": "pretrain/configs/base.json"})
    warmup: int = 5
    steps: int = 30
    table_items: int = 50_000
    encode_items: int = 50_000
    encode_batch: int = 256
    items: int = M2_PRODUCTS
    dim: int = 768
    queries: int = 10_000
    cpu_queries: int = 1_000
    """Queries for the faiss-cpu flat row (exact search on the CPU: the baseline of the GPU rows)."""
    loader_workers: int = 8
    seed: int = 0

    @classmethod
    def dry(cls) -> "CheckConfig":
        tiny = "pretrain/configs/tiny.json"
        return cls(dry_run=True, device="cpu", scale="tiny", vocab=800, configs={"small": tiny, "base": tiny},
                   warmup=1, steps=2, table_items=300, encode_items=64, encode_batch=16, items=20_000, dim=32,
                   queries=200, cpu_queries=200, loader_workers=2)


@dataclass
class Row:
    check: str
    rate: str = ""
    throughput: str = ""
    quality: str = ""
    note: str = ""


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_token(config) -> float:
    """Training FLOPs per non-padding token of the encoder (bench_encoder.py's formula, from the config):
    per layer Q, K, V, output, global K and V (6 D^2) and the feed-forward (2 D I) weights, plus attention."""
    d, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    window = max(config.attention_window) if isinstance(config.attention_window, list) else config.attention_window
    return 6 * layers * (6 * d * d + 2 * d * inner) + 12 * layers * d * (window + 1)


class World:
    """Synthetic data, its tokenizer, and collated batches for each architecture."""

    def __init__(self, cfg: CheckConfig, work: Path):
        from recformer_m2.data import M2Data
        from recformer_m2.synth import generate
        from recformer_m2.tokenizer import train_tokenizer

        start = time.perf_counter()
        generate(work / "data", scale=cfg.scale, seed=cfg.seed)
        self.data = M2Data(work / "data", cache_dir=work / "cache")
        catalog = self.data.catalog
        self.tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), work / "tok",
                                         vocab_size=cfg.vocab, seed=cfg.seed)
        self.cfg = cfg
        logger.info("synthetic %s data and tokenizer in %.1f s", cfg.scale, time.perf_counter() - start)

    def model_config(self, name: str):
        from recformer_m2.config import load_config
        from recformer_m2.pretraining.config import PretrainConfig, model_config

        pretrain = load_config(PretrainConfig, ROOT / self.cfg.configs[name])
        config = model_config(pretrain, self.tokenizer)
        config.vocab_size = max(config.vocab_size, pretrain.vocab_size)  # the MLM head of a full-size vocabulary
        return config, pretrain.batch_size

    def examples(self, n: int, seed: int) -> list[dict]:
        """``n`` training sessions as collator examples (next item text, id and a table label)."""
        from recformer_m2.encode import session_items

        catalog, train = self.data.catalog, self.data.train
        next_rows = catalog.rows(train.next_item, train.locale)
        usable = np.flatnonzero(next_rows >= 0)
        picked = np.random.default_rng(seed).choice(usable, size=min(2 * n, len(usable)), replace=len(usable) < 2 * n)
        texts = session_items(catalog, train.select(picked))
        out = [{"items": items, "next_item": catalog.attributes(int(next_rows[i])),
                "next_item_id": int(train.next_item[i]), "label": int(next_rows[i]) % self.cfg.table_items}
               for i, items in zip(picked, texts) if items]
        return (out * (1 + n // max(len(out), 1)))[:n]


def time_steps(step, batches, warmup: int, device: torch.device) -> float:
    """Seconds for the timed batches (after ``warmup`` untimed ones), between device synchronisations.
    ``batches``: a list, or any iterable (a generator that collates, a DataLoader)."""
    batches = iter(batches)
    for _ in range(warmup):
        step(next(batches))
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    sync(device)
    return time.perf_counter() - start


PRETRAIN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "item_position_ids", "mlm_labels",
                   "next_input_ids", "next_attention_mask", "next_token_type_ids", "next_item_position_ids",
                   "item_ids")
"""The collator's outputs that the in-batch pretraining step reads (no table labels)."""


def pretrain_rows(world: World, name: str, device: torch.device, peak: float | None,
                  compare_attention: bool = False) -> list[Row]:
    """The pretraining row of ``name`` with the config's attention; with ``compare_attention``, a second row with
    Longformer's sliding chunks, whose note gives the default's speed-up over it."""
    row, rate = pretrain_row(world, name, device, peak)
    if not compare_attention:
        return [row]
    slow, slow_rate = pretrain_row(world, name, device, peak, attention="longformer")
    default = world.model_config(name)[0].attention_implementation
    slow.note += f"; the default ({default}) makes x{rate / slow_rate:.2f} these steps/s"
    return [row, slow]


def pretrain_row(world: World, name: str, device: torch.device, peak: float | None,
                 attention: str | None = None) -> tuple[Row, float]:
    """One pretraining row and its steps/s; ``attention``: an ``attention_implementation`` other than the config's."""
    from recformer_m2.models import RecformerConfig, RecformerForPretraining, SessionCollator

    cfg = world.cfg
    config, batch_size = world.model_config(name)
    if attention is not None:
        config = RecformerConfig.from_dict({**config.to_dict(), "attention_implementation": attention})
    collator = SessionCollator(world.tokenizer, config, rng=cfg.seed)
    examples = world.examples((cfg.warmup + cfg.steps) * batch_size, cfg.seed)
    batches = [{k: v for k, v in collator(examples[i:i + batch_size]).items() if k in PRETRAIN_INPUTS}
               for i in range(0, len(examples), batch_size)]
    torch.manual_seed(cfg.seed)
    model = RecformerForPretraining(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        with autocast(device):
            loss = model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = time_steps(step, batches, cfg.warmup, device)
    tokens = sum(int(b["attention_mask"].sum() + b["next_attention_mask"].sum()) for b in batches[cfg.warmup:])
    tokens_s = tokens / seconds
    mfu = "n/a" if peak is None or device.type != "cuda" else f"MFU {100 * flops_per_token(config) * tokens_s / (peak * 1e12):.1f}%"
    del model, optimizer
    label = f"pretrain {name}" + (f", {attention} attention" if attention is not None else "")
    return Row(f"{label} (bf16)" if device.type == "cuda" else f"{label} (fp32 cpu)",
               f"{cfg.steps / seconds:.2f} steps/s", f"{tokens_s:,.0f} tokens/s", mfu,
               f"batch {batch_size}, hidden {config.hidden_size} x {config.num_hidden_layers} layers, "
               f"<= {config.max_token_num} tokens, vocab {config.vocab_size}, "
               f"{config.attention_implementation} attention"), cfg.steps / seconds


class FinetuneCollate:
    """Collates finetuning examples (items, table label) and adds random locale groups; a DataLoader
    ``collate_fn`` (its workers fork with it)."""

    def __init__(self, collator, seed: int):
        self.collator = collator
        self.rng = np.random.default_rng(seed)

    def __call__(self, chunk: list[dict]) -> dict:
        batch = self.collator([{"items": e["items"], "label": e["label"]} for e in chunk])
        batch["groups"] = torch.from_numpy(self.rng.integers(0, 3, len(chunk)))
        return batch


def finetune_setup(world: World, name: str, device: torch.device, batch_size: int):
    """A ``RecformerForSeqRec`` with a random item table and prior, its one-step function, the collate
    function and enough examples for the warm-up and timed steps."""
    from recformer_m2.models import RecformerForSeqRec, SessionCollator

    cfg = world.cfg
    config, _ = world.model_config(name)
    collate = FinetuneCollate(SessionCollator(world.tokenizer, config, mlm_probability=0.0), cfg.seed)
    examples = world.examples((cfg.warmup + cfg.steps) * batch_size, cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = RecformerForSeqRec(config).to(device).train()
    table = torch.nn.functional.normalize(torch.randn(cfg.table_items, config.hidden_size), dim=-1)
    model.set_item_embeddings(table, torch.log1p(torch.rand(cfg.table_items) * 100),
                              torch.from_numpy(rng.integers(0, 3, cfg.table_items)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        with autocast(device):
            loss = model(**{k: v.to(device, non_blocking=True) for k, v in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, collate, examples


def finetune_row(world: World, name: str, device: torch.device) -> Row:
    """The step alone: batches collated before the clock starts."""
    cfg, batch_size = world.cfg, 32  # FinetuneConfig's default batch
    step, collate, examples = finetune_setup(world, name, device, batch_size)
    batches = [collate(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]
    seconds = time_steps(step, batches, cfg.warmup, device)
    return Row(f"finetune {name}", f"{cfg.steps / seconds:.2f} steps/s", f"{cfg.steps * batch_size / seconds:,.0f} "
               "sessions/s", "", f"batch {batch_size}, full softmax over {cfg.table_items:,} items + prior; "
               "collation not timed")


def finetune_loader_rows(world: World, name: str, device: torch.device) -> list[Row]:
    """Collation inside the loop (the inline loop) against a DataLoader whose worker processes collate
    ahead of the step: the same model, step and examples."""
    from torch.utils.data import DataLoader

    cfg, batch_size = world.cfg, 32
    step, collate, examples = finetune_setup(world, name, device, batch_size)
    chunks = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
    inline = time_steps(step, (collate(c) for c in chunks), cfg.warmup, device)
    loader = DataLoader(examples, batch_size=batch_size, collate_fn=collate, num_workers=cfg.loader_workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4)
    workers = time_steps(step, loader, cfg.warmup, device)
    return [Row(f"finetune {name}, collation inline", f"{cfg.steps / inline:.2f} steps/s",
                f"{cfg.steps * batch_size / inline:,.0f} sessions/s", "", "tokenise + collate, then step"),
            Row(f"finetune {name}, DataLoader", f"{cfg.steps / workers:.2f} steps/s",
                f"{cfg.steps * batch_size / workers:,.0f} sessions/s", "",
                f"{cfg.loader_workers} collating workers: x{inline / workers:.2f} the inline loop's rate")]


def encode_row(world: World, device: torch.device) -> Row:
    from recformer_m2.encode import RecformerEncoder, catalog_items
    from recformer_m2.models import RecformerModel

    cfg = world.cfg
    config, _ = world.model_config("base")
    torch.manual_seed(cfg.seed)
    encoder = RecformerEncoder(RecformerModel(config).to(device), world.tokenizer, batch_size=cfg.encode_batch)
    catalog = world.data.catalog
    warm = catalog_items(catalog, np.arange(min(len(catalog), 2 * cfg.encode_batch)))
    encoder.encode_items(warm)
    encoder.collator.item_tokenizer.clear()
    rows = np.arange(min(cfg.encode_items, len(catalog)))
    sync(device)
    start = time.perf_counter()
    encoder.encode_items(catalog_items(catalog, rows))  # text read, tokenised, sorted, batched, bf16 on CUDA
    sync(device)
    rate = len(rows) / (time.perf_counter() - start)
    return Row("encode catalog, base", f"{rate:,.0f} items/s", f"1.41M in {M2_PRODUCTS / rate / 60:.1f} min", "",
               f"{len(rows):,} distinct synthetic products, batch {cfg.encode_batch}")


def profile_rows(world: World, device: torch.device) -> list[Row]:
    """Where the time of the ``base`` rows goes (``--profile``): the pretraining step under torch.profiler
    (device-busy share of the wall time, top operators logged) and catalog encoding split into
    tokenisation (CPU) and collation + model."""
    from torch.profiler import ProfilerActivity, profile

    from recformer_m2.encode import RecformerEncoder, catalog_items
    from recformer_m2.models import RecformerForPretraining, RecformerModel, SessionCollator

    cfg = world.cfg
    config, batch_size = world.model_config("base")
    collator = SessionCollator(world.tokenizer, config, rng=cfg.seed)
    examples = world.examples(8 * batch_size, cfg.seed)
    batches = [{k: v for k, v in collator(examples[i:i + batch_size]).items() if k in PRETRAIN_INPUTS}
               for i in range(0, len(examples), batch_size)]
    model = RecformerForPretraining(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        with autocast(device):
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:3]:
        step(batch)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for batch in batches[3:]:
            step(batch)
        sync(device)
    wall = time.perf_counter() - start
    averages = prof.key_averages()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    logger.info("pretrain base, %d steps under the profiler:\n%s", len(batches) - 3,
                averages.table(sort_by=sort, row_limit=15))
    busy = sum(getattr(e, "self_device_time_total", 0.0) for e in averages) / 1e6 if device.type == "cuda" else 0.0
    launches = sum(e.count for e in averages if getattr(e, "self_device_time_total", 0.0) > 0)
    host_reads = sum(e.count for e in averages if e.key in ("aten::_local_scalar_dense", "aten::nonzero"))
    rows = [Row("profile: pretrain base step", f"{1000 * wall / (len(batches) - 3):.0f} ms/step",
                f"{launches / (len(batches) - 3):,.0f} kernels/step", f"device busy {100 * busy / wall:.0f}%",
                f"{host_reads / (len(batches) - 3):.0f} device-to-host reads/step (.item(), nonzero) stall the "
                "queue; the rest of the wall time is host time: Python and kernel launches")]
    del model, optimizer
    encoder = RecformerEncoder(RecformerModel(config).to(device), world.tokenizer, batch_size=cfg.encode_batch)
    items = catalog_items(world.data.catalog, np.arange(min(cfg.encode_items, len(world.data.catalog))))
    encoder.encode_items(items[:2 * cfg.encode_batch])
    encoder.collator.item_tokenizer.clear()
    start = time.perf_counter()
    for item in items:
        encoder._tokens(item)  # tokenised once, then cached for the batches
    tokenise = time.perf_counter() - start
    sync(device)
    start = time.perf_counter()
    encoder.encode_items(items)
    sync(device)
    model_time = time.perf_counter() - start
    rows.append(Row("profile: encode catalog, base", f"tokenise {len(items) / tokenise:,.0f} items/s",
                    f"collate + model {len(items) / model_time:,.0f} items/s",
                    f"tokenising {100 * tokenise / (tokenise + model_time):.0f}% of the time",
                    f"{len(items):,} items, one process"))
    return rows


def clustered(n: int, dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Unit vectors around one centre per ~50 items: the structure item embeddings have."""
    centres = torch.randn(max(8, n // 50), dim, generator=generator, device=device)
    pick = torch.randint(0, len(centres), (n,), generator=generator, device=device)
    x = centres[pick] + 0.5 * torch.randn(n, dim, generator=generator, device=device)
    return torch.nn.functional.normalize(x, dim=-1)


def retrieval_rows(cfg: CheckConfig, device: torch.device) -> list[Row]:
    """Exact torch.topk on the device, then ItemIndex flat and IVF wherever the library places them
    (faiss-gpu; torch exact search on a GPU faiss cannot use; else faiss on the CPU)."""
    from recformer_m2.index import IndexConfig, ItemIndex, choose_placement, faiss_gpus, torch_gpus

    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    items = clustered(cfg.items, cfg.dim, generator, device)
    queries = clustered(cfg.queries, cfg.dim, generator, device)
    k, batch = 100, 1024
    sync(device)
    start = time.perf_counter()
    exact = torch.cat([torch.topk(queries[i:i + batch] @ items.T, k, dim=1).indices  # (b, D) x (D, N) -> (b, N)
                       for i in range(0, len(queries), batch)]).cpu().numpy()
    sync(device)
    rows = [Row(f"exact torch.topk ({device.type})", f"{cfg.queries / (time.perf_counter() - start):,.0f} queries/s",
                "", "reference", f"{cfg.items:,} x {cfg.dim}, k = {k}")]
    items_np, queries_np = items.cpu().numpy(), queries.cpu().numpy()
    del items
    if device.type == "cuda":
        torch.cuda.empty_cache()
    has_gpu, gpus = faiss_gpus()
    codes = np.arange(cfg.items)
    locales = np.zeros(cfg.items, dtype=np.int8)
    configs = [IndexConfig("flat"), IndexConfig("ivf")]
    if choose_placement(configs[0], has_gpu, gpus, torch_gpus()).backend != "torch":
        configs.insert(1, IndexConfig("flat", backend="torch"))  # the torch path runs in every check
    for index_cfg in configs:
        place = choose_placement(index_cfg, has_gpu, gpus, torch_gpus())
        label = f"{place.backend} {index_cfg.kind}"
        where = "cpu" if place.gpus == 0 else f"{place.gpus} gpu" + (f", {place.multi}" if place.gpus > 1 else "")
        n_queries = cfg.queries
        if place.gpus == 0 and not cfg.dry_run:
            if index_cfg.kind == "ivf":  # k-means over 1.41M x 768 on the CPU takes minutes
                rows.append(Row(label, note="not run: faiss-gpu not installed" if not has_gpu else "faiss sees no GPU"))
                continue
            n_queries = cfg.cpu_queries
            where = f"cpu, {torch.get_num_threads()} threads"
        start = time.perf_counter()
        index = ItemIndex(index_cfg).build(items_np, codes, locales)
        built = time.perf_counter() - start
        start = time.perf_counter()
        got, _ = index.search(queries_np[:n_queries], np.zeros(n_queries, dtype=np.int8), k)
        qps = n_queries / (time.perf_counter() - start)
        recall = np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(got, exact[:n_queries])])
        rows.append(Row(f"{label} ({where})", f"{qps:,.0f} queries/s", f"build {built:.1f} s",
                        f"Recall@100 {recall:.4f}", f"vs exact torch.topk; {n_queries:,} queries; ItemIndex defaults"))
        del index
    return rows


def run(cfg: CheckConfig, profile_only: bool = False) -> tuple[list[Row], dict]:
    device = torch.device(cfg.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(name) if device.type == "cuda" else None
    import faiss

    info = {"device": name, "peak_bf16_tflops": peak, "torch": torch.__version__, "cuda": torch.version.cuda,
            "faiss": faiss.__version__, "dry_run": cfg.dry_run}
    logger.info("%s", info)
    rows: list[Row] = []
    checks = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        world = World(cfg, Path(work))
        if profile_only:
            checks.append(("profile", lambda: profile_rows(world, device)))
        for name_ in ("small", "base") if not profile_only else ():
            checks.append((f"pretrain {name_}",
                           lambda n=name_: pretrain_rows(world, n, device, peak, compare_attention=n == "base")))
        for name_ in ("small", "base") if not profile_only else ():
            checks.append((f"finetune {name_}", lambda n=name_: [finetune_row(world, n, device)]))
        if not profile_only:
            checks.append(("finetune loader", lambda: finetune_loader_rows(world, "small", device)))
            checks.append(("encode", lambda: [encode_row(world, device)]))
            checks.append(("retrieval", lambda: retrieval_rows(cfg, device)))
        for label, check in checks:
            start = time.perf_counter()
            try:
                rows.extend(check())
            except Exception as err:  # noqa: BLE001 -- a failed row (any cause) is logged and kept in the table
                logger.exception("%s failed", label)
                rows.append(Row(label, note=f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"))
            logger.info("%s: %.1f s", label, time.perf_counter() - start)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows, info


def table(rows: list[Row], info: dict) -> str:
    """The one table, as Markdown (it goes into bench/README.md as printed)."""
    peak = "n/a" if info["peak_bf16_tflops"] is None else f"{info['peak_bf16_tflops']:g} TFLOP/s bf16 dense"
    lines = [f"device: {info['device']} (peak {peak}); torch {info['torch']}, CUDA {info['cuda']}, "
             f"faiss {info['faiss']}" + ("; DRY RUN (tiny, CPU): sizes are not meaningful" if info["dry_run"] else ""),
             "", "| check | rate | throughput | MFU / recall | note |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.check} | {r.rate} | {r.throughput} | {r.quality} | {r.note} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="a tiny CPU version of every row (CI)")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per row")
    parser.add_argument("--items", type=int, default=None, help="retrieval: indexed vectors (default 1.41M)")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table's rows: where the base rows' time goes (profiler, encode split)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose or not args.dry_run else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    cfg = CheckConfig.dry() if args.dry_run else CheckConfig()
    cfg.device = args.device or cfg.device
    cfg.steps = args.steps or cfg.steps
    cfg.items = args.items or cfg.items
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: no CUDA device visible to torch {torch.__version__} (CUDA build: "
                         f"{torch.version.cuda}); run with --dry-run for the CPU version")
    if cfg.device == "cpu":
        torch.set_num_threads(1 if args.dry_run else torch.get_num_threads())
    start = time.perf_counter()
    rows, info = run(cfg, profile_only=args.profile)
    print(table(rows, info))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"info": info, "config": asdict(cfg), "rows": [asdict(r) for r in rows]},
                                             indent=1), encoding="utf-8")
    if any(r.note.startswith("failed") for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
