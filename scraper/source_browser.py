"""The browser source: a collection page in headless Chromium (Playwright), scrolled until nothing new comes.

Marketplace grids are virtualized: cards leave the DOM once they are far off-screen, so reading the DOM
at the end (or even after every scroll) loses items. Instead a script injected before the page's own
code watches the DOM with a ``MutationObserver`` and records every item link the moment it appears,
and again whenever its image attributes change (lazy images get their URL only when visible); Python
drains that record after every scroll step. In parallel, every JSON response the page receives is
searched for items with image URLs (:func:`scraper.listing.items_from_json`), which does not depend on
the DOM at all. Scrolling goes by most of a viewport per step, waits until the page's own requests have
settled, and stops after ``idle_scrolls`` steps that brought nothing new (waiting longer each time).

Images, fonts and media are never downloaded by the browser: images are answered with a 1-pixel GIF
(the page still sees a loaded image), fonts and media are aborted. A first load that shows no items
(slow page, bot-check interstitial) is waited for, reloaded with backoff, and finally reported with a
hint to use the API source.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import NftganError, SiteRefused, SiteUnreachable
from scraper.listing import (
    CollectionScope, CollectionTotals, ListedItem, collection_totals, item_from_card, items_from_json,
    urql_pushes,
)
from scraper.walk import Page, PageFailed, Walk, list_pages, unwalked

#: the page's own feed operation (its later pages); walked again in an ordering that covers every item
FEED_OPERATION = "CollectionItemsListQuery"
#: orderings that walk the whole collection, tried in turn (price ordering stops at the listed items)
FULL_ORDERINGS = (("CREATED_DATE", "ASC"), ("CREATED_DATE", "DESC"))
#: the ordering an incremental listing walks: the newest items first, until a page of known items
NEWEST_FIRST = ("CREATED_DATE", "DESC")
FEED_PAGE_LIMIT = 100
#: runs ``fetch`` inside the page, so the request carries the page's own cookies and origin
FETCH_JS = r"""
async ({url, method, headers, body}) => {
  const r = await fetch(url, {method, headers, body: body || undefined, credentials: "include"});
  return {status: r.status, type: r.headers.get("content-type") || "", text: await r.text()};
}
"""
#: request headers worth replaying (the browser sets the rest itself)
_REPLAY_HEADERS = ("accept", "content-type")

CHROMIUM_ENV = "NFTGAN_CHROMIUM"
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-sync", "--mute-audio", "--hide-scrollbars",
)
VIEWPORT = {"width": 1280, "height": 1600}
#: a transparent 1x1 GIF: what the page gets instead of each image
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b")
_MAX_JSON_BYTES = 16 * 2**20
_TRACKED_TYPES = frozenset({"document", "xhr", "fetch", "script"})
#: the longest wait for a page's requests to settle after a scroll (a page may hold a request open
#: forever: analytics, long polling); a slower feed is waited for by the growing idle pauses instead
_SETTLE_MAX_S = 3.0

#: injected before any page script: records every item link as it appears or changes
COLLECTOR_JS = r"""
(() => {
  if (window.__nftganDrain) return;
  const ITEM = /\/(item|assets)\/[^\/]+\/[^\/]+\/[^\/?#]+\/?$/;
  const sent = new Map();
  let queue = [];
  const abs = (v) => { try { return v ? new URL(v, document.baseURI).href : null; } catch (e) { return null; } };
  function media(a) {
    let m = a.querySelector("img, video");
    for (let up = a.parentElement, k = 0; !m && up && k < 2; up = up.parentElement, k++) {
      if (up.querySelectorAll("a[href]").length === 1) m = up.querySelector("img, video");
    }
    return m;
  }
  function record(a) {
    let path;
    try { path = new URL(a.href, document.baseURI).pathname; } catch (e) { return; }
    if (!ITEM.test(path)) return;
    const m = media(a);
    const isVideo = m && m.tagName === "VIDEO";
    const rec = {
      href: a.href,
      name: (a.getAttribute("aria-label") || (m && m.getAttribute("alt")) || a.textContent || "").trim().slice(0, 200),
      dataSrc: m && !isVideo ? abs(m.getAttribute("data-src")) : null,
      srcset: m && !isVideo ? (m.getAttribute("srcset") || m.getAttribute("data-srcset")) : null,
      src: m && !isVideo ? abs(m.getAttribute("src")) : null,
      poster: isVideo ? abs(m.getAttribute("poster") || m.getAttribute("data-poster")) : null,
      videoSrc: isVideo ? abs(m.getAttribute("src") || m.getAttribute("data-src")) : null,
    };
    const sig = JSON.stringify(rec);
    if (sent.get(a.href) === sig) return;
    sent.set(a.href, sig);
    queue.push(rec);
  }
  function scan(node) {
    if (node.nodeType !== 1) return;
    if (node.matches("a[href]")) record(node);
    node.querySelectorAll("a[href]").forEach(record);
    const a = node.closest && node.closest("a[href]");
    if (a) record(a);
  }
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "childList") m.addedNodes.forEach(scan);
      else scan(m.target);
    }
  }).observe(document, { subtree: true, childList: true, attributes: true,
                         attributeFilter: ["href", "src", "srcset", "data-src", "data-srcset", "poster"] });
  window.__nftganDrain = () => {
    if (document.body) scan(document.body);
    const out = queue;
    queue = [];
    return out;
  };
})();
"""

#: scrolls the feed by ``fraction`` of a viewport: the window, or the scrollable box holding the items
SCROLL_JS = r"""
(fraction) => {
  const links = document.querySelectorAll("a[href*='/item/'], a[href*='/assets/']");
  let box = null;
  for (let el = links.length ? links[links.length - 1].parentElement : null; el; el = el.parentElement) {
    const style = getComputedStyle(el);
    if (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight + 4) { box = el; break; }
  }
  const target = box || document.scrollingElement || document.documentElement;
  const before = target.scrollTop;
  const step = Math.floor((box ? box.clientHeight : window.innerHeight) * fraction);
  if (box) box.scrollTop += step; else window.scrollBy(0, step);
  return { moved: target.scrollTop !== before, height: target.scrollHeight };
}
"""


@dataclass(frozen=True)
class BrowserListing:
    scrolls: int
    complete: bool  # the listing reached its end: the feed walked to its last page, or scrolling dried up
    from_network: int  # items first seen in the page's JSON responses (the feed walk included)
    from_dom: int  # items first seen as links in the page
    unread_json: int = 0  # JSON responses that could not be read (too big, not JSON, page gone)
    from_inline: int = 0  # items first seen in the page's inlined first page
    totals: CollectionTotals | None = None  # the collection's totals, as the page states them
    ignored: int = 0  # items of other collections seen on the page
    walk: Walk = field(default_factory=Walk)  # the walk of the page's own feed (its ordering, pages, mode)


@dataclass(frozen=True)
class BrowserOptions:
    chromium_path: str | None = None
    headless: bool = True
    page_timeout_s: float = 60.0
    page_retries: int = 3
    interstitial_wait_s: float = 10.0
    idle_scrolls: int = 6
    scroll_fraction: float = 0.85
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium to launch: ``explicit``, else ``$NFTGAN_CHROMIUM``, else a system one; None means
    Playwright's own browser. A path that was asked for but does not exist is an error."""
    for wanted, origin in ((explicit, "--chromium"), (os.environ.get(CHROMIUM_ENV), CHROMIUM_ENV)):
        if wanted:
            path = shutil.which(wanted) or (wanted if Path(wanted).is_file() else None)
            if path is None:
                raise NftganError(f"no Chromium at {wanted!r} (from {origin})")
            return path
    for candidate in SYSTEM_CHROMIUMS:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Page:
    """One collection page: its collector, its network listener, and its in-flight requests."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.network_items: list[ListedItem] = []
        self.inflight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.unread_json = 0  # JSON responses that could not be read (too big, not JSON, page gone)
        self.feed_request: dict[str, Any] | None = None  # the first request of the page's own feed
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_done)
        page.on("response", self._on_response)

    def _on_request(self, request: Any) -> None:
        if request.resource_type in _TRACKED_TYPES:
            self.inflight += 1
        if self.feed_request is None and request.resource_type in ("xhr", "fetch"):
            body = request.post_data if request.method == "POST" else None
            if FEED_OPERATION in request.url or (body and FEED_OPERATION in body):
                headers = {
                    k: v for k, v in request.headers.items()
                    if k.lower() in _REPLAY_HEADERS or k.lower().startswith("x-")
                }
                self.feed_request = {"url": request.url, "method": request.method, "headers": headers, "body": body}

    def _on_request_done(self, request: Any) -> None:
        if request.resource_type in _TRACKED_TYPES:
            self.inflight = max(0, self.inflight - 1)

    def _on_response(self, response: Any) -> None:
        if response.request.resource_type not in ("xhr", "fetch") or response.status != 200:
            return
        if "json" not in (response.headers.get("content-type") or ""):
            return
        task = asyncio.ensure_future(self._read_json(response))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read_json(self, response: Any) -> None:
        from playwright.async_api import Error as PlaywrightError

        try:
            body = await response.body()
            if len(body) > _MAX_JSON_BYTES:
                raise ValueError("too big")
            doc = json.loads(body)
        except (PlaywrightError, ValueError):  # the DOM path still sees these items
            self.unread_json += 1
            return
        self.network_items.extend(items_from_json(doc, self.url))

    async def drain(self) -> list[ListedItem]:
        """Items seen since the last drain: links recorded by the collector, then network items."""
        cards = await self.page.evaluate("() => window.__nftganDrain ? window.__nftganDrain() : []")
        found = [it for it in (item_from_card(c, self.url) for c in cards if isinstance(c, dict)) if it]
        found += self.network_items
        self.network_items = []
        return found

    async def settle(self, *, quiet_s: float = 0.1, max_s: float = 10.0) -> None:
        """Wait until the page's own requests (documents, scripts, API calls) have been quiet a moment."""
        deadline = time.monotonic() + max_s
        quiet_since = None
        while time.monotonic() < deadline:
            if self.inflight == 0 and not self.tasks:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_s:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.03)


