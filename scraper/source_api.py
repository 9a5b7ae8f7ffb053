"""The API source: OpenSea's API v2 collection listing, page by page, resumable from a saved cursor.

``GET <api-base>/api/v2/collection/<slug>/nfts?limit=N&next=<cursor>`` with ``X-API-KEY``, following
``next`` until it is absent. Each page's items and the cursor after it are committed in one catalog
transaction, so an interrupted listing resumes at the page after the last one saved; a finished listing
clears the cursor, so the next scrape starts over and adds only new items.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from scraper.backoff import RetryableStatus, RetryPolicy, is_transient, raise_if_retryable
from scraper.download import USER_AGENT
from scraper.guard import AddressPolicy, GuardedTransport, RefusedAddress, Resolver
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
) -> ApiListing:
    """List the collection into the catalog; ``add`` takes each page's items and returns False to stop."""
    url = f"{api_base_url.rstrip('/')}/api/v2/collection/{quote(slug)}/nfts"
    owner = f"{url}?limit={page_size}"
    cursor = catalog.get_state(CURSOR_KEY) if catalog.get_state(CURSOR_OWNER_KEY) == owner else None
    resumed = cursor is not None
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["X-API-KEY"] = api_key
    client = httpx.AsyncClient(
        transport=GuardedTransport(AddressPolicy(allow_private_hosts), max_connections=2, resolver=resolver),
        timeout=httpx.Timeout(timeout_s), headers=headers, follow_redirects=True, max_redirects=3,
    )
    pages = 0
    async with client:
        while True:
            params = {"limit": str(page_size)}
            if cursor:
                params["next"] = cursor
            doc = await _get_page(client, url, params, retry, pages_done=pages, resumed=resumed)
            nfts = doc.get("nfts")
            if not isinstance(nfts, list):
                raise NftganError(
                    f"the API answer for {slug!r} has no 'nfts' list; is {api_base_url} OpenSea's API v2?"
                )
            items = [it for it in (item_from_api_nft(n) for n in nfts if isinstance(n, dict)) if it is not None]
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
                return ApiListing(pages=pages, complete=next_cursor is None, resumed=resumed)
            cursor = next_cursor


async def _get_page(
    client: httpx.AsyncClient, url: str, params: dict[str, str], retry: RetryPolicy, *, pages_done: int,
    resumed: bool,
) -> dict[str, Any]:
    try:
        async for attempt in retry.retrying(is_transient):
            with attempt:
                response = await client.get(url, params=params)
                raise_if_retryable(response)
                status = response.status_code
    except RetryableStatus as e:
        raise NftganError(
            f"the OpenSea API kept answering HTTP {e.status} after retries; {pages_done} page(s) were saved "
            "and re-running resumes from the saved cursor"
        ) from None
    except httpx.HTTPError as e:
        raise NftganError(
            f"could not reach the OpenSea API at {url} ({type(e).__name__}: {e}); re-running resumes from the "
            "saved cursor"
        ) from None
    except RefusedAddress as e:
        raise NftganError(f"{e.detail} (the API URL)") from None
    if status in (401, 403):
        raise NftganError(
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
