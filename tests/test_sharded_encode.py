"""``recformer-m2 encode`` under a launcher: two ranks write the bytes one rank writes, a crashed rank's
shard resumes from its finished chunks, and the Recommender reads a matching output instead of encoding."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recformer_m2 import RecformerConfig, RecformerModel
from recformer_m2.data import M2Data
from recformer_m2.encode import RecformerEncoder, catalog_embeddings, catalog_items, session_items
from recformer_m2.recommender import Recommender
from recformer_m2.sharded import (CRASH_HOOK, EncodeConfig, Ranks, chunk_bounds, launcher_ranks, rank_chunks,
                                  run_encode)
from recformer_m2.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64
ROWS = 810  # products kept of the tiny synthetic catalog: 13 chunks, rank 0 takes 7 (0, 2, ..., 12), rank 1 takes 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny data folder and a saved tiny model folder (hidden 32, 2 layers, window 4)."""
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("sharded")
    generate(root / "data", scale="tiny", seed=0)
    products = root / "data" / "products_train.csv"
    pd.read_csv(products, dtype=str, keep_default_na=False).head(ROWS).to_csv(products, index=False)
    catalog = M2Data(root / "data", cache_dir=root / "cache").catalog
    assert len(catalog) == ROWS
    tokenizer = train_tokenizer((catalog.sentence(r) for r in range(len(catalog))), root / "tok", vocab_size=800)
    torch.manual_seed(0)
    config = RecformerConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, attention_window=4, max_position_embeddings=256,
                             max_token_num=128, max_item_embeddings=8)
    RecformerModel(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(str(root / "model"))
    return root


def encode_cli(world: Path, out: Path, nproc: int | None = None, extra_env: dict | None = None,
               what: str = "catalog") -> subprocess.CompletedProcess:
    """``python -m recformer_m2 encode``, alone or under ``torchrun --nproc_per_node nproc`` (gloo, CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECFORMER_M2_CACHE": str(world / "cache"), **(extra_env or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--monitor-interval", "0.2",
                 "--nproc_per_node", str(nproc)]
                if nproc else [sys.executable])
    command = launcher + ["-m", "recformer_m2", "encode", "--model", str(world / "model"), "--data",
                          str(world / "data"), "--out", str(out), "--what", what, "--chunk-size", str(CHUNK),
                          "--batch-size", "16", "--cache-dir", str(world / "item-cache")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def output_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_rank(world):
    done = encode_cli(world, world / "out-1")
    assert done.returncode == 0, done.stderr[-3000:]
    return world / "out-1"


def test_chunks_do_not_depend_on_the_number_of_ranks():
    bounds = chunk_bounds(810, 64)
    assert len(bounds) == 13 and bounds[0] == (0, 64) and bounds[-1] == (768, 810)
    for world_size in (1, 2, 3, 5):
        shares = [rank_chunks(len(bounds), Ranks(r, world_size)) for r in range(world_size)]
        assert sorted(c for share in shares for c in share) == list(range(13))
    assert launcher_ranks({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Ranks(1, 2, 1)
    assert launcher_ranks({}) == Ranks(0, 1, 0)
    with pytest.raises(ValueError, match="RANK=2 is not within WORLD_SIZE=2"):
        launcher_ranks({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="--what 'task4'"):
        EncodeConfig("m", "d", "o", what="task4")


def test_two_ranks_write_the_bytes_of_one_rank(world, one_rank):
    two = encode_cli(world, world / "out-2", nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "rank 1: 6 chunk(s) encoded, 0 reused" in two.stderr
    first, second = output_bytes(one_rank), output_bytes(world / "out-2")
    assert sorted(first) == ["embeddings.npy", "keys.parquet", "manifest.json"]  # shards removed after the merge
    assert first == second
    # and the bytes are the encoder's: every row as encoding that product directly gives it
    encoder = RecformerEncoder.from_pretrained(world / "model", device="cpu")
    catalog = M2Data(world / "data", cache_dir=world / "cache").catalog
    table = np.load(one_rank / "embeddings.npy")
    assert table.shape == (len(catalog), 32) and table.dtype == np.float16
    rows = np.array([0, 5, 63, 64, 400, len(catalog) - 1])
    np.testing.assert_allclose(table[rows], encoder.encode_items(catalog_items(catalog, rows)), atol=2e-3)


def test_a_crashed_rank_resumes_its_shard(world, one_rank, caplog):
    out = world / "out-crash"
    crashed = encode_cli(world, out, nproc=2, extra_env={CRASH_HOOK: "1:1"})  # rank 1 dies after its first chunk
    assert crashed.returncode != 0
    assert not (out / "manifest.json").exists()
    shard_dir = next((out / "shards").iterdir())
    assert (shard_dir / "chunk-000001-of-000013.json").is_file()      # rank 1's finished chunk survived
    assert not (shard_dir / "chunk-000003-of-000013.json").exists()   # its next one was never written
    # a half-written chunk left by the crash is not taken for a finished one
    (shard_dir / "chunk-000003-of-000013.npy").write_bytes(b"\x93NUMPY partial")
    rerun = encode_cli(world, out, nproc=2)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "rank 1: 5 chunk(s) encoded, 1 reused" in rerun.stderr
    assert output_bytes(out) == output_bytes(one_rank)
    with caplog.at_level(logging.INFO, logger="recformer_m2.sharded"):  # a finished output is checked and kept
        run_encode(EncodeConfig(str(world / "model"), str(world / "data"), str(out), chunk_size=CHUNK, batch_size=16,
                                cache_dir=str(world / "item-cache")), Ranks(0, 1))
    assert "already holds this encoding" in caplog.text


def test_task_sessions_and_the_recommender_reads_a_matching_output(world, one_rank, tmp_path, monkeypatch,
                                                                   caplog):
    encoder = RecformerEncoder.from_pretrained(world / "model", device="cpu")
    data = M2Data(world / "data", cache_dir=world / "cache")
    out = run_encode(EncodeConfig(str(world / "model"), str(world / "data"), str(tmp_path / "t1"), what="task1",
                                  chunk_size=10, dtype="float32"), Ranks(0, 1))
    sessions = np.load(out / "embeddings.npy")
    np.testing.assert_allclose(sessions, encoder.encode_sessions(session_items(data.catalog, data.test(1))),
                               atol=1e-5)
    assert json.loads((out / "manifest.json").read_text())["rows"] == len(data.test(1))

    # the one-rank CLI run registered its catalog output in world/item-cache: no encoding needed
    codes = data.catalog.locale_codes("ES")
    locales = np.full(len(codes), 3)

    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded although a matching encode output is registered")

    monkeypatch.setattr(encoder, "encode_items", no_encoding)
    got = catalog_embeddings(encoder, data.catalog, codes, locales, world / "item-cache")
    table = np.load(one_rank / "embeddings.npy")
    np.testing.assert_array_equal(got, table[data.catalog.rows(codes, 3)])
    sessions = data.test(2)
    served = Recommender(encoder, data.catalog, cache_dir=world / "item-cache").recommend_codes(sessions, 10, False)
    monkeypatch.undo()
    encoded = Recommender(encoder, data.catalog, cache_dir=tmp_path / "own").recommend_codes(sessions, 10, False)
    assert (served == encoded).mean() > 0.95  # the same float16 table up to rounding of differently batched sums
    # a damaged output is not used: the catalog is encoded (into the cache) instead, with a warning
    damaged = tmp_path / "copy"
    damaged.mkdir()
    for name in ("manifest.json", "keys.parquet"):
        (damaged / name).write_bytes((one_rank / name).read_bytes())
    (damaged / "embeddings.npy").write_bytes((one_rank / "embeddings.npy").read_bytes()[:-64])
    pointer = next((world / "item-cache").glob("encoded-*.json"))
    pointer.write_text(json.dumps({"out": str(damaged)}))
    with caplog.at_level(logging.WARNING, logger="recformer_m2.encode"):
        fresh = catalog_embeddings(encoder, data.catalog, codes, locales, world / "item-cache", progress=False)
    assert "bytes, expected" in caplog.text and "encoding the catalog instead" in caplog.text
    assert not pointer.exists()  # reported once: later runs go straight to the cache
    np.testing.assert_allclose(np.asarray(fresh, np.float32), got.astype(np.float32), atol=2e-3)
    pointer.write_text(json.dumps({"out": str(one_rank)}))
