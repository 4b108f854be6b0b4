"""Finetuning on the shared Lightning stack: session examples from ``datasets``, collating workers, the
``transformers`` schedule with gradient accumulation, and a resume that restores the schedule."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recformer_m2 import finetuning as ft
from recformer_m2.data import M2Data
from tests.test_finetune import SimulatedKill, tiny_config


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from recformer_m2.synth import generate

    root = tmp_path_factory.mktemp("stack")
    generate(root / "data", scale="tiny", seed=0, style="classic")
    return root / "data"


def _last(out: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return ft.read_state(out / "checkpoints" / ft.LAST)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_session_examples_hold_each_sessions_items_label_and_locale(tiny_data):
    """The ``datasets`` examples the DataLoader reads give the same items, in the same order, as the
    attribute sentences the loop used to build per stage (``session_items``)."""
    from recformer_m2.encode import session_items
    from recformer_m2.session_dataset import FinetuneExamples

    data = M2Data(tiny_data)
    fdata = ft.prepare_data(data, tiny_config())
    examples = FinetuneExamples.build(data.catalog, fdata.train, fdata.train_labels)
    expected = session_items(data.catalog, fdata.train)
    assert len(examples) == len(expected) == len(fdata.train_labels)
    index = list(range(len(examples)))[::7]
    got = examples.__getitems__(index)
    assert [e["items"] for e in got] == [expected[i] for i in index]
    assert [e["label"] for e in got] == fdata.train_labels[index].tolist()
    assert [e["group"] for e in got] == fdata.train.locale[index].tolist()
    np.testing.assert_array_equal(examples.lengths(), [len(items) for items in expected])


def test_collating_in_worker_processes_trains_the_same_model(tiny_data, tmp_path):
    """Two DataLoader workers collate what the main process would: same metrics, same weights."""
    config = dict(stage1_epochs=1, stage2_epochs=1)
    inline = ft.run_finetuning(tiny_data, "none", tmp_path / "inline", tiny_config(**config, num_workers=0))
    workers = ft.run_finetuning(tiny_data, "none", tmp_path / "workers", tiny_config(**config, num_workers=2))
    assert _records(inline.parent) == _records(workers.parent)
    a, b = _last(inline.parent)[0], _last(workers.parent)[0]
    assert a.keys() == b.keys()
    for name in a:
        if name.startswith("model."):
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


def test_schedule_warms_up_and_decays_per_optimizer_step_with_accumulation(tiny_data, tmp_path, monkeypatch):
    """``linear`` with half the stage warming up and two batches per optimizer step: after epoch 1 of 2 the
    schedule has taken ceil(batches / 2) steps (as many as AdamW) and sits at its peak; after epoch 2 it
    has decayed to zero. Each epoch's position is what ``last`` holds."""
    from recformer_m2.session_dataset import EpochBatches, FinetuneExamples

    config = tiny_config(stage1_epochs=2, stage2_epochs=1, lr_scheduler="linear", warmup_ratio=0.5,
                         accumulate_grad_batches=2)
    saved = []
    real = ft._save_last

    def record(path, model, state, cfg):
        real(path, model, state, cfg)
        saved.append(ft.read_state(path))

    monkeypatch.setattr(ft, "_save_last", record)
    ft.run_finetuning(tiny_data, "none", tmp_path / "out", config)
    data = M2Data(tiny_data)
    fdata = ft.prepare_data(data, config)
    examples = FinetuneExamples.build(data.catalog, fdata.train, fdata.train_labels)
    steps = math.ceil(len(EpochBatches(examples.lengths(), config.batch_size, config.group_by_length, 0, 1)) / 2)
    (t1, v1), (t2, v2) = saved[0], saved[1]  # stage 1, epochs 1 and 2
    assert (v1["stage"], v1["epoch"], v2["epoch"]) == (1, 1, 2)
    assert v1["scheduler"]["last_epoch"] == steps and v2["scheduler"]["last_epoch"] == 2 * steps
    adam_steps = [t1[k] for k in t1 if k.startswith("optimizer.") and k.endswith(".step")]
    assert adam_steps and all(int(s) == steps for s in adam_steps)
    assert v1["optimizer"]["param_groups"][0]["lr"] == pytest.approx(config.lr)  # the peak, warm-up done
    assert v2["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert v2["scheduler"]["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)


def test_resume_mid_stage_restores_the_learning_rate_schedule(tiny_data, tmp_path, monkeypatch, caplog):
    """Killed after the first ``last`` of a decaying schedule, the rerun resumes the schedule where it was:
    the same history and weights as an uninterrupted run (a schedule restarted at the resume differs)."""
    config = tiny_config(lr_scheduler="linear", warmup_ratio=0.25)
    full = ft.run_finetuning(tiny_data, "none", tmp_path / "full", config).parent
    out = tmp_path / "crashy"
    real = ft.save_state

    def crash_after_first_last(path, tensors, values):
        real(path, tensors, values)
        if path.name == ft.LAST:
            raise SimulatedKill("simulated kill right after the first last checkpoint")

    monkeypatch.setattr(ft, "save_state", crash_after_first_last)
    with pytest.raises(SimulatedKill):
        ft.run_finetuning(tiny_data, "none", out, config)
    monkeypatch.setattr(ft, "save_state", real)
    with caplog.at_level("INFO", logger="recformer_m2.finetuning"):
        ft.run_finetuning(tiny_data, "none", out, config)
    assert "stage 1, 1 epoch(s) done" in caplog.text
    assert _records(out) == _records(full)
    a, b = _last(full)[0], _last(out)[0]
    for name in a:
        if name.startswith("model."):
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
