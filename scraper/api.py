"""The scrape stage's public face: ``list_items``, ``download_items`` and ``scrape`` (both), one config.

The CLI (``nftgan scrape``) and the Prefect flows call these and nothing deeper. Each writes the config
beside the collection (``scrape-config.json``, API key redacted) before any work, takes the collection's
scrape lock (a second scrape of the same collection fails at once instead of racing), and is resumable:
listings add only new items (the API source continues from its saved cursor), downloads fetch only
items that are pending or failed, so re-running after a crash or ``kill -9`` finishes the work.

Listings are incremental once the catalog holds a finished listing from the same source: the newest
items are walked first (the site's feed in ``CREATED_DATE:DESC``; the API's mint events) and the walk
stops at the first page whose items are all cataloged. A full listing happens on ``--full``, on its own
schedule (``--full-every-days``), after an unfinished listing, and whenever the incremental walk cannot
show that it reached the known items. Only a complete full listing notices removed tokens (flagged
``delisted_at``, never deleted). A token whose image URL changed is noticed by any listing that sees it
(its download is queued again; the old file stays in storage): an incremental walk sees only the newest
items, so a changed image of an older token waits for the next full listing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import contextlib
import dataclasses
import os
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline import atomic
from pipeline.catalog import (
    COVERAGE_STATE_KEY, LAST_FULL_LISTING_KEY, LISTING_STATE_KEY, Catalog, Item, ListedState,
)
from pipeline.errors import NftganError, SiteUnreachable
from pipeline.progress import Progress, report
from pipeline.locks import exclusive_lock
from pipeline.storage import Stored, sync_files
from pipeline.workspace import CollectionPaths, Workspace

if TYPE_CHECKING:  # heavy or optional at import time: playwright, httpx
    from scraper.backoff import RetryPolicy
    from scraper.source_api import ApiListing
    from scraper.source_browser import BrowserListing

SOURCES = ("browser", "api")
MODES = ("incremental", "full")
#: catalog state key: the coverage of the last listing (JSON), read by ``nftgan status``
COVERAGE_KEY = COVERAGE_STATE_KEY
API_KEY_ENV = "OPENSEA_API_KEY"
#: catalog rows written per transaction while downloading (a kill -9 re-fetches at most this many)
COMMIT_EVERY = 64
COMMIT_INTERVAL_S = 1.0

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
    #: gateways for ipfs:// URLs, comma-separated, tried in turn (the next one when one fails)
    ipfs_gateway: str = "https://ipfs.io/ipfs/,https://dweb.link/ipfs/,https://w3s.link/ipfs/"
    arweave_gateway: str = "https://arweave.net/"
    idle_scrolls: int = 6  # browser: stop after this many scrolls bring nothing new
    page_size: int = 200  # API: items per page (at most 200)
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
    skip_nsfw: bool = False  # API: leave out items the marketplace flags NSFW (they are counted)
    max_rate_wait_s: float = 3600.0  # API: longest wait for a rate-limit window; longer ends the run (resumable)
    full: bool = False  # list the whole collection even when an incremental listing would do
    #: a full listing also happens when the last finished one is older than this (0: every listing is full)
    full_every_days: float = 7.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise NftganError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        for name in ("base_url", "api_base_url", "ipfs_gateway", "arweave_gateway"):
            value = getattr(self, name)
            parts = value.split(",") if isinstance(value, str) and name == "ipfs_gateway" else [value]
            for part in parts:
                if not isinstance(part, str) or not part.strip().lower().startswith(("http://", "https://")):
                    raise NftganError(f"--{name.replace('_', '-')} must be an http(s) URL, not {part!r}")
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
        for name in ("timeout_s", "page_timeout_s", "interstitial_wait_s", "backoff_initial_s", "backoff_max_s",
                     "max_rate_wait_s", "full_every_days"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise NftganError(f"--{name.replace('_', '-')} must be a number >= 0")

    def ipfs_gateways(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.ipfs_gateway.split(",") if part.strip())

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
    complete: bool  # the listing reached the end (not stopped by --max-items or an error)
    resumed: bool = False  # the API listing continued from a saved cursor
    pages: int = 0  # API pages or browser scroll steps
    seconds: float = 0.0
    cataloged: int = 0  # this collection's listed items in the catalog afterwards
    total_supply: int | None = None  # as the marketplace states it (None: it did not say)
    ignored: int = 0  # items of other collections seen on the page
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> items not cataloged (disabled, nsfw)
    stopped_by: str | None = None  # why the listing ended early: "max-items", or what went wrong
    how: str | None = None  # how the items were reached (e.g. "feed walked in CREATED_DATE:ASC, 10 pages")
    mode: str = "full"  # "incremental": newest first until known items; "full": the whole collection
    why: str | None = None  # why this mode ("--full", "first listing", "scheduled full re-list due", ...)
    removed: int = 0  # full listing: cataloged items it no longer saw, now flagged delisted
    changed: int = 0  # items whose image URL changed: their download is queued again
    delisted: int = 0  # items of the catalog flagged delisted afterwards (not counted as cataloged)

    @property
    def new_items(self) -> int:
        """Items first cataloged by this listing."""
        return self.new

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self), "new_items": self.new_items, "partial": self.partial,
            "coverage": self.coverage_line(),
        }

    @property
    def partial(self) -> bool:
        """Fewer items cataloged than the collection's total supply (or the listing did not finish)."""
        if self.total_supply is not None:
            return self.cataloged + sum(self.skipped.values()) < self.total_supply
        return not self.complete

    def coverage_line(self) -> str:
        supply = f"{self.total_supply}" if self.total_supply is not None else "an unknown number"
        line = f"cataloged {self.cataloged} of {supply} (total supply)"
        if self.skipped:
            line += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        if self.partial:
            line += " - PARTIAL"
            if self.stopped_by:
                line += f": {self.stopped_by}"
        return line

    def describe(self, *, coverage: bool = True) -> str:
        how = "the API" if self.source == "api" else "the browser"
        lines = [f"listed {self.found} items of {self.slug} with {how} ({self.new} new; catalog now {self.total})"]
        lines.append(f"  {self.mode} listing" + (f" ({self.why})" if self.why else "") + f": {self.new_items} new")
        if self.how:
            lines.append(f"  {self.how}")
        relist = self.mode == "full" and self.complete and not self.resumed and not self.partial
        if self.removed or (relist and self.why != "first listing"):
            lines.append(f"  removed since the last full listing: {self.removed} (flagged delisted, files kept)")
        if self.changed:
            lines.append(f"  changed image: {self.changed} (downloads queued again; old files kept)")
        if self.resumed:
            lines.append("  resumed from the saved API cursor")
        if self.ignored:
            lines.append(f"  ignored {self.ignored} items of other collections seen on the page")
        if self.stopped_by == "max-items":
            lines.append("  stopped at --max-items before the end of the collection")
        if coverage:
            lines.append(self.coverage_line())
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
        """Listing, downloads, and last the coverage line: ``cataloged X of Y (total supply)``."""
        return "\n".join(
            [self.listing.describe(coverage=False), self.download.describe(), self.listing.coverage_line()]
        )


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