async def _route(route: Any) -> None:
    kind = route.request.resource_type
    if kind == "image":
        await route.fulfill(status=200, content_type="image/gif", body=PIXEL_GIF)
    elif kind in ("font", "media"):
        await route.abort()
    else:
        await route.continue_()


async def list_browser(
    *, url: str, slug: str, options: BrowserOptions, add: Callable[[list[ListedItem]], bool],
    on_scroll: Callable[[int], None] | None = None, known: Callable[[str], bool] | None = None,
) -> BrowserListing:
    """Collect the items of collection ``slug`` from its page ``url``; ``add`` takes each batch and returns
    False to stop (max items reached).

    With ``known`` (item key -> already cataloged) the listing is incremental: the feed is walked newest
    first (:data:`NEWEST_FIRST`) and stops after the first page whose items are all known. When that
    cannot be shown (no feed to walk, the walk fails, or it reaches the end without a page of known
    items) the listing is a full one, and ``fallback`` says why.

    How every item is reached: the page's inlined first page is read from its HTML; the page is
    scrolled (cards and JSON responses are recorded) until it asks its own feed for a page; that request
    is then replayed from inside the page in an ordering that covers the whole collection, cursor after
    cursor, never mixing cursors of two orderings. Pages without such a feed are scrolled to the end.
    Items of other collections seen on the page (carousels, previews) are ignored and counted.
    """
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    executable = find_chromium(options.chromium_path)
    async with async_playwright() as pw:
        try:
            browser = await pw.chromium.launch(
                executable_path=executable, headless=options.headless, args=list(CHROMIUM_ARGS),
            )
        except PlaywrightError as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NftganError(
                f"could not start Chromium ({executable or 'Playwright’s own'}): {first_line}; install Debian's "
                f"chromium, run `playwright install chromium`, or point {CHROMIUM_ENV} at a Chromium"
            ) from None
        try:
            context = await browser.new_context(viewport=VIEWPORT, service_workers="block")
            await context.add_init_script(COLLECTOR_JS)
            await context.route("**/*", _route)
            page = _Page(await context.new_page(), url)
            return await _collect(page, url, slug, options, add, on_scroll, known)
        finally:
            with contextlib.suppress(PlaywrightError):
                await browser.close()


