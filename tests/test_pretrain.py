"""Pretraining: examples, data order, DeepSpeed config filling, and real runs of pretrain/pretrain.py on tiny
synthetic data: two CPU ranks under the DeepSpeed launcher (ZeRO-2, gloo), exact resumption after a crash
(two ranks, and one plain process killed with SIGKILL), and checkpoint conversion."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recformer_m2.config import add_config_arguments, config_overrides, save_config
from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data
from recformer_m2.models import RecformerConfig, RecformerForPretraining
from recformer_m2.pretraining import (
    DistEnv,
    ItemTable,
    PretrainConfig,
    PretrainDataset,
    alignment_examples,
    build_examples,
    concatenate_examples,
    deepspeed_config,
    epoch_batches,
    latest_tag,
)
from recformer_m2.pretraining.config import model_overrides, with_model_fields
from tests.conftest import write_m2_folder

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "pretrain" / "pretrain.py"
TINY = REPO / "pretrain" / "configs" / "tiny.json"
DS_JSON = REPO / "pretrain" / "ds_zero2.json"
RUN_TIMEOUT = 600


# --------------------------------------------------------------------------------------------------
# Examples, data order, configuration
# --------------------------------------------------------------------------------------------------


def test_build_examples_pairs_prefix_and_next_item(tmp_path, cache_dir):
    products = [
        ("A", "UK", "alpha"), ("B", "UK", "beta"), ("C", "UK", "gamma"), ("D", "UK", "delta"),
        ("A", "DE", "alpha de"), ("B", "DE", "beta de"), ("X", "DE", "x de"),  # C, D not sold in DE
        ("A", "ES", "alpha es"), ("B", "ES", "beta es"),
    ]
    sessions = [
        (["A", "B"], "C", "UK"),  # kept as is
        (["A", "C", "B"], "A", "DE"),  # C has no DE row: dropped from the prefix
        (["C", "D"], "A", "DE"),  # no prefix item with a DE row: no example
        (["A"], "C", "DE"),  # next item without a DE row: no example
        (["A"], "B", "ES"),  # locale not chosen
        (["D", "C", "B"], "A", "UK"),
    ]
    data = M2Data(write_m2_folder(tmp_path / "d", products, sessions), cache_dir=cache_dir)
    catalog = data.catalog
    examples = build_examples(catalog, data.train, ["UK", "DE"])
    assert list(examples.session) == [0, 1, 5]
    dataset = PretrainDataset(catalog, examples)
    titles = [([dict(item)["title"] for item in ex["items"]], dict(ex["next_item"])["title"]) for ex in dataset]
    assert titles == [
        (["alpha", "beta"], "gamma"),
        (["alpha de", "beta de"], "alpha de"),
        (["delta", "gamma", "beta"], "alpha"),
    ]
    assert [ex["next_item_id"] for ex in dataset] == list(catalog.codes(["C", "A", "A"]))
    assert [LOCALES[x] for x in examples.locale] == ["UK", "DE", "UK"]
    assert list(build_examples(catalog, data.train, ["ES"]).session) == [4]

    # Against an item table, an example's label is its next item's table row, in the session's locale.
    table = ItemTable.of_locales(catalog, ["UK", "DE"])
    assert len(table.rows) == 4 + 3 and sorted(LOCALES[x] for x in table.locale) == ["DE"] * 3 + ["UK"] * 4
    labelled = [PretrainDataset(catalog, examples, table.index)[i] for i in range(len(examples))]
    assert [sorted(ex) for ex in labelled] == [["items", "label"]] * 3
    picked = catalog.table.iloc[table.rows[[ex["label"] for ex in labelled]]]
    assert list(picked["id"]) == ["C", "A", "A"] and list(picked["locale"]) == ["UK", "DE", "UK"]
    # prefix and next items of the kept examples, per (product, locale): UK A,B -> C and D,C,B -> A; DE A,B -> A
    counts = dict(zip(zip(catalog.table["id"].iloc[table.rows], [LOCALES[x] for x in table.locale]),
                      np.expm1(table.log_counts(examples)).round().astype(int)))
    assert counts == {("A", "UK"): 2, ("B", "UK"): 2, ("C", "UK"): 2, ("D", "UK"): 1,
                      ("A", "DE"): 2, ("B", "DE"): 1, ("X", "DE"): 0}
    with pytest.raises(ValueError, match="no row in the item table"):
        PretrainDataset(catalog, examples, ItemTable.of_locales(catalog, ["DE"]).index)


def test_alignment_examples_pair_a_products_texts_across_locales(tmp_path, cache_dir):
    products = [
        ("A", "DE", "alpha de"), ("B", "DE", "beta de"), ("C", "UK", "gamma"),
        ("A", "ES", "alpha es"), ("C", "ES", "gamma es"), ("D", "ES", "delta es"),  # D: ES only
        ("B", "FR", "beta fr"),
    ]
    data = M2Data(write_m2_folder(tmp_path / "d", products, [(["A"], "B", "DE")]), cache_dir=cache_dir)
    catalog = data.catalog
    pairs = alignment_examples(catalog, ["UK", "DE"], ["ES", "FR"])
    dataset = PretrainDataset(catalog, pairs)
    seen = {(dict(ex["items"][0])["title"], dict(ex["next_item"])["title"], catalog.ids[ex["next_item_id"]])
            for ex in dataset}
    assert len(dataset) == len(seen) == 6
    assert seen == {("gamma", "gamma es", "C"), ("gamma es", "gamma", "C"), ("alpha de", "alpha es", "A"),
                    ("alpha es", "alpha de", "A"), ("beta de", "beta fr", "B"), ("beta fr", "beta de", "B")}
    assert (pairs.session == -1).all() and list(np.diff(pairs.offsets)) == [1] * 6
    assert len(alignment_examples(catalog, ["UK"], ["FR"])) == 0

    # Appended to the session examples, every example keeps its own prefix and next item.
    sessions = build_examples(catalog, data.train, ["DE"])
    both = concatenate_examples([sessions, pairs])
    assert len(both) == 7 and list(both.prefix(0)) == list(sessions.prefix(0))
    assert [list(both.prefix(1 + i)) for i in range(6)] == [list(pairs.prefix(i)) for i in range(6)]
    assert list(both.next_rows) == list(sessions.next_rows) + list(pairs.next_rows)
    with pytest.raises(ValueError, match="in-batch negatives"):
        PretrainConfig(align_locales=["ES"], table_negatives=True)
    with pytest.raises(ValueError, match="unknown locale"):
        PretrainConfig(align_locales=["XX"])


def test_epoch_batches_deterministic_disjoint_and_equal_per_rank():
    parts = [epoch_batches(103, 4, 3, rank, seed=5, epoch=2, accumulation=2) for rank in range(3)]
    assert all(p.shape == (8, 4) for p in parts)  # 103 // (4 * 3 * 2) = 4 steps of 2 micro-batches
    flat = np.concatenate([p.ravel() for p in parts])
    assert len(np.unique(flat)) == len(flat)
    np.testing.assert_array_equal(parts[1], epoch_batches(103, 4, 3, 1, seed=5, epoch=2, accumulation=2))
    assert not np.array_equal(parts[0], epoch_batches(103, 4, 3, 0, seed=5, epoch=3, accumulation=2))


def test_deepspeed_config_fills_auto_and_refuses_conflicts(tmp_path):
    config = PretrainConfig(batch_size=8, gradient_accumulation_steps=2, lr=1e-3, warmup_steps=5, max_grad_norm=0.5)
    env = DistEnv(rank=0, local_rank=0, world_size=2, device=torch.device("cpu"), backend="gloo")
    ds = deepspeed_config(DS_JSON, config, env, total_steps=40)
    sizes = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]
    assert sizes == (8, 2, 32)
    assert ds["gradient_clipping"] == 0.5
    assert ds["optimizer"]["params"]["lr"] == 1e-3 and ds["optimizer"]["params"]["torch_adam"] is True
    assert ds["scheduler"]["params"]["total_num_steps"] == 40 and ds["scheduler"]["params"]["warmup_num_steps"] == 5
    assert ds["bf16"]["enabled"] is False and ds["fp16"]["enabled"] is False  # CPU: fp32
    conflicting = json.loads(DS_JSON.read_text())
    conflicting["train_micro_batch_size_per_gpu"] = 4
    (tmp_path / "ds.json").write_text(json.dumps(conflicting))
    with pytest.raises(ValueError, match="train_micro_batch_size_per_gpu=4"):
        deepspeed_config(tmp_path / "ds.json", config, env, total_steps=40)


def test_command_line_overrides_config_file():
    from recformer_m2.config import load_config

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, PretrainConfig)
    args = parser.parse_args(["--max-steps", "7", "--locales", "UK,JP", "--eval-at-start", "false", "--lr", "0.01"])
    config = load_config(PretrainConfig, TINY, config_overrides(args, PretrainConfig))
    assert (config.max_steps, config.locales, config.eval_at_start, config.lr) == (7, ["UK", "JP"], False, 0.01)
    assert config.model.hidden_size == json.loads(TINY.read_text())["model"]["hidden_size"]  # from the file
    assert config.model.temperature == RecformerConfig().temperature  # default
    with pytest.raises(ValueError, match="unknown locale"):
        PretrainConfig(locales=["XX"])


def test_the_model_is_one_recformer_config_with_cli_over_file_over_defaults(tmp_path):
    """``PretrainConfig.model`` is a RecformerConfig (no copied fields): the file's ``model`` object, or a
    ``config.json`` named by ``--model``, then single ``--hidden-size``-style flags; the tokenizer adds only
    its size and ids. The old field-by-field copy is gone."""
    from recformer_m2.config import load_config
    from recformer_m2.pretraining import model_config
    from tests.test_collator import build_tiny_tokenizer

    module = runpy.run_path(str(REPO / "pretrain" / "pretrain.py"))
    parser = module["build_parser"]()
    base = ["--data", "d", "--out", "o", "--deepspeed", str(DS_JSON), "--config", str(TINY)]
    args = parser.parse_args(base + ["--num-hidden-layers", "3", "--pooler-type", "cls", "--lr", "0.02"])
    config = with_model_fields(load_config(PretrainConfig, TINY, config_overrides(args, PretrainConfig)),
                               **model_overrides(args))
    assert isinstance(config.model, RecformerConfig)
    assert not {"hidden_size", "pooler_type", "max_token_num"} & {f.name for f in dataclasses.fields(PretrainConfig)}
    assert (config.model.num_hidden_layers, config.model.pooler_type, config.lr) == (3, "cls", 0.02)  # command line
    assert config.model.attention_window == [4, 4, 4]  # the file's one window, for every layer
    assert (config.model.hidden_size, config.model.max_token_num) == (32, 128)  # file
    assert config.model.mlm_weight == RecformerConfig().mlm_weight  # default
    tokenizer = build_tiny_tokenizer()
    built = model_config(config, tokenizer)
    assert built.vocab_size == len(tokenizer) and built.num_hidden_layers == 3
    assert config.model.vocab_size != len(tokenizer)  # the held config is not changed by building
    # --model: a RecformerConfig file (or a folder with config.json) replaces the file's model
    RecformerConfig(hidden_size=48, num_attention_heads=4, num_hidden_layers=1, attention_window=8).save_pretrained(
        tmp_path / "arch")
    args = parser.parse_args(base + ["--model", str(tmp_path / "arch"), "--max-attr-num", "2"])
    config = with_model_fields(load_config(PretrainConfig, TINY, config_overrides(args, PretrainConfig)),
                               **model_overrides(args))
    assert (config.model.hidden_size, config.model.attention_window, config.model.max_attr_num) == (48, [8], 2)
    # a saved run config loads back as the same PretrainConfig (resume checks compare these values)
    save_config(config, tmp_path / "run.json")
    assert load_config(PretrainConfig, tmp_path / "run.json") == config
    with pytest.raises(ValueError, match="neither a RecformerConfig JSON file nor a folder"):
        PretrainConfig(model=str(tmp_path / "missing.json"))


@pytest.mark.parametrize("saved", ["encoder", "pretraining"])
def test_init_from_a_weights_folder_keeps_its_encoder(tmp_path, saved):
    from recformer_m2.models import RecformerModel
    from recformer_m2.pretraining import build_model
    from tests.test_collator import build_tiny_tokenizer, tiny_config

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(1)
    source = RecformerModel(tiny_config()) if saved == "encoder" else RecformerForPretraining(tiny_config())
    source.save_pretrained(tmp_path / "init")
    tokenizer.save_pretrained(tmp_path / "init")
    model = build_model(PretrainConfig(), tokenizer, tmp_path / "init")  # architecture from the folder
    assert isinstance(model, RecformerForPretraining) and model.config.hidden_size == 32
    encoder = source if saved == "encoder" else source.recformer
    _assert_same_weights(model.recformer.state_dict(), encoder.state_dict())
    if saved == "pretraining":
        _assert_same_weights(model.state_dict(), source.state_dict())


# --------------------------------------------------------------------------------------------------
# Real runs
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path) -> dict[str, str]:
    """The code under test first on the path; one torch thread per process (two ranks share two cores, and
    OpenMP threads oversubscribed on a busy machine run many times slower); a private parse cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", RECFORMER_M2_CACHE=str(tmp / "cache"),
               TOKENIZERS_PARALLELISM="false")
    return env


