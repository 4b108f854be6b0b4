"""The calibration statistics of :mod:`recformer_m2.synth.stats`, against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recformer_m2.synth.stats import last_title_bleu, read_sessions, sample_per_locale, session_stats

# five sessions, prev items oldest first, then the next item
PREV = [["a", "b", "a"], ["c", "c"], ["a", "b"], ["d"], ["e", "f", "g", "e"]]
NEXT = ["x", "y", "x", "b", "x"]


def test_session_stats_by_hand() -> None:
    s = session_stats(PREV, NEXT)
    assert s.n == 5
    assert s.mean_length == pytest.approx((3 + 2 + 2 + 1 + 4) / 5)
    assert s.repeat_share == pytest.approx(3 / 5)          # sessions 0 (a), 1 (c), 4 (e)
    assert s.repeat_in_row_share == pytest.approx(1 / 5)   # session 1 (c c)
    assert s.distinct_next_share == pytest.approx(3 / 5)   # x, y, b
    # 3 distinct next items: the top 1% rounds to at least one item, x, taking 3 of 5 sessions
    assert s.top1pct_next_share == pytest.approx(3 / 5)
    # (last, next) pairs: (a,x) s0, (c,y) s1, (b,x) s2, (d,b) s3, (e,x) s4. Consecutive pairs elsewhere:
    # s0 has a->b, b->a, a->x; s2 has a->b, b->x. (b,x) of s2 is in no other session; (a,x) of s0 in none;
    # (d,b) in none. Only a pair shared between two sessions counts: none of the last->next pairs here,
    # so add one: a sixth session whose sequence contains b -> x.
    assert s.shared_pair_share == 0.0
    s6 = session_stats(PREV + [["q", "b"]], NEXT + ["x"])
    assert s6.shared_pair_share == pytest.approx(2 / 6)    # s2 and s6 share b -> x
    # the pair inside another session's prev items counts too
    s7 = session_stats([["a", "b", "c"], ["z", "a"]], ["d", "b"])
    assert s7.shared_pair_share == pytest.approx(1 / 2)    # (a,b) of s1 is s0's first step


def test_session_stats_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="as many next items"):
        session_stats([["a"]], [])
    with pytest.raises(ValueError, match="no prev items"):
        session_stats([["a"], []], ["b", "c"])


def test_sample_per_locale_is_seeded_and_equal() -> None:
    locs = np.array(["ES"] * 10 + ["FR"] * 5 + ["IT"] * 7)
    a = sample_per_locale(locs, {"ES": 4, "FR": 4, "IT": 4}, seed=1)
    b = sample_per_locale(locs, {"ES": 4, "FR": 4, "IT": 4}, seed=1)
    assert (a == b).all() and len(set(a.tolist())) == 12
    assert {loc: int((locs[a] == loc).sum()) for loc in ("ES", "FR", "IT")} == {"ES": 4, "FR": 4, "IT": 4}
    with pytest.raises(ValueError, match="FR: 5 sessions"):
        sample_per_locale(locs, {"FR": 6})


def test_read_sessions_and_last_title_bleu(tmp_path: Path) -> None:
    (tmp_path / "sessions_train.csv").write_text(
        "prev_items,next_item,locale\n\"['A' 'B']\",C,ES\n['D'],E,UK\n", encoding="utf-8")
    df = read_sessions(tmp_path, ["ES"])
    assert df["prev_items"].tolist() == [["A", "B"]] and df["next_item"].tolist() == ["C"]
    (tmp_path / "products_train.csv").write_text(
        "id,locale,title\nB,ES,red cotton towel large\nD,UK,blue mug\n", encoding="utf-8")
    (tmp_path / "sessions_test_task3.csv").write_text("prev_items,locale\n\"['A' 'B']\",ES\n['D'],UK\n",
                                                      encoding="utf-8")
    (tmp_path / "gt_task3.csv").write_text("next_item_title,locale\nred cotton towel large,ES\nblue mug,UK\n",
                                          encoding="utf-8")
    assert last_title_bleu(tmp_path) == pytest.approx(1.0)
    (tmp_path / "gt_task3.csv").write_text("next_item_title,locale\ngreen wool rug small,ES\nred pen,UK\n",
                                          encoding="utf-8")
    assert last_title_bleu(tmp_path) == pytest.approx(0.0)