class _Taker:
    """Drains what the page saw, keeps this collection's items, counts where each was first seen."""

    def __init__(self, page: _Page, scope: CollectionScope, add: Callable[[list[ListedItem]], bool]) -> None:
        self.page, self.scope, self.add = page, scope, add
        self.seen: set[str] = set()
        self.counts = {"network": 0, "dom": 0, "inline": 0}
        self.go_on = True

    def offer(self, items: list[ListedItem], origin: str) -> int:
        """Add ``items`` first seen via ``origin``; returns how many were new."""
        return self.offer_mine(self.scope.keep(items), origin)

    def offer_mine(self, mine: list[ListedItem], origin: str) -> int:
        """Add this collection's ``mine`` (already through the scope); returns how many were new."""
        fresh = [it for it in mine if it.item_key not in self.seen]
        self.seen.update(it.item_key for it in fresh)
        self.counts[origin] += len(fresh)
        if mine and self.go_on:
            self.go_on = self.add(mine)
        return len(fresh)

    async def take(self) -> tuple[int, bool]:
        network = self.page.network_items
        self.page.network_items = []
        cards = await self.page.drain()
        fresh = self.offer(network, "network") + self.offer(cards, "dom")
        return fresh, self.go_on


async def _collect(
    page: _Page, url: str, slug: str, options: BrowserOptions, add: Callable[[list[ListedItem]], bool],
    on_scroll: Callable[[int], None] | None, known: Callable[[str], bool] | None = None,
) -> BrowserListing:
    scope = CollectionScope(slug)
    taker = _Taker(page, scope, add)
    totals: CollectionTotals | None = None

    def read_inline(html: str) -> int:
        nonlocal totals
        pushes = urql_pushes(html)
        for doc in pushes:
            totals = totals or collection_totals(doc, slug)
            scope.learn(doc)
        return sum(taker.offer(items_from_json(doc, url), "inline") for doc in pushes)

    await _open(page, url, options, taker.take, read_inline)
    scrolls, idle, complete = 0, 0, False
    while True:
        fresh, go_on = await taker.take()
        if not go_on:
            break
        if page.feed_request is not None:
            break  # the page asked its feed for more: walk that feed instead of scrolling on
        idle = 0 if fresh else idle + 1
        if idle >= options.idle_scrolls:
            complete = True
            break
        await page.page.evaluate(SCROLL_JS, options.scroll_fraction)
        scrolls += 1
        if on_scroll is not None:
            on_scroll(scrolls)
        await page.settle(max_s=min(options.page_timeout_s, _SETTLE_MAX_S))
        if idle:  # nothing new last time: give a slow feed longer each time
            await asyncio.sleep(min(2.0, 0.1 * 2 ** (idle - 1)))
    if taker.go_on and page.feed_request is None and scope.known:
        await _switch_ordering(page)  # the feed showed no request of its own: ask for another ordering
    if taker.go_on and page.feed_request is not None:
        walk = await list_pages(
            full=[_FeedOrdering(page, taker, by, direction) for by, direction in FULL_ORDERINGS],
            newest=_FeedOrdering(page, taker, *NEWEST_FIRST), known=known,
        )
        complete = walk.complete
    else:
        walk = unwalked(known, "the page offered no feed to walk newest-first, so it was scrolled to the end "
                               "(a full listing)")
    for task in list(page.tasks):
        with contextlib.suppress(Exception):
            await task
    await taker.take()
    return BrowserListing(
        scrolls=scrolls, complete=complete and taker.go_on, from_network=taker.counts["network"],
        from_dom=taker.counts["dom"], unread_json=page.unread_json, from_inline=taker.counts["inline"],
        totals=totals, ignored=scope.ignored_count, walk=walk,
    )


