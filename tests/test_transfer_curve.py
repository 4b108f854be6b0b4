"""bench/transfer_curve.py: a start's own finetuning options, and runs that finished are never redone."""

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from recformer_m2.config import add_config_arguments, config_overrides, load_config
from recformer_m2.finetuning import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def curve():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("transfer_curve", ROOT / "bench" / "transfer_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_starts_own_options_reach_finetuning_over_the_shared_config(curve, tmp_path):
    config = ROOT / "finetune" / "configs" / "small.json"
    command = curve.finetune_command(Path("DATA"), "none", tmp_path / "strict-10pct-s1", 0.1, 1, config,
                                     ["--cross-locale", "false"])
    assert command[:6] == ["bash", str(ROOT / "finetune" / "finetune.sh"), "DATA", "none",
                           str(tmp_path / "strict-10pct-s1"), "--config"]
    # finetune.sh hands everything after OUT to finetune.py: parse it as finetune.py does
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser, FinetuneConfig)
    args = parser.parse_args(command[5:])
    resolved = load_config(FinetuneConfig, args.config, config_overrides(args, FinetuneConfig))
    assert load_config(FinetuneConfig, str(config)).cross_locale is True  # the shared config turns them on
    assert (resolved.cross_locale, resolved.train_fraction, resolved.seed) == (False, 0.1, 1)
    plain = parser.parse_args(curve.finetune_command(Path("DATA"), "none", tmp_path, 0.5, 0, config, [])[5:])
    assert load_config(FinetuneConfig, plain.config, config_overrides(plain, FinetuneConfig)).cross_locale is True


def test_a_finished_run_is_skipped_and_a_failed_one_leaves_no_marker(curve, tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (done / curve.FINISHED).touch()
    assert curve.finetune(["bash", "-c", "exit 3"], done, threads=1) == done  # not run again
    failed = tmp_path / "failed"
    with pytest.raises(subprocess.CalledProcessError):
        curve.finetune(["bash", "-c", "echo broken; exit 3"], failed, threads=1)
    assert not (failed / curve.FINISHED).exists()
    assert "broken" in (failed / "curve.log").read_text()
    ok = tmp_path / "ok"
    assert curve.finetune(["bash", "-c", "echo $OMP_NUM_THREADS"], ok, threads=2) == ok
    assert (ok / curve.FINISHED).exists() and (ok / "curve.log").read_text().strip() == "2"
