"""An exclusive, non-blocking lock on a file: one process per collection scrape or training run."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import NftganError


@contextlib.contextmanager
def exclusive_lock(path: Path, busy_message: str) -> Iterator[None]:
    """Hold an flock on ``path`` (created if needed); raise NftganError(busy_message) if another holds it.

    The kernel drops the lock when the process dies, so a ``kill -9`` never leaves a stale lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NftganError(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
