"""Grid completion for task 3: the next title is an unlisted variant of the last product's line.

A product line is sold as a grid of variants (colour x size, pack counts, volumes) and the catalog lists
only some cells; a task-3 target is a product the catalog lacks, so it is often a cell missing from the
grid of a line the session viewed. ``GridTitle`` parses every catalog title into a *residue* (the line)
and *variant chunks* (slots), fills the holes of the last product's grid and writes the best one from
the nearest listed sibling, falling back to the last title (``last_titles``) when the line has none.

Variant chunks are found in the data, with no per-language rule:

1. the values of the structured columns ``color``, ``size`` and ``model`` of the locale's products,
   wherever they occur in a title (a product whose own value is missing is still covered);
2. word spans in which near-identical titles of the same maker (brand, else author) differ, found by
   aligning titles through deletion buckets (two titles share a bucket when deleting one span of at
   most ``max_span`` words from each leaves the same words). A span that differs in lines of at least
   ``min_makers`` makers is a variant (``, Pack of 3``, ``2er Pack``, ``(Paperback)``, volume numbers),
   while a series name differs within one maker only; a span standing where an aligned sibling has a
   located attribute takes that attribute's kind (a model code whose ``model`` field is empty).

Siblings share the maker and the residue (the title's words outside chunks, punctuation ignored).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from ..constants import LOCALES
from ..data import Catalog, Sessions
from .edits import join_words, split_words

logger = logging.getLogger(__name__)

ATTRIBUTE_KINDS: tuple[str, ...] = ("color", "size", "model")
"""Catalog columns whose values mark variant chunks in titles."""

MODEL = "model"
"""Kind of a chunk that names the product (a model code): copied, never combined into the grid."""

SPAN = "span"
"""Kind of a chunk learned by aligning sibling titles (pack counts, volumes, formats)."""

_PLACEHOLDER = "\x00"
"""Prefix of the token that stands for a located attribute in aligned titles (never in real text)."""

_CLASS = "\x01"
"""Prefix of the symbol that stands for a class of words replacing each other in aligned titles."""

Slot = tuple[int, str, int]
"""(residue words before the chunk, chunk kind, ordinal among chunks of that kind there)."""


def _is_word(token: str) -> bool:
    return any(ch.isalnum() for ch in token)


def _words(text: str) -> tuple[str, ...]:
    return tuple(split_words(" ".join(text.split()))) if isinstance(text, str) else ()


def _maker(brand: str, author: str) -> str:
    """Who makes a line: its brand, else its author (books), else ``""`` (matches any maker)."""
    return " ".join(_words(brand)) or " ".join(_words(author))


def mark_chunks(words: tuple[str, ...], spans: dict[tuple[str, ...], str], max_len: int) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the variant chunks of ``words``: left to right, longest known span first."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        for length in range(min(max_len, len(words) - i), 0, -1):
            kind = spans.get(words[i:i + length])
            if kind is not None:
                out.append((i, i + length, kind))
                i += length
                break
        else:
            i += 1
    return out


@dataclass(frozen=True)
class ParsedTitle:
    """A title split into its line (``residue``) and the word spans of its variant slots."""

    title: str
    words: tuple[str, ...]
    residue: tuple[str, ...]
    slots: dict[Slot, tuple[int, int]]
    maker: str

    def value(self, slot: Slot) -> tuple[str, ...]:
        """The words of a slot; ``()`` when the title lacks it."""
        span = self.slots.get(slot)
        return self.words[span[0]:span[1]] if span else ()


def parse_title(title: str, maker: str, spans: dict[tuple[str, ...], str], max_len: int,
                classes: dict[str, str] | None = None) -> ParsedTitle:
    """``title`` split at the chunks of ``spans`` (keys written with the symbols of ``classes``)."""
    words = _words(title)
    symbols = tuple(classes.get(w, w) for w in words) if classes else words
    residue: list[str] = []
    slots: dict[Slot, tuple[int, int]] = {}
    seen: Counter = Counter()
    pos = 0
    for start, end, kind in mark_chunks(symbols, spans, max_len):
        residue += [w for w in words[pos:start] if _is_word(w)]
        gap = len(residue)
        slots[gap, kind, seen[gap, kind]] = (start, end)
        seen[gap, kind] += 1
        pos = end
    residue += [w for w in words[pos:] if _is_word(w)]
    return ParsedTitle(join_words(list(words)), words, tuple(residue), slots, maker)


def attribute_spans(table, kinds: tuple[str, ...] = ATTRIBUTE_KINDS, max_words: int = 6,
                    min_suffix_count: int = 5, max_suffix_chars: int = 2) -> dict[tuple[str, ...], str]:
    """Word spans of the attribute values in ``table`` (one locale), each with its most frequent column.

    A value is also looked for with a suffix glued to its last word (``iPhone 14用``) when titles write
    their own value so at least ``min_suffix_count`` times: the suffixes are read off the data.
    """
    counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    suffixes: Counter = Counter()
    for kind in kinds:
        for title, value in zip(table["title"].tolist(), table[kind].tolist()):
            words = _words(value)
            if not 0 < len(words) <= max_words or not any(_is_word(w) for w in words):
                continue
            counts[words][kind] += 1
            suffix = _glued_suffix(_words(title), words, max_suffix_chars)
            if suffix:
                suffixes[suffix] += 1
    glued = [x for x, n in suffixes.items() if n >= min_suffix_count]
    spans = {span: max(c, key=lambda k: (c[k], k == MODEL, k)) for span, c in counts.items()}
    for span, kind in list(spans.items()):
        for suffix in glued:
            spans.setdefault(span[:-1] + (span[-1] + suffix,), kind)
    return spans


def _glued_suffix(title: tuple[str, ...], value: tuple[str, ...], max_chars: int) -> str:
    """The characters glued after ``value`` where ``title`` holds it so (``""``: found alone, or not found)."""
    k = len(value)
    found = ""
    for i in range(len(title) - k + 1):
        if title[i:i + k - 1] != value[:-1]:
            continue
        last = title[i + k - 1]
        if last == value[-1]:
            return ""
        if not found and last.startswith(value[-1]) and len(last) - len(value[-1]) <= max_chars:
            found = last[len(value[-1]):]
    return found


def aligned_spans(skeletons: list[tuple[str, ...]], makers: list[str], max_span: int, min_makers: int,
                  min_context: int = 2, max_bucket: int = 12) -> tuple[dict[tuple[str, ...], str], dict[tuple[str, ...], str], dict[str, str]]:
    """Spans in which titles of one maker that are equal elsewhere differ: (variant spans, typed spans,
    word classes).

    ``skeletons`` are titles with located attributes replaced by placeholder tokens. Every title files
    itself under (maker, words before, words after) for each span of at most ``max_span`` words it could
    drop (the empty span included, so an insertion meets its title without it); a bucket holding several
    titles aligns them. Single words that replace each other there form a class (``3er``, ``10er``), so
    that ``, 3er Pack`` learned as an insertion also marks ``, 10er Pack``; variant spans are written
    with class symbols and must differ in lines of ``min_makers`` makers or more. A raw span aligned with
    one placeholder takes that placeholder's kind.
    """
    buckets: dict[tuple, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
    for t, (skel, maker) in enumerate(zip(skeletons, makers)):
        n = len(skel)
        is_word = [_is_word(w) and w[0] != _PLACEHOLDER for w in skel]
        before = np.concatenate([[0], np.cumsum(is_word)]).tolist()  # word tokens in skel[:i]
        for i in range(n + 1):
            for j in range(i, min(n, i + max_span) + 1):
                if before[i] + before[n] - before[j] < min_context:
                    continue
                buckets[maker, skel[:i], skel[j:]].append((t, skel[i:j]))
    pair_makers: dict[tuple[tuple[str, ...], tuple[str, ...]], set[str]] = defaultdict(set)
    typed: dict[tuple[str, ...], Counter] = defaultdict(Counter)
    for (maker, _, _), members in buckets.items():
        if len(members) < 2:
            continue
        spans = {span for _, span in members}
        if not 2 <= len(spans) <= max_bucket or len({t for t, _ in members}) < 2:
            continue
        if all(spans) and (len({s[0] for s in spans}) == 1 or len({s[-1] for s in spans}) == 1):
            continue  # not a minimal alignment: a shorter span in another bucket holds the difference
        raw = sorted(s for s in spans if not any(w[0] == _PLACEHOLDER for w in s)
                     and (not s or any(_is_word(w) for w in s)))
        for pair in itertools.combinations(raw, 2):
            pair_makers[pair].add(maker)
        kinds = [s[0][1:] for s in spans if len(s) == 1 and s[0][0] == _PLACEHOLDER]
        if len(kinds) == 1:
            for span in raw:
                if span:
                    typed[span][kinds[0]] += 1
    # a variant is a span that swaps with the same other span (or with nothing) in lines of several makers
    pairs = [pair for pair, m in pair_makers.items() if len(m) >= min_makers]
    parent: dict[str, str] = {}

    def root(word: str) -> str:
        while parent.get(word, word) != word:
            word = parent[word]
        return word

    for a, b in pairs:
        if len(a) == len(b) == 1:
            ra, rb = root(a[0]), root(b[0])
            parent.setdefault(ra, ra)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    classes = {w: _CLASS + root(w) for w in parent}
    variant_makers: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for pair in pairs:
        for span in pair:
            if span:
                variant_makers[tuple(classes.get(w, w) for w in span)] |= pair_makers[pair]
    variants = {s: SPAN for s, m in variant_makers.items() if len(m) >= min_makers}
    variants = {s: k for s, k in variants.items() if not _composite(s, variants)}
    return variants, {s: c.most_common(1)[0][0] for s, c in typed.items()}, classes


def _composite(span: tuple[str, ...], known: dict[tuple[str, ...], str]) -> bool:
    """Whether ``span`` splits into two or more known spans and punctuation (two variants side by side,
    which must stay two slots)."""
    n = len(span)
    reach = [0] * (n + 1)  # reach[i]: most pieces covering span[:i] (-1: cannot be covered)
    for i in range(1, n + 1):
        best = -1
        for j in range(i):
            piece = span[j:i]
            if reach[j] >= 0 and (piece in known and piece != span or (i - j == 1 and not _is_word(piece[0]))):
                best = max(best, reach[j] + (piece in known))
        reach[i] = best
    return reach[n] >= 2


class LineIndex:
    """One locale's catalog titles parsed and grouped by line: residue -> sibling titles."""

    def __init__(self, titles: list[str], makers: list[str], attributes: dict[tuple[str, ...], str],
                 max_span: int, min_makers: int, min_context: int, learn: bool, typed: bool):
        self.spans = dict(attributes)
        self.classes: dict[str, str] = {}
        if learn:
            skeletons = []
            for title in titles:
                words = list(_words(title))
                for start, end, kind in reversed(mark_chunks(tuple(words), attributes, self._max_len(attributes))):
                    words[start:end] = [_PLACEHOLDER + kind]
                skeletons.append(tuple(words))
            variants, typed_spans, self.classes = aligned_spans(skeletons, makers, max_span, min_makers, min_context)
            self.spans = {}
            for span, kind in attributes.items():
                self.spans.setdefault(self._symbols(span), kind)
            for span, kind in variants.items():
                self.spans.setdefault(span, kind)
            if typed:
                for span, kind in typed_spans.items():
                    self.spans.setdefault(self._symbols(span), kind)
            logger.debug("grid: %d attribute spans, %d variant spans, %d typed spans, %d classed words",
                         len(attributes), len(variants), len(typed_spans), len(self.classes))
        self.max_len = self._max_len(self.spans)
        self.lines: dict[tuple[str, ...], list[ParsedTitle]] = defaultdict(list)
        self.maker_of: dict[str, str] = {}
        for title, maker in zip(titles, makers):
            parsed = self.parse(title, maker)
            if parsed.title in self.maker_of:
                continue  # one title sold under several ids counts once
            self.maker_of[parsed.title] = maker
            self.lines[parsed.residue].append(parsed)

    @staticmethod
    def _max_len(spans: dict) -> int:
        return max((len(s) for s in spans), default=1)

    def _symbols(self, words: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.classes.get(w, w) for w in words)

    def parse(self, title: str, maker: str) -> ParsedTitle:
        return parse_title(title, maker, self.spans, self.max_len, self.classes)

    def siblings(self, parsed: ParsedTitle) -> list[ParsedTitle]:
        """Listed titles of the line, ``parsed`` included; an empty maker matches any."""
        listed = [p for p in self.lines.get(parsed.residue, [])
                  if not parsed.maker or not p.maker or p.maker == parsed.maker]
        if all(p.title != parsed.title for p in listed):
            listed.append(parsed)
        return listed


