"""The one place that knows where recformer-m2 caches things, and ``recformer-m2 cache info|clear``.

Every cache lives under one root (``$RECFORMER_M2_CACHE`` or ``~/.cache/recformer-m2``), one folder per
kind. Caches are keyed by content, so they are never stale, but they grow: ``cache info`` says how much each
kind holds, ``cache clear`` empties kinds (optionally only entries unused for some days). Clearing deletes
only files whose names the kind's writer produces, so a root pointed at the wrong folder loses nothing else.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_ENV = "RECFORMER_M2_CACHE"
"""Environment variable naming the cache root."""


@dataclass(frozen=True)
class CacheKind:
    """A kind of cache: its folder under the root, what it holds, and the file names its writer uses."""

    name: str
    description: str
    patterns: tuple[str, ...]


KINDS: dict[str, CacheKind] = {
    kind.name: kind
    for kind in (
        CacheKind("tables", "parsed data files (parquet), keyed by the bytes of the files",
                  ("*.parquet", "*.tmp[0-9]*")),
        CacheKind("item-embeddings", "item embeddings of a model over a catalog (.npy), keyed by model and catalog",
                  ("items-*", "encoded-*.json", ".*.tmp[0-9]*", "*.tmp[0-9]*")),
        CacheKind("tokenized-items", "item tokens (datasets Arrow files), keyed by tokenizer, limits and item text",
                  ("items-*.arrow", ".items-*.tmp[0-9]*.arrow")),
    )
}
"""Every cache kind; a new cache registers here so that ``cache info`` and ``cache clear`` see it."""

LEGACY_TABLE_PATTERN = "*-" + "[0-9a-f]" * 24 + ".parquet"
"""Parsed tables written straight into the root by versions before the per-kind folders."""


def default_cache_dir() -> Path:
    """The cache root: ``$RECFORMER_M2_CACHE`` or ``~/.cache/recformer-m2``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "recformer-m2")


def cache_dir(kind: str, root: str | Path | None = None) -> Path:
    """The folder of one cache kind (not created here)."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; choose from {sorted(KINDS)}")
    return Path(root or default_cache_dir()) / kind


@dataclass(frozen=True)
class CacheUsage:
    """How much one cache kind holds."""

    kind: str
    path: Path
    entries: int
    bytes: int


def _entries(kind: str, root: Path) -> list[Path]:
    """Files of one kind: those matching its writer's names (legacy root tables count as ``tables``)."""
    folder = root / kind
    found = {p for pattern in KINDS[kind].patterns for p in folder.glob(pattern) if p.is_file()}
    if kind == "tables":
        found |= {p for p in root.glob(LEGACY_TABLE_PATTERN) if p.is_file()}
    return sorted(found)


def cache_usage(root: str | Path | None = None) -> list[CacheUsage]:
    """Entry count and size of every cache kind under ``root``."""
    root = Path(root or default_cache_dir())
    usage = []
    for kind in KINDS:
        files = _entries(kind, root)
        usage.append(CacheUsage(kind, root / kind, len(files), sum(f.stat().st_size for f in files)))
    return usage


def clear_cache(kinds: list[str] | None = None, root: str | Path | None = None,
                older_than_days: float | None = None) -> list[CacheUsage]:
    """Delete the entries of ``kinds`` (all when None), or only those not used for ``older_than_days``
    (readers touch an entry when they use it); returns what was removed per kind."""
    root = Path(root or default_cache_dir())
    for kind in kinds or []:
        cache_dir(kind, root)  # names the unknown kind
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = []
    for kind in kinds or list(KINDS):
        count = size = 0
        for path in _entries(kind, root):
            stat = path.stat()
            if cutoff is not None and stat.st_mtime >= cutoff:
                continue
            path.unlink(missing_ok=True)
            count, size = count + 1, size + stat.st_size
        removed.append(CacheUsage(kind, root / kind, count, size))
        logger.info("cache %s: removed %d entries (%s)", kind, count, human_bytes(size))
    return removed


def touch(path: Path) -> None:
    """Mark a cache entry as used now, so ``clear --older-than`` keeps what is in use."""
    try:
        os.utime(path)
    except OSError as err:  # a read-only cache still serves reads
        logger.debug("cannot touch %s: %s", path, err)


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
