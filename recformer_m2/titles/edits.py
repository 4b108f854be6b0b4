"""Edit scripts: the next title written as replacements in one of the session's titles
(``target_format="edit"``).

``<t1> <r> 20 <w> 16`` reads: take source title 1 (the most recent), replace its words ``20`` by ``16``;
``<t2> <r> Rot <w> Blau <r> cm <w> cm , 2er Pack`` makes two replacements in title 2, left to right.
``<t1>`` alone repeats title 1; ``<d1> ...`` edits the first *draft* instead: a title the source proposes
for the next product (``TitleConfig.drafts``, filled holes of the line's grid). Why: task-3 titles are
mostly a product line's words with a variant changed. A small model trained from scratch learns to point
at the words to change (by content, which cross-attention does well) and write the new value far sooner
than it learns to reproduce a whole title piece by piece or to count word positions; and a replacement
whose old words are not found is skipped, so a wrong script degrades towards repeating the title rather
than towards noise.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

TITLE, DRAFT, REPLACE, WITH = "<t{}>", "<d{}>", "<r>", "<w>"
_CODE = re.compile(r"(<[td]\d+>|<r>|<w>)")


def edit_tokens(k: int, drafts: int = 0) -> list[str]:
    """The codes a model writing edits of ``k`` source titles and ``drafts`` drafts needs."""
    return ([TITLE.format(j) for j in range(1, k + 1)] + [DRAFT.format(j) for j in range(1, drafts + 1)]
            + [REPLACE, WITH])


def split_words(text: str) -> list[str]:
    """Whitespace words with a trailing comma split off (``"Knife, 20"`` -> ``Knife , 20``), so that a
    variant's words match whether or not a comma follows them; ``1,8`` stays one word."""
    words: list[str] = []
    for word in text.split():
        if len(word) > 1 and word.endswith(","):
            words += [word[:-1], ","]
        else:
            words.append(word)
    return words


def join_words(words: list[str]) -> str:
    """Inverse of :func:`split_words`: commas glued back to the word before them."""
    return " ".join(words).replace(" ,", ",")


def find(words: list[str], span: list[str], start: int) -> int:
    """First position >= ``start`` where ``span`` occurs in ``words``; -1 when it does not."""
    n = len(span)
    for i in range(start, len(words) - n + 1):
        if words[i:i + n] == span:
            return i
    return -1


def best_source(words: list[str], titles: list[str]) -> tuple[int, int]:
    """(J, matched): the source title sharing most aligned words (1 = most recent; ties: most recent)."""
    best_j, best_m = 1, 0
    for j, title in enumerate(titles, start=1):
        blocks = SequenceMatcher(None, split_words(title), words, autojunk=False).get_matching_blocks()
        m = sum(b.size for b in blocks)
        if m > best_m:
            best_j, best_m = j, m
    return best_j, best_m


def encode_edit(target: str, titles: list[str], drafts: list[str] = ()) -> str:
    """The edit script that turns the best-aligned source title or draft into ``target`` (ties: titles
    before drafts, the most recent first).

    Each difference becomes ``<r> old <w> new``; an insertion takes the word before it (or after it, at
    the start) as its old words, and old words are widened to the left until their first occurrence
    after the previous edit is the intended one, so :func:`decode_edit` applies the script exactly.
    """
    words = split_words(target)
    j, _ = best_source(words, [*titles, *drafts])
    source = split_words([*titles, *drafts][j - 1]) if titles or drafts else []
    out = [TITLE.format(j) if j <= len(titles) or not drafts else DRAFT.format(j - len(titles))]
    pos = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, source, words, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        new = words[j1:j2]
        if i1 == i2:  # insertion: anchor on a neighbouring source word
            if i1 > 0:
                i1, new = i1 - 1, source[i1 - 1:i1] + new
            elif source:
                i2, new = 1, new + source[:1]
            else:
                out += [REPLACE, WITH, *new]
                continue
        while i1 > pos and find(source, source[i1:i2], pos) != i1:  # widen until the first match is this one
            i1 -= 1
            new = source[i1:i1 + 1] + new
        out += [REPLACE, *source[i1:i2], WITH, *new]
        pos = i2
    return " ".join(out)


def decode_edit(script: str, titles: list[str], drafts: list[str] = ()) -> str:
    """The title an edit script stands for: its replacements applied left to right to the named title or
    draft (``<t1>`` when none is named, or a draft the source lacks). A replacement whose old words do not
    occur after the previous one is skipped; a script naming a title the session lacks yields its written
    words only."""
    parts = [p.strip() for p in _CODE.split(script) if p.strip()]
    named, j = titles, 1
    if parts and re.fullmatch(r"<[td]\d+>", parts[0]):
        head = parts.pop(0)
        named, j = (titles if head[1] == "t" else drafts), int(head[2:-1])
        if named is drafts and not 0 < j <= len(drafts):
            named, j = titles, 1
    if not 0 < j <= len(named):
        return join_words([w for p in parts if not _CODE.fullmatch(p) for w in split_words(p)])
    source = split_words(named[j - 1])
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(parts):
        if parts[i] != REPLACE:
            i += 1  # stray text or codes outside a replacement
            continue
        old = split_words(parts[i + 1]) if i + 1 < len(parts) and not _CODE.fullmatch(parts[i + 1]) else []
        i += 2 if old else 1
        new: list[str] = []
        if i < len(parts) and parts[i] == WITH:
            if i + 1 < len(parts) and not _CODE.fullmatch(parts[i + 1]):
                new = split_words(parts[i + 1])
                i += 1
            i += 1
        at = find(source, old, pos) if old else -1
        if at < 0:
            continue
        out += source[pos:at] + new
        pos = at + len(old)
    return join_words(out + source[pos:])


def copy_share(target: str, titles: list[str]) -> float:
    """Share of the target's words aligned with its best source title (0 to 1)."""
    words = split_words(target)
    return best_source(words, titles)[1] / len(words) if words and titles else 0.0
