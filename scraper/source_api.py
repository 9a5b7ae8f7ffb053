"""The API source: OpenSea's API v2 collection listing, page by page, resumable from a saved cursor.

``GET <api-base>/api/v2/collection/<slug>/nfts?limit=N&next=<cursor>`` with ``X-API-KEY``, following
``next`` until it is absent. Each page's items and the cursor after it are committed in one catalog
transaction, so an interrupted listing resumes at the page after the last one saved; a finished listing
clears the cursor, so the next scrape starts over and adds only new items.

An incremental listing (:func:`list_api` with ``known``) cannot use that endpoint: OpenSea documents no
order for ``/collection/<slug>/nfts`` (only ``limit``, ``next`` and trait filters), so "stop where the
known items begin" has nothing to stand on there. It walks the collection's mint events instead,
``GET <api-base>/api/v2/events/collection/<slug>?event_type=mint&limit=N&next=<cursor>``, which the API
serves newest first by event time, each event carrying its ``nft`` record, and stops after the first
page whose tokens are all known. Both are orderings of :mod:`scraper.walk`, whose one walker follows
the cursors and decides when an incremental walk falls back to the full listing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpcore
import httpx

from pipeline.catalog import Catalog
from pipeline.errors import NftganError, SiteRefused, SiteUnreachable
from scraper.backoff import RetryableStatus, RetryPolicy, is_transient, raise_if_retryable
from scraper.download import USER_AGENT
from scraper.guard import AddressPolicy, GuardedTransport, RefusedAddress, Resolver, connect_failure
from scraper.listing import ListedItem, item_from_api_nft
from scraper.walk import Page, PageFailed, Walk, list_pages

#: catalog state keys: the cursor of an unfinished listing, and the listing it belongs to
CURSOR_KEY = "api.cursor"
CURSOR_OWNER_KEY = "api.cursor_for"
#: the largest page OpenSea's API serves
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ApiListing:
    walk: Walk  # the pages walked, the ordering, whether incremental, why it fell back
    resumed: bool  # the full listing started from a saved cursor
    total_supply: int | None = None  # from GET /api/v2/collections/<slug>
    skipped: dict[str, int] = field(default_factory=dict)  # "disabled" / "nsfw" -> items not cataloged
    skipped_keys: frozenset[str] = frozenset()  # item keys of the skipped items (seen, not cataloged)

    @property
    def complete(self) -> bool:
        """Reached the end (or, incremental, the known tokens), not stopped by max_items or an error."""
        return self.walk.complete

    @property
    def stopped_by(self) -> str | None:
        """Why it stopped early (a rate-limit wait longer than allowed, a failed page)."""
        return self.walk.error


class RatePacer:
    """Spaces requests by what the API announces (``X-RateLimit-Limit/Remaining/Reset``).

    While more than a tenth of the window's requests remain, requests go as fast as answers come; below
    that, the remaining ones are spread evenly until the window resets; with none left, the next request
    waits for the reset. ``Reset`` is a Unix time in seconds (small values are read as seconds from now).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: float | None = None

    def observe(self, headers: Any) -> None:
        def number(name: str) -> float | None:
            try:
                return float(headers.get(name))
            except (TypeError, ValueError):
                return None

        limit, remaining, reset = (number(f"x-ratelimit-{k}") for k in ("limit", "remaining", "reset"))
        if limit is None or remaining is None or reset is None:
            return
        now = self.clock()
        self.limit, self.remaining = int(limit), int(remaining)
        self.reset_at = reset if reset > 1e9 else now + reset

    def wait_s(self) -> float:
        """Seconds to wait before the next request."""
        if self.remaining is None or self.reset_at is None or self.limit is None:
            return 0.0
        left = max(0.0, self.reset_at - self.clock())
        if self.remaining <= 0:
            return left
        if self.remaining > max(1, self.limit // 10):
            return 0.0
        return left / (self.remaining + 1)

    @property
    def exhausted(self) -> bool:
        """No request left in the announced window: the next one waits for the reset."""
        return self.remaining is not None and self.remaining <= 0 and self.wait_s() > 0


async def list_api(
    *,
    catalog: Catalog,
    slug: str,
    api_base_url: str,
    api_key: str | None,
    page_size: int,
    timeout_s: float,
    retry: RetryPolicy,
    allow_private_hosts: bool,
    add: Callable[[list[ListedItem]], bool],
    known: Callable[[str], bool] | None = None,
    resolver: Resolver | None = None,
    skip_nsfw: bool = False,
    max_rate_wait_s: float = 3600.0,
    sleep: Callable[[float], Any] | None = None,
    pacer: RatePacer | None = None,
) -> ApiListing:
    """List the collection into the catalog; ``add`` takes each page's items and returns False to stop.

    With ``known`` the listing is incremental: the mint events newest first until a page whose tokens are
    all known, else (:func:`scraper.walk.list_pages` decides) the whole ``/nfts`` listing, resumed from
    its saved cursor. Disabled items are skipped (and counted), NSFW ones are recorded, or skipped with
    ``skip_nsfw``. The API's announced rate limit is respected (:class:`RatePacer`); a wait for the window
    to reset that is longer than ``max_rate_wait_s`` ends the listing early with its cursor saved, so the
    next run resumes. A host that cannot be reached or refuses the key raises.
    """
    import asyncio

    base = api_base_url.rstrip("/")
    source = _Source(
        catalog=catalog, slug=slug, client=_client(api_key, timeout_s, allow_private_hosts, resolver), retry=retry,
        pacer=pacer or RatePacer(), sleep=sleep or asyncio.sleep, max_rate_wait_s=max_rate_wait_s,
        skip_nsfw=skip_nsfw, add=add, base=base,
    )
    nfts = _Nfts(source, page_size)
    cursor = catalog.get_state(CURSOR_KEY) if catalog.get_state(CURSOR_OWNER_KEY) == nfts.owner else None
    async with source.client:
        supply = await _total_supply(source.client, f"{base}/api/v2/collections/{quote(slug)}", source.pacer)
        walk = await list_pages(full=[nfts], newest=_MintEvents(source, page_size), known=known, resume=cursor)
    return ApiListing(
        walk=walk, resumed=cursor is not None and walk.mode == "full", total_supply=supply,
        skipped=dict(source.skipped), skipped_keys=frozenset(source.skipped_keys),
    )


@dataclass
class _Source:
    """What the API's orderings share: the client, retries, the rate pacer, the sink, the skipped tokens."""

    catalog: Catalog
    slug: str
    client: httpx.AsyncClient
    retry: RetryPolicy
    pacer: RatePacer
    sleep: Callable[[float], Any]
    max_rate_wait_s: float
    skip_nsfw: bool
    add: Callable[[list[ListedItem]], bool]
    base: str
    pages: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_keys: set[str] = field(default_factory=set)

    async def get(self, url: str, params: dict[str, str], *, resumable: bool) -> dict[str, Any]:
        wait = self.pacer.wait_s()
        if self.pacer.exhausted and wait > self.max_rate_wait_s:
            saved = "; the cursor is saved: re-run to resume" if resumable else ""
            raise PageFailed(f"the API's rate limit asks for a {wait:.0f} s wait (more than --max-rate-wait "
                             f"{self.max_rate_wait_s:g} s){saved}", other_orderings=False)
        if wait > 0:
            await self.sleep(wait)
        doc = await _get_page(self.client, url, params, self.retry, pages_done=self.pages, pacer=self.pacer)
        self.pages += 1
        return doc

    def items(self, nfts: list[Any]) -> list[ListedItem]:
        return _items(nfts, self.skip_nsfw, self.skipped, self.skipped_keys)


def _next(doc: dict[str, Any]) -> str | None:
    return doc.get("next") if isinstance(doc.get("next"), str) and doc.get("next") else None


class _Nfts:
    """``/collection/<slug>/nfts``: the whole collection in the API's own order, its cursor saved with each
    page's items in one transaction (a stopped listing resumes at the page after the last one saved)."""

    end_is_full = True

    def __init__(self, source: _Source, page_size: int) -> None:
        self.source, self.page_size = source, page_size
        self.url = f"{source.base}/api/v2/collection/{quote(source.slug)}/nfts"
        self.owner = f"{self.url}?limit={page_size}"
        self.name = f"API pages of up to {page_size}"

    async def page(self, cursor: str | None) -> Page:
        params = {"limit": str(self.page_size), **({"next": cursor} if cursor else {})}
        doc = await self.source.get(self.url, params, resumable=True)
        nfts = doc.get("nfts")
        if not isinstance(nfts, list):
            raise NftganError(
                f"the API answer for {self.source.slug!r} has no 'nfts' list; is {self.source.base} OpenSea's API v2?"
            )
        return Page(self.source.items(nfts), _next(doc))

    def commit(self, page: Page) -> bool:
        catalog = self.source.catalog
        with catalog.transaction():
            go_on = self.source.add(page.items)
            more = page.cursor is not None and go_on
            catalog.set_state(CURSOR_KEY, page.cursor if more else None)  # finished: the next one starts over
            catalog.set_state(CURSOR_OWNER_KEY, self.owner if more else None)
        return go_on


class _MintEvents:
    """``/events/collection/<slug>?event_type=mint``: newest first by event time, each event with its
    ``nft`` record. Nothing is saved: an incremental walk that stops is simply walked again. A failed
    page (other than an unreachable host or a refused key, which raise) gives way to the full listing."""

    end_is_full = False  # tokens minted outside the events the API keeps would be missed

    def __init__(self, source: _Source, page_size: int) -> None:
        self.source, self.page_size = source, page_size
        self.url = f"{source.base}/api/v2/events/collection/{quote(source.slug)}"
        self.name = "mint events, newest first"

    async def page(self, cursor: str | None) -> Page:
        params = {"event_type": "mint", "limit": str(self.page_size), **({"next": cursor} if cursor else {})}
        try:
            doc = await self.source.get(self.url, params, resumable=False)
        except (SiteUnreachable, SiteRefused):
            raise
        except NftganError as e:
            raise PageFailed(f"the events endpoint failed: {e}") from None
        events = doc.get("asset_events")
        if not isinstance(events, list):
            raise PageFailed("the events answer has no 'asset_events' list")
        nfts = []
        for event in events:
            if isinstance(event, dict) and isinstance(event.get("nft"), dict):
                nft = dict(event["nft"])
                if not isinstance(nft.get("chain"), str) and isinstance(event.get("chain"), str):
                    nft["chain"] = event["chain"]
                if nft.get("collection") in (None, self.source.slug):
                    nfts.append(nft)
        return Page(self.source.items(nfts), _next(doc))

    def commit(self, page: Page) -> bool:
        with self.source.catalog.transaction():
            return self.source.add(page.items)


def _client(
    api_key: str | None, timeout_s: float, allow_private_hosts: bool, resolver: Resolver | None,
) -> httpx.AsyncClient:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["X-API-KEY"] = api_key
    return httpx.AsyncClient(
        transport=GuardedTransport(AddressPolicy(allow_private_hosts), max_connections=2, resolver=resolver),
        timeout=httpx.Timeout(timeout_s), headers=headers, follow_redirects=True, max_redirects=3,
    )


def _items(nfts: list[Any], skip_nsfw: bool, skipped: Counter[str], skipped_keys: set[str]) -> list[ListedItem]:
    """The items of API ``nfts`` records; disabled ones (and NSFW ones with ``skip_nsfw``) are counted."""
    items = []
    for n in nfts:
        if not isinstance(n, dict):
            continue
        it = item_from_api_nft(n)
        if n.get("is_disabled") is True:
            skipped["disabled"] += 1
        elif skip_nsfw and n.get("is_nsfw") is True:
            skipped["nsfw"] += 1
        elif it is not None:
            items.append(it)
            continue
        if it is not None:
            skipped_keys.add(it.item_key)
    return items


async def _total_supply(client: httpx.AsyncClient, url: str, pacer: RatePacer) -> int | None:
    """The collection's total supply (``GET /api/v2/collections/<slug>``), None if it cannot be read."""
    try:
        response = await client.get(url)
    except (httpx.HTTPError, RefusedAddress):
        return None
    pacer.observe(response.headers)
    if response.status_code != 200:
        return None
    try:
        value = json.loads(response.content).get("total_supply")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _get_page(
    client: httpx.AsyncClient, url: str, params: dict[str, str], retry: RetryPolicy, *, pages_done: int,
    pacer: RatePacer,
) -> dict[str, Any]:
    try:
        async for attempt in retry.retrying(is_transient):
            with attempt:
                response = await client.get(url, params=params)
                pacer.observe(response.headers)
                raise_if_retryable(response)
                status = response.status_code
    except RetryableStatus as e:
        raise NftganError(
            f"the OpenSea API kept answering HTTP {e.status} after retries; {pages_done} page(s) were saved "
            "and re-running resumes from the saved cursor"
        ) from None
    except (httpx.HTTPError, httpcore.ConnectError) as e:
        why = "it timed out" if isinstance(e, httpx.TimeoutException) else connect_failure(e)
        raise SiteUnreachable(
            f"cannot reach {httpx.URL(url).netloc.decode()}: {why}; {pages_done} page(s) saved, re-running resumes from the "
            "saved cursor"
        ) from None
    except RefusedAddress as e:
        raise NftganError(f"{e.detail} (the API URL)") from None
    if status in (401, 403):
        raise SiteRefused(
            f"the OpenSea API refused the request (HTTP {status}): pass a valid key with --api-key or "
            "OPENSEA_API_KEY"
        )
    if status == 404:
        raise NftganError(f"the OpenSea API does not know this collection (HTTP 404 for {url})")
    if status == 400 and "next" in params:
        raise NftganError(
            "the OpenSea API rejected the saved cursor (HTTP 400); start the listing over with --restart-listing"
        )
    if status != 200:
        raise NftganError(f"the OpenSea API answered HTTP {status} for {url}: {response.text[:200]!r}")
    try:
        doc = json.loads(response.content)
    except ValueError:
        raise NftganError(f"the OpenSea API at {url} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise NftganError(f"the OpenSea API at {url} answered JSON that is not an object")
    return doc

