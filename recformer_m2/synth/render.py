"""Rendering catalogue products as text in a locale's language: titles, attributes, prices, descriptions.

``classic`` writes every title of a locale by one template. The other families give each brand (or
seller) its own template, attribute order and separators, and add marketing words, short forms,
left-out attributes, phrases that differ between variants and occasional typos, as real listings do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constants import LOCALES
from . import lexicon as X
from . import vocab as V
from .catalogue import _MATERIAL_KEYS, Catalog, Kinds
from .config import SynthStyle

_UK, _DE, _JP, _ES, _FR, _IT = range(6)
_LOCALE_PRICE = (0.87, 1.0, 155.0, 0.98, 1.02, 1.0)
"""Price factor from EUR: GBP for UK, yen for JP."""
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
class VariantText:
    """Everything locale-specific about a batch of (line, combo) variants, as Python lists."""

    title: list[str]
    color: list[str]
    size: list[str]
    model: list[str]
    pack: list[int]
    size_idx: list[int]
    fmt: list[int]


def render_variants(cat: Catalog, kt: Kinds, loc: int, lines: np.ndarray, combos: np.ndarray, st: SynthStyle,
                    typo_rng: np.random.Generator) -> VariantText:
    """Titles and attribute values of variants (listed or held out) in locale ``loc``, in style ``st``."""
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
    classic = st.title_family == "classic"
    family = TITLE_FAMILIES[st.title_family]
    for g, k, c, s, pk, cb in zip(lines.tolist(), kind.tolist(), col.tolist(), size_idx.tolist(), pack.tolist(),
                                  combos.tolist()):
        if kt.is_book[k]:
            fmt = V.BOOK_FORMATS[c][loc]
            titles.append(_book_title(loc, cat.book_title[g][loc], str(s + 1), fmt))
            colors.append("")
            sizes.append("")
            models.append("")
            continue
        size_key = _KIND_SIZE_TYPE[k]
        if size_key:
            stype = V.SIZE_TYPES[size_key]
            size_v = stype.values[s][loc]
            size_t = stype.title_fmt[loc].format(size_v)
        else:
            size_v = size_t = ""
        color_v = V.COLORS[c][loc] if c >= 0 else ""
        prefix = cat.model_prefix[g]
        model = (prefix + f"{cb:02d}" + ("-" + V.COLOR_CODES[c] if c >= 0 else "")) if prefix else ""
        pack_t = pack_fmt.format(pk) if pk > 1 else ""
        if classic:
            titles.append(_title(loc, cat.brand[g], cat.series[g], V.KINDS[k].names[loc],
                                 model if cat.model_in_title[g] else "", size_t, color_v, pack_t))
        else:
            titles.append(_styled_title(family[loc], cat, g, cb, loc, V.KINDS[k].names[loc],
                                        model if cat.model_in_title[g] else "", size_t, color_v, pk, st))
        colors.append(color_v)
        sizes.append(size_v)
        models.append(model)
    if st.typo > 0:
        hit = np.nonzero(typo_rng.random(len(titles)) < st.typo)[0]
        for i, u in zip(hit.tolist(), typo_rng.random((len(hit), 3)).tolist()):
            titles[i] = _typo(titles[i], u)
    return VariantText(titles, colors, sizes, models, pack.tolist(), size_idx.tolist(), col.tolist())


def _prices(rng: np.random.Generator, cat: Catalog, kt: Kinds, loc: int, lines: np.ndarray,
            vt: VariantText) -> list[float]:
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


def product_rows(cat: Catalog, kt: Kinds, loc: int, gprods: np.ndarray, rng: np.random.Generator,
                 st: SynthStyle, typo_rng: np.random.Generator) -> tuple[list[list[Any]], list[str]]:
    """``products_train.csv`` rows of the locale, in ``gprods`` order; also their titles."""
    lines = cat.prod_line[gprods]
    vt = render_variants(cat, kt, loc, lines, cat.prod_combo[gprods], st, typo_rng)
    prices = _prices(rng, cat, kt, loc, lines, vt)
    n = len(gprods)
    blank_c = (rng.random(n) < st.blank_color).tolist()
    blank_s = (rng.random(n) < st.blank_size).tolist()
    blank_m = (rng.random(n) < st.blank_model).tolist()
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



# --------------------------------------------------------------------------------------------------
# styled title families: templates per brand or seller
# --------------------------------------------------------------------------------------------------
_SEPS = {",": ", ", "-": " - ", "|": " | ", "/": " / "}
_SLOTS = "BSKMZCPXF"


def _parse(template: str) -> tuple[tuple[str, str], ...]:
    """'B S K ,Z -C' -> ((' ', 'B'), (' ', 'S'), (' ', 'K'), (', ', 'Z'), (' - ', 'C')): separator, slot."""
    out = []
    for tok in template.split():
        sep, slot = (_SEPS[tok[0]], tok[1]) if tok[0] in _SEPS else (" ", tok[0])
        if slot not in _SLOTS:
            raise ValueError(f"unknown title slot {slot!r} in template {template!r}")
        out.append((sep, slot))
    return tuple(out)


_SELLER_TEMPLATES = (
    "X B S K M ,Z ,C ,P ,F", "B S K M Z ,C ,P -F X", "B K S ,F ,Z ,C ,P", "K B S M Z -C ,P ,F",
    "B S M K ,C ,Z ,P ,F", "X K B S ,Z ,C ,P ,F", "B -S -K -Z -C ,P F", "B S K ,F ,C ,Z ,P",
    "B K ,Z ,C ,P ,F X", "K -B S ,C ,Z ,P ,F", "B S K F Z C P", "S K B M ,Z ,C ,P ,F",
)
_KEYWORD_TEMPLATES = (
    "B K S F |Z |C |P |X", "K B X F |C |Z |P", "B S K M |F |Z C |P", "X B K |S |F |C |Z |P",
    "K |B S |F |Z |C |P", "B K F Z C P S X", "B /K /S F ,Z ,C ,P X", "X X K B F Z C P",
)
TITLE_FAMILIES: dict[str, tuple[tuple[tuple[tuple[str, str], ...], ...], ...]] = {
    "classic": (),
    "seller": tuple(tuple(_parse(t) for t in _SELLER_TEMPLATES) for _ in LOCALES),
    "keyword": tuple(tuple(_parse(t) for t in _KEYWORD_TEMPLATES) for _ in LOCALES),
}
"""Template families per locale (the same templates in every locale; separators adapt in JP)."""


_PHRASES_OF_CATEGORY: dict[str, tuple[int, ...]] = {
    c: tuple(i for i, ph in enumerate(X.VARIANT_PHRASES)
             if X.PHRASE_CATEGORIES[ph[0]] == "*" or c in X.PHRASE_CATEGORIES[ph[0]].split())
    for c in V.CATEGORIES
}
"""Variant phrases that fit each category (no "fast charging" bed sheets)."""


def _styled_title(templates: tuple[tuple[tuple[str, str], ...], ...], cat: Catalog, g: int, combo: int, loc: int,
                  kind: str, model: str, size: str, color: str, pack: int, st: SynthStyle) -> str:
    """One title by the line's template, with its marketing words, omissions, short forms and phrases."""
    tx = cat.text
    drop = tx.drop[g]
    short = bool(tx.abbreviate[g])
    if short and size:
        size = size.replace(" ", "")
    pack_t = "" if pack <= 1 or drop[3] else (X.PACK_SHORT[loc] if short else V.PACK_FMT[loc]).format(pack)
    words = [X.MARKETING[m % len(X.MARKETING)][loc] for m in tx.marketing[g].tolist() if m >= 0]
    h = ((g * 1000003 + combo * 7919 + 12345) % 9973) / 9973.0
    fits = _PHRASES_OF_CATEGORY[V.KINDS[int(cat.kind[g])].category]
    phrase = X.VARIANT_PHRASES[fits[(int(tx.feature[g]) + 7 * combo) % len(fits)]][loc] \
        if h < st.variant_text and fits else ""
    parts = {
        "B": "" if drop[4] else cat.brand[g], "S": "" if drop[0] else cat.series[g], "K": kind, "M": model,
        "Z": "" if drop[1] else size, "C": "" if drop[2] else color, "P": pack_t, "X": " ".join(words[:1]),
        "F": phrase,
    }
    out = ""
    used_x = 0
    for sep, slot in templates[int(tx.template[g]) % len(templates)]:
        v = parts[slot]
        if slot == "X":  # a template may place two marketing words
            v = words[used_x] if used_x < len(words) else ""
            used_x += 1
        if not v:
            continue
        if loc == _JP and sep == ", ":
            sep = " "
        out = out + sep + v if out else v
    if tx.suffix[g] >= 0:
        out += " " + X.SELLER_NOTES[int(tx.suffix[g]) % len(X.SELLER_NOTES)][loc]
    return out


def _typo(title: str, u: list[float]) -> str:
    """One typo in a word of four or more letters: two adjacent letters swapped, or one dropped."""
    words = title.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cand:
        return title
    i = cand[int(u[0] * len(cand))]
    w = words[i]
    j = 1 + int(u[1] * (len(w) - 2))  # never the first letter
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if u[2] < 0.6 else w[:j] + w[j + 1:]
    return " ".join(words)
