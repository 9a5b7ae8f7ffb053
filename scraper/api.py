"""The scrape stage's public face: ``list_items``, ``download_items`` and ``scrape`` (both), one config.

The CLI (``nftgan scrape``) and the Prefect flows call these and nothing deeper. Each writes the config
beside the collection (``scrape-config.json``, API key redacted) before any work, takes the collection's
scrape lock (a second scrape of the same collection fails at once instead of racing), and is resumable:
listings add only new items (the API source continues from its saved cursor), downloads fetch only
items that are pending or failed, so re-running after a crash or ``kill -9`` finishes the work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline import atomic
from pipeline.catalog import Catalog, Item
from pipeline.errors import NftganError
from pipeline.locks import exclusive_lock
from pipeline.storage import Stored, sync_files
from pipeline.workspace import CollectionPaths, Workspace

if TYPE_CHECKING:  # heavy or optional at import time: playwright, httpx
    from scraper.backoff import RetryPolicy
    from scraper.source_api import ApiListing
    from scraper.source_browser import BrowserListing

SOURCES = ("browser", "api")
API_KEY_ENV = "OPENSEA_API_KEY"
#: catalog rows written per transaction while downloading (a kill -9 re-fetches at most this many)
COMMIT_EVERY = 64
COMMIT_INTERVAL_S = 1.0

Progress = Callable[[dict[str, Any]], None]
T = TypeVar("T")


@dataclass(frozen=True)
class ScrapeConfig:
    """Options of ``nftgan scrape`` (one field per option); saved as ``scrape-config.json``."""

    source: str = "browser"  # browser | api
    base_url: str = "https://opensea.io"
    api_base_url: str = "https://api.opensea.io"
    api_key: str | None = None  # else $OPENSEA_API_KEY; never written to disk
    max_items: int | None = None  # stop listing after this many items (None: all)
    image_width: int = 512  # px asked of image CDNs (w=)
    concurrency: int = 16
    per_host_limit: int = 8
    allow_private_hosts: bool = False
    ipfs_gateway: str = "https://ipfs.io/ipfs/"
    idle_scrolls: int = 6  # browser: stop after this many scrolls bring nothing new
    page_size: int = 100  # API: items per page (at most 200)
    timeout_s: float = 30.0  # per HTTP request
    page_timeout_s: float = 60.0  # browser: first load of the collection page
    page_retries: int = 3  # browser: loads before giving up (slow page, interstitial)
    interstitial_wait_s: float = 10.0  # browser: how long an error/interstitial page may take to clear
    max_bytes: int = 50 * 2**20  # per image
    max_retries: int = 4  # 5xx, timeouts, connection errors
    rate_limit_retries: int = 8  # 429 / 599
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    chromium_path: str | None = None  # else $NFTGAN_CHROMIUM, else /usr/bin/chromium, else Playwright's
    headless: bool = True
    restart_listing: bool = False  # API: forget a saved cursor and list from the first page

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise NftganError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        for name in ("base_url", "api_base_url", "ipfs_gateway"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
                raise NftganError(f"--{name.replace('_', '-')} must be an http(s) URL, not {value!r}")
        positive = {
            "image_width": (16, 4096), "concurrency": (1, 256), "per_host_limit": (1, 256), "idle_scrolls": (1, 1000),
            "page_size": (1, 200), "page_retries": (1, 100), "max_bytes": (1024, 2**40),
        }
        for name, (low, high) in positive.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise NftganError(f"--{name.replace('_', '-')} must be an integer in {low}..{high}, not {value!r}")
        if self.max_items is not None and (not isinstance(self.max_items, int) or self.max_items < 1):
            raise NftganError(f"--max-items must be at least 1, not {self.max_items!r}")
        for name in ("max_retries", "rate_limit_retries"):
            if not isinstance(getattr(self, name), int) or not 0 <= getattr(self, name) <= 100:
                raise NftganError(f"--{name.replace('_', '-')} must be an integer in 0..100")
        for name in ("timeout_s", "page_timeout_s", "interstitial_wait_s", "backoff_initial_s", "backoff_max_s"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise NftganError(f"--{name.replace('_', '-')} must be a number >= 0")

    def resolved_api_key(self) -> str | None:
        return self.api_key or os.environ.get(API_KEY_ENV) or None

    def to_json(self) -> dict[str, Any]:
        """The config as saved: the API key is only said to be set, never written."""
        out = dataclasses.asdict(self)
        out["api_key"] = "(set)" if self.resolved_api_key() else None
        return out

    def retry_policy(self) -> RetryPolicy:
        from scraper.backoff import RetryPolicy

        return RetryPolicy(
            max_retries=self.max_retries, rate_limit_retries=self.rate_limit_retries,
            initial_s=self.backoff_initial_s, max_s=self.backoff_max_s,
        )


@dataclass(frozen=True)
class ListSummary:
    slug: str
    source: str
    found: int  # distinct items seen by this listing
    new: int  # of those, not in the catalog before
    total: int  # items in the catalog afterwards
    complete: bool  # the listing reached the end (not stopped by --max-items)
    resumed: bool = False  # the API listing continued from a saved cursor
    pages: int = 0  # API pages or browser scroll steps
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        how = "the API" if self.source == "api" else "the browser"
        lines = [f"listed {self.found} items of {self.slug} with {how} ({self.new} new; catalog now {self.total})"]
        if self.resumed:
            lines.append("  resumed from the saved API cursor")
        if not self.complete:
            lines.append("  stopped at --max-items before the end of the collection")
        return "\n".join(lines)


@dataclass(frozen=True)
class DownloadSummary:
    slug: str
    attempted: int  # items that were pending or failed
    downloaded: int
    skipped: int  # not attempted: downloaded (or rejected, or prepared) before this run
    failed: dict[str, int] = field(default_factory=dict)  # reason -> items
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> items (videos without a poster)
    urls: int = 0  # distinct URLs fetched (items sharing an image URL share one download)
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        n_failed = sum(self.failed.values())
        lines = [
            f"downloaded {self.downloaded} of {self.attempted} items ({self.bytes / 2**20:.1f} MiB in "
            f"{self.seconds:.1f} s), {self.skipped} done before, {n_failed} failed"
        ]
        for reason, n in sorted(self.failed.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  failed: {reason}: {n}")
        for reason, n in sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  skipped: {reason}: {n}")
        if n_failed:
            lines.append("  failed items are tried again by the next `nftgan scrape`")
        return "\n".join(lines)


@dataclass(frozen=True)
class ScrapeSummary:
    listing: ListSummary
    download: DownloadSummary

    def to_dict(self) -> dict[str, Any]:
        """The headline numbers flat (found, new, downloaded, skipped, failed, ...), plus both parts whole."""
        flat = {k: v for k, v in self.download.to_dict().items() if k not in ("seconds",)}
        flat.update({k: v for k, v in self.listing.to_dict().items() if k not in ("seconds", "pages")})
        return {**flat, "listing": self.listing.to_dict(), "download": self.download.to_dict()}

    def describe(self) -> str:
        return self.listing.describe() + "\n" + self.download.describe()


# -- the stage ------------------------------------------------------------------------------------
def list_items(ws: Workspace, slug: str, config: ScrapeConfig, *, progress: Progress | None = None) -> ListSummary:
    """Collect the collection's items into the catalog (browser or API source); resumable."""
    col = ws.collection(slug)
    with _scrape_lock(col):
        atomic.write_json(col.scrape_config, config.to_json())
        return _run(_list(col, config, progress))


