"""One live training run per output folder: an advisory ``flock`` on ``OUT/run.lock``.

Why: two runs writing the same checkpoints and ``best`` folder corrupt each other silently (a ``deepspeed``
launcher killed alone leaves its ranks training). The kernel drops a ``flock`` when its process dies,
however it dies, so a lock left by a dead run is never mistaken for a live one: it is taken over with a
warning naming the dead run's pid, which the file keeps.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .models.folders import ModelFolderError

logger = logging.getLogger(__name__)

LOCK_FILE = "run.lock"


class RunLockedError(ModelFolderError):
    """The output folder is held by another live run."""


@contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold ``OUT/run.lock`` for the ``with`` block; raise :class:`RunLockedError` when a live run holds it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held open for the whole block)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunLockedError(path, f"{out} is in use by another live run (pid {holder}, {path}); wait for it to "
                                   "end or stop it, or choose another output folder") from None
    try:
        handle.seek(0)
        previous = handle.read().strip()
        if previous and previous != str(os.getpid()):
            logger.warning("taking over %s, left by a run that ended without releasing it (pid %s, not running)",
                           path, previous)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        handle.seek(0)
        handle.truncate()  # a clean end leaves no pid behind, so the next run does not warn
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