async def _switch_ordering(page: _Page) -> None:
    """Pick an ordering by creation date in the page's sort menu, so that the page asks its feed."""
    from playwright.async_api import Error as PlaywrightError

    with contextlib.suppress(PlaywrightError):
        for select in await page.page.query_selector_all("select"):
            options = await select.evaluate("(s) => Array.from(s.options).map((o) => [o.value, o.text])")
            wanted = next((v for v, text in options if "creat" in f"{v} {text}".lower()), None)
            if wanted is not None:
                await select.select_option(wanted)
                await page.settle(max_s=_SETTLE_MAX_S)
                return


async def _feed_page(
    page: _Page, template: dict[str, Any], by: str, direction: str, cursor: str | None,
) -> tuple[Any, str | None, bool]:
    """One page of the feed in an ordering: (document, error, whether the page could fetch at all)."""
    from playwright.async_api import Error as PlaywrightError

    request = feed_request(template, by=by, direction=direction, cursor=cursor, limit=FEED_PAGE_LIMIT)
    try:
        answer = await page.page.evaluate(FETCH_JS, request)
    except PlaywrightError as e:
        return None, f"the page could not fetch its feed: {str(e).strip().splitlines()[0]}", False
    doc, error = _feed_document(answer)
    return doc, error, True


class _FeedOrdering:
    """The page's own feed in one ordering, as the walker's page iterator (see :mod:`scraper.walk`)."""

    end_is_full = True  # the feed holds the whole collection in every ordering

    def __init__(self, page: _Page, taker: _Taker, by: str, direction: str) -> None:
        assert page.feed_request is not None
        self.tab, self.taker, self.by, self.direction = page, taker, by, direction
        self.name = f"{by}:{direction}"

    async def page(self, cursor: str | None) -> Page:
        doc, error, fetched = await _feed_page(self.tab, self.tab.feed_request or {}, self.by, self.direction, cursor)
        if error is not None:  # a page that cannot fetch at all will not fetch in another ordering either
            raise PageFailed(error, other_orderings=fetched)
        return Page(self.taker.scope.keep(items_from_json(doc, self.tab.url)), _next_cursor(doc))

    def commit(self, page: Page) -> bool:
        self.taker.offer_mine(page.items, "network")
        return self.taker.go_on


