"""Sources and targets of the title generator: the last K products' titles, most recent first.

A source reads ``<DE> title_1 <sep> title_2 <sep> title_3`` where ``title_1`` is the session's last
product with a title in the session's locale (products sold elsewhere only are skipped, as
``LastTitle`` skips them). The target is the next product's title in that locale.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..constants import LOCALES
from ..data import Catalog, Sessions

SEP = "<sep>"
"""Separator between products in a source (a special token of the catalog tokenizer)."""


def locale_tag(locale: str) -> str:
    return f"<{locale}>"


EXTRA_TOKENS: tuple[str, ...] = (SEP, *(locale_tag(loc) for loc in LOCALES))
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


def build_source(texts: list[str], locale: str) -> str:
    """``<LOC> text_1 <sep> text_2 ...`` from product texts given most recent first."""
    return " ".join([locale_tag(locale), f" {SEP} ".join(texts)]).strip()


def session_inputs(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                   dedupe: bool = True) -> tuple[list[str], list[list[str]]]:
    """Every session's source text, and the titles it holds (most recent first) that edit scripts refer to."""
    recent = recent_rows(catalog, sessions, k, dedupe)
    flat = np.array([r for rows in recent for r in rows], dtype=np.int64)
    texts = item_texts(catalog, flat, attributes)
    titles = texts if attributes == ("title",) else item_texts(catalog, flat, ("title",))
    sources, session_titles, start = [], [], 0
    for rows, loc in zip(recent, sessions.locale.tolist()):
        sources.append(build_source(texts[start:start + len(rows)], LOCALES[loc]))
        session_titles.append(titles[start:start + len(rows)])
        start += len(rows)
    return sources, session_titles


def source_titles(source: str) -> list[str]:
    """The titles a source text holds (what :func:`build_source` joined), read back from it."""
    body = source.split(" ", 1)[1] if source.startswith("<") and " " in source else ""
    return [text.split(" | ")[0].strip() for text in body.split(f" {SEP} ")] if body else []


def session_sources(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                    dedupe: bool = True) -> list[str]:
    """The generator's source text for every session."""
    return session_inputs(catalog, sessions, k, attributes, dedupe)[0]


def training_pairs(catalog: Catalog, sessions: Sessions, k: int, attributes: tuple[str, ...] = ("title",),
                   dedupe: bool = True) -> tuple[list[str], list[str], list[str], list[list[str]]]:
    """(sources, targets, locales, source titles) of sessions whose next item has a title in the locale and
    at least one earlier product does too; the others teach nothing and are skipped."""
    targets = catalog.titles(sessions.next_item, sessions.locale)
    recent = recent_rows(catalog, sessions, k, dedupe)
    keep = np.array([bool(t) and bool(r) for t, r in zip(targets, recent)], dtype=bool)
    kept = sessions.select(keep)
    sources, titles = session_inputs(catalog, kept, k, attributes, dedupe)
    targets = [" ".join(t.split()) for t, ok in zip(targets, keep) if ok]
    return sources, targets, [LOCALES[x] for x in kept.locale], titles


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