def download_items(
    ws: Workspace, slug: str, config: ScrapeConfig, *, progress: Progress | None = None
) -> DownloadSummary:
    """Download every pending or failed item's image into storage; resumable."""
    col = ws.collection(slug)
    if not col.catalog.is_file():
        raise NftganError(f"collection {slug!r} has no catalog yet: list it first (nftgan scrape {slug})")
    with _scrape_lock(col):
        atomic.write_json(col.scrape_config, config.to_json())
        return _run(_download(col, config, progress))


def scrape(ws: Workspace, slug: str, config: ScrapeConfig, *, progress: Progress | None = None) -> ScrapeSummary:
    """List, then download: the whole stage."""
    col = ws.collection(slug)
    with _scrape_lock(col):
        atomic.write_json(col.scrape_config, config.to_json())

        async def both() -> ScrapeSummary:
            listing = await _list(col, config, progress)
            return ScrapeSummary(listing, await _download(col, config, progress))

        return _run(both())


def _scrape_lock(col: CollectionPaths) -> contextlib.AbstractContextManager[None]:
    return exclusive_lock(col.scrape_lock, f"another scrape of {col.slug!r} is running (lock {col.scrape_lock})")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end, also when called from a thread that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _Sink:
    """Adds listed items to the catalog, counting distinct items and stopping at ``max_items``."""

    def __init__(self, catalog: Catalog, source: str, max_items: int | None, progress: Progress | None) -> None:
        self.catalog = catalog
        self.source = source
        self.max_items = max_items
        self.progress = progress
        self.seen: set[str] = set()
        self.with_image: set[str] = set()
        self.new = 0

    def add(self, items: list[Any]) -> bool:
        rows = []
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
        if rows:
            self.new += self.catalog.add_items(rows)
        if self.progress is not None:
            self.progress({"stage": "list", "found": len(self.seen), "new": self.new})
        return not self.full

    @property
    def full(self) -> bool:
        return self.max_items is not None and len(self.seen) >= self.max_items


