"""Damaged data folders through the command line: every run ends in exit 0 with a valid submission and
evaluation, or in exit 1 with one line and no traceback; never an empty submission with exit 0.

Each case rewrites one file of a valid folder (the format sample with ground truth): truncation, byte flips,
a deleted or duplicated column, a shuffled header, random ``prev_items``, or a header-only file. The CLI runs
in this process (``main`` raising SystemExit), which is what keeps 200 cases within seconds.
"""

import csv
import io
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from recformer_m2.cli import main
from recformer_m2.constants import TOP_K
from recformer_m2.submission import read_submission

CASES = 200
FILES = ("products_train.csv", "sessions_train.csv", "sessions_test_task1.csv", "gt_task1.csv")
IDS = ("B09W9FND7K", "B09JSPLN1M", "B0XYZ12345", "B0BB8JM7J1", "B0ABCDEF12", "B07ZPKBL9V", "UNKNOWN001", "")
BYTES = b"\x00\xff\xe9\",'\n\r[] ;x"


def _records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def _write_records(records: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue().encode("utf-8")


def _random_prev_items(rng: random.Random) -> str:
    """A prev_items value: usually a numpy repr of random (known, unknown, empty) ids, sometimes garbage."""
    if rng.random() < 0.2:
        return rng.choice(["[]", "", "['A' 'B'", "[A, B]", "['B09W9FND7K',]", "nan", "[' ']", "['x'\n'y']"])
    ids = [rng.choice(IDS) for _ in range(rng.randrange(0, 6))]
    return "[" + " ".join(f"'{i}'" for i in ids) + "]"


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random damage of a CSV file's bytes, and its name."""
    kind = rng.choice(["truncate", "flip", "delete-column", "duplicate-column", "shuffle-header", "shuffle-columns",
                       "prev-items", "header-only", "empty"])
    if kind == "truncate":
        return kind, data[:rng.randrange(len(data))]
    if kind == "flip":
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.choice(BYTES)
        return kind, bytes(damaged)
    if kind == "empty":
        return kind, b""
    records = _records(data)
    header, rows = records[0], records[1:]
    if kind == "header-only":
        return kind, _write_records([header])
    if kind == "delete-column":
        i = rng.randrange(len(header))
        return kind, _write_records([r[:i] + r[i + 1:] for r in records])
    if kind == "duplicate-column":
        i = rng.randrange(len(header))
        return kind, _write_records([r + [r[i]] for r in records])
    if kind == "shuffle-header":
        return kind, _write_records([rng.sample(header, len(header))] + rows)
    if kind == "shuffle-columns":
        order = rng.sample(range(len(header)), len(header))
        return kind, _write_records([[r[i] for i in order] for r in records])
    if "prev_items" not in header:
        return kind, data
    col = header.index("prev_items")
    for row in rows:
        if rng.random() < 0.5:
            row[col] = _random_prev_items(rng)
    return kind, _write_records([header] + rows)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The format sample plus task-1 ground truth: a valid folder whose every file the fuzz damages."""
    folder = tmp_path_factory.mktemp("base")
    shutil.copytree(Path(__file__).parent / "fixtures", folder, dirs_exist_ok=True)
    pd.DataFrame({"next_item": ["B0XYZ12345", "B0ABCDEF12", "B0BB8JM7J1", "B09JSPLN1M"],
                  "locale": ["DE", "DE", "JP", "UK"]}).to_csv(folder / "gt_task1.csv", index=False)
    return folder


def run(argv: list[str]) -> tuple[int, str]:
    try:
        main([str(a) for a in argv])
    except SystemExit as exit_:
        return (1, exit_.code) if isinstance(exit_.code, str) else (int(exit_.code or 0), "")
    return 0, ""


def check_outcome(code: int, message: str, what: str) -> None:
    assert code in (0, 1), f"{what}: exit {code}"
    if code == 1:
        assert message.startswith("recformer-m2 ") and "\n" not in message and "Traceback" not in message, what


# An exception inside a callback (e.g. pyarrow handing a non-UTF-8 row to Python) prints "Exception ignored"
# and a traceback on stderr in the real command: here it fails the test.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_damaged_folders_end_in_a_valid_submission_or_one_line(base, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECFORMER_M2_CACHE", str(tmp_path / "cache"))
    rng = random.Random(20)
    outcomes = {0: 0, 1: 0}
    stderr = []
    for case in range(CASES):
        folder = tmp_path / f"case{case}"
        shutil.copytree(base, folder)
        name = rng.choice(FILES)
        kind, damaged = mutate((folder / name).read_bytes(), rng)
        (folder / name).write_bytes(damaged)
        what = f"case {case}: {kind} of {name}"
        out = tmp_path / f"case{case}.parquet"
        method = rng.choice(["popularity", "covisitation"])
        code, message = run(["predict", "--data", folder, "--task", "1", "--method", method, "--out", out])
        check_outcome(code, message, what)
        outcomes[code] += 1
        if code == 1:
            assert not out.exists(), what
            continue
        submission = read_submission(out)
        expected_rows = len(pd.read_csv(folder / "sessions_test_task1.csv", dtype=str, keep_default_na=False))
        assert len(submission) == expected_rows, what
        sizes = submission.next_item_prediction.map(len)
        assert sizes.max() > 0 and sizes.max() <= TOP_K, what  # never an empty submission with exit 0
        code, message = run(["evaluate", "--predictions", out, "--truth", folder / "gt_task1.csv"])
        check_outcome(code, message, what + " (evaluate)")
        if code == 0:
            printed = capsys.readouterr()
            stderr.append(printed.err)
            assert "MRR@100" in printed.out, what
        shutil.rmtree(folder)
    stderr.append(capsys.readouterr().err)
    assert not any("Traceback" in err or "Exception ignored" in err for err in stderr)
    # the damage is varied enough to exercise both endings
    assert outcomes[0] >= CASES // 10 and outcomes[1] >= CASES // 10, outcomes
