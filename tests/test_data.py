"""The data layer reads the KDD Cup files exactly, caches by content, and reports bad input precisely."""

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recformer_m2.constants import LOCALES
from recformer_m2.data import M2Data, validation_split
from recformer_m2.data import m2 as m2_module
from recformer_m2.errors import DataFormatError

from .conftest import write_m2_folder


def ids_of(data: M2Data, sessions) -> list[list[str]]:
    return [list(data.catalog.ids[s]) for s in sessions.to_lists()]


def test_reads_fixture_sessions_exactly(m2_sample_dir, cache_dir):
    data = M2Data(m2_sample_dir, cache_dir=cache_dir)
    train = data.train
    assert len(train) == 5
    # The second session's prev_items wraps onto a new line inside a quoted field.
    assert ids_of(data, train)[1] == [
        "B09JSPLN1M", "B09W9FND7K", "B09JSPLN1M", "B09W9FND7K", "B0XYZ12345", "B09JSPLN1M", "B09W9FND7K",
    ]
    assert ids_of(data, train)[2] == ["B0BB8JM7J1", "B0BB8JM7J1"]
    assert [LOCALES[x] for x in train.locale] == ["DE", "DE", "JP", "ES", "UK"]
    assert list(data.catalog.ids[train.next_item]) == ["B0XYZ12345", "B0ABCDEF12", "B09W9FND7K", "B09Y9639DB", "B09JSPLN1M"]
    assert [len(data.test(t)) for t in (1, 2, 3)] == [4, 1, 1]
    assert ids_of(data, data.test(1))[1][-1] == "B09W9FND7K"
    assert [LOCALES[x] for x in data.test(1).locale] == ["DE", "DE", "JP", "UK"]


def test_reads_fixture_products_exactly(m2_sample_dir, cache_dir):
    catalog = M2Data(m2_sample_dir, cache_dir=cache_dir).catalog
    assert len(catalog) == 10 and catalog.num_ids == 9
    code = catalog.codes(["B09W9FND7K"])[0]
    de, uk = catalog.rows(np.array([code, code]), np.array([LOCALES.index("DE"), LOCALES.index("UK")]))
    # One id, one row per locale, each in its language; commas inside quoted titles survive.
    assert catalog.table.title[de] == "Amazon Basics USB-C-Kabel, 1,8 m, Schwarz"
    assert catalog.table.title[uk] == "Amazon Basics USB-C Cable, 6 ft, Black"
    assert catalog.rows(np.array([code]), LOCALES.index("JP"))[0] == -1
    fr = catalog.rows(catalog.codes(["B07ZPKBL9V"]), LOCALES.index("FR"))[0]
    assert catalog.table.title[fr] == 'Raid Spray Insecticide "Fraîcheur Naturelle", 400 ml'  # doubled quotes
    assert catalog.table.desc[fr] == "Efficacité immédiate.\nIncolore."  # newline inside a field
    jp = catalog.rows(catalog.codes(["B0BB8JM7J1"]), LOCALES.index("JP"))[0]
    assert catalog.table.title[jp] == "エレコム USB Type-C ケーブル 1.0m ブラック"
    assert catalog.sentence(jp).startswith("title エレコム USB Type-C ケーブル 1.0m ブラック brand エレコム(ELECOM)")
    # Empty attributes are skipped; the newline inside desc becomes a space in the sentence.
    assert catalog.attributes(fr) == [
        ("title", 'Raid Spray Insecticide "Fraîcheur Naturelle", 400 ml'), ("brand", "Raid"), ("size", "400 ml"),
        ("desc", "Efficacité immédiate. Incolore."),
    ]
    book = catalog.rows(catalog.codes(["B0ABCDEF12"]), LOCALES.index("UK"))[0]
    assert catalog.attributes(book, attributes=("brand", "author", "price")) == [
        ("author", "David Thomas; Andrew Hunt"), ("price", "29.99"),
    ]
    assert catalog.attributes(book, max_value_chars=7)[0] == ("title", "The Pra")
    assert catalog.table.price[book] == pytest.approx(29.99)


def test_fixture_reports_targets_missing_from_their_locale(m2_sample_dir, cache_dir, caplog):
    caplog.set_level(logging.WARNING)
    M2Data(m2_sample_dir, cache_dir=cache_dir).train
    # Targets B09W9FND7K (JP), B0ABCDEF12 (DE) and B09JSPLN1M (UK) have no product row in those locales.
    assert "3 next_item(s) have no product row in their session's locale" in caplog.text


def test_parquet_folder_reads_like_csv(m2_sample_dir, cache_dir, tmp_path):
    csv_data = M2Data(m2_sample_dir, cache_dir=cache_dir)
    folder = tmp_path / "pq"
    folder.mkdir()
    shutil.copy(m2_sample_dir / "products_train.csv", folder)
    lists = [list(x) for x in ids_of(csv_data, csv_data.train)]
    pq.write_table(
        pa.table({
            "prev_items": pa.array(lists, pa.list_(pa.string())),
            "next_item": list(csv_data.catalog.ids[csv_data.train.next_item]),
            "locale": [LOCALES[x] for x in csv_data.train.locale],
        }),
        folder / "sessions_train.parquet",
    )
    pq_data = M2Data(folder, cache_dir=cache_dir)
    np.testing.assert_array_equal(pq_data.train.items, csv_data.train.items)
    np.testing.assert_array_equal(pq_data.train.offsets, csv_data.train.offsets)


