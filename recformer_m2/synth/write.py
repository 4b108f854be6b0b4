"""Writing a data folder in the KDD Cup 2023 format: product rows, sessions, test files, ground truth.

Files written: ``products_train.csv``, ``sessions_train.csv``, ``sessions_test_task{1,2,3}.csv`` and
row-aligned ground truth ``gt_task{1,2}.csv`` (next_item, locale) and ``gt_task3.csv``
(next_item_title, locale), with pandas ``to_csv`` quoting and numpy-repr ``prev_items``.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..constants import LOCALES, PRODUCT_COLUMNS, TASK_LOCALES
from .catalogue import Catalog, Kinds, build_catalog, kinds, locale_products, rng_for
from .config import DEFAULT_STYLE, SCALES, SynthScale, SynthStyle, get_style
from .render import VariantText, product_rows, render_variants
from .stats import repeat_share, train_counts
from .walk import _AGAIN, _LINE, _REPEAT, Layout, Walks, action_probs, layout, step, walk

logger = logging.getLogger(__name__)

_N_LOC = len(LOCALES)
_DE = 1
_WRITE_CHUNK = 100_000


def numpy_str_repr(ids: Sequence[str], linewidth: int = 75) -> str:
    """Exactly ``str(np.array(ids))`` under numpy's default print options (the KDD files' prev_items).

    Why re-implemented: calling numpy per session is too slow for millions of sessions. Follows
    numpy's ``_formatArray`` for a 1-D string array: elements are ``repr``'d, separated by a space,
    and wrapped (newline + one space) so no line exceeds ``linewidth`` - 1 characters before ']'.
    """
    if len(ids) > 1000:
        raise ValueError("numpy summarises arrays of more than 1000 elements; sessions must be shorter")
    if not ids:
        return "[]"
    words = [repr(str(x)) for x in ids]
    elem_width = linewidth - 1
    s = ""
    line = " "
    last = len(words) - 1
    for i, word in enumerate(words):
        if len(line) + len(word) > elem_width and len(line) > 1:
            s += line.rstrip() + "\n"
            line = " "
        line += word
        if i < last:
            line += " "
    s += line
    return "[" + s[1:] + "]"


def _prev_repr_10(toks: list[str]) -> str:
    """``numpy_str_repr`` for quoted 10-character ids ("'B0...'"): five to a line, by the same rule."""
    n = len(toks)
    if n <= 5:
        return "[" + " ".join(toks) + "]"
    return "[" + "\n ".join([" ".join(toks[i:i + 5]) for i in range(0, n, 5)]) + "]"


class _Out:
    """The data folder's CSV writers (pandas ``to_csv`` quoting: minimal, '\\n' line ends, UTF-8)."""

    def __init__(self, out_dir: Path):
        self._files: dict[str, Any] = {}
        self.w: dict[str, Any] = {}
        headers = {
            "products_train": PRODUCT_COLUMNS,
            "sessions_train": ("prev_items", "next_item", "locale"),
            "sessions_test_task1": ("prev_items", "locale"),
            "sessions_test_task2": ("prev_items", "locale"),
            "sessions_test_task3": ("prev_items", "locale"),
            "gt_task1": ("next_item", "locale"),
            "gt_task2": ("next_item", "locale"),
            "gt_task3": ("next_item_title", "locale"),
        }
        for name, header in headers.items():
            f = open(out_dir / f"{name}.csv", "w", encoding="utf-8", newline="")
            self._files[name] = f
            self.w[name] = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            self.w[name].writerow(header)

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def _write_rows(writer: Any, rows: Iterable[Sequence[Any]], bar: Any) -> None:
    """Write rows in chunks, advancing the progress bar."""
    buf: list[Sequence[Any]] = []
    for r in rows:
        buf.append(r)
        if len(buf) == _WRITE_CHUNK:
            writer.writerows(buf)
            bar.update(len(buf))
            buf = []
    writer.writerows(buf)
    bar.update(len(buf))



