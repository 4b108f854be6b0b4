"""Issue 20 (cases 1, 2, 6, 9, 11) and issue 16's ID-only folders: every bad input ends in a one-line
error with exit code 1, or in a counted skip reported on every run, never in a silent wrong answer."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pcsv
import pytest

from recformer_m2.cli import main
from recformer_m2.data import M2Data
from recformer_m2.data import m2 as m2_module
from recformer_m2.errors import DataFormatError, MissingTextError
from recformer_m2.submission import read_submission

from .conftest import write_m2_folder


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Exit code and message of ``recformer-m2 argv`` run in this process (0 and '' when it returns)."""
    try:
        main([str(a) for a in argv])
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            return 1, exit_.code
        return int(exit_.code or 0), ""
    return 0, ""


def assert_one_line_error(code: int, message: str, *fragments: str) -> None:
    assert code == 1, message
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.fixture
def folder(m2_sample_dir, tmp_path, monkeypatch) -> Path:
    """The format sample with task-1 and task-2 ground truth, and a private cache."""
    folder = tmp_path / "data"
    shutil.copytree(m2_sample_dir, folder)
    pd.DataFrame({"next_item": ["B0XYZ12345", "B0ABCDEF12", "B0BB8JM7J1", "B09JSPLN1M"],
                  "locale": ["DE", "DE", "JP", "UK"]}).to_csv(folder / "gt_task1.csv", index=False)
    monkeypatch.setenv("RECFORMER_M2_CACHE", str(tmp_path / "cache"))
    return folder