async def _list(col: CollectionPaths, config: ScrapeConfig, progress: Progress | None) -> ListSummary:
    import httpcore

    from scraper.guard import AddressPolicy, RefusedAddress, check_url_host, connect_failure

    started = time.monotonic()
    policy = AddressPolicy(config.allow_private_hosts)
    base = config.api_base_url if config.source == "api" else config.base_url
    try:
        await check_url_host(base, policy)
    except RefusedAddress as e:
        raise NftganError(f"--{'api-' if config.source == 'api' else ''}base-url: {e.detail}") from None
    except (OSError, httpcore.ConnectError) as e:
        host = base.split("://", 1)[-1].split("/", 1)[0]
        raise SiteUnreachable(f"cannot reach {host}: {connect_failure(e)}") from None
    col.mkdirs()
    with Catalog(col.catalog) as catalog:
        mode, why = listing_plan(catalog, config)
        catalog.set_state(LISTING_STATE_KEY, json.dumps({
            "source": config.source, "mode": mode, "finished": False, "started_at": _now_iso(),
        }))
        sink = _Sink(catalog, config.source, config.max_items, progress, catalog.listing_snapshot(SOURCES))
        skipped: dict[str, int] = {}
        skipped_keys: frozenset[str] = frozenset()
        ignored, how, error = 0, None, None
        if config.source == "api":
            listing, mode, why = await _list_api(col, config, catalog, sink, mode, why)
            complete, resumed, pages = listing.complete, listing.resumed, listing.pages
            supply, skipped, error = listing.total_supply, listing.skipped, listing.stopped_by
            skipped_keys = listing.skipped_keys
            how = (f"{pages} page(s) of mint events, newest first" if mode == "incremental"
                   else f"{pages} API page(s) of up to {config.page_size}")
        else:
            browsed = await _list_browser(col, config, sink, known=sink.known if mode == "incremental" else None)
            complete, resumed, pages = browsed.complete, False, browsed.scrolls
            supply = browsed.totals.total_supply if browsed.totals else None
            ignored, error = browsed.ignored, browsed.feed_error
            how = _browser_how(browsed)
            if mode == "incremental" and not browsed.incremental and browsed.fallback:
                mode, why = "full", f"incremental walk could not reach known items: {browsed.fallback}"
        stopped_by = "max-items" if sink.full else error
        if stopped_by is None and not complete:
            stopped_by = "the listing did not reach the end of the collection"
        seen_all = supply is None or len(sink.seen) + sum(skipped.values()) >= supply
        removed = 0
        if mode == "full" and complete and stopped_by is None and not resumed and seen_all:
            # a whole listing in one go: whatever it did not see is gone from the marketplace
            gone = [k for k, st in sink.before.items()
                    if k not in sink.seen and k not in skipped_keys and st.delisted_at is None]
            removed = catalog.set_delisted(gone, _now_iso())
            catalog.set_state(LAST_FULL_LISTING_KEY, json.dumps({
                "source": config.source, "at": _now_iso(), "epoch": time.time(),
                "skipped": skipped, "skipped_keys": sorted(skipped_keys),
            }))
        elif mode == "incremental":
            skipped = _skipped_since_full(catalog, skipped, skipped_keys)
        total = len(catalog)
        cataloged = catalog.count_from(SOURCES, listed_only=True)
        summary = ListSummary(
            slug=col.slug, source=config.source, found=len(sink.seen), new=sink.new, total=total,
            complete=complete and not sink.full, resumed=resumed, pages=pages,
            seconds=round(time.monotonic() - started, 3), cataloged=cataloged, total_supply=supply,
            ignored=ignored, skipped=skipped, stopped_by=stopped_by, how=how, mode=mode, why=why,
            removed=removed, changed=len(sink.changed),
            delisted=catalog.count_from(SOURCES) - cataloged,
        )
        if summary.partial and summary.stopped_by is None and supply is not None:
            short = supply - cataloged - sum(skipped.values())
            summary = dataclasses.replace(summary, stopped_by=f"the listing ended {short} short of the total supply")
        finished = summary.complete and summary.stopped_by is None and not summary.partial
        catalog.set_state(LISTING_STATE_KEY, json.dumps({
            "source": config.source, "mode": mode, "finished": finished, "finished_at": _now_iso(),
            "new_items": summary.new_items, "removed": removed, "changed": summary.changed,
        }))
        catalog.set_state(COVERAGE_KEY, json.dumps({
            "cataloged": cataloged, "total_supply": supply, "partial": summary.partial,
            "source": config.source, "stopped_by": summary.stopped_by, "skipped": skipped,
            "mode": mode, "new_items": summary.new_items, "at": _now_iso(),
        }))
    return summary


