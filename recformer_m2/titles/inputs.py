"""Sources and targets of the title generator: the last K products' titles, most recent first.

A source reads ``<DE> title_1 <sep> title_2 <sep> title_3`` where ``title_1`` is the session's last
product with a title in the session's locale (products sold elsewhere only are skipped, as
``LastTitle`` skips them), optionally followed by ``<draft> draft ...``: titles proposed for the next
product (unlisted variants of ``title_1``'s line, :class:`.grid.GridTitle`), which edit scripts may start
from, and by ``<sib> sibling ...``: catalog titles of other variants of the line. The target is the next
product's title in that locale.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..constants import LOCALES
from ..data import Catalog, Sessions
from .edits import split_words
from .grid import GridTitle

SEP = "<sep>"
"""Separator between products in a source (a special token of the catalog tokenizer)."""
SIB = "<sib>"
"""Opens each sibling title (another variant of the last product's line) at the end of a source."""
DRAFT_TAG = "<draft>"
"""Opens each draft (a title proposed for the next product) after the session's titles."""


def locale_tag(locale: str) -> str:
    return f"<{locale}>"


EXTRA_TOKENS: tuple[str, ...] = (SEP, SIB, DRAFT_TAG, *(locale_tag(loc) for loc in LOCALES))
"""Tokens a source uses that a tokenizer must hold whole (added as special tokens when missing)."""


def item_texts(catalog: Catalog, rows: np.ndarray, attributes: tuple[str, ...]) -> list[str]:
    """One text per catalog row: its title, then ``| key value`` for each further non-empty attribute."""
    titles = catalog.table["title"].to_numpy()
    if attributes == ("title",):
        return [" ".join(str(titles[r]).split()) for r in rows]
    out = []
    for r in rows:
        pairs = catalog.attributes(int(r), attributes)
        head = pairs[0][1] if pairs and pairs[0][0] == "title" else ""
        rest = [f"| {key} {value}" for key, value in pairs if key != "title"]
        out.append(" ".join([head, *rest]).strip())
    return out


class SiblingTitles:
    """Catalog titles of a title's product line in its locale: titles sharing at least ``min_overlap`` of
    their words (Jaccard) with it, looked up through its two rarest words (a brand, a series name).

    Why: a task-3 title is a new variant of a line, so the variants the catalog already lists say which
    colours, sizes and packs the line comes in, and which combinations are taken.
    """

    def __init__(self, catalog: Catalog, min_overlap: float = 0.6):
        self.min_overlap = min_overlap
        self.titles: dict[str, list[str]] = {}
        self.words: dict[str, list[frozenset[str]]] = {}
        self.postings: dict[str, dict[str, list[int]]] = {}
        table = catalog.table
        for title, loc in zip(table["title"].tolist(), table["locale"].tolist()):
            text = " ".join(str(title).split())
            titles = self.titles.setdefault(loc, [])
            words = frozenset(split_words(text))
            for word in words:
                self.postings.setdefault(loc, {}).setdefault(word, []).append(len(titles))
            titles.append(text)
            self.words.setdefault(loc, []).append(words)

    def find(self, title: str, locale: str, n: int, exclude: set[str] = frozenset()) -> list[str]:
        """Up to ``n`` sibling titles, most similar first (ties: catalog order); ``title`` and ``exclude``
        are left out."""
        postings = self.postings.get(locale, {})
        words = frozenset(split_words(title))
        rare = sorted((w for w in words if w in postings), key=lambda w: (len(postings[w]), w))[:2]
        found: dict[int, float] = {}
        for row in sorted({r for w in rare for r in postings[w]}):
            other = self.words[locale][row]
            overlap = len(words & other) / len(words | other)
            text = self.titles[locale][row]
            if overlap >= self.min_overlap and text != title and text not in exclude:
                found[row] = overlap
        best = sorted(found, key=lambda r: (-found[r], r))
        out: list[str] = []
        for row in best:  # a title listed twice (several ids) counts once
            if self.titles[locale][row] not in out:
                out.append(self.titles[locale][row])
            if len(out) == n:
                break
        return out


def recent_rows(catalog: Catalog, sessions: Sessions, k: int, dedupe: bool = True) -> list[list[int]]:
    """Catalog rows of each session's last ``k`` products that have a row in its locale, most recent first."""
    owner = sessions.session_index
    rows = catalog.rows(sessions.items, sessions.locale[owner])
    out: list[list[int]] = []
    for i in range(len(sessions)):
        picked: list[int] = []
        for r in rows[sessions.offsets[i]:sessions.offsets[i + 1]][::-1].tolist():
            if r < 0 or (dedupe and r in picked):
                continue
            picked.append(r)
            if len(picked) == k:
                break
        out.append(picked)
    return out


class TitlePairs(NamedTuple):
    """Sources of the generator with what scoring and edit scripts need, one entry per session."""

    sources: list[str]
    targets: list[str]
    """The next product's title ("" where unknown)."""
    locales: list[str]
    titles: list[list[str]]
    """The session's titles in its source, most recent first (what ``<tJ>`` names)."""
    drafts: list[list[str]]
    """The drafts in its source (what ``<dJ>`` names)."""

    def select(self, keep: list[bool]) -> "TitlePairs":
        return TitlePairs(*([x for x, ok in zip(part, keep) if ok] for part in self))


def build_source(texts: list[str], locale: str, siblings: list[str] = (), drafts: list[str] = ()) -> str:
    """``<LOC> text_1 <sep> text_2 ... <draft> draft_1 ... <sib> sibling_1 <sib> ...`` from product texts
    given most recent first."""
    return " ".join([locale_tag(locale), f" {SEP} ".join(texts), *(f"{DRAFT_TAG} {t}" for t in drafts),
                     *(f"{SIB} {t}" for t in siblings)]).strip()


def split_source(source: str) -> tuple[str, str]:
    """(products part, the rest) of a source; the rest is ``""`` or starts with ``<draft>`` or ``<sib>``."""
    found = [at for at in (source.find(f" {DRAFT_TAG} "), source.find(f" {SIB} ")) if at >= 0]
    return (source, "") if not found else (source[:min(found)], source[min(found) + 1:])


def session_inputs(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                   dedupe: bool = True, siblings: SiblingTitles | None = None, n_siblings: int = 0,
                   exclude: list[str] | None = None, grid: GridTitle | None = None, n_drafts: int = 0,
                   targets: list[str] | None = None) -> TitlePairs:
    """Every session's source text with the titles and drafts it holds (``targets`` default to "").

    With ``n_siblings``, sibling titles of each session's last title end the source; with ``n_drafts``,
    up to that many of ``grid``'s unlisted variants of its line follow the session's titles. Either
    treats ``exclude[i]`` (a training target) as unlisted, as a task-3 target is in no catalog.
    """
    recent = recent_rows(catalog, sessions, k, dedupe)
    flat = np.array([r for rows in recent for r in rows], dtype=np.int64)
    texts = item_texts(catalog, flat, attributes)
    titles = texts if attributes == ("title",) else item_texts(catalog, flat, ("title",))
    sources, session_titles, session_drafts, start = [], [], [], 0
    for i, (rows, loc) in enumerate(zip(recent, sessions.locale.tolist())):
        own = titles[start:start + len(rows)]
        unlisted = {" ".join(exclude[i].split())} if exclude else set()
        sibs: list[str] = []
        if siblings is not None and n_siblings > 0 and own:
            skip = {" ".join(t.split()) for t in own} | unlisted
            sibs = siblings.find(" ".join(own[0].split()), LOCALES[loc], n_siblings, skip)
        drafts = grid.candidates(own[0], LOCALES[loc], n_drafts, unlisted) if grid and n_drafts > 0 and own else []
        sources.append(build_source(texts[start:start + len(rows)], LOCALES[loc], sibs, drafts))
        session_titles.append(own)
        session_drafts.append(drafts)
        start += len(rows)
    return TitlePairs(sources, list(targets) if targets is not None else [""] * len(sources),
                      [LOCALES[x] for x in sessions.locale], session_titles, session_drafts)


def source_titles(source: str) -> list[str]:
    """The titles a source text holds (what :func:`build_source` joined), read back from it."""
    source = split_source(source)[0]
    body = source.split(" ", 1)[1] if source.startswith("<") and " " in source else ""
    return [text.split(" | ")[0].strip() for text in body.split(f" {SEP} ")] if body else []


def source_drafts(source: str) -> list[str]:
    """The drafts a source text holds, read back from it."""
    rest = split_source(source)[1].split(f" {SIB} ")[0]
    if rest.startswith(SIB):
        return []
    return [d.strip() for d in rest.split(DRAFT_TAG) if d.strip()]


def source_locale(source: str) -> str:
    """The locale a source text is tagged with (``""`` when untagged)."""
    head = source.split(" ", 1)[0]
    return head[1:-1] if head.startswith("<") and head.endswith(">") else ""


def session_sources(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                    dedupe: bool = True) -> list[str]:
    """The generator's source text for every session."""
    return session_inputs(catalog, sessions, k, attributes, dedupe).sources


def training_pairs(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                   dedupe: bool = True, siblings: SiblingTitles | None = None, n_siblings: int = 0,
                   grid: GridTitle | None = None, n_drafts: int = 0) -> TitlePairs:
    """The pairs of sessions whose next item has a title in the locale and at least one earlier product
    does too; the others teach nothing and are skipped. Siblings and drafts treat the target as unlisted,
    as a task-3 target is in no catalog."""
    targets = catalog.titles(sessions.next_item, sessions.locale)
    recent = recent_rows(catalog, sessions, k, dedupe)
    keep = np.array([bool(t) and bool(r) for t, r in zip(targets, recent)], dtype=bool)
    kept = sessions.select(keep)
    targets = [" ".join(t.split()) for t, ok in zip(targets, keep) if ok]
    return session_inputs(catalog, kept, k, attributes, dedupe, siblings, n_siblings, targets, grid, n_drafts,
                          targets)


def ensure_tokens(tokenizer: PreTrainedTokenizerBase, edit_tokens: list[str] = ()) -> int:
    """Add :data:`EXTRA_TOKENS` the tokenizer lacks as special tokens, and ``edit_tokens`` as plain added
    tokens (so decoding keeps them); returns how many tokens were added."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in EXTRA_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    codes = [t for t in edit_tokens if t not in vocab]
    if codes:
        tokenizer.add_tokens(codes)
    return len(missing) + len(codes)


class PairCollator:
    """Tokenised (source, target) pairs into padded tensors; target padding is -100 (ignored by the loss)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_source_length: int, max_target_length: int):
        self.tokenizer = tokenizer
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

    def encode(self, sources: list[str], targets: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of every pair, done once before training (the fast tokenizer batches them)."""
        src = self.tokenizer(sources, truncation=True, max_length=self.max_source_length)["input_ids"]
        tgt = self.tokenizer(targets, truncation=True, max_length=self.max_target_length)["input_ids"]
        return src, tgt

    def __call__(self, batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        pad = self.tokenizer.pad_token_id
        s_len = max(len(s) for s, _ in batch)
        t_len = max(len(t) for _, t in batch)
        input_ids = torch.full((len(batch), s_len), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), s_len), dtype=torch.long)
        labels = torch.full((len(batch), t_len), -100, dtype=torch.long)
        for i, (s, t) in enumerate(batch):
            input_ids[i, :len(s)] = torch.tensor(s)
            attention[i, :len(s)] = 1
            labels[i, :len(t)] = torch.tensor(t)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


class BucketBatches(torch.utils.data.Sampler):
    """Batches of similar source length (less padding): shuffle, sort within pools of 50 batches, shuffle
    the batches. The order is a function of (seed, epoch), so a run is reproducible."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, pool: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool = pool
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b]