def header_only(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")


# --- case 1: an empty products file never gives an empty submission with exit 0 --------------------------

def test_header_only_products_still_predicts_from_session_ids(folder, tmp_path):
    header_only(folder / "products_train.csv")
    out = tmp_path / "t1.parquet"
    assert run_cli(["predict", "--data", folder, "--task", "1", "--method", "popularity", "--out", out]) == (0, "")
    rows = read_submission(out).next_item_prediction
    assert len(rows) == 4 and sum(len(r) for r in rows) > 0
    # The DE session [B09W9FND7K, B09JSPLN1M]: DE's training sessions hold B0XYZ12345, B0ABCDEF12 too.
    assert set(rows[0]) == {"B0XYZ12345", "B0ABCDEF12"}


def test_predict_refuses_a_submission_without_any_prediction(folder, tmp_path):
    # Test sessions only in a locale that no training session has: nothing to recommend there.
    (folder / "sessions_test_task2.csv").write_text("prev_items,locale\n['B09Y9639DB'],IT\n['B07ZPKBL9V'],IT\n")
    out = tmp_path / "t2.parquet"
    code, message = run_cli(["predict", "--data", folder, "--task", "2", "--method", "popularity", "--out", out])
    assert_one_line_error(code, message, "sessions_test_task2.csv", "no next-item list for any of the 2 test row(s)")
    assert not out.exists()


# --- case 2: header-only session files ---------------------------------------------------------------------

@pytest.mark.parametrize("stem", ["sessions_train", "sessions_test_task1"])
def test_header_only_sessions_file_is_one_line_error(folder, tmp_path, stem):
    header_only(folder / f"{stem}.csv")
    code, message = run_cli(["predict", "--data", folder, "--task", "1", "--method", "covisitation",
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, f"{stem}.csv: no data rows")
    with pytest.raises(DataFormatError, match=f"{stem}.csv: no data rows"):
        data = M2Data(folder, cache_dir=tmp_path / "c2")
        data.train, data.test(1)


# --- case 6: skips are reported on every run, cached or not ------------------------------------------------

def test_skip_warnings_repeat_when_served_from_cache(tmp_path, caplog):
    folder = write_m2_folder(
        tmp_path / "d", [("A", "DE", "a"), ("A", "DE", "dup"), ("B", "DE", "b"), ("C", "DE", "c")],
        [(["A", "ZZ"], "B", "DE"), ([], "C", "DE"), (["A"], "QQ", "DE"), (["B"], "C", "DE")],
    )
    caplog.set_level(logging.WARNING)
    for run in range(2):
        caplog.clear()
        data = M2Data(folder, cache_dir=tmp_path / "cache")
        assert len(data.train) == 2
        for fragment in ("skipped 1 duplicate (id, locale) row(s)", "1 session item(s) whose id is not in the product",
                         "1 next_item id(s) are not in the product table", "1 session(s) are empty",
                         "2 unusable session(s)"):
            assert fragment in caplog.text, (run, caplog.text)
        assert data.skipped[str(folder / "sessions_train.csv")]["sessions_dropped"] == 2
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 2  # the second run was served from the cache


def test_skipped_malformed_rows_are_reported_from_cache_too(tmp_path, caplog):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a"), ("B", "DE", "b")], [(["A"], "B", "DE")])
    with open(folder / "sessions_train.csv", "a") as f:
        f.write("['A'],B,DE,extra\n")
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        caplog.clear()
        assert len(M2Data(folder, cache_dir=tmp_path / "cache", on_bad_rows="skip").train) == 1
        assert "skipped 1 malformed row(s)" in caplog.text


# --- case 9: one line and exit 1 for bad data in every file, naming row and field ----------------------------

def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


@pytest.mark.parametrize("stem, row, fragment", [
    ("products_train", "B0NEW00001,DE,Neu,1.0,,,,,,\n", "products_train.csv, data row 11: wrong number of fields: 10 "
                                                          "where the header has 11"),
    ("sessions_train", "['B09W9FND7K'],B0XYZ12345,DE,extra\n", "sessions_train.csv, data row 6: wrong number of "
                                                               "fields: 4 where the header has 3"),
    ("sessions_test_task1", "['B09W9FND7K'],DE,extra\n", "sessions_test_task1.csv, data row 5: wrong number of fields"),
])
def test_wrong_field_count_is_one_line_naming_the_data_row(folder, tmp_path, stem, row, fragment):
    _append(folder / f"{stem}.csv", row)
    code, message = run_cli(["predict", "--data", folder, "--task", "1", "--method", "covisitation",
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, fragment)


def test_non_numeric_price_names_row_and_field(folder, tmp_path):
    _append(folder / "products_train.csv", "B0NEW00001,DE,Neu,zwölf,,,,,,,\n")
    code, message = run_cli(["predict", "--data", folder, "--task", "1", "--method", "popularity",
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, "products_train.csv, data row 11, field 'price': not a number",
                          "zwölf")


def test_verbose_keeps_the_traceback(folder, tmp_path):
    _append(folder / "sessions_test_task1.csv", "['B09W9FND7K'],XX\n")
    argv = ["predict", "--data", folder, "--task", "1", "--method", "popularity", "--out", tmp_path / "x.parquet"]
    assert_one_line_error(*run_cli(argv), "sessions_test_task1.csv, data row 5, field 'locale': unknown locale 'XX'")
    with pytest.raises(DataFormatError, match="unknown locale 'XX'"):
        main([str(a) for a in argv] + ["--verbose"])


def test_csv_reader_never_calls_python_from_arrow_worker_threads(folder, tmp_path, monkeypatch):
    """A Python invalid-row handler on arrow's worker threads takes the GIL there; a worker still doing so
    while the interpreter exits after an error aborts the process ('terminate called without an active
    exception', exit 134). Handlers may only run on a single-threaded read."""
    calls = []
    real = pcsv.read_csv

    def spy(*args, **kwargs):
        threaded = kwargs.get("read_options") is None or kwargs["read_options"].use_threads
        handler = kwargs.get("parse_options") is not None and kwargs["parse_options"].invalid_row_handler is not None
        calls.append((threaded, handler))
        return real(*args, **kwargs)

    monkeypatch.setattr(m2_module.pcsv, "read_csv", spy)
    _append(folder / "sessions_train.csv", "['B09W9FND7K'],B0XYZ12345,DE,extra\n")
    data = M2Data(folder, cache_dir=tmp_path / "c", on_bad_rows="skip")
    assert len(data.train) == 5
    assert calls and not any(threaded and handler for threaded, handler in calls), calls


# --- case 11: cache info and clear ---------------------------------------------------------------------------

def test_cache_info_and_clear(folder, tmp_path, capsys):
    M2Data(folder).train  # fills the tables cache under $RECFORMER_M2_CACHE
    embeddings = tmp_path / "cache" / "item-embeddings"
    embeddings.mkdir(parents=True)
    (embeddings / "items-0123.npy").write_bytes(b"x" * 2048)
    (tmp_path / "cache" / "notes.txt").write_text("not a cache entry")
    assert run_cli(["cache", "info"]) == (0, "")
    printed = capsys.readouterr().out
    assert f"cache root: {tmp_path / 'cache'}" in printed
    lines = {line.split()[0]: line.split() for line in printed.splitlines()[1:]}
    assert lines["tables"][1] == "2" and lines["item-embeddings"][1:4] == ["1", "entries", "2.0"]
    assert run_cli(["cache", "clear", "--kind", "tables"]) == (0, "")
    assert not list((tmp_path / "cache" / "tables").glob("*.parquet"))
    assert (embeddings / "items-0123.npy").exists()
    assert run_cli(["cache", "clear", "--older-than", "1"]) == (0, "")  # just used: kept
    assert (embeddings / "items-0123.npy").exists()
    assert run_cli(["cache", "clear"]) == (0, "")
    assert not (embeddings / "items-0123.npy").exists()
    assert (tmp_path / "cache" / "notes.txt").exists()  # only files the caches write are deleted


# --- issue 16: ID-only data folders ------------------------------------------------------------------------

@pytest.fixture
def id_only(folder) -> Path:
    (folder / "products_train.csv").unlink()
    return folder


@pytest.mark.parametrize("method", ["popularity", "covisitation"])
def test_id_only_folder_runs_id_methods_through_the_cli(id_only, tmp_path, capsys, method):
    out = tmp_path / f"{method}.parquet"
    assert run_cli(["predict", "--data", id_only, "--task", "1", "--method", method, "--out", out]) == (0, "")
    submission = read_submission(out)
    assert list(submission.locale) == ["DE", "DE", "JP", "UK"]
    assert submission.next_item_prediction[0][0] == "B0XYZ12345"  # as with the product file
    assert run_cli(["evaluate", "--predictions", out, "--truth", id_only / "gt_task1.csv"]) == (0, "")
    assert "MRR@100" in capsys.readouterr().out


def test_id_only_catalog_comes_from_the_session_files(id_only, tmp_path):
    data = M2Data(id_only, cache_dir=tmp_path / "c")
    assert not data.has_text
    # every (id, locale) of every session file, targets included; no text
    assert data.catalog.rows(data.catalog.codes(["B0XYZ12345"]), 1)[0] >= 0  # DE target
    assert (data.catalog.table.title == "").all()
    assert len(data.train) == 5 and len(data.test(1)) == 4
    assert M2Data(id_only.parent / "data", cache_dir=tmp_path / "c").catalog.num_ids == data.catalog.num_ids


@pytest.mark.parametrize("task, method", [(1, "textknn"), (3, "last-title")])
def test_id_only_folder_refuses_text_methods_naming_the_missing_text(id_only, tmp_path, task, method):
    code, message = run_cli(["predict", "--data", id_only, "--task", task, "--method", method,
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, "no products_train.csv or products_train.parquet, so no product text",
                          f"method '{method}' needs it")


def test_products_without_any_text_refuse_text_methods(tmp_path):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", ""), ("B", "DE", "")], [(["A"], "B", "DE")])
    data = M2Data(folder, cache_dir=tmp_path / "c")
    assert not data.has_text and M2Data(write_m2_folder(tmp_path / "e", [("A", "DE", "a")], []),
                                        cache_dir=tmp_path / "c").has_text
    with pytest.raises(MissingTextError, match=r"products_train has no product text \(title, brand.*all empty\); "
                                               r"method 'textknn' needs it"):
        from recformer_m2.methods import ranking_method

        ranking_method("textknn", data)
    # id methods still run: the session [A] gets B, the other product of DE
    top = ranking_method("popularity", data).recommend(data.train, k=2)[0]
    assert np.array_equal(top, [data.catalog.codes(["B"])[0], -1])


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_malformed_row_that_is_not_utf8_is_one_line(folder, tmp_path):
    """pyarrow cannot hand such a row to a Python handler: it printed 'Exception ignored' and a traceback, and
    with handlers on several worker threads the process sometimes aborted (exit 134) after the error."""
    with open(folder / "sessions_train.csv", "ab") as f:
        f.write(b"['B09W9FND7K'],B0XYZ12345,DE,extra\xff\n")
    code, message = run_cli(["predict", "--data", folder, "--task", "1", "--method", "popularity",
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, "sessions_train.csv: not UTF-8: byte 0xff", "(line 8 of the file)")


@pytest.mark.parametrize("columns, fragment", [
    (None, "sessions_train.parquet: not a readable parquet file"),
    ({"prev_items": [1], "next_item": ["B0XYZ12345"], "locale": ["DE"]}, "field 'prev_items': column has type int64"),
    ({"prev_items": [["B09W9FND7K"]], "next_item": ["B0XYZ12345"], "locale": [3]},
     "field 'locale': column has type int64"),
    ({"prev_items": [["B09W9FND7K"]], "next_item": ["B0XYZ12345"]}, "missing column(s) ['locale']"),
    ({"prev_items": [["B09W9FND7K"]], "next_item": [None], "locale": ["DE"]}, "data row 1, field 'next_item': missing"),
])
def test_bad_parquet_sessions_are_one_line(folder, tmp_path, columns, fragment):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "sessions_train.csv").unlink()
    if columns is None:
        (folder / "sessions_train.parquet").write_bytes(b"PAR1 not parquet")
    else:
        pq.write_table(pa.table(columns), folder / "sessions_train.parquet")
    code, message = run_cli(["predict", "--data", folder, "--task", "1", "--method", "covisitation",
                             "--out", tmp_path / "x.parquet"])
    assert_one_line_error(code, message, fragment)
