"""Synthetic Amazon-M2 (KDD Cup 2023) data: the project's embedded default dataset.

Why synthetic: the real data cannot ship with the package, yet every stage (loading, tokenizer,
heuristics, text models, cross-locale transfer, title generation) needs data with the real files'
exact format *and* the structure that makes text useful. The generator therefore draws a latent
catalogue of product lines (brand + series + kind, e.g. "Anker PowerLine III USB-C cable") sold in
variants (colour, size, pack count), renders each product in its locale's language, and walks
shopping sessions through it with the same dynamics in every locale (stay in the line, switch brand
within the kind, move to a related kind, repeat, drift to something popular). The walk is vectorised
over all sessions of a locale so the real data's size (``scale="full"``) takes minutes, not hours.

Files written (format of the KDD Cup release, see ``tests/fixtures``): ``products_train.csv``,
``sessions_train.csv``, ``sessions_test_task{1,2,3}.csv`` and row-aligned ground truth
``gt_task{1,2}.csv`` (next_item, locale) and ``gt_task3.csv`` (next_item_title, locale).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import synth_vocab as V
from .constants import LOCALES, PRODUCT_COLUMNS, TASK_LOCALES

logger = logging.getLogger(__name__)

__all__ = ["SCALES", "SynthScale", "generate", "numpy_str_repr"]

_UK, _DE, _JP, _ES, _FR, _IT = range(6)
_N_LOC = len(LOCALES)


@dataclass(frozen=True)
class SynthScale:
    """Size of a generated data set; per-locale numbers are in ``LOCALES`` order (UK, DE, JP, ES, FR, IT)."""

    name: str
    train_sessions: tuple[int, int, int, int, int, int]
    products: tuple[int, int, int, int, int, int]
    test_fraction: float = 0.09
    """Task 1/2 test sessions per training session of the locale (the real files: about 9%)."""
    task3_fraction: float = 0.02
    """Task 3 test sessions per training session of the locale."""
    min_test: int = 2
    """At least this many test sessions per locale and task, so tiny data sets still cover every locale."""

    def n_test(self, loc: int) -> int:
        """Task 1 (UK/DE/JP) or task 2 (ES/FR/IT) test sessions of locale ``loc``."""
        return max(self.min_test, round(self.test_fraction * self.train_sessions[loc]))

    def n_task3(self, loc: int) -> int:
        """Task 3 test sessions of locale ``loc``."""
        return max(self.min_test, round(self.task3_fraction * self.train_sessions[loc]))


SCALES: dict[str, SynthScale] = {
    "tiny": SynthScale("tiny", (100, 100, 100, 12, 12, 12), (240, 250, 200, 40, 40, 40)),
    "small": SynthScale("small", (20_000, 19_000, 17_000, 1_800, 2_000, 2_200),
                        (6_000, 6_200, 4_800, 800, 850, 950)),
    "medium": SynthScale("medium", (200_000, 190_000, 170_000, 18_000, 20_000, 22_000),
                         (60_000, 62_000, 48_000, 8_000, 8_500, 9_500)),
    "full": SynthScale("full", (1_182_181, 1_111_416, 979_119, 89_047, 117_561, 126_925),
                       (454_700, 471_200, 359_100, 38_600, 40_500, 45_900)),
}
"""Named sizes. ``full`` has the real training-session counts and about 1.41M product rows."""

# --- catalogue parameters -------------------------------------------------------------------------
_IMPORT_FROM_DE = (0.15, 0.0, 0.05, 0.40, 0.40, 0.40)
"""Share of a locale's product rows that are DE products (same id) sold there too."""
_IMPORT_KEEP = 0.7
"""Chance that each variant of an imported DE line is sold in the importing locale too."""
_JP_KATAKANA_BRANDS = 0.4
"""Share of Japan-only lines whose brand is written in katakana."""
_VARIANTS_P = 0.35
"""Geometric parameter of variants listed per line (mean about 1/p, capped by the variant space)."""
_LINE_POP_SIGMA = 1.6
"""Spread of log line popularity: a few lines take much of the traffic, many are rarely seen."""
_NO_SERIES = 0.15
_NO_BRAND = 0.02
_HAS_MODEL = 0.55
_MODEL_IN_TITLE = 0.3
_MATERIAL_SHOWN = 0.6
_NO_DESC = 0.08
_BLANK_COLOR, _BLANK_SIZE, _BLANK_MODEL = 0.1, 0.1, 0.08
_LOCALE_PRICE = (0.87, 1.0, 155.0, 0.98, 1.02, 1.0)
"""Price factor from EUR: GBP for UK, yen for JP."""

# --- session dynamics -----------------------------------------------------------------------------
_P_LINE, _P_KIND, _P_RELATED, _P_RANDOM, _P_REPEAT = 0.47, 0.20, 0.13, 0.05, 0.15
"""Per step: another variant of the line, another line of the kind, a related kind, a popular item, a repeat."""
_LEN_MU, _LEN_SIGMA, _MAX_LEN = 0.95, 0.8, 200
"""Session length (prev items) = ceil(lognormal(mu, sigma)), in [1, _MAX_LEN]; mean about 4."""
_NOVELTY_TRIES = 4
"""Redraws of a non-repeat step that landed on a product the session has already seen."""
_TASK3_LAST = 0.7
"""Task 3: chance the new variant belongs to the last item's line (else to a random earlier item's line)."""

_LINE, _KIND, _RELATED, _RANDOM, _REPEAT = range(5)
_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_WRITE_CHUNK = 100_000


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream per (stage, locale) so stages can change without reshuffling the others."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


# ==================================================================================================
# numpy repr of prev_items
# ==================================================================================================
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


# ==================================================================================================
# kinds
# ==================================================================================================
@dataclass(frozen=True)
class _Kinds:
    """The vocabulary's kinds as arrays, for vectorised drawing."""

    n: int
    cat: np.ndarray
    weight: np.ndarray
    has_color: np.ndarray
    is_book: np.ndarray
    n_sizes: np.ndarray
    packs: np.ndarray
    n_packs: np.ndarray
    price: np.ndarray
    materials: np.ndarray
    n_materials: np.ndarray
    adj_ptr: np.ndarray
    adj: np.ndarray


_MATERIAL_KEYS: tuple[str, ...] = tuple(V.MATERIALS)


