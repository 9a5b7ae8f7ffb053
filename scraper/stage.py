"""The scrape stage's orchestration: ``list_items``, ``download_items`` and ``scrape`` (both).

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
import contextlib
import dataclasses
import json
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline import atomic
from pipeline.catalog import COVERAGE_STATE_KEY, LAST_FULL_LISTING_KEY, LISTING_STATE_KEY, Catalog, Item
from pipeline.errors import NftganError, SiteUnreachable
from pipeline.locks import exclusive_lock
from pipeline.progress import Progress
from pipeline.storage import Stored
from pipeline.workspace import CollectionPaths, Workspace
from scraper.config import API_KEY_ENV, SOURCES, ScrapeConfig
from scraper.sinks import DownloadTally, ListingSink
from scraper.summaries import DownloadSummary, ListSummary, ScrapeSummary

if TYPE_CHECKING:  # heavy at import time: playwright, httpx
    from scraper.source_api import ApiListing
    from scraper.source_browser import BrowserListing

#: catalog state key: the coverage of the last listing (JSON), read by ``nftgan status``
COVERAGE_KEY = COVERAGE_STATE_KEY

T = TypeVar("T")


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
        sink = ListingSink(catalog, config.source, config.max_items, progress, catalog.listing_snapshot(SOURCES))
        known = sink.known if mode == "incremental" else None
        skipped: dict[str, int] = {}
        skipped_keys: frozenset[str] = frozenset()
        if config.source == "api":
            listing = await _list_api(col, config, catalog, sink, known)
            walk, complete, resumed, pages, ignored = listing.walk, listing.complete, listing.resumed, listing.walk.pages, 0
            supply, skipped, skipped_keys = listing.total_supply, listing.skipped, listing.skipped_keys
            how = f"{pages} page(s) of {walk.ordering}"
        else:
            browsed = await _list_browser(col, config, sink, known=known)
            walk, complete, resumed, pages, ignored = browsed.walk, browsed.complete, False, browsed.scrolls, browsed.ignored
            supply = browsed.totals.total_supply if browsed.totals else None
            how = _browser_how(browsed)
        error = walk.error
        if mode == "incremental" and walk.mode == "full":  # scraper.walk decided: the walk became a full listing
            mode, why = "full", f"incremental walk could not reach known items: {walk.fallback}"
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
    if b.walk.ordering:
        parts.append(f"feed walked in {b.walk.ordering} ({b.walk.pages} page(s))")
    return "; ".join(parts)


async def _list_api(
    col: CollectionPaths, config: ScrapeConfig, catalog: Catalog, sink: ListingSink, known: Any,
) -> ApiListing:
    """The API listing (``known``: incremental, see :func:`scraper.source_api.list_api`)."""
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
        allow_private_hosts=config.allow_private_hosts, add=sink.add, known=known, skip_nsfw=config.skip_nsfw,
        max_rate_wait_s=config.max_rate_wait_s,
    )


async def _list_browser(
    col: CollectionPaths, config: ScrapeConfig, sink: ListingSink, *, known: Any = None,
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
        tally = DownloadTally(col, catalog, len(todo), progress)
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


def _requeue_missing_files(col: CollectionPaths, catalog: Catalog) -> None:
    """Downloaded (scraped) items whose file is gone, deleted by hand, go back to pending."""
    missing = [
        (it.id, {"status": "pending", "sha256": None, "stored_path": None})
        for it in catalog.items(("downloaded",))
        if it.source in SOURCES and (not it.stored_path or not col.resolve(it.stored_path).is_file())
    ]
    catalog.update_many(missing)