def generate(out_dir: str | Path, scale: str = "small", seed: int = 0, style: str | SynthStyle = DEFAULT_STYLE) -> dict:
    """Write a complete synthetic Amazon-M2 data folder; return (and log) its summary statistics.

    ``style`` names a world of ``STYLES`` (default: the one calibrated to real sessions; ``classic``
    reproduces the files written before styles existed). Same ``scale``, ``seed`` and ``style`` give
    byte-identical files. Progress bars are shown for ``medium``
    and ``full`` (the latter is the real data's size: a few minutes on 2 cores).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    sc = SCALES[scale]
    st = get_style(style)
    products = locale_products(sc, st, SCALES["full"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    kt = kinds()
    cat = build_catalog(seed, products, kt, st)
    logger.info("synth %s (%s): catalogue of %d lines, %d products built in %.1fs", scale, st.name, len(cat.home),
                len(cat.prod_line), time.perf_counter() - t0)
    de_set = np.zeros(len(cat.prod_line), dtype=bool)
    de_set[cat.listed[_DE]] = True
    n_rows = sum(products) + sum(sc.train_sessions[i] + sc.n_test(i) + sc.n_task3(i) for i in range(_N_LOC))
    bar = tqdm(total=n_rows, unit="row", desc=f"synth {scale}", disable=scale not in ("medium", "full"),
               mininterval=2.0)
    stats: dict[str, Any] = {"scale": scale, "seed": seed, "style": st.name, "out_dir": str(out), "locales": {}}
    writer = _Out(out)
    try:
        for loc, locale in enumerate(LOCALES):
            stats["locales"][locale] = _generate_locale(seed, sc, st, kt, cat, loc, writer, bar, de_set)
    finally:
        writer.close()
        bar.close()
    per = stats["locales"]
    stats["products"] = sum(v["products"] for v in per.values())
    stats["train_sessions"] = sum(v["train_sessions"] for v in per.values())
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    logger.info("synth %s (seed %d) written to %s in %.1fs: %d product rows, %d train sessions", scale, seed,
                out, stats["seconds"], stats["products"], stats["train_sessions"])
    for locale, v in per.items():
        logger.info("  %s: %7d train, %6d test, %5d task3 sessions; %7d products (%.0f%% also in DE, %.0f%% seen <3x);"
                    " mean prev length %.2f; %.0f%% with a repeat", locale, v["train_sessions"], v["test_sessions"],
                    v["task3_sessions"], v["products"], 100 * v["share_with_de"], 100 * v["rare_share"],
                    v["mean_prev_len"], 100 * v["repeat_rate"])
    return stats


def _generate_locale(seed: int, sc: SynthScale, st: SynthStyle, kt: Kinds, cat: Catalog, loc: int, writer: _Out,
                     bar: Any, de_set: np.ndarray) -> dict[str, Any]:
    """Products, sessions and ground truth of one locale, appended to the open files."""
    locale = LOCALES[loc]
    rng_r = rng_for(seed, 10, loc)
    typo_rng = rng_for(seed, 30, loc)
    lay = layout(cat, kt, loc, st)
    # products, shuffled within the locale
    row_order = rng_r.permutation(len(lay.gprod))
    rows, titles = product_rows(cat, kt, loc, lay.gprod[row_order], rng_r, st, typo_rng)
    _write_rows(writer.w["products_train"], rows, bar)
    title_set = set(titles)
    del rows, titles

    n_train, n_test, n3 = sc.train_sessions[loc], sc.n_test(loc), sc.n_task3(loc)
    rng_w = rng_for(seed, 20, loc)
    wk = walk(rng_w, lay, n_train + n_test + n3, st)
    perm = rng_w.permutation(n_train + n_test + n3)
    train, test, task3 = perm[:n_train], perm[n_train:n_train + n_test], perm[n_train + n_test:]
    ids = [cat.ids[p] for p in lay.gprod.tolist()]
    quoted = np.array(["'" + x + "'" for x in ids], dtype=object)
    toks = quoted[wk.flat].tolist()
    off, lens, nxt = wk.off.tolist(), wk.lens.tolist(), wk.nxt.tolist()

    def prev(s: int) -> str:
        return _prev_repr_10(toks[off[s]:off[s] + lens[s]])

    _write_rows(writer.w["sessions_train"], ((prev(s), ids[nxt[s]], locale) for s in train.tolist()), bar)
    task = 1 if locale in TASK_LOCALES[1] else 2
    test_l = test.tolist()
    writer.w[f"sessions_test_task{task}"].writerows([(prev(s), locale) for s in test_l])
    writer.w[f"gt_task{task}"].writerows([(ids[nxt[s]], locale) for s in test_l])
    bar.update(len(test_l))

    # task 3: the next item is a never-sold variant of a line seen in the session, or one walk step away
    if st.task3_walk:
        lines3, vt, keep = _task3_walk(rng_for(seed, 40, loc), lay, wk, task3, st, cat, kt, loc, typo_rng, title_set)
    else:
        last = rng_w.random(n3) < st.task3_last
        pos = np.where(last, wk.lens[task3] - 1, np.floor(rng_w.random(n3) * wk.lens[task3]).astype(np.int64))
        lines3 = cat.prod_line[lay.gprod[wk.flat[wk.off[task3] + pos]]]
        vt = render_variants(cat, kt, loc, lines3, cat.heldout[lines3], st, typo_rng)
        keep = [i for i, t in enumerate(vt.title) if t not in title_set]
    if len(keep) < n3:
        logger.warning("synth %s: %d task 3 titles collided with sold products and were dropped", locale,
                       n3 - len(keep))
    t3 = task3.tolist()
    writer.w["sessions_test_task3"].writerows([(prev(t3[i]), locale) for i in keep])
    writer.w["gt_task3"].writerows([(vt.title[i], locale) for i in keep])
    bar.update(n3)

    # stats
    counts = train_counts(wk.flat, wk.off, wk.lens, wk.nxt, train, len(lay.gprod))
    return {
        "products": int(len(lay.gprod)),
        "share_with_de": float(de_set[lay.gprod].mean()),
        "lines": int(len(lay.line_lo)),
        "train_sessions": int(n_train),
        "test_sessions": int(n_test),
        "task3_sessions": int(len(keep)),
        "mean_prev_len": float(wk.lens[train].mean()),
        "repeat_rate": float(repeat_share(wk.flat, wk.off, wk.lens, train)),
        "rare_share": float((counts < 3).mean()),
        "unseen_share": float((counts == 0).mean()),
    }




def _task3_walk(rng: np.random.Generator, lay: Layout, wk: Walks, task3: np.ndarray, st: SynthStyle, cat: Catalog,
                kt: Kinds, loc: int, typo_rng: np.random.Generator,
                title_set: set[str]) -> tuple[np.ndarray, VariantText, list[int]]:
    """Task-3 targets one move from the last item: with ``task3_last`` its own line, else the line a
    walk step (no repeats, no same-line move) reaches; the target is that line's never-sold variant.
    A target whose title equals a sold product's is redrawn a few times, then dropped."""
    n3 = len(task3)
    last_item = wk.flat[wk.off[task3] + wk.lens[task3] - 1]
    probs = action_probs(st).copy()
    probs[[_LINE, _REPEAT, _AGAIN]] = 0.0
    probs /= probs.sum()
    own = rng.random(n3) < st.task3_last
    target = last_item.copy()
    titles: list[str] = [""] * n3
    todo = np.arange(n3)
    for attempt in range(6):
        moved = todo[~own[todo]] if attempt == 0 else todo
        if len(moved):
            target[moved] = step(rng, lay, last_item[moved], probs, None)[0]
        lines = cat.prod_line[lay.gprod[target[todo]]]
        vt = render_variants(cat, kt, loc, lines, cat.heldout[lines], st, typo_rng)
        clash = []
        for j, i in enumerate(todo.tolist()):
            titles[i] = vt.title[j]
            if vt.title[j] in title_set:
                clash.append(i)
        todo = np.array(clash, dtype=np.int64)
        if not len(todo):
            break
    lines3 = cat.prod_line[lay.gprod[target]]
    bad = set(todo.tolist())
    keep = [i for i in range(n3) if i not in bad]
    return lines3, VariantText(titles, [], [], [], [], [], []), keep
