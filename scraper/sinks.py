"""Where a scrape's findings go: the catalog writes of a listing (:class:`ListingSink`) and of a download run
(:class:`DownloadTally`), with the counts their summaries report."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog, Item, ListedState
from pipeline.progress import Progress, report
from pipeline.storage import Stored, sync_files
from pipeline.workspace import CollectionPaths

#: catalog rows written per transaction while downloading (a kill -9 re-fetches at most this many)
COMMIT_EVERY = 64
COMMIT_INTERVAL_S = 1.0


class ListingSink:
    """Adds listed items to the catalog, counting distinct items and stopping at ``max_items``; compares
    each with what the catalog held before the listing (``before``): changed image URLs are queued for
    download again, delisted items seen again are listed again."""

    def __init__(
        self, catalog: Catalog, source: str, max_items: int | None, progress: Progress | None,
        before: dict[str, ListedState] | None = None,
    ) -> None:
        self.catalog = catalog
        self.source = source
        self.max_items = max_items
        self.progress = progress
        self.before = before or {}
        self.seen: set[str] = set()
        self.with_image: set[str] = set()
        self.new = 0
        self.changed: set[str] = set()
        self.relisted: set[str] = set()

    def known(self, item_key: str) -> bool:
        """The item was cataloged before this listing began."""
        return item_key in self.before

    def add(self, items: list[Any]) -> bool:
        rows, changed, relisted = [], [], []
        for it in items:
            key = it.item_key
            if key in self.with_image or (key not in self.seen and self.full):
                continue
            if key in self.seen and not it.image_url:
                continue
            self.seen.add(key)
            if it.image_url:
                self.with_image.add(key)
            rows.append(it.row(self.source))
            prior = self.before.get(key)
            if prior is None:
                continue
            if (
                it.image_url and prior.image_url and prior.source == self.source and key not in self.changed
                and image_identity(prior.image_url) != image_identity(it.image_url)
            ):
                changed.append((key, it.image_url))
                self.changed.add(key)
            if prior.delisted_at is not None and key not in self.relisted:
                relisted.append(key)
                self.relisted.add(key)
        if rows:
            with self.catalog.transaction():
                self.new += self.catalog.add_items(rows)
                for key, url in changed:
                    self.catalog.requeue_changed_image(key, url)
                self.catalog.set_delisted(relisted, None)
        report(self.progress, "list", len(self.seen), None, found=len(self.seen), new=self.new)
        return not self.full

    @property
    def full(self) -> bool:
        return self.max_items is not None and len(self.seen) >= self.max_items


def image_identity(url: str) -> str:
    """What identifies an image URL across listings: scheme, host and path, without the query (a CDN's
    ``w=``/``auto=`` differ between the page's cards and its feed) or fragment."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


class DownloadTally:
    """A download run's catalog writes, committed in batches (a kill -9 loses at most one batch, whose
    images are simply fetched again), and the counts for its summary and progress events.

    A batch's image files are fsynced (one call per batch, in a thread) before its rows are committed, so
    a row that says "downloaded" never outlives its file, even through a power cut.
    """

    def __init__(self, col: CollectionPaths, catalog: Catalog, total: int, progress: Progress | None) -> None:
        self.col = col
        self.catalog = catalog
        self.unsynced: set[Path] = set()
        self.total = total
        self.progress = progress
        self.writes: list[tuple[int, dict[str, Any]]] = []
        self.last_commit = time.monotonic()
        self.done = self.downloaded = self.bytes = 0
        self.failed: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    def record(
        self, items: list[Item], status: str, *, stored: Stored | None = None, reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        for item in items:
            fields: dict[str, Any] = {
                "status": status, "reason": reason, "detail": detail, "attempts": item.attempts + 1,
            }
            if stored is not None:
                fields.update(
                    sha256=stored.sha256, stored_path=stored.relpath, media_kind=stored.kind, bytes=stored.size_bytes
                )
                self.downloaded += 1
                self.bytes += stored.size_bytes
                self.unsynced.add(self.col.root / stored.relpath)
            else:
                (self.failed if status == "failed" else self.rejected)[reason or "unknown"] += 1
            self.writes.append((item.id, fields))
        self.done += len(items)
        self.report()

    @property
    def due(self) -> bool:
        return len(self.writes) >= COMMIT_EVERY or time.monotonic() - self.last_commit >= COMMIT_INTERVAL_S

    def report(self) -> None:
        report(self.progress, "download", self.done, self.total, downloaded=self.downloaded,
               failed=sum(self.failed.values()))

    def commit(self) -> None:
        writes, files = self._take()
        sync_files(files)
        self.catalog.update_many(writes)

    async def commit_async(self) -> None:
        """:meth:`commit`, with the fsyncs in a thread so that the downloads go on meanwhile."""
        writes, files = self._take()
        if files:
            await asyncio.to_thread(sync_files, files)
        self.catalog.update_many(writes)

    def _take(self) -> tuple[list[tuple[int, dict[str, Any]]], set[Path]]:
        writes, files = self.writes, self.unsynced
        self.writes, self.unsynced = [], set()
        self.last_commit = time.monotonic()
        return writes, files
