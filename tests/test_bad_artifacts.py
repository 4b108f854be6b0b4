"""Damaged or wrong training artifacts are refused with a message naming the folder and file (issue 20,
cases 4, 5, 7 and 10): model folders, item tables, resume files, changed configurations, a second live run."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from recformer_m2 import Recommender
from recformer_m2 import finetuning as ft
from recformer_m2.errors import DataFormatError
from recformer_m2.models import RecformerModel
from recformer_m2.models.folders import ConfigMismatchError, ModelFolderError, check_model_folder
from recformer_m2.run_lock import LOCK_FILE, RunLockedError, output_lock
from tests.test_finetune import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(data folder, finetuning OUT) of one tiny finetuning run (a few seconds)."""
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("bad")
    generate(root / "data", scale="tiny", seed=0, style="classic")  # small and fast; the m2 style is larger
    ft.run_finetuning(root / "data", "none", root / "out", tiny_config(stage1_epochs=1, stage2_epochs=1))
    return root / "data", root / "out"


def _copy_best(run, tmp_path) -> Path:
    folder = tmp_path / "best"
    shutil.copytree(run[1] / "best", folder)
    return folder


# --- case 4: the item table --------------------------------------------------------------------------------
def test_finetuned_folder_without_its_item_table_is_refused(run, tmp_path):
    best = _copy_best(run, tmp_path)
    (best / ft.TABLE_FILE).unlink()
    with pytest.raises(ModelFolderError, match=re.escape(f"{best}: {ft.TABLE_FILE} missing")):
        Recommender.from_pretrained(best, run[0], device="cpu")


def test_item_table_with_too_few_rows_names_the_file_and_counts(run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    best = _copy_best(run, tmp_path)
    path = best / ft.TABLE_FILE
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    rows = len(tensors["embeddings"])
    tensors["embeddings"] = tensors["embeddings"][:-3].clone()
    save_file(tensors, str(path), metadata=metadata)
    message = f"{path} has {rows - 3} embedding rows but {rows} ids"
    with pytest.raises(ModelFolderError, match=re.escape(message)):
        Recommender.from_pretrained(best, run[0], device="cpu")


def test_truncated_item_table_names_the_file(run, tmp_path):
    best = _copy_best(run, tmp_path)
    path = best / ft.TABLE_FILE
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFolderError, match=re.escape(f"{path}: damaged")):
        Recommender.from_pretrained(best, run[0], device="cpu")


def test_folder_written_without_a_table_is_served_with_a_warning(run, tmp_path, caplog):
    """A pretraining ``final`` has no table by design: served from the encoder, with a warning."""
    best = _copy_best(run, tmp_path)
    for name in (ft.TABLE_FILE, ft.CONFIG_FILE):
        (best / name).unlink()
    with caplog.at_level(logging.WARNING):
        rec = Recommender.from_pretrained(best, run[0], device="cpu")
    assert rec.item_table is None
    assert "has no item table" in caplog.text


# --- case 5: model folders ---------------------------------------------------------------------------------
def test_deleted_config_json_is_named(run, tmp_path):
    best = _copy_best(run, tmp_path)
    (best / "config.json").unlink()
    with pytest.raises(ModelFolderError, match=re.escape(f"{best}: config.json missing")):
        Recommender.from_pretrained(best, run[0], device="cpu")


def test_mistyped_model_path_never_reaches_the_hub(run, tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    missing = tmp_path / "runs" / "ft" / "bset"
    with pytest.raises(ModelFolderError, match=re.escape(f"no such model folder: {missing}")):
        Recommender.from_pretrained(missing, run[0], device="cpu")
    with pytest.raises(ModelFolderError, match="no such model folder: org/model"):
        RecformerModel.from_pretrained_strict("org/model")  # would be a hub name to transformers


def test_id_baseline_folder_given_as_recformer_names_its_method(tmp_path):
    folder = tmp_path / "stamp-t2"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"model": "stamp", "task": 2}))
    (folder / "config.json").write_text(json.dumps({"hidden_size": 16}))
    with pytest.raises(ModelFolderError, match=re.escape(f"{folder} is an ID-baseline folder (model.json); "
                                                         "use --method stamp")):
        check_model_folder(folder)


def test_truncated_weights_name_the_file(run, tmp_path):
    best = _copy_best(run, tmp_path)
    weights = best / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFolderError, match=re.escape(f"{weights}: truncated")):
        Recommender.from_pretrained(best, run[0], device="cpu")
    weights.write_bytes(b"\x05\x00")
    with pytest.raises(ModelFolderError, match=re.escape(f"{weights}: damaged safetensors file")):
        RecformerModel.from_pretrained_strict(best)