async def _list(col: CollectionPaths, config: ScrapeConfig, progress: Progress | None) -> ListSummary:
    from scraper.guard import AddressPolicy, RefusedAddress, check_url_host

    started = time.monotonic()
    policy = AddressPolicy(config.allow_private_hosts)
    base = config.api_base_url if config.source == "api" else config.base_url
    try:
        await check_url_host(base, policy)
    except RefusedAddress as e:
        raise NftganError(f"--{'api-' if config.source == 'api' else ''}base-url: {e.detail}") from None
    except OSError as e:
        raise NftganError(f"cannot resolve the host of {base}: {e}") from None
    col.mkdirs()
    with Catalog(col.catalog) as catalog:
        sink = _Sink(catalog, config.source, config.max_items, progress)
        if config.source == "api":
            listing = await _list_api(col, config, catalog, sink)
            complete, resumed, pages = listing.complete, listing.resumed, listing.pages
        else:
            browsed = await _list_browser(col, config, sink)
            complete, resumed, pages = browsed.complete, False, browsed.scrolls
        total = len(catalog)
    return ListSummary(
        slug=col.slug, source=config.source, found=len(sink.seen), new=sink.new, total=total,
        complete=complete, resumed=resumed,
        pages=pages, seconds=round(time.monotonic() - started, 3),
    )


async def _list_api(col: CollectionPaths, config: ScrapeConfig, catalog: Catalog, sink: _Sink) -> ApiListing:
    from scraper import source_api

    key = config.resolved_api_key()
    host = config.api_base_url.lower().split("://", 1)[1].split("/", 1)[0]
    if not key and (host == "opensea.io" or host.endswith(".opensea.io")):
        raise NftganError(f"the API source needs an OpenSea API key: pass --api-key or set {API_KEY_ENV}")
    if config.restart_listing:
        catalog.set_state(source_api.CURSOR_KEY, None)
        catalog.set_state(source_api.CURSOR_OWNER_KEY, None)
    return await source_api.list_api(
        catalog=catalog, slug=col.slug, api_base_url=config.api_base_url, api_key=key,
        page_size=config.page_size, timeout_s=config.timeout_s, retry=config.retry_policy(),
        allow_private_hosts=config.allow_private_hosts, add=sink.add,
    )


async def _list_browser(col: CollectionPaths, config: ScrapeConfig, sink: _Sink) -> BrowserListing:
    from scraper.source_browser import BrowserOptions, list_browser

    options = BrowserOptions(
        chromium_path=config.chromium_path, headless=config.headless, page_timeout_s=config.page_timeout_s,
        page_retries=config.page_retries, interstitial_wait_s=config.interstitial_wait_s,
        idle_scrolls=config.idle_scrolls, backoff_initial_s=config.backoff_initial_s,
        backoff_max_s=config.backoff_max_s,
    )
    url = f"{config.base_url.rstrip('/')}/collection/{col.slug}"
    return await list_browser(url=url, options=options, add=sink.add)


async def _download(col: CollectionPaths, config: ScrapeConfig, progress: Progress | None) -> DownloadSummary:
    from scraper.download import Downloader, DownloadOptions, Outcome, fetch_all
    from scraper.urls import BadUrl, download_url

    started = time.monotonic()
    col.mkdirs()
    atomic.remove_stale_temps(col.images)  # temp files of a killed run (we hold the scrape lock)
    with Catalog(col.catalog) as catalog:
        _requeue_missing_files(col, catalog)
        todo = [it for it in catalog.items(("pending", "failed")) if it.source in SOURCES]  # not imported files
        tally = _Tally(col, catalog, len(todo), progress)
        by_url: dict[str, list[Item]] = {}  # items sharing an image URL share one download
        for item in todo:
            try:
                url = download_url(item.image_url, ipfs_gateway=config.ipfs_gateway, image_width_px=config.image_width)
            except BadUrl as e:
                tally.record([item], "failed", reason=e.reason, detail=e.detail)
                continue
            by_url.setdefault(url, []).append(item)
        tally.commit()
        tally.report()
        options = DownloadOptions(
            concurrency=config.concurrency, per_host_limit=config.per_host_limit, timeout_s=config.timeout_s,
            max_bytes=config.max_bytes, retry=config.retry_policy(), allow_private_hosts=config.allow_private_hosts,
        )
        try:
            async def on_outcome(o: Outcome) -> None:
                tally.record(by_url[o.url], o.status, stored=o.stored, reason=o.reason, detail=o.detail)
                if tally.due:
                    await tally.commit_async()

            async with Downloader(col, options) as downloader:
                await fetch_all(downloader, list(by_url), on_outcome)
        finally:
            tally.commit()
        skipped = len(catalog) - len(todo)
    return DownloadSummary(
        slug=col.slug, attempted=len(todo), downloaded=tally.downloaded, skipped=skipped, failed=dict(tally.failed),
        rejected=dict(tally.rejected), urls=len(by_url), bytes=tally.bytes,
        seconds=round(time.monotonic() - started, 3),
    )


class _Tally:
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
        if self.progress is not None:
            self.progress({"stage": "download", "done": self.done, "total": self.total,
                           "downloaded": self.downloaded, "failed": sum(self.failed.values())})

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


def _requeue_missing_files(col: CollectionPaths, catalog: Catalog) -> None:
    """Downloaded (scraped) items whose file is gone, deleted by hand, go back to pending."""
    missing = [
        (it.id, {"status": "pending", "sha256": None, "stored_path": None})
        for it in catalog.items(("downloaded",))
        if it.source in SOURCES and (not it.stored_path or not col.resolve(it.stored_path).is_file())
    ]
    catalog.update_many(missing)