def test_second_load_uses_cache_and_changed_file_does_not(m2_sample_dir, cache_dir, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    shutil.copytree(m2_sample_dir, folder)
    first = M2Data(folder, cache_dir=cache_dir).train

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again although the cache holds this content")

    monkeypatch.setattr(m2_module, "read_csv_table", no_parse)
    again = M2Data(folder, cache_dir=cache_dir).train
    np.testing.assert_array_equal(first.items, again.items)
    monkeypatch.undo()
    with open(folder / "sessions_train.csv", "a") as f:
        f.write("['B09W9FND7K'],B0XYZ12345,DE\n")
    assert len(M2Data(folder, cache_dir=cache_dir).train) == 6


def test_wrong_field_count_names_the_file(tmp_path, cache_dir, caplog):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a")], [(["A"], "A", "DE")])
    with open(folder / "sessions_train.csv", "a") as f:
        f.write("['A'],A,DE,extra\n")
    with pytest.raises(DataFormatError, match=r"sessions_train.csv, data row 2: wrong number of fields: 4 where the header has 3 .*extra"):
        M2Data(folder, cache_dir=cache_dir).train
    caplog.set_level(logging.WARNING)
    assert len(M2Data(folder, cache_dir=cache_dir, on_bad_rows="skip").train) == 1
    assert "skipped 1 malformed row(s)" in caplog.text


def test_unknown_locale_names_row_and_field(tmp_path, cache_dir):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a"), ("B", "DE", "b")], [(["A"], "B", "DE"), (["A"], "B", "XX")])
    with pytest.raises(DataFormatError, match=r"sessions_train.csv, data row 2, field 'locale': unknown locale 'XX'"):
        M2Data(folder, cache_dir=cache_dir).train


def test_malformed_prev_items_names_row_and_field(tmp_path, cache_dir):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a"), ("B", "DE", "b")], [(["A"], "B", "DE")])
    with open(folder / "sessions_train.csv", "a") as f:
        f.write('"[A, B]",B,DE\n')
    with pytest.raises(DataFormatError, match=r"data row 2, field 'prev_items': not a list of quoted ids"):
        M2Data(folder, cache_dir=cache_dir).train


def test_non_utf8_names_the_line(tmp_path, cache_dir):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a"), ("B", "DE", "b")], [(["A"], "B", "DE")])
    with open(folder / "products_train.csv", "ab") as f:
        f.write(b"C,DE,caf\xe9,1.0,,,,,,,\n")
    with pytest.raises(DataFormatError, match=r"products_train.csv: not UTF-8: byte 0xe9 .*line 4 of the file"):
        M2Data(folder, cache_dir=cache_dir).catalog


def test_missing_column_is_named(tmp_path, cache_dir):
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "a")], [])
    (folder / "sessions_train.csv").write_text("prev_items,locale\n['A'],DE\n")
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['next_item'\]"):
        M2Data(folder, cache_dir=cache_dir).train


def test_unknown_ids_and_empty_sessions_are_counted(tmp_path, cache_dir, caplog):
    caplog.set_level(logging.WARNING)
    folder = write_m2_folder(
        tmp_path / "d",
        [("A", "DE", "a"), ("B", "DE", "b"), ("C", "DE", "c")],
        [(["A", "ZZ"], "B", "DE"), (["ZZ"], "B", "DE"), ([], "C", "DE"), (["A"], "QQ", "DE")],
        tests={1: [([], "DE"), (["ZZ", "C"], "DE")]},
    )
    data = M2Data(folder, cache_dir=cache_dir)
    assert ids_of(data, data.train) == [["A"]]  # unknown id dropped; 3 unusable sessions skipped
    assert "3 unusable session(s)" in caplog.text and "1 next_item id(s) are not in the product table" in caplog.text
    assert ids_of(data, data.test(1)) == [[], ["C"]]  # test rows stay aligned with their ground truth
    assert "1 session(s) are empty" in caplog.text


def test_duplicate_products_keep_first(tmp_path, cache_dir, caplog):
    caplog.set_level(logging.WARNING)
    folder = write_m2_folder(tmp_path / "d", [("A", "DE", "first"), ("A", "DE", "second"), ("A", "UK", "uk")], [])
    catalog = M2Data(folder, cache_dir=cache_dir).catalog
    assert list(catalog.table.title) == ["first", "uk"]
    assert "skipped 1 duplicate (id, locale) row(s)" in caplog.text and "data row 2" in caplog.text


