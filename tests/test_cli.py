"""The command line end to end on the format sample: predict, evaluate, export, config precedence."""

import json
import shutil
from dataclasses import dataclass

import pandas as pd
import pytest

from recformer_m2.cli import main
from recformer_m2.config import load_config
from recformer_m2.submission import read_submission


@pytest.fixture
def sample_with_truth(m2_sample_dir, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    shutil.copytree(m2_sample_dir, folder)
    pd.DataFrame({"next_item": ["B0XYZ12345", "B0ABCDEF12", "B0BB8JM7J1", "B09JSPLN1M"], "locale": ["DE", "DE", "JP", "UK"]}).to_csv(
        folder / "gt_task1.csv", index=False
    )
    pd.DataFrame({"next_item_title": ["MuyDoux Funda para Xiaomi Mi Pad 5, Negro"], "locale": ["ES"]}).to_csv(
        folder / "gt_task3.csv", index=False
    )
    monkeypatch.setenv("RECFORMER_M2_CACHE", str(tmp_path / "cache"))
    return folder


def test_predict_and_evaluate_task1(sample_with_truth, tmp_path, capsys):
    out = tmp_path / "task1.parquet"
    main(["predict", "--data", str(sample_with_truth), "--task", "1", "--method", "covisitation", "--out", str(out)])
    submission = read_submission(out)
    assert list(submission.locale) == ["DE", "DE", "JP", "UK"]
    # DE session [B09W9FND7K, B09JSPLN1M]: its training twin was followed by B0XYZ12345, sold in DE.
    assert submission.next_item_prediction[0][0] == "B0XYZ12345"
    for row, prev in zip(submission.next_item_prediction, [["B09W9FND7K", "B09JSPLN1M"]]):
        assert not set(row) & set(prev)
    main(["evaluate", "--predictions", str(out), "--truth", str(sample_with_truth / "gt_task1.csv")])
    printed = capsys.readouterr().out
    assert "MRR@100" in printed and "overall" in printed


def test_predict_task3_last_title(sample_with_truth, tmp_path, capsys):
    out = tmp_path / "task3.parquet"
    main(["predict", "--data", str(sample_with_truth), "--task", "3", "--method", "last-title", "--out", str(out)])
    assert read_submission(out).next_item_title.tolist() == ["MuyDoux Funda para Xiaomi Mi Pad 5 / 5 Pro, Oro Rosa"]
    main(["evaluate", "--predictions", str(out), "--truth", str(sample_with_truth / "gt_task3.csv")])
    assert "BLEU" in capsys.readouterr().out


def test_unknown_method_is_refused(sample_with_truth, tmp_path):
    with pytest.raises(SystemExit, match="task 1: unknown next-item method 'nope'"):
        main(["predict", "--data", str(sample_with_truth), "--task", "1", "--method", "nope", "--out", str(tmp_path / "x.parquet")])


def test_export_recbole_writes_atomic_files(sample_with_truth, tmp_path):
    main(["export-recbole", "--data", str(sample_with_truth), "--out", str(tmp_path / "rb"), "--task", "1", "--name", "m2"])
    train = (tmp_path / "rb" / "m2" / "m2.train.inter").read_text().splitlines()
    valid = (tmp_path / "rb" / "m2" / "m2.valid.inter").read_text().splitlines()
    test = (tmp_path / "rb" / "m2" / "m2.test.inter").read_text().splitlines()
    assert train[0] == "session_id:token\titem_id_list:token_seq\titem_id:token" == test[0]
    assert len(train) + len(valid) - 2 == 4  # the 4 UK/DE/JP training sessions
    assert test[1] == "test-0\tB09W9FND7K B09JSPLN1M\tB0XYZ12345"
    assert len(test) - 1 == 4


@dataclass
class _Cfg:
    a: int = 1
    b: str = "x"
    c: float = 0.5


def test_config_precedence_cli_over_file_over_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"a": 2, "b": "file"}))
    config = load_config(_Cfg, path, {"b": "cli", "c": None})
    assert (config.a, config.b, config.c) == (2, "cli", 0.5)
    path.write_text(json.dumps({"typo": 1}))
    with pytest.raises(ValueError, match=r"unknown _Cfg field\(s\) \['typo'\]"):
        load_config(_Cfg, path)


def test_train_tokenizer_on_the_catalog(sample_with_truth, tmp_path):
    from recformer_m2.tokenizer import load_tokenizer

    out = tmp_path / "tok"
    main(["train-tokenizer", "--data", str(sample_with_truth), "--out", str(out), "--vocab-size", "600"])
    tokenizer = load_tokenizer(out)
    ids = tokenizer("エレコム USB Type-C ケーブル", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == "エレコム USB Type-C ケーブル"


def test_train_baseline_settings_cli_over_config_file_over_defaults(tmp_path, monkeypatch):
    from id_baselines.config import BaselineConfig
    from recformer_m2.cli import build_parser
    from recformer_m2.config import config_overrides
    from recformer_m2.synth import generate

    monkeypatch.setenv("RECFORMER_M2_CACHE", str(tmp_path / "cache"))
    data, out = tmp_path / "data", tmp_path / "stamp"
    generate(data, scale="tiny", seed=0)
    plain = ["train-baseline", "--model", "stamp", "--data", str(data), "--task", "1", "--mode", "supervised",
             "--out", str(out)]
    assert config_overrides(build_parser().parse_args(plain), BaselineConfig) == {}  # the original form
    settings = tmp_path / "baseline.json"
    settings.write_text(json.dumps({"embedding_size": 16, "max_epochs": 1, "batch_size": 32, "progress": False}))
    main([*plain, "--config", str(settings), "--embedding-size", "8", "--max-minutes", "0.5", "--locale-mask", "false"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["embedding_size"] == 8 and saved["max_minutes"] == 0.5 and saved["locale_mask"] is False  # CLI
    assert saved["max_epochs"] == 1 and saved["batch_size"] == 32  # file
    assert saved["hidden_size"] == BaselineConfig.hidden_size  # default
    assert json.loads((out / "model.json").read_text())["model"] == "stamp"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*plain, "--embedding-size", "eight"])