def _command(data: Path, out: Path, ranks: int, *extra: str) -> list[str]:
    args = [str(SCRIPT), "--data", str(data), "--out", str(out), "--config", str(TINY), "--deepspeed", str(DS_JSON),
            *extra]
    if ranks == 1:
        return [sys.executable, *args]
    launcher = shutil.which("deepspeed")
    prefix = [launcher] if launcher else [sys.executable, "-m", "deepspeed.launcher.runner"]
    return [*prefix, "--num_gpus", str(ranks), "--master_port", str(_free_port()), *args]


def _run(command: list[str], tmp: Path, log: Path) -> int:
    """Run to completion in its own process group (killed as a whole on timeout); output into ``log``."""
    with open(log, "w") as f:
        proc = subprocess.Popen(command, cwd=REPO, env=_env(tmp), stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def _ok(rc: int, log: Path) -> None:
    assert rc == 0, f"exit status {rc}; last output:\n{log.read_text()[-4000:]}"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ: {different[:5]}"


@pytest.fixture(scope="module", autouse=True)
def no_leftover_shm_buffers():
    """Runs killed on purpose (crash drills) leave DeepSpeed's CPU all-reduce buffers in /dev/shm, which is
    RAM; remove the ones this module's runs created. Finished runs remove their own (checked below)."""
    shm = Path("/dev/shm")
    before = set(shm.glob("deepspeed_allreduce_buffer_*")) if shm.is_dir() else set()
    yield
    if shm.is_dir():
        for path in set(shm.glob("deepspeed_allreduce_buffer_*")) - before:
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("pretrain-data")
    generate(root / "data", scale="tiny", seed=0)
    return root / "data"


@pytest.fixture(scope="module")
def two_rank_run(tiny_data, tmp_path_factory) -> Path:
    """An uninterrupted two-rank ZeRO-2 run of the tiny config through the DeepSpeed launcher."""
    tmp = tmp_path_factory.mktemp("two-rank")
    out = tmp / "out"
    log = tmp / "log.txt"
    shm = Path("/dev/shm")
    before = set(shm.glob("deepspeed_allreduce_buffer_*")) if shm.is_dir() else set()
    _ok(_run(_command(tiny_data, out, 2), tmp, log), log)
    if shm.is_dir():  # a finished run leaves no shared-memory buffer behind
        assert set(shm.glob("deepspeed_allreduce_buffer_*")) <= before
    return out


@pytest.mark.slow
def test_two_rank_pretraining_learns_and_saves_a_loadable_encoder(two_rank_run, tiny_data):
    from recformer_m2.encode import RecformerEncoder

    encoder = RecformerEncoder.from_pretrained(two_rank_run / "final")
    data = M2Data(tiny_data)
    vectors = encoder.encode_items([data.catalog.attributes(0), data.catalog.attributes(1)])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()

    records = [json.loads(line) for line in (two_rank_run / "metrics.jsonl").read_text().splitlines()]
    tiny = json.loads(TINY.read_text())
    assert [r["step"] for r in records] == [0, tiny["eval_every"], tiny["max_steps"]]
    # Twelve steps of a hidden-32 model: the held-out MLM loss (fixed masks) falls clearly; the contrastive
    # part needs longer (see the small config), so the training loss is compared window to window.
    assert records[-1]["valid_mlm_loss"] < records[0]["valid_mlm_loss"] - 0.05
    assert records[-1]["train_loss"] < records[1]["train_loss"]
    assert records[0]["cl_candidates"] == 2 * tiny["eval_batch_size"]  # candidates gathered from both ranks
    for key in ("recall@10/train_locales", "recall@100/train_locales", "recall@100/zero_shot", "recall@100/UK"):
        assert 0.0 <= records[-1][key] <= 1.0
    tags = sorted(p.name for p in (two_rank_run / "checkpoints").glob("step_*"))
    assert len(tags) == tiny["keep_checkpoints"] and latest_tag(two_rank_run / "checkpoints") == tags[-1]
    assert sorted(p.name for p in (two_rank_run / "checkpoints" / tags[-1]).glob("zero_pp_rank_*")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]


@pytest.mark.slow
def test_convert_checkpoint_consolidates_both_ranks_partitions(two_rank_run, tmp_path):
    checkpoints = two_rank_run / "checkpoints"
    out = tmp_path / "converted"
    convert = runpy.run_path(str(REPO / "scripts" / "convert_pretrain_ckpt.py"), run_name="convert_pretrain_ckpt")
    convert["main"]([str(checkpoints), str(out)])
    _assert_same_weights(_weights(out), _weights(two_rank_run / "final"))
    # The fp32 weights gathered from the two ranks' optimizer partitions are the module's own weights.
    converted = RecformerForPretraining.from_pretrained_strict(out).state_dict()
    states = checkpoints / latest_tag(checkpoints) / "mp_rank_00_model_states.pt"
    module = torch.load(states, weights_only=False)["module"]
    _assert_same_weights(converted, module)


@pytest.mark.slow
def test_two_rank_crash_and_resume_gives_the_same_weights(two_rank_run, tiny_data, tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "log.txt"
    rc = _run(_command(tiny_data, out, 2, "--stop-after-step", "4"), tmp_path, log)
    assert rc != 0 and latest_tag(out / "checkpoints") == "step_00000004" and not (out / "final").exists()
    _ok(_run(_command(tiny_data, out, 2), tmp_path, log), log)
    assert "resumed from step_00000004" in log.read_text()
    _assert_same_weights(_weights(out / "final"), _weights(two_rank_run / "final"))
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [0, 6, 12]


@pytest.mark.slow
def test_table_negatives_run_refreshes_the_table_and_resumes_exactly(tiny_data, tmp_path):
    """Two ranks contrasting with a frozen item table re-encoded every 4 steps: the table is encoded at
    steps 0, 4, 8; a crash at step 4 (a refresh step) resumes to the uninterrupted run's weights."""
    table = ("--table-negatives", "true", "--table-refresh-steps", "4", "--max-retrieval-sessions", "0")
    straight, log = tmp_path / "straight", tmp_path / "straight.txt"
    _ok(_run(_command(tiny_data, straight, 2, *table), tmp_path, log), log)
    refreshed = [int(line.rsplit(" at step ", 1)[1].split()[0]) for line in log.read_text().splitlines()
                 if "item table of" in line]
    assert sorted(set(refreshed)) == [0, 4, 8]
    records = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["valid_loss"]) for r in records)

    out = tmp_path / "out"
    rc = _run(_command(tiny_data, out, 2, *table, "--stop-after-step", "4"), tmp_path, tmp_path / "crash.txt")
    assert rc != 0 and latest_tag(out / "checkpoints") == "step_00000004"
    log = tmp_path / "resumed.txt"
    _ok(_run(_command(tiny_data, out, 2, *table), tmp_path, log), log)
    assert "resumed from step_00000004" in log.read_text()
    _assert_same_weights(_weights(out / "final"), _weights(straight / "final"))


