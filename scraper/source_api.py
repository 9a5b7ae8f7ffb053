"""The API source: OpenSea's API v2 collection listing, page by page, resumable from a saved cursor.

``GET <api-base>/api/v2/collection/<slug>/nfts?limit=N&next=<cursor>`` with ``X-API-KEY``, following
``next`` until it is absent. Each page's items and the cursor after it are committed in one catalog
transaction, so an interrupted listing resumes at the page after the last one saved; a finished listing
clears the cursor, so the next scrape starts over and adds only new items.

An incremental listing (:func:`list_api_incremental`) cannot use that endpoint: OpenSea documents no
order for ``/collection/<slug>/nfts`` (only ``limit``, ``next`` and trait filters), so "stop where the
known items begin" has nothing to stand on there. It walks the collection's mint events instead,
``GET <api-base>/api/v2/events/collection/<slug>?event_type=mint&limit=N&next=<cursor>``, which the API
serves newest first by event time, each event carrying its ``nft`` record, and stops after the first
page whose tokens are all known.
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

#: catalog state keys: the cursor of an unfinished listing, and the listing it belongs to
CURSOR_KEY = "api.cursor"
CURSOR_OWNER_KEY = "api.cursor_for"
#: the largest page OpenSea's API serves
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ApiListing:
    pages: int
    complete: bool  # reached the end (no ``next``), not stopped by max_items
    resumed: bool  # started from a saved cursor
    total_supply: int | None = None  # from GET /api/v2/collections/<slug>
    skipped: dict[str, int] = field(default_factory=dict)  # "disabled" / "nsfw" -> items not cataloged
    stopped_by: str | None = None  # why it stopped early (a rate-limit wait longer than allowed)
    skipped_keys: frozenset[str] = frozenset()  # item keys of the skipped items (seen, not cataloged)


@dataclass(frozen=True)
class ApiIncremental:
    """An incremental listing by mint events, newest first."""

    pages: int
    reached_known: bool  # stopped at a page of only known tokens: everything older is cataloged
    total_supply: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_keys: frozenset[str] = frozenset()
    error: str | None = None  # why the walk could not show that it reached the known tokens


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
    resolver: Resolver | None = None,
    skip_nsfw: bool = False,
    max_rate_wait_s: float = 3600.0,
    sleep: Callable[[float], Any] | None = None,
    pacer: RatePacer | None = None,
) -> ApiListing:
    """List the collection into the catalog; ``add`` takes each page's items and returns False to stop.

    Disabled items are skipped (and counted), NSFW ones are recorded, or skipped with ``skip_nsfw``. The
    API's announced rate limit is respected (:class:`RatePacer`); a wait for the window to reset that is
    longer than ``max_rate_wait_s`` ends the listing early with its cursor saved, so the next run resumes.
    """
    import asyncio

    sleep = sleep or asyncio.sleep
    pacer = pacer or RatePacer()
    url = f"{api_base_url.rstrip('/')}/api/v2/collection/{quote(slug)}/nfts"
    owner = f"{url}?limit={page_size}"
    cursor = catalog.get_state(CURSOR_KEY) if catalog.get_state(CURSOR_OWNER_KEY) == owner else None
    resumed = cursor is not None
    client = _client(api_key, timeout_s, allow_private_hosts, resolver)
    pages = 0
    skipped: Counter[str] = Counter()
    skipped_keys: set[str] = set()
    async with client:
        supply = await _total_supply(client, f"{api_base_url.rstrip('/')}/api/v2/collections/{quote(slug)}", pacer)
        while True:
            wait = pacer.wait_s()
            if pacer.exhausted and wait > max_rate_wait_s:
                return ApiListing(
                    pages=pages, complete=False, resumed=resumed, total_supply=supply, skipped=dict(skipped),
                    skipped_keys=frozenset(skipped_keys), stopped_by=f"the API's rate limit asks for a {wait:.0f} s wait (more than --max-rate-wait "
                    f"{max_rate_wait_s:g} s); the cursor is saved: re-run to resume",
                )
            if wait > 0:
                await sleep(wait)
            params = {"limit": str(page_size)}
            if cursor:
                params["next"] = cursor
            doc = await _get_page(client, url, params, retry, pages_done=pages, resumed=resumed, pacer=pacer)
            nfts = doc.get("nfts")
            if not isinstance(nfts, list):
                raise NftganError(
                    f"the API answer for {slug!r} has no 'nfts' list; is {api_base_url} OpenSea's API v2?"
                )
            items = _items(nfts, skip_nsfw, skipped, skipped_keys)
            next_cursor = doc.get("next") if isinstance(doc.get("next"), str) and doc.get("next") else None
            pages += 1
            with catalog.transaction():
                go_on = add(items)
                if next_cursor and go_on:
                    catalog.set_state(CURSOR_KEY, next_cursor)
                    catalog.set_state(CURSOR_OWNER_KEY, owner)
                else:  # finished (or stopped on purpose): the next listing starts from the top
                    catalog.set_state(CURSOR_KEY, None)
                    catalog.set_state(CURSOR_OWNER_KEY, None)
            if not next_cursor or not go_on:
                return ApiListing(
                    pages=pages, complete=next_cursor is None, resumed=resumed, total_supply=supply,
                    skipped=dict(skipped), skipped_keys=frozenset(skipped_keys),
                )
            cursor = next_cursor


async def list_api_incremental(
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
    known: Callable[[str], bool],
    resolver: Resolver | None = None,
    skip_nsfw: bool = False,
    max_rate_wait_s: float = 3600.0,
    sleep: Callable[[float], Any] | None = None,
    pacer: RatePacer | None = None,
) -> ApiIncremental:
    """List what is new: mint events newest first, until a page whose tokens are all ``known`` (or the
    last page, when the walk reached known tokens on the way: a small collection fits in one page).

    Nothing is resumable here (no cursor is saved): a walk that stops early, fails, or ends without a
    page of known tokens reports why in ``error`` and the caller lists in full. A host that cannot be
    reached or refuses the key raises, as the full listing would.
    """
    import asyncio

    sleep = sleep or asyncio.sleep
    pacer = pacer or RatePacer()
    base = api_base_url.rstrip("/")
    url = f"{base}/api/v2/events/collection/{quote(slug)}"
    client = _client(api_key, timeout_s, allow_private_hosts, resolver)
    pages = 0
    skipped: Counter[str] = Counter()
    skipped_keys: set[str] = set()
    cursor: str | None = None
    saw_known = False

    def result(reached: bool, error: str | None = None) -> ApiIncremental:
        return ApiIncremental(
            pages=pages, reached_known=reached, total_supply=supply, skipped=dict(skipped),
            skipped_keys=frozenset(skipped_keys), error=error,
        )

    async with client:
        supply = await _total_supply(client, f"{base}/api/v2/collections/{quote(slug)}", pacer)
        while True:
            wait = pacer.wait_s()
            if pacer.exhausted and wait > max_rate_wait_s:
                return result(False, f"the API's rate limit asks for a {wait:.0f} s wait")
            if wait > 0:
                await sleep(wait)
            params = {"event_type": "mint", "limit": str(page_size)}
            if cursor:
                params["next"] = cursor
            try:
                doc = await _get_page(client, url, params, retry, pages_done=pages, resumed=False, pacer=pacer)
            except (SiteUnreachable, SiteRefused):
                raise
            except NftganError as e:
                return result(False, f"the events endpoint failed: {e}")
            events = doc.get("asset_events")
            if not isinstance(events, list):
                return result(False, "the events answer has no 'asset_events' list")
            nfts = []
            for event in events:
                if isinstance(event, dict) and isinstance(event.get("nft"), dict):
                    nft = dict(event["nft"])
                    if not isinstance(nft.get("chain"), str) and isinstance(event.get("chain"), str):
                        nft["chain"] = event["chain"]
                    if nft.get("collection") in (None, slug):
                        nfts.append(nft)
            items = _items(nfts, skip_nsfw, skipped, skipped_keys)
            pages += 1
            with catalog.transaction():
                go_on = add(items)
            if not go_on:
                return result(False, "stopped at --max-items")
            if items and all(known(it.item_key) for it in items):
                return result(True)
            saw_known = saw_known or any(known(it.item_key) for it in items)
            next_cursor = doc.get("next") if isinstance(doc.get("next"), str) and doc.get("next") else None
            if next_cursor is None:
                if saw_known:  # every mint was walked, and it reached tokens the catalog had: nothing is missing
                    return result(True)
                return result(False, f"the mint events ended ({pages} page(s)) without reaching a known token")
            if next_cursor == cursor:
                return result(False, "the events endpoint answered the same cursor twice")
            cursor = next_cursor


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
    resumed: bool, pacer: RatePacer,
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

