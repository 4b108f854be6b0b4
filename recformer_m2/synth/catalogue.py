"""The latent catalogue: product lines (brand + series + kind) sold in variants, and per-locale listings.

A line is drawn once and sold in several locales under the same product ids (imports from DE), so text
in one language can teach about another. Everything here is arrays over lines and products; rendering
them as text in a locale's language is :mod:`.render`'s job.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..constants import LOCALES
from . import vocab as V
from .config import SynthScale, SynthStyle

logger = logging.getLogger(__name__)

_UK, _DE, _JP, _ES, _FR, _IT = range(6)
_N_LOC = len(LOCALES)
_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """Independent stream per (stage, locale) so stages can change without reshuffling the others."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))

# ==================================================================================================
# kinds
# ==================================================================================================
@dataclass(frozen=True)
class Kinds:
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


def kinds() -> Kinds:
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
    return Kinds(
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
class LineText:
    """How each line's titles are written (styles other than classic): template, words, omissions.

    Drawn from a stream of their own, so a style that does not use them draws the same catalogue.
    """

    template: np.ndarray        # (G,) template number (taken modulo the family's size at render time)
    marketing: np.ndarray       # (G, 2) marketing word indices, -1 none
    abbreviate: np.ndarray      # (G,) short forms
    drop: np.ndarray            # (G, 5) leave out series, size, colour, pack, brand
    suffix: np.ndarray          # (G,) seller note index, -1 none
    feature: np.ndarray         # (G,) offset into the variant phrases


def _line_text(rng: np.random.Generator, brand_id: np.ndarray, st: SynthStyle) -> LineText:
    """Per-line writing habits; a brand mostly writes all its lines by one template (a seller's own else)."""
    G = len(brand_id)
    brand_tpl = rng.integers(0, 1 << 30, size=int(brand_id.max()) + 2)
    own_tpl = rng.integers(0, 1 << 30, size=G)
    template = np.where(rng.random(G) < st.brand_template, brand_tpl[brand_id + 1], own_tpl)
    marketing = rng.integers(0, 1 << 30, size=(G, 2))
    n_words = np.where(rng.random(G) < st.marketing, rng.choice([1, 2], size=G, p=[0.7, 0.3]), 0)
    marketing[np.arange(2)[None, :] >= n_words[:, None]] = -1
    suffix = np.where(rng.random(G) < st.seller_suffix, rng.integers(0, 1 << 30, size=G), -1)
    return LineText(template=template, marketing=marketing, abbreviate=rng.random(G) < st.abbreviate,
                    drop=rng.random((G, 5)) < st.drop_attr, suffix=suffix,
                    feature=rng.integers(0, 1 << 30, size=G))


@dataclass
class Catalog:
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
    text: LineText


def _geometric_capped(rng: np.random.Generator, p: float, cap: np.ndarray) -> np.ndarray:
    """Long-tailed counts >= 1, at most ``cap``."""
    return np.minimum(rng.geometric(p, size=len(cap)), cap)


def _draw_lines(rng: np.random.Generator, n: int, kt: Kinds, st: SynthStyle) -> dict[str, np.ndarray]:
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
    n_listed = _geometric_capped(rng, st.variants_p, space - 1)
    mat_pick = np.floor(rng.random(n) * np.maximum(kt.n_materials[kind], 1)).astype(np.int64)
    material = np.where(kt.n_materials[kind] > 0, kt.materials[kind, np.minimum(mat_pick, kt.materials.shape[1] - 1)],
                        -1)
    return {
        "kind": kind, "nc": nc, "ns": ns, "npk": npk, "space": space, "n_listed": n_listed,
        "size_start": size_start, "pack_start": pack_start, "colors": colors,
        "pop": rng.lognormal(0.0, st.line_pop_sigma, size=n),
        "tier": rng.lognormal(0.0, 0.35, size=n),
        "material": material,
        "material_shown": (material >= 0) & (rng.random(n) < st.material_shown),
        "has_model": (~book) & (rng.random(n) < st.has_model),
        "model_in_title": rng.random(n) < st.model_in_title,
        "no_brand": rng.random(n) < st.no_brand,
    }


def _lines_for(rng: np.random.Generator, n_products: int, kt: Kinds, st: SynthStyle) -> dict[str, np.ndarray]:
    """Just enough lines that their listed variants add up to exactly ``n_products``."""
    batches: list[dict[str, np.ndarray]] = []
    total = 0
    while total < n_products:
        b = _draw_lines(rng, max(16, int((n_products - total) / 2.2) + 16), kt, st)
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


def locale_products(sc: SynthScale, st: SynthStyle, full: SynthScale) -> tuple[int, ...]:
    """Product rows per locale: the scale's, or (Heaps' law) the full catalogue shrunk sublinearly."""
    if st.catalogue_exponent is None:
        return sc.products
    return tuple(max(24, round(full.products[loc] * (sc.train_sessions[loc] / full.train_sessions[loc])
                               ** st.catalogue_exponent)) for loc in range(_N_LOC))


def build_catalog(seed: int, products: Sequence[int], kt: Kinds, st: SynthStyle) -> Catalog:
    """Lines for each locale's own products, then DE lines imported into the other locales."""
    rng = rng_for(seed, 1)
    own = [products[loc] - round(products[loc] * st.import_from_de[loc]) for loc in range(_N_LOC)]
    order = (_DE, _UK, _JP, _ES, _FR, _IT)
    parts = {loc: _lines_for(rng_for(seed, 2, loc), own[loc], kt, st) for loc in order}
    lines = {k: np.concatenate([parts[loc][k] for loc in order]) for k in parts[_DE]}
    home = np.concatenate([np.full(len(parts[loc]["kind"]), loc, dtype=np.int64) for loc in order])
    G = len(home)
    kind = lines["kind"]
    book = kt.is_book[kind]

    # brands: a Zipf-weighted pool per category, sized to its lines; katakana pools for Japan-only lines
    cat = kt.cat[kind]
    kata = (home == _JP) & ~book & (rng.random(G) < st.jp_katakana_brands)
    n_cat = len(V.CATEGORIES)
    latin_sizes = [max(6, math.ceil(int(((cat == c) & ~kata).sum()) / st.lines_per_brand)) for c in range(n_cat)]
    kata_sizes = [max(4, math.ceil(int(((cat == c) & kata).sum()) / st.lines_per_brand)) for c in range(n_cat)]
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
    series_id[(rng.random(G) < st.no_series) | book] = -1
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
    phr[rng.random(G) < st.no_desc] = -1
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
        n_imp = products[loc] - len(mine)
        if n_imp > 0:
            r = rng_for(seed, 3, loc)
            keep = (r.random(len(de_prods)) < st.import_keep) | (prod_rank[de_prods] == 0)
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

    return Catalog(
        home=home, kind=kind, nc=lines["nc"], ns=lines["ns"], npk=lines["npk"], colors=lines["colors"],
        size_start=lines["size_start"], pack_start=lines["pack_start"], pop=pop, tier=lines["tier"],
        material=lines["material"], material_shown=lines["material_shown"], model_prefix=model_prefix,
        model_in_title=lines["model_in_title"], brand=brand, series=series, book_title=book_title,
        author=author, desc_phr=phr, desc_join=desc_join, heldout=heldout,
        prod_line=prod_line, prod_rank=prod_rank, prod_combo=prod_combo, prod_vw=prod_vw, ids=ids,
        listed=listed, listed_w=listed_w, text=_line_text(rng_for(seed, 4), brand_id, st),
    )

