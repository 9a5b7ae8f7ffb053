"""Content-addressed storage of originals: ``images/<sha[:2]>/<sha256>.<ext>``.

Files are written to a temp file in the target folder and renamed into place, so storage never holds a
partial file; storing the same bytes twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import atomic_path, fsync_dir
from pipeline.sniff import SNIFF_BYTES, extension_for, sniff
from pipeline.workspace import CollectionPaths

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    sha256: str
    relpath: str  # relative to the collection root: what the catalog stores
    kind: str  # sniffed kind (see pipeline.sniff)
    size_bytes: int


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)


def _slot(col: CollectionPaths, digest: str, kind: str, size: int) -> tuple[Stored, Path, bool]:
    """Where bytes with this digest go, and whether they are already there (else its folder is made)."""
    rel = col.image_relpath(digest, extension_for(kind))
    target = col.root / rel
    present = target.exists() and target.stat().st_size == size
    if not present:
        target.parent.mkdir(parents=True, exist_ok=True)
    return Stored(digest, rel, kind, size), target, present


def store_file(col: CollectionPaths, source: str | os.PathLike[str], *, move: bool = False) -> Stored:
    """Put a file into content-addressed storage (copying it, or moving it when ``move``).

    ``move=True`` is for temp files the downloader just streamed; it must be on the same filesystem
    for the rename to be atomic, otherwise it is copied.
    """
    source = Path(source)
    stored, target, present = _slot(col, sha256_file(source), sniff(_read_head(source)), source.stat().st_size)
    if present:
        if move:
            source.unlink(missing_ok=True)
        return stored
    if move:
        try:
            with open(source, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(source, target)
            return stored
        except OSError:
            pass  # another filesystem: fall through to copy
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    if move:
        source.unlink(missing_ok=True)
    return stored


def incoming_tempfile(col: CollectionPaths) -> Path:
    """A fresh temp file inside storage (same filesystem, so :func:`store_file` can rename it).

    Temp names start with '.', so :func:`pipeline.atomic.remove_stale_temps` on a storage folder
    cleans up after a crash; nothing else ever reads them.
    """
    col.images.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".incoming.", suffix=".tmp", dir=col.images)
    os.close(fd)
    return Path(name)


def store_bytes(col: CollectionPaths, data: bytes | bytearray | memoryview, *, sync: bool = True) -> Stored:
    """Put bytes held in memory into content-addressed storage (hashed and sniffed in memory).

    They are written to a temp file in storage and renamed into place; the same bytes stored twice are
    written once. ``sync=False`` skips the fsync: the caller must :func:`sync_files` the result before it
    records it anywhere durable (the downloader does that once per catalog batch, which costs one
    journal commit per batch instead of one per image).
    """
    view = memoryview(data)
    digest, kind = hashlib.sha256(view).hexdigest(), sniff(bytes(view[:SNIFF_BYTES]))
    stored, target, present = _slot(col, digest, kind, view.nbytes)
    if present:
        return stored
    tmp = incoming_tempfile(col)
    try:
        with open(tmp, "wb") as f:
            f.write(view)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return stored


def sync_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """fsync files and then their folders, so that they (and their names) survive a power cut."""
    folders: set[Path] = set()
    for path in paths:
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # deleted meanwhile: the catalog finds that out on the next run (re-queued)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folders.add(path.parent)
    for folder in folders:
        fsync_dir(folder)
