"""Submission and ground-truth files: round trips, each validation error, scoring."""

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recformer_m2.errors import DataFormatError
from recformer_m2.submission import evaluate_submission, read_submission, read_truth, write_submission

HUNDRED = [f"B{i:09d}" for i in range(100)]


def _write_raw(path: Path, columns: dict) -> Path:
    """A parquet file written without write_submission's checks, to test the reader's."""
    pq.write_table(pa.table(columns), path)
    return path


def test_prediction_round_trip_creates_parent(tmp_path):
    path = tmp_path / "out" / "task1" / "submission.parquet"
    predictions = [HUNDRED, ["B0XYZ12345"], []]
    write_submission(path, ["DE", "UK", "JP"], predictions=predictions)
    frame = read_submission(path)
    assert list(frame.columns) == ["locale", "next_item_prediction"]
    assert frame["locale"].tolist() == ["DE", "UK", "JP"]
    assert frame["next_item_prediction"].tolist() == predictions
    assert pq.read_schema(path).field("next_item_prediction").type == pa.list_(pa.string())


def test_title_round_trip_keeps_commas_quotes_newlines_and_empty(tmp_path):
    titles = ['Amazon Basics USB-C-Kabel, 1,8 m, "Schwarz"', "ケーブル\n黒", ""]
    path = write_submission(tmp_path / "task3.parquet", ["DE", "JP", "ES"], titles=titles)
    frame = read_submission(path)
    assert list(frame.columns) == ["locale", "next_item_title"]
    assert frame["next_item_title"].tolist() == titles


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predictions": [HUNDRED + ["B999999999"]]}, "101 predicted ids, at most 100"),
        ({"predictions": [["A", "B", "A"]]}, r"duplicate ids \['A'\]"),
        ({"predictions": [[1, 2]]}, "expected a string product id"),
        ({"predictions": ["AB"]}, "single string"),
        ({"titles": [None]}, "expected a string"),
        ({}, "exactly one of"),
        ({"predictions": [["A"]], "titles": ["t"]}, "exactly one of"),
    ],
)
def test_write_refuses_bad_rows(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_submission(tmp_path / "s.parquet", ["UK"], **kwargs)
    assert not (tmp_path / "s.parquet").exists()


def test_write_refuses_unknown_locale_and_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="unknown locale 'XX'"):
        write_submission(tmp_path / "s.parquet", ["UK", "XX"], predictions=[["A"], ["B"]])
    with pytest.raises(ValueError, match="2 locales but 1 predictions"):
        write_submission(tmp_path / "s.parquet", ["UK", "DE"], predictions=[["A"]])


def test_read_missing_locale_column(tmp_path):
    path = _write_raw(tmp_path / "s.parquet", {"next_item_prediction": [["A"]]})
    with pytest.raises(DataFormatError, match="missing column 'locale'") as info:
        read_submission(path)
    assert info.value.field == "locale" and info.value.path == str(path)


def test_read_missing_task_column(tmp_path):
    path = _write_raw(tmp_path / "s.parquet", {"locale": ["UK"], "prediction": [["A"]]})
    with pytest.raises(DataFormatError, match="found neither") as info:
        read_submission(path)
    assert info.value.field == "next_item_prediction"


def test_read_non_list_prediction(tmp_path):
    path = _write_raw(tmp_path / "s.parquet", {"locale": ["UK"], "next_item_prediction": ["A B C"]})
    with pytest.raises(DataFormatError, match="expected a list of product ids") as info:
        read_submission(path)
    assert (info.value.row, info.value.field) == (1, "next_item_prediction")


def test_read_null_prediction_names_row(tmp_path):
    column = pa.array([["A"], None], pa.list_(pa.string()))
    path = _write_raw(tmp_path / "s.parquet", {"locale": ["UK", "UK"], "next_item_prediction": column})
    with pytest.raises(DataFormatError, match="missing prediction list") as info:
        read_submission(path)
    assert info.value.row == 2


def test_read_too_many_ids_names_row(tmp_path):
    path = _write_raw(tmp_path / "s.parquet",
                      {"locale": ["UK", "DE"], "next_item_prediction": [["A"], HUNDRED + ["B999999999"]]})
    with pytest.raises(DataFormatError, match="101 predicted ids") as info:
        read_submission(path)
    assert (info.value.row, info.value.field) == (2, "next_item_prediction")
    assert f"{path}, data row 2, field 'next_item_prediction'" in str(info.value)


def test_read_unknown_locale_names_row(tmp_path):
    path = _write_raw(tmp_path / "s.parquet",
                      {"locale": ["UK", "DE", "us"], "next_item_prediction": [["A"], ["B"], ["C"]]})
    with pytest.raises(DataFormatError, match="unknown locale 'us'") as info:
        read_submission(path)
    assert (info.value.row, info.value.field) == (3, "locale")


def test_read_not_parquet(tmp_path):
    path = tmp_path / "s.parquet"
    path.write_text("locale,next_item_prediction\nUK,A\n")
    with pytest.raises(DataFormatError, match="not a readable parquet file"):
        read_submission(path)


def test_read_truth_csv_with_quoted_titles(tmp_path):
    path = tmp_path / "gt_task3.csv"
    path.write_text(
        'next_item_title,locale\n'
        '"Amazon Basics USB-C-Kabel, 1,8 m, ""Schwarz""",DE\n'
        '"Line one\nline two",UK\n'
        ',ES\n'
        'エレコム USB Type-C ケーブル,JP\n',
        encoding="utf-8",
    )
    truth = read_truth(path)
    assert truth["next_item_title"].tolist() == [
        'Amazon Basics USB-C-Kabel, 1,8 m, "Schwarz"', "Line one\nline two", "", "エレコム USB Type-C ケーブル"]
    assert truth["locale"].tolist() == ["DE", "UK", "ES", "JP"]