def test_validation_split_is_seeded_and_capped(m2_sample_dir, cache_dir):
    train = M2Data(m2_sample_dir, cache_dir=cache_dir).train
    big = train.select(np.tile(np.arange(len(train)), 200))
    fit, valid = validation_split(big, fraction=0.1, seed=3)
    assert len(fit) + len(valid) == len(big) and not set(fit) & set(valid)
    assert 0.05 < len(valid) / len(big) < 0.15
    np.testing.assert_array_equal(valid, validation_split(big, fraction=0.1, seed=3)[1])
    assert not np.array_equal(valid, validation_split(big, fraction=0.1, seed=4)[1])
    _, capped = validation_split(big, fraction=0.5, seed=3, max_per_locale=5)
    assert np.bincount(big.locale[capped]).max() == 5


def test_select_gathers_sessions(m2_sample_dir, cache_dir):
    data = M2Data(m2_sample_dir, cache_dir=cache_dir)
    picked = data.train.select(np.array([4, 0]))
    assert ids_of(data, picked) == [["B09W9FND7K", "B0ABCDEF12"], ["B09W9FND7K", "B09JSPLN1M"]]
    assert list(picked.locale) == [LOCALES.index("UK"), LOCALES.index("DE")]
    masked = data.train.select(data.train.in_locales(["JP"]))
    assert ids_of(data, masked) == [["B0BB8JM7J1", "B0BB8JM7J1"]]


def test_missing_folder_and_file(tmp_path, cache_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        M2Data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no products_train.csv or products_train.parquet"):
        M2Data(tmp_path / "empty", cache_dir=cache_dir).catalog


def test_fixture_copy_is_the_shared_sample():
    shared = Path(__file__).resolve().parents[2] / "shared" / "m2_format_sample"
    if not shared.exists():
        pytest.skip("../shared is not beside this checkout")
    for path in shared.iterdir():
        assert (Path(__file__).parent / "fixtures" / path.name).read_bytes() == path.read_bytes()


def _sessions(lists: list[list[int]], targets: list[int], locales: list[int]) -> "m2_module.Sessions":
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    items = np.array([i for x in lists for i in x], dtype=np.int32)
    return m2_module.Sessions(items, offsets, np.array(locales, dtype=np.int8), np.array(targets, dtype=np.int32))


def test_prefixes_predict_every_new_item_from_what_came_before():
    sessions = _sessions([[1, 2, 1, 6], [4], [], [7, 8]], [3, 5, 9, -1], [0, 3, 1, 2])
    got = sessions.prefixes()
    pairs = [(got[i].tolist(), int(t), int(loc)) for i, (t, loc) in enumerate(zip(got.next_item, got.locale))]
    # [1]->2, [1,2]->1 dropped (1 repeats), [1,2,1]->6, [1,2,1,6]->3, [4]->5; the empty session and the
    # one without a target give nothing
    assert pairs == [([1], 2, 0), ([1, 2, 1], 6, 0), ([1, 2, 1, 6], 3, 0), ([4], 5, 3)]
    short = sessions.prefixes(max_length=2)
    assert [s.tolist() for s in short.to_lists()] == [[1], [2, 1], [1, 6], [4]]
    assert short.next_item.tolist() == got.next_item.tolist()


def test_inputs_as_sessions_turn_prev_items_into_targets_and_never_read_next_item():
    sessions = _sessions([[1, 2, 1, 6], [4], [], [7, 8]], [3, 5, 9, -1], [0, 3, 1, 2])
    got = sessions.inputs_as_sessions()
    assert [s.tolist() for s in got.to_lists()] == [[1, 2, 1], [7]]  # fewer than two items: nothing to learn
    assert got.next_item.tolist() == [6, 8] and got.locale.tolist() == [0, 2]
    relabelled = _sessions([[1, 2, 1, 6], [4], [], [7, 8]], [11, 12, 13, 14], [0, 3, 1, 2])
    assert relabelled.inputs_as_sessions().next_item.tolist() == [6, 8]  # the real targets play no part
    # with prefixes: [1] -> 2, [1, 2, 1] -> 6, [7] -> 8 (the repeat of 1 is dropped as a target)
    pairs = [(s.tolist(), int(t)) for s, t in zip(got.prefixes().to_lists(), got.prefixes().next_item)]
    assert pairs == [([1], 2), ([1, 2, 1], 6), ([7], 8)]


def test_concatenate_keeps_every_session_in_order():
    a = _sessions([[1, 2], [3]], [4, 5], [0, 1])
    b = _sessions([[], [6, 7, 8]], [9, -1], [2, 3])
    both = m2_module.Sessions.concatenate([a, b])
    assert [s.tolist() for s in both.to_lists()] == [[1, 2], [3], [], [6, 7, 8]]
    assert both.next_item.tolist() == [4, 5, 9, -1] and both.locale.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_utf8_check_names_the_same_byte_at_any_chunk_size(tmp_path, chunk):
    path = tmp_path / "x.csv"
    for data in ["aé\nxé€\n".encode() + b"\xe9x\n", "é\n".encode() * 3 + b"\xff", "ok\né".encode()]:
        path.write_bytes(data)
        try:
            data.decode("utf-8")
            m2_module._check_utf8(path, chunk)
            continue
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            expected = f"byte {data[err.start]:#x} at offset {err.start} (line {line} "
        with pytest.raises(DataFormatError, match=re.escape(expected)):
            m2_module._check_utf8(path, chunk)