def listing_plan(catalog: Catalog, config: ScrapeConfig, *, now: float | None = None) -> tuple[str, str]:
    """``(mode, why)`` of the next listing: "incremental" when the catalog holds a finished listing of the
    same source and a full listing newer than ``config.full_every_days``; else "full", and why."""
    from scraper import source_api

    now = time.time() if now is None else now
    if config.full:
        return "full", "--full"
    if config.full_every_days == 0:
        return "full", "--full-every-days 0: every listing is full"
    if config.source == "api" and config.restart_listing:
        return "full", "--restart-listing"
    last = _state_json(catalog, LISTING_STATE_KEY)
    if last is None:
        return "full", "first listing"
    if last.get("source") != config.source:
        return "full", f"the last listing used the {last.get('source')} source"
    if not last.get("finished"):
        return "full", "the last listing did not finish"
    if config.source == "api" and catalog.get_state(source_api.CURSOR_KEY):
        return "full", "an unfinished API listing resumes from its cursor"
    full = _state_json(catalog, LAST_FULL_LISTING_KEY)
    epoch = full.get("epoch") if full else None
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        return "full", "no finished full listing recorded"
    age_days = max(0.0, now - epoch) / 86400
    if age_days >= config.full_every_days:
        return "full", (f"scheduled full re-list due: the last full listing is {age_days:.1f} days old "
                        f"(--full-every-days {config.full_every_days:g})")
    return "incremental", f"the last full listing is {age_days:.1f} days old"