FAST = ("--save-every", "2", "--eval-at-start", "false", "--max-retrieval-sessions", "0")


@pytest.fixture(scope="module")
def single_process_run(tiny_data, tmp_path_factory) -> Path:
    """An uninterrupted plain ``python pretrain.py`` run of the tiny config, a checkpoint every 2 steps."""
    tmp = tmp_path_factory.mktemp("one-rank")
    _ok(_run(_command(tiny_data, tmp / "straight", 1, *FAST), tmp, tmp / "straight.txt"), tmp / "straight.txt")
    return tmp / "straight"


@pytest.mark.slow
def test_single_process_killed_mid_run_resumes_exactly(tiny_data, single_process_run, tmp_path):
    """Plain ``python pretrain.py`` (no launcher): SIGKILL once a checkpoint exists, restart, compare."""
    fast = FAST
    straight = single_process_run

    out = tmp_path / "killed"
    with open(tmp_path / "killed.txt", "w") as f:
        proc = subprocess.Popen(_command(tiny_data, out, 1, *fast), cwd=REPO, env=_env(tmp_path), stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (out / "checkpoints" / "latest").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.txt").read_text()[-4000:]
    assert not (out / "final").exists()
    log = tmp_path / "resumed.txt"
    _ok(_run(_command(tiny_data, out, 1, *fast), tmp_path, log), log)
    assert "resumed from step_" in log.read_text()
    _assert_same_weights(_weights(out / "final"), _weights(straight / "final"))


@pytest.mark.slow
def test_changed_config_is_refused_and_a_damaged_newest_checkpoint_falls_back(tiny_data, single_process_run, tmp_path):
    """A finished run's OUT rerun with another learning rate stops in one line naming the field; with its
    newest checkpoint truncated, the rerun resumes from the one before (a warning says so) and ends with the
    uninterrupted run's weights."""
    out = tmp_path / "out"
    shutil.copytree(single_process_run, out)
    shutil.rmtree(out / "final")
    log = tmp_path / "changed.txt"
    assert _run(_command(tiny_data, out, 1, *FAST, "--lr", "0.5"), tmp_path, log) == 1
    text = log.read_text()
    assert "cannot resume with a changed configuration: lr (saved" in text and "Traceback" not in text
    tags = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    states = out / "checkpoints" / tags[-1] / "mp_rank_00_model_states.pt"
    states.write_bytes(states.read_bytes()[: states.stat().st_size // 2])
    log = tmp_path / "fallback.txt"
    _ok(_run(_command(tiny_data, out, 1, *FAST), tmp_path, log), log)
    text = log.read_text()
    assert f"checkpoint {tags[-1]} cannot be resumed from" in text and f"resumed from {tags[-2]}" in text
    _assert_same_weights(_weights(out / "final"), _weights(single_process_run / "final"))


def _fake_checkpoint(folder: Path, ranks: int = 1) -> None:
    from recformer_m2.pretraining.checkpoints import _rng_file, save_rng_state

    folder.mkdir(parents=True)
    torch.save({"module": {"w": torch.ones(3)}}, folder / "mp_rank_00_model_states.pt")
    for rank in range(ranks):
        save_rng_state(_rng_file(folder, rank))


def test_resume_tag_is_the_newest_readable_checkpoint(tmp_path, caplog):
    from recformer_m2.models.folders import ModelFolderError
    from recformer_m2.pretraining.checkpoints import resume_tag

    for step in (2, 4, 6):
        _fake_checkpoint(tmp_path / f"step_{step:08d}")
    (tmp_path / "latest").write_text("step_00000006")
    assert resume_tag(tmp_path, 1) == "step_00000006"
    flipped = tmp_path / "step_00000006" / "mp_rank_00_model_states.pt"
    data = bytearray(flipped.read_bytes())
    data[data.index(torch.ones(3).numpy().tobytes()) + 1] ^= 0xFF  # a flipped byte in a weight: its CRC fails
    flipped.write_bytes(bytes(data))
    rng = tmp_path / "step_00000004" / "rng_state_00000.safetensors"
    rng.write_bytes(rng.read_bytes()[:-5])
    with caplog.at_level("WARNING"):
        assert resume_tag(tmp_path, 1) == "step_00000002"
    assert "step_00000006 cannot be resumed from" in caplog.text and "step_00000004 cannot be resumed" in caplog.text
    with pytest.raises(ModelFolderError, match="fewer ranks"):
        resume_tag(tmp_path, 2)
    shutil.rmtree(tmp_path / "step_00000002")
    with pytest.raises(ModelFolderError, match="no readable checkpoint left"):
        resume_tag(tmp_path, 1)


def test_rng_state_round_trips_without_pickles(tmp_path):
    import random

    from recformer_m2.pretraining.checkpoints import load_rng_state, save_rng_state

    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    np.random.normal()  # a cached gaussian in numpy's state
    save_rng_state(tmp_path / "rng.safetensors")
    expected = (random.random(), np.random.normal(), torch.rand(2))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    load_rng_state(tmp_path / "rng.safetensors")
    got = (random.random(), np.random.normal(), torch.rand(2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