def feed_request(template: dict[str, Any], *, by: str, direction: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """The page's feed request with its ordering, cursor and page size replaced (GET or POST)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    def change(variables: Any) -> dict[str, Any]:
        variables = dict(variables) if isinstance(variables, dict) else {}
        key = "after" if "after" in variables and "cursor" not in variables else "cursor"
        variables[key] = cursor
        variables["sort"] = {"by": by, "direction": direction}
        variables["limit"] = limit
        return variables

    request = dict(template)
    if template["method"] == "POST" and template.get("body"):
        body = json.loads(template["body"])
        body["variables"] = change(body.get("variables"))
        request["body"] = json.dumps(body)
        return request
    parts = urlsplit(template["url"])
    query = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k == "variables":
            v = json.dumps(change(json.loads(v)), separators=(",", ":"))
        query.append((k, v))
    request["url"] = urlunsplit(parts._replace(query=urlencode(query)))
    request["body"] = None
    return request


def _feed_document(answer: Any) -> tuple[Any, str | None]:
    if not isinstance(answer, dict):
        return None, "the feed gave no answer"
    if answer.get("status") != 200:
        return None, f"the feed answered HTTP {answer.get('status')}"
    try:
        doc = json.loads(answer.get("text") or "")
    except ValueError:
        return None, f"the feed answered {answer.get('type') or 'something'} that is not JSON"
    if isinstance(doc, dict) and doc.get("errors"):
        messages = [e.get("message", "?") for e in doc["errors"] if isinstance(e, dict)]
        return None, "the feed answered errors: " + "; ".join(messages)[:200]
    return doc, None


def _next_cursor(doc: Any) -> str | None:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "nextPageCursor" in node:
                value = node["nextPageCursor"]
                return value if isinstance(value, str) and value else None
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return None


async def _open(
    page: _Page, url: str, options: BrowserOptions, take: Callable[[], Any], read_inline: Callable[[str], int],
) -> None:
    """Load ``url`` until items show; reload with backoff after a timeout or an interstitial."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    last = "no answer"
    for attempt in range(1, options.page_retries + 1):
        status = None
        try:
            response = await page.page.goto(url, wait_until="domcontentloaded", timeout=options.page_timeout_s * 1000)
            status = response.status if response is not None else None
            html = ""
            if response is not None and status == 200:
                with contextlib.suppress(PlaywrightError):
                    html = await response.text()
        except PlaywrightTimeout:
            last = f"the page did not load within {options.page_timeout_s:g} s"
        except PlaywrightError as e:
            last = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if _unreachable(last):
                raise SiteUnreachable(f"cannot reach {_host(url)}: {_cause(last)}") from None
        else:
            if status == 404:
                raise NftganError(f"no such collection page: {url} answered HTTP 404")
            if html and read_inline(html):
                return
            wait_s = options.page_timeout_s if status is not None and status < 400 else options.interstitial_wait_s
            if await _wait_for_items(page, take, wait_s):
                return
            title = ""
            with contextlib.suppress(PlaywrightError):
                title = await page.page.title()
            last = f"HTTP {status}, page title {title!r}, no items after {wait_s:g} s"
        if attempt < options.page_retries:
            await asyncio.sleep(min(options.backoff_max_s, options.backoff_initial_s * 2 ** (attempt - 1)))
    raise SiteRefused(
        f"{_host(url)} showed no items on the collection page after {options.page_retries} tries ({last}); "
        "if it is a bot check, try --source api with an OpenSea API key (--api-key or OPENSEA_API_KEY), "
        "or --no-headless to let a visible browser through"
    )


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url


_UNREACHABLE = {
    "ERR_NAME_NOT_RESOLVED": "the name does not resolve (DNS)",
    "ERR_NAME_RESOLUTION_FAILED": "the name does not resolve (DNS)",
    "ERR_CONNECTION_REFUSED": "the connection was refused",
    "ERR_CONNECTION_RESET": "the connection was reset",
    "ERR_ADDRESS_UNREACHABLE": "the address is unreachable",
    "ERR_INTERNET_DISCONNECTED": "no network",
    "ERR_CONNECTION_TIMED_OUT": "the connection timed out",
    "ERR_CERT_": "its TLS certificate was refused",
    "ERR_SSL_": "the TLS handshake failed",
}


def _unreachable(message: str) -> bool:
    return any(code in message for code in _UNREACHABLE)


def _cause(message: str) -> str:
    return next((why for code, why in _UNREACHABLE.items() if code in message), message[:120])


async def _wait_for_items(page: _Page, take: Callable[[], Any], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        fresh, _ = await take()
        if fresh:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