def test_cli_prints_one_line_for_a_mistyped_model(run, tmp_path, capsys):
    from recformer_m2.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--data", str(run[0]), "--task", "2", "--method", "recformer",
              "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "t2.parquet")])
    assert exit_info.value.code not in (0, None)
    assert f"no such model folder: {tmp_path / 'nope'}" in str(exit_info.value.code) + capsys.readouterr().err


# --- cases 7 and 10: resume files, configuration, lock -------------------------------------------------------
def _resumable(run, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(run[1], out)
    return out


def test_truncated_last_checkpoint_names_the_file(run, tmp_path):
    out = _resumable(run, tmp_path)
    last = out / "checkpoints" / ft.LAST
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(ModelFolderError, match=re.escape(f"{last}: truncated")):
        ft.run_finetuning(run[0], "none", out, tiny_config(stage1_epochs=1, stage2_epochs=1))


def test_resume_under_a_changed_config_is_refused_naming_the_fields(run, tmp_path, caplog):
    out = _resumable(run, tmp_path)
    saved = (out / ft.CONFIG_FILE).read_text()
    changed = tiny_config(stage1_epochs=1, stage2_epochs=1, lr=2e-3, batch_size=4)
    with pytest.raises(ConfigMismatchError) as err:
        ft.run_finetuning(run[0], "none", out, changed)
    assert "batch_size (saved 8, now 4)" in str(err.value) and "lr (saved 0.001, now 0.002)" in str(err.value)
    assert "--force-new-config" in str(err.value) and "stage1_epochs" not in str(err.value)
    assert (out / ft.CONFIG_FILE).read_text() == saved  # the record of what ran is not overwritten
    # a device change computes the same: allowed
    ft.run_finetuning(run[0], "none", out, tiny_config(stage1_epochs=1, stage2_epochs=1, device="cpu:0"))
    with caplog.at_level(logging.WARNING):
        ft.run_finetuning(run[0], "none", out, changed, force_new_config=True)
    assert "changed configuration (--force-new-config)" in caplog.text
    assert json.loads((out / ft.CONFIG_FILE).read_text())["lr"] == 2e-3


def test_finetune_command_refuses_a_changed_config_in_one_line(run, tmp_path, caplog):
    import runpy
    import sys

    out = _resumable(run, tmp_path)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({k: v for k, v in json.loads((out / ft.CONFIG_FILE).read_text()).items()}))
    argv = ["finetune.py", "--data", str(run[0]), "--pretrained", "none", "--out", str(out), "--config", str(config),
            "--lr", "0.005"]
    old_argv = sys.argv
    try:
        sys.argv = argv
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(ROOT / "finetune" / "finetune.py"), run_name="__main__")
    finally:
        sys.argv = old_argv
    assert exit_info.value.code == 1
    assert "lr (saved 0.001, now 0.005)" in caplog.text


def test_pickled_resume_file_of_an_old_version_is_never_loaded(run, tmp_path):
    out = tmp_path / "old"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.pt").write_bytes(b"not even a pickle")
    with pytest.raises(ModelFolderError, match="a resume file of an earlier version"):
        ft.run_finetuning(run[0], "none", out, tiny_config())


def test_no_pickled_loads_in_training_code():
    for path in ("recformer_m2/finetuning.py", "recformer_m2/pretraining/checkpoints.py", "recformer_m2/titles/train.py"):
        assert "weights_only=False" not in (ROOT / path).read_text(), path


def test_a_second_live_run_into_the_same_out_is_refused(run, tmp_path):
    out = _resumable(run, tmp_path)
    with output_lock(out):
        with pytest.raises(RunLockedError, match=re.escape(f"{out} is in use by another live run")):
            ft.run_finetuning(run[0], "none", out, tiny_config(stage1_epochs=1, stage2_epochs=1))
    assert issubclass(RunLockedError, DataFormatError)  # printed as one line by the command line


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path, caplog):
    (tmp_path / LOCK_FILE).write_text("999999999\n")  # its process is gone, so no flock is held
    with caplog.at_level(logging.WARNING), output_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() != "999999999"
    assert "pid 999999999" in caplog.text
    assert (tmp_path / LOCK_FILE).read_text() == ""  # a clean end leaves no pid