def _kinds() -> _Kinds:
    """Arrays of the kind table and the undirected kind-relatedness graph (CSR)."""
    kinds = V.KINDS
    n = len(kinds)
    index = {k.key: i for i, k in enumerate(kinds)}
    packs = np.zeros((n, max(len(k.packs) for k in kinds)), dtype=np.int64)
    mats = np.full((n, max(max(len(k.materials) for k in kinds), 1)), -1, dtype=np.int64)
    for i, k in enumerate(kinds):
        packs[i, :len(k.packs)] = k.packs
        mats[i, :len(k.materials)] = [_MATERIAL_KEYS.index(m) for m in k.materials]
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in V.RELATED_KINDS:
        ia, ib = index[a], index[b]
        if ib not in neighbours[ia]:
            neighbours[ia].append(ib)
        if ia not in neighbours[ib]:
            neighbours[ib].append(ia)
    weight = np.array([k.weight for k in kinds], dtype=np.float64)
    return _Kinds(
        n=n,
        cat=np.array([V.CATEGORIES.index(k.category) for k in kinds]),
        weight=weight / weight.sum(),
        has_color=np.array([k.has_color for k in kinds]),
        is_book=np.array([k.key == "book" for k in kinds]),
        n_sizes=np.array([len(V.SIZE_TYPES[k.size_type].values) if k.size_type else 0 for k in kinds]),
        packs=packs,
        n_packs=np.array([len(k.packs) for k in kinds]),
        price=np.array([k.price for k in kinds]),
        materials=mats,
        n_materials=np.array([len(k.materials) for k in kinds]),
        adj_ptr=np.concatenate([[0], np.cumsum([len(x) for x in neighbours])]).astype(np.int64),
        adj=np.array([j for x in neighbours for j in x], dtype=np.int64),
    )


# ==================================================================================================
# catalogue: product lines, variants, products, listings
# ==================================================================================================
@dataclass
class _Catalog:
    """Latent catalogue: line arrays (index g), product arrays (index p), per-locale listings."""

    # lines
    home: np.ndarray
    kind: np.ndarray
    nc: np.ndarray
    ns: np.ndarray
    npk: np.ndarray
    colors: np.ndarray          # (G, 5): colour index (or book format) per colour slot
    size_start: np.ndarray
    pack_start: np.ndarray
    pop: np.ndarray
    tier: np.ndarray
    material: np.ndarray
    material_shown: np.ndarray
    model_prefix: list[str]     # "" when the line has no model codes
    model_in_title: np.ndarray
    brand: list[str]
    series: list[str]
    book_title: list[tuple[str, ...]]  # per line: title in each locale ("" for non-books)
    author: list[str]
    desc_phr: np.ndarray        # (G, 3) phrase indices, -1 unused
    desc_join: np.ndarray
    heldout: np.ndarray         # combo of the line's never-listed variant (task 3 targets)
    # products
    prod_line: np.ndarray
    prod_rank: np.ndarray
    prod_combo: np.ndarray
    prod_vw: np.ndarray
    ids: list[str]
    # listings: per locale, global product indices and their popularity there
    listed: list[np.ndarray]
    listed_w: list[np.ndarray]


def _geometric_capped(rng: np.random.Generator, p: float, cap: np.ndarray) -> np.ndarray:
    """Long-tailed counts >= 1, at most ``cap``."""
    return np.minimum(rng.geometric(p, size=len(cap)), cap)


def _draw_lines(rng: np.random.Generator, n: int, kt: _Kinds) -> dict[str, np.ndarray]:
    """Kinds, variant spaces and popularity of ``n`` new lines (one home locale)."""
    kind = rng.choice(kt.n, size=n, p=kt.weight)
    book = kt.is_book[kind]
    colored = kt.has_color[kind]
    nc = np.where(colored, rng.choice([1, 2, 3, 4, 5], size=n, p=[0.3, 0.25, 0.2, 0.15, 0.1]), 1)
    nc = np.where(book, rng.choice([1, 2], size=n, p=[0.6, 0.4]), nc)
    nsv = kt.n_sizes[kind]
    ns = np.where(nsv > 0, np.minimum(rng.choice([1, 2, 3, 4], size=n, p=[0.35, 0.3, 0.2, 0.15]), nsv), 1)
    ns = np.where(book, np.minimum(rng.geometric(0.35, size=n), nsv), ns)
    npk = np.minimum(rng.choice([1, 2, 3], size=n, p=[0.55, 0.3, 0.15]), kt.n_packs[kind])
    # every line needs at least two variants: one or more listed, one held out for task 3
    for _ in range(3):
        small = nc * ns * npk < 2
        more_packs = small & (kt.n_packs[kind] > npk)
        npk = npk + more_packs
        small &= ~more_packs
        more_sizes = small & (nsv > ns)
        ns = ns + more_sizes
        small &= ~more_sizes
        nc = nc + (small & (colored | book))
    space = nc * ns * npk
    if (space < 2).any():
        raise AssertionError("a kind in synth_vocab has no room for two variants")
    size_start = np.where(book, 0, np.floor(rng.random(n) * (np.maximum(nsv, 1) - ns + 1)).astype(np.int64))
    pack_start = np.where(rng.random(n) < 0.8, 0,
                          np.floor(rng.random(n) * (kt.n_packs[kind] - npk + 1)).astype(np.int64))
    # colours: weighted sampling without replacement (Gumbel top-k); books: formats 0/1
    keys = np.log(np.asarray(V.COLOR_WEIGHTS, dtype=np.float64)) - np.log(-np.log(rng.random((n, 16))))
    colors = np.argsort(-keys, axis=1)[:, :5]
    fmt_first = (rng.random(n) < 0.5).astype(np.int64)
    colors[book, 0] = fmt_first[book]
    colors[book, 1] = 1 - fmt_first[book]
    colors[~(colored | book), 0] = -1
    n_listed = _geometric_capped(rng, _VARIANTS_P, space - 1)
    mat_pick = np.floor(rng.random(n) * np.maximum(kt.n_materials[kind], 1)).astype(np.int64)
    material = np.where(kt.n_materials[kind] > 0, kt.materials[kind, np.minimum(mat_pick, kt.materials.shape[1] - 1)],
                        -1)
    return {
        "kind": kind, "nc": nc, "ns": ns, "npk": npk, "space": space, "n_listed": n_listed,
        "size_start": size_start, "pack_start": pack_start, "colors": colors,
        "pop": rng.lognormal(0.0, _LINE_POP_SIGMA, size=n),
        "tier": rng.lognormal(0.0, 0.35, size=n),
        "material": material,
        "material_shown": (material >= 0) & (rng.random(n) < _MATERIAL_SHOWN),
        "has_model": (~book) & (rng.random(n) < _HAS_MODEL),
        "model_in_title": rng.random(n) < _MODEL_IN_TITLE,
        "no_brand": rng.random(n) < _NO_BRAND,
    }