class GridTitle:
    """Task 3: the most likely unlisted variant of the last product's line, else its title."""

    name = "grid-title"

    def __init__(self, max_changes: int = 2, max_span: int = 4, min_makers: int = 3, min_context: int = 2,
                 model_code: str = "sibling", rank: str = "marginal", learn: bool = True, typed: bool = True,
                 attributes: tuple[str, ...] = ATTRIBUTE_KINDS):
        """``max_changes``: slots a candidate may change from the last title. ``max_span``, ``min_makers``:
        longest aligned span (words) and makers it must vary in to count as a variant. ``model_code``:
        ``"sibling"`` copies the model code of the listed sibling sharing the changed values, ``"keep"``
        leaves the code of the title written from. ``learn``/``typed``: use aligned spans (variant / typed)
        on top of ``attributes``."""
        if model_code not in ("sibling", "keep"):
            raise ValueError(f"model_code must be 'sibling' or 'keep', got {model_code!r}")
        self.max_changes, self.max_span, self.min_makers = max_changes, max_span, min_makers
        self.min_context = min_context
        self.model_code, self.learn, self.typed, self.attributes = model_code, learn, typed, attributes
        self.rank = rank

    def fit(self, catalog: Catalog, train: Sessions | None = None) -> "GridTitle":
        """Index the catalog's lines per locale (``train`` is unused: the grid comes from the catalog)."""
        self.catalog = catalog
        table = catalog.table
        self.index: dict[str, LineIndex] = {}
        for locale in LOCALES:
            part = table[table["locale"] == locale]
            if part.empty:
                continue
            makers = [_maker(b, a) for b, a in zip(part["brand"].tolist(), part["author"].tolist())]
            attributes = attribute_spans(part, self.attributes)
            self.index[locale] = LineIndex(part["title"].tolist(), makers, attributes, self.max_span,
                                           self.min_makers, self.min_context, self.learn, self.typed)
        return self

    def candidates(self, title: str, locale: str, n: int) -> list[str]:
        """Up to ``n`` unlisted variants of ``title``'s line, most likely first (none: ``[]``)."""
        index = self.index.get(locale)
        if index is None or not title.strip():
            return []
        maker = index.maker_of.get(join_words(list(_words(title))), "")
        return self._complete(index.parse(title, maker), index, n)

    def generate(self, sessions: Sessions) -> list[str]:
        """One title per session: the best grid hole of the last titled product, else its title."""
        rows = _last_rows(self.catalog, sessions)
        table = self.catalog.table
        titles, brands, authors = (table[c].to_numpy() for c in ("title", "brand", "author"))
        out = []
        for row, loc in zip(rows.tolist(), sessions.locale.tolist()):
            if row < 0:
                out.append("")
                continue
            index = self.index.get(LOCALES[loc])
            found = self._complete(index.parse(titles[row], _maker(brands[row], authors[row])), index, 1) if index else []
            out.append(found[0] if found else titles[row])
        return out

    def _complete(self, parsed: ParsedTitle, index: LineIndex, n: int) -> list[str]:
        """Holes of the line's grid within ``max_changes`` of ``parsed``, rendered, ranked, up to ``n``."""
        listed = index.siblings(parsed)
        slots = sorted({s for p in listed for s in p.slots if s[1] != MODEL})
        if len(listed) < 2 or not slots or n <= 0:
            return []
        vectors = [tuple(p.value(s) for s in slots) for p in listed]
        counts = [Counter(v[k] for v in vectors) for k in range(len(slots))]
        start = tuple(parsed.value(s) for s in slots)
        taken = set(vectors)
        holes: list[tuple[tuple, int, int]] = []  # (combo, changes, listed titles sharing its values)
        options = [sorted(c, key=lambda v: (-c[v], v)) for c in counts]
        for changes in range(1, self.max_changes + 1):
            for which in itertools.combinations(range(len(slots)), changes):
                for values in itertools.product(*[[v for v in options[k] if v != start[k]] for k in which]):
                    combo = list(start)
                    for k, v in zip(which, values):
                        combo[k] = v
                    combo = tuple(combo)
                    if combo not in taken:
                        holes.append((combo, changes, sum(counts[k][combo[k]] for k in range(len(slots)))))
        # rank: values shared by many holes first (a missing row or column of the grid), then fewer changes
        marginal = [Counter(h[0][k] for h in holes) for k in range(len(slots))]
        if self.rank == "precision":
            fixed = len(parsed.words) - sum(len(v) for v in start)  # words outside the grid's slots
            n_holes = len(holes)  # (a list being sorted reads as empty)

            def score(combo: tuple) -> float:
                hit = sum(len(v) * marginal[k][v] for k, v in enumerate(combo)) / n_holes
                return -(fixed + hit) / max(fixed + sum(len(v) for v in combo), 1)
        else:
            def score(combo: tuple) -> float:
                return -sum(marginal[k][v] for k, v in enumerate(combo))
        holes.sort(key=lambda h: (score(h[0]), h[1], -h[2]))
        out: list[str] = []
        for combo, _, _ in holes:
            text = self._render(combo, slots, listed, vectors)
            if text and text != parsed.title and text not in index.maker_of and text not in out:
                out.append(text)
                if len(out) == n:
                    break
        return out

    def _render(self, combo: tuple, slots: list[Slot], listed: list[ParsedTitle], vectors: list[tuple]) -> str | None:
        """``combo`` written by replacing chunks of the nearest listed title with the same slots filled."""
        present = tuple(bool(v) for v in combo)
        best = None
        for i, vector in enumerate(vectors):
            if tuple(bool(v) for v in vector) != present:
                continue
            distance = sum(a != b for a, b in zip(vector, combo))
            if best is None or distance < best[0]:
                best = (distance, i)
        if best is None:
            return None
        base, vector = listed[best[1]], vectors[best[1]]
        edits = [(*base.slots[s], combo[k]) for k, s in enumerate(slots) if vector[k] != combo[k]]
        if self.model_code == "sibling":
            edits += self._model_edits(base, vector, combo, slots, listed, vectors)
        words = list(base.words)
        for start, end, new in sorted(edits, reverse=True):
            words[start:end] = new
        return join_words(words)

    @staticmethod
    def _model_edits(base: ParsedTitle, vector: tuple, combo: tuple, slots: list[Slot], listed: list[ParsedTitle],
                     vectors: list[tuple]) -> list[tuple[int, int, tuple[str, ...]]]:
        """Model codes of ``base`` replaced by those of the listed title sharing most of the values ``combo``
        changes (a code often encodes the colour); none shares one: kept."""
        codes = [s for s in base.slots if s[1] == MODEL]
        changed = [k for k in range(len(slots)) if vector[k] != combo[k]]
        if not codes or not changed:
            return []
        best, best_key = None, (0, 0)
        for other, v in zip(listed, vectors):
            key = (sum(v[k] == combo[k] for k in changed), sum(a == b for a, b in zip(v, combo)))
            if other is not base and key > best_key and all(s in other.slots for s in codes):
                best, best_key = other, key
        if best is None:
            return []
        return [(*base.slots[s], best.value(s)) for s in codes]


def _last_rows(catalog: Catalog, sessions: Sessions) -> np.ndarray:
    """Catalog row of each session's last product with a row in its locale (``-1`` when none has one)."""
    owner = sessions.session_index
    rows = catalog.rows(sessions.items, sessions.locale[owner])
    titled = rows >= 0
    last = np.full(len(sessions), -1, dtype=np.int64)
    np.maximum.at(last, owner[titled], np.flatnonzero(titled))  # latest titled position per session
    out = np.full(len(sessions), -1, dtype=np.int64)
    out[last >= 0] = rows[last[last >= 0]]
    return out