def image_identity(url: str) -> str:
    """What identifies an image URL across listings: scheme, host and path, without the query (a CDN's
    ``w=``/``auto=`` differ between the page's cards and its feed) or fragment."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


def _state_json(catalog: Catalog, key: str) -> dict[str, Any] | None:
    text = catalog.get_state(key)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _skipped_since_full(catalog: Catalog, walk: dict[str, int], walk_keys: frozenset[str]) -> dict[str, int]:
    """What an incremental listing reports as skipped: the last full listing's skipped tokens (a walk of the
    newest items does not meet the older disabled or NSFW ones) plus the new ones this walk skipped."""
    last = _state_json(catalog, LAST_FULL_LISTING_KEY) or {}
    before, before_keys = last.get("skipped") or {}, set(last.get("skipped_keys") or ())
    merged = {k: int(v) for k, v in before.items()} if isinstance(before, dict) else {}
    new_keys = set(walk_keys) - before_keys
    if new_keys and new_keys == set(walk_keys):  # every token the walk skipped is new: add the walk's counts
        for reason, n in walk.items():
            merged[reason] = merged.get(reason, 0) + n
    elif new_keys:  # some old, some new: the reasons of the new ones are not told apart
        merged["skipped"] = merged.get("skipped", 0) + len(new_keys)
    return merged


def _browser_how(b: BrowserListing) -> str:
    parts = [f"{b.from_inline} from the inlined first page", f"{b.from_dom} from cards",
             f"{b.from_network} from the page's feed"]
    if b.feed_ordering:
        parts.append(f"feed walked in {b.feed_ordering} ({b.feed_pages} page(s))")
    return "; ".join(parts)


async def _list_api(
    col: CollectionPaths, config: ScrapeConfig, catalog: Catalog, sink: _Sink, mode: str, why: str,
) -> tuple[ApiListing, str, str]:
    """The API listing: mint events newest first when ``mode`` is incremental, else (or when that walk
    cannot show it reached the known tokens) the whole ``/nfts`` listing. Returns the listing, its mode
    and why."""
    from scraper import source_api

    key = config.resolved_api_key()
    host = config.api_base_url.lower().split("://", 1)[1].split("/", 1)[0]
    if not key and (host == "opensea.io" or host.endswith(".opensea.io")):
        raise NftganError(f"the API source needs an OpenSea API key: pass --api-key or set {API_KEY_ENV}")
    if config.restart_listing:
        catalog.set_state(source_api.CURSOR_KEY, None)
        catalog.set_state(source_api.CURSOR_OWNER_KEY, None)
    common = dict(
        catalog=catalog, slug=col.slug, api_base_url=config.api_base_url, api_key=key,
        page_size=config.page_size, timeout_s=config.timeout_s, retry=config.retry_policy(),
        allow_private_hosts=config.allow_private_hosts, add=sink.add, skip_nsfw=config.skip_nsfw,
        max_rate_wait_s=config.max_rate_wait_s,
    )
    walked = 0
    if mode == "incremental":
        inc = await source_api.list_api_incremental(known=sink.known, **common)  # type: ignore[arg-type]
        if inc.reached_known or sink.full:
            return source_api.ApiListing(
                pages=inc.pages, complete=inc.reached_known, resumed=False, total_supply=inc.total_supply,
                skipped=inc.skipped, skipped_keys=inc.skipped_keys,
                stopped_by=None if inc.reached_known else inc.error,
            ), mode, why
        mode, why, walked = "full", f"incremental walk could not reach known items: {inc.error}", inc.pages
    listing = await source_api.list_api(**common)  # type: ignore[arg-type]
    return dataclasses.replace(listing, pages=listing.pages + walked), mode, why


async def _list_browser(
    col: CollectionPaths, config: ScrapeConfig, sink: _Sink, *, known: Any = None,
) -> BrowserListing:
    from scraper.source_browser import BrowserOptions, list_browser

    options = BrowserOptions(
        chromium_path=config.chromium_path, headless=config.headless, page_timeout_s=config.page_timeout_s,
        page_retries=config.page_retries, interstitial_wait_s=config.interstitial_wait_s,
        idle_scrolls=config.idle_scrolls, backoff_initial_s=config.backoff_initial_s,
        backoff_max_s=config.backoff_max_s,
    )
    url = f"{config.base_url.rstrip('/')}/collection/{col.slug}"
    return await list_browser(url=url, slug=col.slug, options=options, add=sink.add, known=known)


async def _download(col: CollectionPaths, config: ScrapeConfig, progress: Progress | None) -> DownloadSummary:
    from pipeline.storage import store_bytes
    from scraper.download import Downloader, DownloadOptions, Outcome, fetch_all
    from scraper.urls import BadUrl, decode_data_uri, download_urls

    started = time.monotonic()
    col.mkdirs()
    atomic.remove_stale_temps(col.images)  # temp files of a killed run (we hold the scrape lock)
    with Catalog(col.catalog) as catalog:
        _requeue_missing_files(col, catalog)
        # not imported files, nor items the marketplace no longer lists
        todo = [it for it in catalog.items(("pending", "failed")) if it.source in SOURCES and it.delisted_at is None]
        tally = _Tally(col, catalog, len(todo), progress)
        choices: dict[int, list[str]] = {}  # item id -> URLs to try in turn (one per IPFS gateway)
        for item in todo:
            try:
                urls = download_urls(
                    item.image_url, ipfs_gateways=config.ipfs_gateways(), arweave_gateway=config.arweave_gateway,
                    image_width_px=config.image_width,
                )
            except BadUrl as e:
                tally.record([item], "failed", reason=e.reason, detail=e.detail)
                continue
            if urls[0].lower().startswith("data:"):  # decoded here: nothing to fetch
                try:
                    data = decode_data_uri(urls[0], config.max_bytes)
                except BadUrl as e:
                    tally.record([item], "failed", reason=e.reason, detail=e.detail)
                    continue
                stored = store_bytes(col, data, sync=False)
                status, reason, detail = _sniffed_status(stored)
                tally.record([item], status, stored=stored if status == "downloaded" else None, reason=reason,
                             detail=detail)
                continue
            choices[item.id] = urls
        tally.commit()
        tally.report()
        options = DownloadOptions(
            concurrency=config.concurrency, per_host_limit=config.per_host_limit, timeout_s=config.timeout_s,
            max_bytes=config.max_bytes, retry=config.retry_policy(), allow_private_hosts=config.allow_private_hosts,
        )
        items = {it.id: it for it in todo}
        n_urls = 0
        try:
            async with Downloader(col, options) as downloader:
                turn = 0
                while choices:  # turn k fetches each item's k-th URL; only failures go on to the next turn
                    by_url: dict[str, list[Item]] = {}  # items sharing an image URL share one download
                    for item_id, urls in choices.items():
                        by_url.setdefault(urls[min(turn, len(urls) - 1)], []).append(items[item_id])
                    n_urls += len(by_url)
                    retry_next: dict[int, list[str]] = {}

                    async def on_outcome(o: Outcome) -> None:
                        done = []
                        for item in by_url[o.url]:
                            if o.status == "failed" and turn + 1 < len(choices[item.id]):
                                retry_next[item.id] = choices[item.id]  # the next gateway gets a try
                            else:
                                done.append(item)
                        if done:
                            tally.record(done, o.status, stored=o.stored, reason=o.reason, detail=o.detail)
                        if tally.due:
                            await tally.commit_async()

                    await fetch_all(downloader, list(by_url), on_outcome)
                    choices, turn = retry_next, turn + 1
        finally:
            tally.commit()
        skipped = len(catalog) - len(todo)
    return DownloadSummary(
        slug=col.slug, attempted=len(todo), downloaded=tally.downloaded, skipped=skipped, failed=dict(tally.failed),
        rejected=dict(tally.rejected), urls=n_urls, bytes=tally.bytes,
        seconds=round(time.monotonic() - started, 3),
    )


def _sniffed_status(stored: Stored) -> tuple[str, str | None, str | None]:
    """What a stored ``data:`` image becomes: downloaded, or failed when its bytes are not an image."""
    from pipeline.sniff import IMAGE_KINDS

    if stored.kind in IMAGE_KINDS:
        return "downloaded", None, None
    return "failed", f"not-an-image:{stored.kind}", f"the data: URI holds {stored.kind}, not an image"


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


def _requeue_missing_files(col: CollectionPaths, catalog: Catalog) -> None:
    """Downloaded (scraped) items whose file is gone, deleted by hand, go back to pending."""
    missing = [
        (it.id, {"status": "pending", "sha256": None, "stored_path": None})
        for it in catalog.items(("downloaded",))
        if it.source in SOURCES and (not it.stored_path or not col.resolve(it.stored_path).is_file())
    ]
    catalog.update_many(missing)