def _lines_for(rng: np.random.Generator, n_products: int, kt: _Kinds) -> dict[str, np.ndarray]:
    """Just enough lines that their listed variants add up to exactly ``n_products``."""
    batches: list[dict[str, np.ndarray]] = []
    total = 0
    while total < n_products:
        b = _draw_lines(rng, max(16, int((n_products - total) / 2.2) + 16), kt)
        batches.append(b)
        total += int(b["n_listed"].sum())
    lines = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    cum = np.cumsum(lines["n_listed"])
    cut = int(np.searchsorted(cum, n_products))  # first line reaching the target
    lines = {k: v[:cut + 1] for k, v in lines.items()}
    lines["n_listed"][-1] -= int(cum[cut]) - n_products
    return lines


def _unique_names(rng: np.random.Generator, n: int, make: Any) -> list[str]:
    """``n`` distinct names from a random name maker (drawn in batches, first occurrence kept)."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        for name in make(rng, max(64, 2 * (n - len(out)))):
            if name not in seen:
                seen.add(name)
                out.append(name)
                if len(out) == n:
                    break
    return out


def _latin_names(rng: np.random.Generator, n: int) -> list[str]:
    """Brand-like names from consonant-vowel syllables ("Vorolux", "Kentra")."""
    cons, vows, ends = V.BRAND_SYLLABLE_CONSONANTS, V.BRAND_SYLLABLE_VOWELS, V.BRAND_ENDINGS
    n_syl = rng.choice([2, 3], size=n, p=[0.6, 0.4]).tolist()
    c = rng.integers(0, len(cons), size=(n, 3)).tolist()
    v = rng.integers(0, len(vows), size=(n, 3)).tolist()
    e = rng.integers(0, len(ends), size=n).tolist()
    return [("".join(cons[c[i][j]] + vows[v[i][j]] for j in range(n_syl[i])) + ends[e[i]]).capitalize()
            for i in range(n)]


def _katakana_names(rng: np.random.Generator, n: int) -> list[str]:
    """Japan-only brand names in katakana ("サンワテック"); the long-vowel mark never starts one."""
    syl = V.KATAKANA_SYLLABLES
    length = rng.integers(3, 6, size=n).tolist()
    idx = rng.integers(0, len(syl), size=(n, 5)).tolist()
    first = rng.integers(0, 30, size=n).tolist()  # the first 30 syllables are plain kana
    return [syl[first[i]] + "".join(syl[j] for j in idx[i][:length[i] - 1]) for i in range(n)]


def _zipf_pick(rng: np.random.Generator, pool_size: int, n: int, offset: float = 3.0) -> np.ndarray:
    """Indices into a pool with Zipf-like weights: a few big brands, a long tail of small ones."""
    w = 1.0 / (np.arange(pool_size) + offset)
    cw = np.cumsum(w)
    return np.minimum(np.searchsorted(cw, rng.random(n) * cw[-1], side="right"), pool_size - 1)


def _series_pool() -> list[str]:
    """All series names: single or compound parts ("PowerLine"), optionally a generation ("III")."""
    parts, sufs = V.SERIES_PARTS, V.SERIES_SUFFIXES
    out = [p + s for p in parts for s in sufs]
    out += [a + b + s for a in parts for b in parts if a != b for s in sufs]
    return out


def _place_pool() -> tuple[list[str], list[str]]:
    """Fantasy place names in Latin script and katakana (same index = same place)."""
    syl = V.PLACE_SYLLABLES
    latin, kana = [], []
    seen: set[str] = set()
    for n in (2, 3):
        for combo in np.ndindex(*(len(syl),) * n):
            k = "".join(syl[i][1] for i in combo)
            if k not in seen:  # two spellings may read the same in katakana; keep titles unique in JP too
                seen.add(k)
                latin.append("".join(syl[i][0] for i in combo).capitalize())
                kana.append(k)
    return latin, kana


def _dedupe(rng: np.random.Generator, key_of: Any, redraw: Any, n: int) -> None:
    """Redraw until ``key_of()`` is unique per line (so each line has its own title prefix)."""
    for _ in range(200):
        keys = key_of()
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            return
        redraw(np.nonzero(dup)[0])
    raise RuntimeError("could not make product lines unique; the name pools are too small for this scale")


def _asin_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct ASIN-like ids: 'B0' + 8 uppercase alphanumerics."""
    space = 36 ** 8
    vals = np.unique(rng.integers(0, space, size=n + n // 10 + 16, dtype=np.int64))
    while len(vals) < n:
        vals = np.unique(np.concatenate([vals, rng.integers(0, space, size=n, dtype=np.int64)]))
    vals = rng.permutation(vals)[:n]
    digits = np.empty((n, 10), dtype=np.uint8)
    digits[:, 0], digits[:, 1] = ord("B"), ord("0")
    for j in range(9, 1, -1):
        digits[:, j] = _ALNUM[vals % 36]
        vals = vals // 36
    return digits.view("S10").ravel().astype("U10").tolist()


def _build_catalog(seed: int, scale: SynthScale, kt: _Kinds) -> _Catalog:
    """Lines for each locale's own products, then DE lines imported into the other locales."""
    rng = _rng(seed, 1)
    own = [scale.products[loc] - round(scale.products[loc] * _IMPORT_FROM_DE[loc]) for loc in range(_N_LOC)]
    order = (_DE, _UK, _JP, _ES, _FR, _IT)
    parts = {loc: _lines_for(_rng(seed, 2, loc), own[loc], kt) for loc in order}
    lines = {k: np.concatenate([parts[loc][k] for loc in order]) for k in parts[_DE]}
    home = np.concatenate([np.full(len(parts[loc]["kind"]), loc, dtype=np.int64) for loc in order])
    G = len(home)
    kind = lines["kind"]
    book = kt.is_book[kind]

    # brands: a Zipf-weighted pool per category, sized to its lines; katakana pools for Japan-only lines
    cat = kt.cat[kind]
    kata = (home == _JP) & ~book & (rng.random(G) < _JP_KATAKANA_BRANDS)
    n_cat = len(V.CATEGORIES)
    latin_sizes = [max(6, math.ceil(int(((cat == c) & ~kata).sum()) / 12)) for c in range(n_cat)]
    kata_sizes = [max(4, math.ceil(int(((cat == c) & kata).sum()) / 12)) for c in range(n_cat)]
    latin = _unique_names(rng, sum(latin_sizes), _latin_names)
    kana = _unique_names(rng, sum(kata_sizes), _katakana_names)
    lo_l, lo_k = 0, 0
    brand_id = np.full(G, -1, dtype=np.int64)
    pools: list[str] = []
    for c in range(n_cat):
        sufs = V.BRAND_SUFFIXES[V.CATEGORIES[c]]
        suf = rng.integers(0, len(sufs), size=latin_sizes[c]).tolist()
        latin_pool = [latin[lo_l + i] + sufs[suf[i]] for i in range(latin_sizes[c])]
        kana_pool = kana[lo_k:lo_k + kata_sizes[c]]
        lo_l += latin_sizes[c]
        lo_k += kata_sizes[c]
        for is_kata, pool in ((False, latin_pool), (True, kana_pool)):
            sel = np.nonzero((cat == c) & (kata == is_kata))[0]
            brand_id[sel] = len(pools) + _zipf_pick(rng, len(pool), len(sel))
            pools.extend(pool)
    no_brand = lines["no_brand"] | (book & (rng.random(G) < 0.6))
    brand_id[no_brand] = -1
    brand = [pools[b] if b >= 0 else "" for b in brand_id.tolist()]

    # series (non-books) unique per (brand, series, kind); book titles unique per (noun, place)
    series_pool = _series_pool()
    S = len(series_pool)
    series_id = rng.integers(0, S, size=G)
    series_id[(rng.random(G) < _NO_SERIES) | book] = -1
    places_latin, places_kana = _place_pool()
    P = len(places_latin)
    noun = rng.integers(0, len(V.BOOK_NOUNS), size=G)
    place = rng.integers(0, P, size=G)
    nb = np.nonzero(~book)[0]
    bk = np.nonzero(book)[0]

    def series_keys() -> np.ndarray:
        return ((brand_id[nb] + 1) * (S + 1) + series_id[nb] + 1) * kt.n + kind[nb]

    def redraw_series(i: np.ndarray) -> None:
        series_id[nb[i]] = rng.integers(0, S, size=len(i))

    def book_keys() -> np.ndarray:
        return noun[bk] * P + place[bk]

    def redraw_books(i: np.ndarray) -> None:
        place[bk[i]] = rng.integers(0, P, size=len(i))

    _dedupe(rng, series_keys, redraw_series, len(nb))
    _dedupe(rng, book_keys, redraw_books, len(bk))
    series = [series_pool[s] if s >= 0 else "" for s in series_id.tolist()]
    book_title: list[tuple[str, ...]] = [()] * G
    for g, nn, pl in zip(bk.tolist(), noun[bk].tolist(), place[bk].tolist()):
        book_title[g] = tuple(V.BOOK_TITLE_FMT[loc].format(
            noun=V.BOOK_NOUNS[nn][loc], place=places_kana[pl] if loc == _JP else places_latin[pl])
            for loc in range(_N_LOC))

    # authors (books), written as in the book's home locale; some books have two
    author = [""] * G
    f1, l1, f2, l2 = (rng.integers(0, 20, size=G).tolist() for _ in range(4))
    two = (rng.random(G) < 0.15).tolist()
    for g in bk.tolist():
        h = int(home[g])
        sep = " "
        a = V.AUTHOR_LAST[h][l1[g]] + sep + V.AUTHOR_FIRST[h][f1[g]] if h == _JP else \
            V.AUTHOR_FIRST[h][f1[g]] + sep + V.AUTHOR_LAST[h][l1[g]]
        if two[g]:
            b = V.AUTHOR_LAST[h][l2[g]] + sep + V.AUTHOR_FIRST[h][f2[g]] if h == _JP else \
                V.AUTHOR_FIRST[h][f2[g]] + sep + V.AUTHOR_LAST[h][l2[g]]
            a = a + "; " + b
        author[g] = a

    # model codes shared by all locales: a line prefix, the variant's number and colour code
    model_prefix = [""] * G
    has_model = lines["has_model"]
    letters = rng.integers(0, 26, size=(G, 5)).tolist()
    digits = rng.integers(0, 10, size=(G, 3)).tolist()
    style = rng.integers(0, 3, size=G).tolist()
    for g in np.nonzero(has_model)[0].tolist():
        L = [chr(65 + x) for x in letters[g]]
        D = [str(x) for x in digits[g]]
        if style[g] == 0:
            model_prefix[g] = L[0] + "".join(D)
        elif style[g] == 1:
            model_prefix[g] = "".join(L[:3]) + "-" + "".join(L[3:5])
        else:
            model_prefix[g] = "".join(L[:2]) + "".join(D[:2])

    # descriptions: 1-3 phrases per line (books: 1-2), joined by ". ", "; " or a newline
    n_phr = np.where(book, rng.integers(1, 3, size=G), rng.integers(1, 4, size=G))
    pool_n = np.where(book, len(V.BOOK_DESC_PHRASES[0]), len(V.DESC_PHRASES[0]))
    phr = np.argsort(rng.random((G, len(V.DESC_PHRASES[0]))), axis=1)[:, :3]
    phr = np.where(phr < pool_n[:, None], phr, phr % pool_n[:, None])
    phr[np.arange(3)[None, :] >= n_phr[:, None]] = -1
    phr[rng.random(G) < _NO_DESC] = -1
    desc_join = rng.choice(3, size=G, p=[0.6, 0.15, 0.25])

    # variants: a random order of each line's combos; the first n_listed are sold, the next is held out
    space = lines["space"]
    n_listed = lines["n_listed"]
    line_of = np.repeat(np.arange(G), space)
    starts = np.concatenate([[0], np.cumsum(space)[:-1]])
    combo = np.arange(int(space.sum())) - np.repeat(starts, space)
    order_c = np.lexsort((rng.random(len(combo)), line_of))
    combo = combo[order_c]  # line_of is unchanged by a sort that keeps lines together
    rank = np.arange(len(combo)) - np.repeat(starts, space)
    heldout = combo[starts + n_listed]
    listed_mask = rank < np.repeat(n_listed, space)
    prod_line = line_of[listed_mask]
    prod_rank = rank[listed_mask]
    prod_combo = combo[listed_mask]
    del line_of, combo, rank, order_c, listed_mask
    n_prod = len(prod_line)
    prod_vw = (1.0 / (prod_rank + 1.0) ** 1.2) * rng.lognormal(0.0, 0.3, size=n_prod)
    ids = _asin_ids(rng, n_prod)

    # listings: own lines everywhere; then DE lines (popular ones more likely) imported elsewhere
    pop = lines["pop"]
    listed: list[np.ndarray] = []
    listed_w: list[np.ndarray] = []
    own_of = home[prod_line]
    de_prods = np.nonzero(own_of == _DE)[0]
    for loc in range(_N_LOC):
        mine = np.nonzero(own_of == loc)[0]
        w = pop[prod_line[mine]] * prod_vw[mine]
        n_imp = scale.products[loc] - len(mine)
        if n_imp > 0:
            r = _rng(seed, 3, loc)
            keep = (r.random(len(de_prods)) < _IMPORT_KEEP) | (prod_rank[de_prods] == 0)
            cand = de_prods[keep]
            de_lines = np.nonzero(home == _DE)[0]
            key = 0.5 * np.log(pop[de_lines]) - np.log(-np.log(r.random(len(de_lines))))
            line_order = de_lines[np.argsort(-key, kind="stable")]
            pos = np.empty(G, dtype=np.int64)
            pos[line_order] = np.arange(len(line_order))
            if len(cand) < n_imp:  # a tiny DE: import every DE product there is
                cand = de_prods
            cand = cand[np.lexsort((prod_rank[cand], pos[prod_line[cand]]))][:n_imp]
            if len(cand) < n_imp:
                logger.warning("synth: %s gets %d DE products, not %d: DE has too few", LOCALES[loc], len(cand),
                               n_imp)
            noise = r.lognormal(0.0, 0.7, size=G)
            mine = np.concatenate([mine, cand])
            w = np.concatenate([w, pop[prod_line[cand]] * noise[prod_line[cand]] * prod_vw[cand]])
        listed.append(mine)
        listed_w.append(w)

    return _Catalog(
        home=home, kind=kind, nc=lines["nc"], ns=lines["ns"], npk=lines["npk"], colors=lines["colors"],
        size_start=lines["size_start"], pack_start=lines["pack_start"], pop=pop, tier=lines["tier"],
        material=lines["material"], material_shown=lines["material_shown"], model_prefix=model_prefix,
        model_in_title=lines["model_in_title"], brand=brand, series=series, book_title=book_title,
        author=author, desc_phr=phr, desc_join=desc_join, heldout=heldout,
        prod_line=prod_line, prod_rank=prod_rank, prod_combo=prod_combo, prod_vw=prod_vw, ids=ids,
        listed=listed, listed_w=listed_w,
    )


# ==================================================================================================
# rendering products in a locale's language
# ==================================================================================================
_KIND_SIZE_TYPE = tuple(k.size_type for k in V.KINDS)
_ELECTRONICS = V.CATEGORIES.index("electronics")
_DESC_JOIN = (". ", "; ", "\n")


def _title(loc: int, brand: str, series: str, kind: str, model: str, size: str, color: str, pack: str) -> str:
    """A product title by its locale's template (the same template for every product of the locale)."""
    def join(*xs: str) -> str:
        return " ".join(x for x in xs if x)

    if loc == _JP:
        return join(brand, series, kind, size, color, pack, model)
    if loc == _UK:
        head, tail = join(brand, series, kind, model), [size, color, pack]
    elif loc in (_DE, _ES):
        head, tail = join(brand, series, kind, model, size), [color, pack]
    elif loc == _FR:
        head = join(kind, brand, series, model, size)
        if color:
            head += " - " + color
        tail = [pack]
    else:  # IT
        head, tail = join(brand, series, model, kind, size), [color, pack]
    tail = [t for t in tail if t]
    return head + ", " + ", ".join(tail) if tail else head


def _book_title(loc: int, title: str, volume: str, fmt: str) -> str:
    """A book's title: series title, volume and binding ("The Secret of Karina, Book 2 (Paperback)")."""
    vol = V.SIZE_TYPES["volume"].title_fmt[loc].format(volume)
    if loc == _JP:
        return f"{title} {vol} ({fmt})"
    return f"{title}, {vol} ({fmt})"


@dataclass
class _VariantText:
    """Everything locale-specific about a batch of (line, combo) variants, as Python lists."""

    title: list[str]
    color: list[str]
    size: list[str]
    model: list[str]
    pack: list[int]
    size_idx: list[int]
    fmt: list[int]


def _render_variants(cat: _Catalog, kt: _Kinds, loc: int, lines: np.ndarray, combos: np.ndarray) -> _VariantText:
    """Titles and attribute values of variants (listed or held out) in locale ``loc``."""
    npk = cat.npk[lines]
    ns = cat.ns[lines]
    ci = combos // (ns * npk)
    si = (combos // npk) % ns
    pi = combos % npk
    kind = cat.kind[lines]
    col = cat.colors[lines, ci]
    size_idx = cat.size_start[lines] + si
    pack = kt.packs[kind, cat.pack_start[lines] + pi]
    titles, colors, sizes, models = [], [], [], []
    pack_fmt = V.PACK_FMT[loc]
    for g, k, c, s, pk, cb in zip(lines.tolist(), kind.tolist(), col.tolist(), size_idx.tolist(), pack.tolist(),
                                  combos.tolist()):
        if kt.is_book[k]:
            fmt = V.BOOK_FORMATS[c][loc]
            titles.append(_book_title(loc, cat.book_title[g][loc], str(s + 1), fmt))
            colors.append("")
            sizes.append("")
            models.append("")
            continue
        st = _KIND_SIZE_TYPE[k]
        if st:
            stype = V.SIZE_TYPES[st]
            size_v = stype.values[s][loc]
            size_t = stype.title_fmt[loc].format(size_v)
        else:
            size_v = size_t = ""
        color_v = V.COLORS[c][loc] if c >= 0 else ""
        prefix = cat.model_prefix[g]
        model = (prefix + f"{cb:02d}" + ("-" + V.COLOR_CODES[c] if c >= 0 else "")) if prefix else ""
        pack_t = pack_fmt.format(pk) if pk > 1 else ""
        titles.append(_title(loc, cat.brand[g], cat.series[g], V.KINDS[k].names[loc],
                             model if cat.model_in_title[g] else "", size_t, color_v, pack_t))
        colors.append(color_v)
        sizes.append(size_v)
        models.append(model)
    return _VariantText(titles, colors, sizes, models, pack.tolist(), size_idx.tolist(), col.tolist())


def _prices(rng: np.random.Generator, cat: _Catalog, kt: _Kinds, loc: int, lines: np.ndarray,
            vt: _VariantText) -> list[float]:
    """Locale-plausible prices: EUR-like .99 prices, GBP for UK, whole yen (about 150x) for JP."""
    kind = cat.kind[lines]
    book = kt.is_book[kind]
    size_f = np.where(book, 1.0, 1.0 + 0.15 * np.asarray(vt.size_idx))
    pack = np.asarray(vt.pack, dtype=np.float64)
    fmt_f = np.where(book & (np.asarray(vt.fmt) == 1), 1.8, 1.0)
    pack_f = (pack / kt.packs[kind, 0]) ** 0.6  # a kind's price is for its usual pack
    p = kt.price[kind] * cat.tier[lines] * size_f * pack_f * fmt_f
    p = p * _LOCALE_PRICE[loc] * rng.lognormal(0.0, 0.05, size=len(lines))
    if loc == _JP:
        p = np.maximum(np.round(p / 10.0) * 10.0, 100.0)
        p = np.where(rng.random(len(p)) < 0.5, p - 20.0, p)
        return np.maximum(p, 80.0).tolist()
    p = np.maximum(p, 1.0)
    cents = np.round(p, 2)
    p = np.where(rng.random(len(p)) < 0.7, np.floor(p) + 0.99, cents)
    return [round(x, 2) for x in p.tolist()]


def _desc(loc: int, phrases: list[int], join: int, kind: str, brand: str, material: str, author: str,
          volume: str, book: bool, electronic: bool) -> str:
    """A description from the line's phrases (skipping ones whose slot is empty or that do not fit)."""
    pool = V.BOOK_DESC_PHRASES[loc] if book else V.DESC_PHRASES[loc]
    out = []
    for i in phrases:
        if i < 0 or (i == V.DESC_DEVICE_PHRASE and not book and not electronic):
            continue
        ph = pool[i]
        if ("{brand}" in ph and not brand) or ("{material}" in ph and not material) or \
                ("{author}" in ph and not author):
            continue
        out.append(ph.format(kind=kind, brand=brand, material=material, author=author, volume=volume))
    return _DESC_JOIN[join].join(out)


def _product_rows(cat: _Catalog, kt: _Kinds, loc: int, gprods: np.ndarray,
                  rng: np.random.Generator) -> tuple[list[list[Any]], list[str]]:
    """``products_train.csv`` rows of the locale, in ``gprods`` order; also their titles."""
    lines = cat.prod_line[gprods]
    vt = _render_variants(cat, kt, loc, lines, cat.prod_combo[gprods])
    prices = _prices(rng, cat, kt, loc, lines, vt)
    n = len(gprods)
    blank_c = (rng.random(n) < _BLANK_COLOR).tolist()
    blank_s = (rng.random(n) < _BLANK_SIZE).tolist()
    blank_m = (rng.random(n) < _BLANK_MODEL).tolist()
    locale = LOCALES[loc]
    rows: list[list[Any]] = []
    mats = [V.MATERIALS[m][loc] for m in _MATERIAL_KEYS]
    for i, (p, g) in enumerate(zip(gprods.tolist(), lines.tolist())):
        k = int(cat.kind[g])
        book = bool(kt.is_book[k])
        material = mats[cat.material[g]] if cat.material_shown[g] else ""
        brand = cat.brand[g]
        desc = _desc(loc, cat.desc_phr[g].tolist(), int(cat.desc_join[g]), V.KINDS[k].names[loc], brand,
                     material, cat.author[g], str(vt.size_idx[i] + 1), book, bool(kt.cat[k] == _ELECTRONICS))
        rows.append([
            cat.ids[p], locale, vt.title[i], prices[i], brand,
            "" if blank_c[i] else vt.color[i], "" if blank_s[i] else vt.size[i],
            "" if blank_m[i] else vt.model[i], material, cat.author[g], desc,
        ])
    return rows, vt.title


# ==================================================================================================
# sessions: a vectorised random walk over a locale's catalogue
# ==================================================================================================
@dataclass
class _Layout:
    """A locale's products sorted by (kind, line, rank) so lines and kinds are contiguous ranges."""

    gprod: np.ndarray
    line: np.ndarray
    kind: np.ndarray
    cw0: np.ndarray
    line_lo: np.ndarray
    line_hi: np.ndarray
    kind_lo: np.ndarray
    kind_hi: np.ndarray
    kind_nlines: np.ndarray
    adj_ptr: np.ndarray
    adj: np.ndarray


def _layout(cat: _Catalog, kt: _Kinds, loc: int) -> _Layout:
    """Index ranges and cumulative popularity for weighted sampling with ``searchsorted``."""
    gp = cat.listed[loc]
    w = cat.listed_w[loc]
    gl = cat.prod_line[gp]
    kind = cat.kind[gl]
    order = np.lexsort((cat.prod_rank[gp], gl, kind))
    gp, w, gl, kind = gp[order], w[order], gl[order], kind[order]
    new_line = np.ones(len(gp), dtype=bool)
    new_line[1:] = gl[1:] != gl[:-1]
    line = np.cumsum(new_line) - 1
    line_lo = np.nonzero(new_line)[0]
    line_hi = np.concatenate([line_lo[1:], [len(gp)]])
    kind_lo = np.searchsorted(kind, np.arange(kt.n), side="left")
    kind_hi = np.searchsorted(kind, np.arange(kt.n), side="right")
    kind_nlines = np.bincount(kind[line_lo], minlength=kt.n)
    present = kind_hi > kind_lo
    nbrs = [[j for j in kt.adj[kt.adj_ptr[k]:kt.adj_ptr[k + 1]].tolist() if present[j]] for k in range(kt.n)]
    adj_ptr = np.concatenate([[0], np.cumsum([len(x) for x in nbrs])]).astype(np.int64)
    adj = np.array([j for x in nbrs for j in x], dtype=np.int64)
    return _Layout(gp, line, kind, np.concatenate([[0.0], np.cumsum(w)]), line_lo, line_hi, kind_lo, kind_hi,
                   kind_nlines, adj_ptr, adj)


def _sample(rng: np.random.Generator, cw0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            ex_lo: np.ndarray, ex_hi: np.ndarray) -> np.ndarray:
    """Popularity-weighted index in [lo, hi) outside [ex_lo, ex_hi), for many ranges at once."""
    ex_w = cw0[ex_hi] - cw0[ex_lo]
    u = cw0[lo] + rng.random(len(lo)) * (cw0[hi] - cw0[lo] - ex_w)
    u = np.where(u >= cw0[ex_lo], u + ex_w, u)
    idx = np.clip(np.searchsorted(cw0, u, side="right") - 1, lo, hi - 1)
    inside = (idx >= ex_lo) & (idx < ex_hi)
    if inside.any():  # float rounding at a boundary
        idx[inside] = np.where(ex_hi[inside] < hi[inside], ex_hi[inside], ex_lo[inside] - 1)
    return idx


def _step(rng: np.random.Generator, lay: _Layout, cur: np.ndarray, probs: np.ndarray,
          history: tuple[np.ndarray, np.ndarray, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """One step of every session in ``cur``: pick an action each, fall back when it is impossible.

    ``history`` = (flat items, session offsets, step t) lets a session repeat one of its first t items.
    Returns the new items and the actions taken.
    """
    n = len(cur)
    act = np.searchsorted(np.cumsum(probs), rng.random(n), side="right").clip(0, len(probs) - 1)
    if history is None:  # float rounding of the cumulative probabilities must not pick a repeat
        act[act == _REPEAT] = _RANDOM
    cl = lay.line[cur]
    ck = lay.kind[cur]
    act[(act == _LINE) & (lay.line_hi[cl] - lay.line_lo[cl] < 2)] = _KIND
    act[(act == _KIND) & (lay.kind_nlines[ck] < 2)] = _RELATED
    act[(act == _RELATED) & (lay.adj_ptr[ck + 1] == lay.adj_ptr[ck])] = _RANDOM
    out = np.empty(n, dtype=np.int64)
    i = np.nonzero(act == _LINE)[0]
    if len(i):
        out[i] = _sample(rng, lay.cw0, lay.line_lo[cl[i]], lay.line_hi[cl[i]], cur[i], cur[i] + 1)
    i = np.nonzero(act == _KIND)[0]
    if len(i):
        k = ck[i]
        out[i] = _sample(rng, lay.cw0, lay.kind_lo[k], lay.kind_hi[k], lay.line_lo[cl[i]], lay.line_hi[cl[i]])
    i = np.nonzero(act == _RELATED)[0]
    if len(i):
        k = ck[i]
        deg = lay.adj_ptr[k + 1] - lay.adj_ptr[k]
        nk = lay.adj[lay.adj_ptr[k] + np.floor(rng.random(len(i)) * deg).astype(np.int64)]
        lo = lay.kind_lo[nk]
        out[i] = _sample(rng, lay.cw0, lo, lay.kind_hi[nk], lo, lo)
    i = np.nonzero(act == _RANDOM)[0]
    if len(i):
        z = np.zeros(len(i), dtype=np.int64)
        out[i] = _sample(rng, lay.cw0, z, np.full(len(i), len(lay.gprod)), z, z)
    i = np.nonzero(act == _REPEAT)[0]
    if len(i):
        assert history is not None
        flat, off, t = history
        out[i] = flat[off[i] + np.floor(rng.random(len(i)) * t).astype(np.int64)]
    return out, act


def _in_prev(flat: np.ndarray, off: np.ndarray, lens: np.ndarray, sel: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Whether each candidate ``cand[j]`` occurs among the prev items of session ``sel[j]``."""
    if not len(sel):
        return np.zeros(0, dtype=bool)
    ln = lens[sel]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(off[sel] - seg, ln) + np.arange(int(ln.sum()))
    eq = flat[pos] == np.repeat(cand, ln)
    return np.add.reduceat(eq, seg) > 0


@dataclass
class _Walks:
    """Sessions sorted by length (longest first): prev items flat, offsets, lengths, next items."""

    flat: np.ndarray
    off: np.ndarray
    lens: np.ndarray
    nxt: np.ndarray


def _walk(rng: np.random.Generator, lay: _Layout, n: int) -> _Walks:
    """``n`` sessions walked step by step over positions, all sessions of the locale at once."""
    lens = np.ceil(rng.lognormal(_LEN_MU, _LEN_SIGMA, size=n)).astype(np.int64).clip(1, _MAX_LEN)
    lens = np.sort(lens)[::-1].copy()  # longest first: the sessions still walking are a prefix
    off = np.concatenate([[0], np.cumsum(lens)[:-1]])
    flat = np.empty(int(lens.sum()), dtype=np.int64)
    P = len(lay.gprod)
    z = np.zeros(n, dtype=np.int64)
    cur = _sample(rng, lay.cw0, z, np.full(n, P), z, z)
    flat[off] = cur
    probs = np.array([_P_LINE, _P_KIND, _P_RELATED, _P_RANDOM, _P_REPEAT])
    active = np.searchsorted(-lens, -np.arange(int(lens.max()) + 1), side="left")  # sessions longer than t
    probs_new = probs.copy()
    probs_new[_REPEAT] = 0.0
    probs_new /= probs_new.sum()
    for t in range(1, int(lens[0])):
        m = int(active[t])
        nxt, act = _step(rng, lay, cur[:m], probs, (flat, off[:m], t))
        # shoppers mostly move on to products they have not looked at yet: repeats come from _REPEAT
        prefix = np.full(m, t)
        again = np.nonzero(act != _REPEAT)[0]
        for _ in range(_NOVELTY_TRIES):
            again = again[_in_prev(flat, off, prefix, again, nxt[again])]
            if not len(again):
                break
            nxt[again] = _step(rng, lay, cur[again], probs_new, None)[0]
        flat[off[:m] + t] = nxt
        cur[:m] = nxt
    # the next item: same dynamics without repeats, never one of the session's prev items
    nxt = _step(rng, lay, cur, probs_new, None)[0]
    sel = np.arange(n)
    bad = sel[_in_prev(flat, off, lens, sel, nxt)]
    for _ in range(30):
        if not len(bad):
            break
        nxt[bad] = _step(rng, lay, cur[bad], probs_new, None)[0]
        bad = bad[_in_prev(flat, off, lens, bad, nxt[bad])]
    for s in bad.tolist():  # long sessions that exhausted their neighbourhood: any unseen product
        seen = set(flat[off[s]:off[s] + lens[s]].tolist())
        while True:
            c = int(_sample(rng, lay.cw0, z[:1], np.full(1, P), z[:1], z[:1])[0])
            if c not in seen:
                nxt[s] = c
                break
    return _Walks(flat, off, lens, nxt)


# ==================================================================================================
# writing
# ==================================================================================================
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


# ==================================================================================================
# stats
# ==================================================================================================
def _repeat_share(flat: np.ndarray, off: np.ndarray, lens: np.ndarray, sel: np.ndarray) -> float:
    """Share of sessions ``sel`` with a product occurring twice among their prev items."""
    if not len(sel):
        return 0.0
    ln = lens[sel]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(off[sel] - seg, ln) + np.arange(int(ln.sum()))
    sess = np.repeat(np.arange(len(sel)), ln)
    key = np.sort(sess.astype(np.int64) * (int(flat.max()) + 1) + flat[pos])
    dup = key[1:] == key[:-1]
    return len(np.unique(key[1:][dup] // (int(flat.max()) + 1))) / len(sel)


# ==================================================================================================
# public API
# ==================================================================================================
def generate(out_dir: str | Path, scale: str = "small", seed: int = 0) -> dict:
    """Write a complete synthetic Amazon-M2 data folder; return (and log) its summary statistics.

    Same ``scale`` and ``seed`` give byte-identical files. Progress bars are shown for ``medium``
    and ``full`` (the latter is the real data's size: a few minutes on 2 cores).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    sc = SCALES[scale]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    kt = _kinds()
    cat = _build_catalog(seed, sc, kt)
    logger.info("synth %s: catalogue of %d lines, %d products built in %.1fs", scale, len(cat.home),
                len(cat.prod_line), time.perf_counter() - t0)
    de_set = np.zeros(len(cat.prod_line), dtype=bool)
    de_set[cat.listed[_DE]] = True
    n_rows = sum(sc.products) + sum(sc.train_sessions[i] + sc.n_test(i) + sc.n_task3(i) for i in range(_N_LOC))
    bar = tqdm(total=n_rows, unit="row", desc=f"synth {scale}", disable=scale not in ("medium", "full"),
               mininterval=2.0)
    stats: dict[str, Any] = {"scale": scale, "seed": seed, "out_dir": str(out), "locales": {}}
    writer = _Out(out)
    try:
        for loc, locale in enumerate(LOCALES):
            stats["locales"][locale] = _generate_locale(seed, sc, kt, cat, loc, writer, bar, de_set)
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


def _generate_locale(seed: int, sc: SynthScale, kt: _Kinds, cat: _Catalog, loc: int, writer: _Out, bar: Any,
                     de_set: np.ndarray) -> dict[str, Any]:
    """Products, sessions and ground truth of one locale, appended to the open files."""
    locale = LOCALES[loc]
    rng_r = _rng(seed, 10, loc)
    lay = _layout(cat, kt, loc)
    # products, shuffled within the locale
    row_order = rng_r.permutation(len(lay.gprod))
    rows, titles = _product_rows(cat, kt, loc, lay.gprod[row_order], rng_r)
    _write_rows(writer.w["products_train"], rows, bar)
    title_set = set(titles)
    del rows, titles

    n_train, n_test, n3 = sc.train_sessions[loc], sc.n_test(loc), sc.n_task3(loc)
    rng_w = _rng(seed, 20, loc)
    wk = _walk(rng_w, lay, n_train + n_test + n3)
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

    # task 3: the next item is a never-sold variant of a line seen in the session
    last = rng_w.random(n3) < _TASK3_LAST
    pos = np.where(last, wk.lens[task3] - 1, np.floor(rng_w.random(n3) * wk.lens[task3]).astype(np.int64))
    lines3 = cat.prod_line[lay.gprod[wk.flat[wk.off[task3] + pos]]]
    vt = _render_variants(cat, kt, loc, lines3, cat.heldout[lines3])
    keep = [i for i, t in enumerate(vt.title) if t not in title_set]
    if len(keep) < n3:
        logger.warning("synth %s: %d task 3 titles collided with sold products and were dropped", locale,
                       n3 - len(keep))
    t3 = task3.tolist()
    writer.w["sessions_test_task3"].writerows([(prev(t3[i]), locale) for i in keep])
    writer.w["gt_task3"].writerows([(vt.title[i], locale) for i in keep])
    bar.update(n3)

    # stats
    counts = _train_counts(wk, train, len(lay.gprod))
    return {
        "products": int(len(lay.gprod)),
        "share_with_de": float(de_set[lay.gprod].mean()),
        "lines": int(len(lay.line_lo)),
        "train_sessions": int(n_train),
        "test_sessions": int(n_test),
        "task3_sessions": int(len(keep)),
        "mean_prev_len": float(wk.lens[train].mean()),
        "repeat_rate": float(_repeat_share(wk.flat, wk.off, wk.lens, train)),
        "rare_share": float((counts < 3).mean()),
        "unseen_share": float((counts == 0).mean()),
    }


def _train_counts(wk: _Walks, train: np.ndarray, n_products: int) -> np.ndarray:
    """How often each product of the locale occurs in training sessions (prev and next items)."""
    ln = wk.lens[train]
    seg = np.concatenate([[0], np.cumsum(ln)[:-1]])
    pos = np.repeat(wk.off[train] - seg, ln) + np.arange(int(ln.sum()))
    return np.bincount(np.concatenate([wk.flat[pos], wk.nxt[train]]), minlength=n_products)