def test_read_truth_csv_items_and_parquet(tmp_path):
    csv = tmp_path / "gt_task1.csv"
    csv.write_text("next_item,locale\nB09W9FND7K,DE\nB0BB8JM7J1,JP\n")
    parquet = _write_raw(tmp_path / "gt_task1.parquet",
                         {"next_item": ["B09W9FND7K", "B0BB8JM7J1"], "locale": ["DE", "JP"]})
    for path in (csv, parquet):
        truth = read_truth(path)
        assert truth["next_item"].tolist() == ["B09W9FND7K", "B0BB8JM7J1"]
        assert truth["locale"].tolist() == ["DE", "JP"]


def test_read_truth_errors_name_row_and_field(tmp_path):
    missing_column = tmp_path / "gt_a.csv"
    missing_column.write_text("next_item\nB09W9FND7K\n")
    with pytest.raises(DataFormatError, match="missing column 'locale'"):
        read_truth(missing_column)
    empty_item = tmp_path / "gt_b.csv"
    empty_item.write_text("next_item,locale\nB09W9FND7K,DE\n,UK\n")
    with pytest.raises(DataFormatError, match="missing next item id") as info:
        read_truth(empty_item)
    assert (info.value.row, info.value.field) == (2, "next_item")
    bad_locale = tmp_path / "gt_c.csv"
    bad_locale.write_text("next_item,locale\nB09W9FND7K,GB\n")
    with pytest.raises(DataFormatError, match="unknown locale 'GB'") as info:
        read_truth(bad_locale)
    assert info.value.row == 1


def _task1_files(tmp_path, truth_locales=("UK", "DE", "DE", "JP")):
    pred = write_submission(tmp_path / "pred.parquet", ["UK", "DE", "DE", "JP"], predictions=[
        ["T1", "X1", "X2"],  # target at rank 1
        ["X1", "T2"],  # target at rank 2
        ["X1", "X2"],  # target absent
        HUNDRED[:99] + ["T4"],  # target at rank 100, the last that counts
    ])
    truth = tmp_path / "gt_task1.csv"
    rows = zip(["T1", "T2", "T3", "T4"], truth_locales)
    truth.write_text("next_item,locale\n" + "".join(f"{item},{loc}\n" for item, loc in rows))
    return pred, truth


def test_evaluate_hand_made_task1_submission(tmp_path):
    # UK: rank 1          -> MRR 1, Recall 1, NDCG 1
    # DE: rank 2, absent  -> MRR (1/2 + 0)/2 = 0.25, Recall 0.5, NDCG (1/log2(3) + 0)/2
    # JP: rank 100        -> MRR 0.01, Recall 1, NDCG 1/log2(101)
    # overall: MRR (1 + 0.5 + 0 + 0.01)/4 = 0.3775, Recall 3/4
    table = evaluate_submission(*_task1_files(tmp_path))
    assert list(table.index) == ["UK", "DE", "JP", "overall"]
    assert table.loc["UK", "MRR@100"] == pytest.approx(1.0)
    assert table.loc["DE", "MRR@100"] == pytest.approx(0.25)
    assert table.loc["DE", "NDCG@100"] == pytest.approx(1 / math.log2(3) / 2)
    assert table.loc["JP", "MRR@100"] == pytest.approx(0.01)
    assert table.loc["JP", "NDCG@100"] == pytest.approx(1 / math.log2(101))
    assert table.loc["overall", "MRR@100"] == pytest.approx(0.3775)
    assert table.loc["overall", "Recall@100"] == pytest.approx(0.75)
    assert table["n"].tolist() == [1, 2, 1, 4]


def test_evaluate_locale_mismatch_names_first_row(tmp_path):
    pred, truth = _task1_files(tmp_path, truth_locales=("UK", "DE", "UK", "ES"))
    with pytest.raises(DataFormatError, match="locale 'DE' but the truth") as info:
        evaluate_submission(pred, truth)
    assert (info.value.row, info.value.field) == (3, "locale")


def test_evaluate_row_count_mismatch(tmp_path):
    pred, truth = _task1_files(tmp_path)
    truth.write_text("next_item,locale\nT1,UK\nT2,DE\nT3,DE\n")
    with pytest.raises(DataFormatError, match="4 rows but the truth .* has 3"):
        evaluate_submission(pred, truth)


def test_evaluate_kind_mismatch(tmp_path):
    pred, _ = _task1_files(tmp_path)
    truth = tmp_path / "gt_task3.csv"
    truth.write_text("next_item_title,locale\na,UK\nb,DE\nc,DE\nd,JP\n")
    with pytest.raises(DataFormatError, match="needs column 'next_item_title'"):
        evaluate_submission(pred, truth)


def test_evaluate_task3_bleu(tmp_path):
    # UK identical -> 1.0; JP ケーブル黒 vs ケーブル白 by characters -> (1/5) ** 0.25 (see test_metrics).
    pred = write_submission(tmp_path / "pred.parquet", ["UK", "JP"],
                            titles=["the cat sat on the mat", "ケーブル黒"])
    truth = tmp_path / "gt_task3.csv"
    truth.write_text("next_item_title,locale\nthe cat sat on the mat,UK\nケーブル白,JP\n", encoding="utf-8")
    table = evaluate_submission(pred, truth)
    assert list(table.columns) == ["BLEU", "n"]
    assert table.loc["UK", "BLEU"] == pytest.approx(1.0)
    assert table.loc["JP", "BLEU"] == pytest.approx(0.2 ** 0.25)
    assert 0.2 ** 0.25 < table.loc["overall", "BLEU"] < 1.0
