"""``recformer-m2 encode``: the catalog (or a task's test sessions) encoded once into a folder, by one
process or by every rank of a launcher (``torchrun`` / ``deepspeed``), with one byte-identical result.

Rows are cut into fixed-size chunks that do not depend on the number of ranks; chunk ``c`` is encoded
by rank ``c % WORLD_SIZE``, and its batches depend only on the chunk (the encoder sorts a chunk by token
length and batches it in order), so one rank and N ranks compute the same bytes. Each chunk is written to
``OUT/shards/KEY/`` under a temporary name and renamed when complete, with a record (shape, size,
checksum) written after it; a rerun keeps every chunk whose record checks out and encodes the rest, so a
crashed run resumes. Rank 0 then waits for every chunk and merges them into::

    OUT/embeddings.npy   (N, D) float16 or float32, normalised, rows in catalog (or test-file) order
    OUT/keys.parquet     catalog: id, locale, code per row; task: row, locale per session
    OUT/manifest.json    key (encoder weights + config + tokenizer, data, attributes, dtype, chunking, device type),
                         content (the same without dtype and chunking: what the Recommender matches),
                         shapes, dtype and each file's size and checksum; written last

A catalog output is registered in the item-embedding cache folder, so ``Recommender`` (and so
``predict --method recformer``) uses it when its key matches (:func:`recformer_m2.encode.encoded_catalog`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .constants import ATTRIBUTES

logger = logging.getLogger(__name__)

WHAT = ("catalog", "task1", "task2", "task3")
DTYPES = ("float16", "float32")
CRASH_HOOK = "RECFORMER_M2_ENCODE_CRASH_AFTER"
"""Test hook, ``RANK:CHUNKS``: that rank exits abruptly after writing that many new chunks (a crash drill)."""


@dataclass
class EncodeConfig:
    """One ``encode`` job."""

    model: str
    """A pretraining ``final`` or finetuning ``best`` folder (encoder weights, config and tokenizer)."""
    data: str
    """A data folder (``products_train`` and ``sessions_test_task*``)."""
    out: str
    what: str = "catalog"
    """``catalog`` (every product row) or ``task1``/``task2``/``task3`` (that test file's sessions)."""
    dtype: str = "float16"
    chunk_size: int = 4096
    """Rows per chunk: the unit of sharding and of resuming; part of the key (it fixes the batches)."""
    batch_size: int = 64
    device: str | None = None
    """None: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    cache_dir: str | None = None
    """Item-embedding cache folder to register a catalog output in (None: the Recommender's default)."""
    wait_timeout_s: float = 24 * 3600.0
    """How long rank 0 waits for the other ranks' chunks before giving up."""
    keep_shards: bool = False
    """Keep ``OUT/shards`` after the merge (by default removed: the merged files hold the same bytes)."""

    def __post_init__(self) -> None:
        if self.what not in WHAT:
            raise ValueError(f"--what {self.what!r} is not one of {', '.join(WHAT)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.chunk_size < 1 or self.batch_size < 1:
            raise ValueError(f"chunk_size ({self.chunk_size}) and batch_size ({self.batch_size}) must be >= 1")


@dataclass(frozen=True)
class Ranks:
    """This process's place among a launcher's ranks (1 rank when no launcher started it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0


def launcher_ranks(env: dict[str, str] | None = None) -> Ranks:
    """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` and ``deepspeed`` set them."""
    env = os.environ if env is None else env
    try:
        ranks = Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError as err:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {err}") from None
    if ranks.world < 1 or not 0 <= ranks.rank < ranks.world:
        raise ValueError(f"RANK={ranks.rank} is not within WORLD_SIZE={ranks.world}")
    return ranks


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of every chunk of ``n`` rows: fixed by ``chunk_size`` alone, never by the rank count."""
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def rank_chunks(num_chunks: int, ranks: Ranks) -> list[int]:
    """Chunks this rank encodes: every ``world``-th, from its rank (the ranks finish at about the same time)."""
    return list(range(ranks.rank, num_chunks, ranks.world))


def _chunk_path(shard_dir: Path, c: int, num_chunks: int) -> Path:
    return shard_dir / f"chunk-{c:06d}-of-{num_chunks:06d}.npy"


def _chunk_ok(path: Path, rows: int, dim: int, dtype: str) -> bool:
    """A finished chunk: its record (written after the rename) is there and the array checks out against it."""
    from .encode import npy_problem

    record_path = path.with_suffix(".json")
    if not record_path.is_file():
        return False
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("shape") != [rows, dim] or record.get("dtype") != dtype:
        return False
    problem = npy_problem(path, record)
    if problem is not None:
        logger.warning("chunk %s is damaged (%s): encoding it again", path.name, problem)
    return problem is None


def _write_chunk(path: Path, values: np.ndarray) -> None:
    from .encode import npy_record, write_json_atomic

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npy")
    np.save(tmp, values)
    record = npy_record(tmp)
    os.replace(tmp, path)
    write_json_atomic(path.with_suffix(".json"), record)


def _crash_after(ranks: Ranks) -> int | None:
    value = os.environ.get(CRASH_HOOK)
    if not value:
        return None
    rank, _, chunks = value.partition(":")
    return int(chunks) if int(rank) == ranks.rank else None


def _parquet_record(path: Path) -> dict:
    from .encode import file_checksum

    return {"bytes": path.stat().st_size, "blake2b": file_checksum(path)}


def valid_output(out: Path, key: str) -> bool:
    """OUT holds a complete result for ``key``: the manifest says so and every file checks out."""
    from .encode import file_checksum, npy_problem

    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("key") != key:
        return False
    files = manifest.get("files", {})
    if npy_problem(out / "embeddings.npy", files.get("embeddings.npy", {})) is not None:
        return False
    keys = files.get("keys.parquet", {})
    path = out / "keys.parquet"
    return path.is_file() and path.stat().st_size == keys.get("bytes") and file_checksum(path) == keys.get("blake2b")


def run_encode(config: EncodeConfig, ranks: Ranks | None = None) -> Path:
    """Encode ``config.what`` into ``config.out`` as this rank's share of the job; rank 0 also merges.
    Returns OUT. Rerunning a finished job checks OUT and returns at once."""
    import pandas as pd
    import torch

    from .constants import LOCALES
    from .data import M2Data
    from .encode import (RecformerEncoder, catalog_items, catalog_key, digest_parts, encoder_digest, npy_record,
                         registration_path, session_items, write_json_atomic)
    from .models.folders import check_model_folder
    from .recommender import item_cache_dir

    ranks = ranks or launcher_ranks()
    out = Path(config.out)
    model = check_model_folder(config.model)  # missing folder, ID-baseline folder, config or weights: named
    device = config.device or (f"cuda:{ranks.local_rank}" if torch.cuda.is_available() else "cpu")
    encoder = RecformerEncoder.from_pretrained(model, device=device, batch_size=config.batch_size)
    data = M2Data(config.data)
    catalog = data.catalog
    encoder_id = encoder_digest(encoder)
    dim = encoder.model.config.hidden_size

    if config.what == "catalog":
        n = len(catalog)
        data_key = catalog_key(encoder_id, catalog, ATTRIBUTES)
        sessions = None
    else:
        sessions = data.test(int(config.what[-1]))
        n = len(sessions)
        data_key = digest_parts(catalog_key(encoder_id, catalog, ATTRIBUTES), config.what,
                                np.ascontiguousarray(sessions.items).tobytes(),
                                np.ascontiguousarray(sessions.offsets).tobytes(),
                                np.ascontiguousarray(sessions.locale).tobytes())
    # the device type too: CUDA encodes in bf16, so a CPU rerun must not resume a GPU run's chunks
    key = digest_parts(data_key, config.dtype, str(config.chunk_size), str(config.batch_size),
                       torch.device(device).type)
    if valid_output(out, key):
        logger.info("rank %d: %s already holds this encoding (key %s)", ranks.rank, out, key)
        return out

    bounds = chunk_bounds(n, config.chunk_size)
    shard_dir = out / "shards" / key
    shard_dir.mkdir(parents=True, exist_ok=True)
    mine = rank_chunks(len(bounds), ranks)
    texts = session_items(catalog, sessions) if sessions is not None else None
    crash_after = _crash_after(ranks)
    reused = written = 0
    for c in tqdm(mine, desc=f"encode {config.what} (rank {ranks.rank})", disable=ranks.rank != 0):
        start, end = bounds[c]
        path = _chunk_path(shard_dir, c, len(bounds))
        if _chunk_ok(path, end - start, dim, config.dtype):
            reused += 1
            continue
        if texts is None:
            values = encoder.encode_items(catalog_items(catalog, np.arange(start, end)))
        else:
            values = encoder.encode_sessions(texts[start:end])
        encoder.collator.item_tokenizer.clear()
        _write_chunk(path, values.astype(config.dtype))
        written += 1
        if crash_after is not None and written >= crash_after:
            logger.error("rank %d: crash drill (%s) after %d chunk(s)", ranks.rank, CRASH_HOOK, written)
            os._exit(17)
    logger.info("rank %d: %d chunk(s) encoded, %d reused from an earlier run, of %d", ranks.rank, written, reused,
                len(mine))
    if ranks.rank != 0:
        return out

    deadline = time.monotonic() + config.wait_timeout_s
    pending = [c for c in range(len(bounds)) if c not in set(mine)]
    while pending:
        pending = [c for c in pending if not _chunk_path(shard_dir, c, len(bounds)).with_suffix(".json").is_file()]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{shard_dir}: {len(pending)} chunk(s) of other ranks still missing after "
                               f"{config.wait_timeout_s:.0f} s (first: {pending[0]})")
        if pending:
            time.sleep(0.5)
    damaged = [c for c in range(len(bounds)) if c not in set(mine)
               and not _chunk_ok(_chunk_path(shard_dir, c, len(bounds)), bounds[c][1] - bounds[c][0], dim,
                                 config.dtype)]
    if damaged:
        raise RuntimeError(f"{shard_dir}: chunk(s) {damaged[:5]} failed their checks; rerun to encode them again")

    tmp = out / f".embeddings.npy.tmp{os.getpid()}.npy"
    merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=config.dtype, shape=(n, dim))
    for c, (start, end) in enumerate(bounds):
        merged[start:end] = np.load(_chunk_path(shard_dir, c, len(bounds)), mmap_mode="r")
    merged.flush()
    del merged
    os.replace(tmp, out / "embeddings.npy")
    if sessions is None:
        keys = pd.DataFrame({"id": catalog.table["id"].astype(str).to_numpy(),
                             "locale": catalog.table["locale"].astype(str).to_numpy(),
                             "code": catalog.table["code"].to_numpy(np.int32)})
    else:
        keys = pd.DataFrame({"row": np.arange(n, dtype=np.int64),
                             "locale": [LOCALES[x] for x in sessions.locale]})
    tmp = out / f".keys.parquet.tmp{os.getpid()}"
    keys.to_parquet(tmp, index=False)
    os.replace(tmp, out / "keys.parquet")
    manifest = {
        "format": 1, "key": key, "content": data_key, "what": config.what, "rows": n, "dim": dim, "dtype": config.dtype,
        "chunk_size": config.chunk_size, "batch_size": config.batch_size, "chunks": len(bounds),
        "encoder": encoder_id, "data": catalog.digest, "attributes": list(ATTRIBUTES),
        "files": {"embeddings.npy": npy_record(out / "embeddings.npy"), "keys.parquet": _parquet_record(
            out / "keys.parquet")},
    }
    write_json_atomic(out / "manifest.json", manifest)
    if not config.keep_shards:
        shutil.rmtree(out / "shards", ignore_errors=True)
    if config.what == "catalog":
        cache_dir = Path(config.cache_dir) if config.cache_dir else item_cache_dir()
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(registration_path(cache_dir, data_key), {"out": str(out.resolve())})
    logger.info("encoded %d %s rows into %s (%d chunks, key %s)", n, config.what, out, len(bounds), key)
    return out


def add_encode_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``encode`` on the ``recformer-m2`` command (its handler is :func:`cmd_encode`). Ranks come from
    the environment: under ``deepspeed`` give ``--no_local_rank`` (its ``--local_rank=N`` would land before
    the subcommand)."""
    defaults = EncodeConfig("", "", "")
    p = sub.add_parser("encode", help="encode the catalog or a task's test sessions into a folder; under "
                                      "torchrun/deepspeed every rank encodes its share")
    p.add_argument("--model", required=True, help="pretraining final or finetuning best folder")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--what", default=defaults.what, choices=WHAT)
    p.add_argument("--dtype", default=defaults.dtype, choices=DTYPES)
    p.add_argument("--chunk-size", type=int, default=defaults.chunk_size)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--device", default=None)
    p.add_argument("--cache-dir", default=None, help="item-embedding cache to register a catalog output in")
    p.add_argument("--keep-shards", action="store_true")
    p.set_defaults(func=cmd_encode)


def cmd_encode(args: argparse.Namespace) -> None:
    try:
        config = EncodeConfig(model=args.model, data=args.data, out=args.out, what=args.what, dtype=args.dtype,
                              chunk_size=args.chunk_size, batch_size=args.batch_size, device=args.device,
                              cache_dir=args.cache_dir, keep_shards=args.keep_shards)
        logger.debug("encode config: %s", asdict(config))
        run_encode(config)
    except (FileNotFoundError, ValueError, TimeoutError) as err:  # ModelFolderError, DataFormatError: ValueErrors
        raise SystemExit(f"encode: {err}") from None
