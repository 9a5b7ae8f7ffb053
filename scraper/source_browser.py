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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import NftganError
from scraper.listing import ListedItem, item_from_card, items_from_json

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
    complete: bool  # stopped because nothing new came (not by max_items)
    from_network: int  # items first seen in the page's JSON responses
    from_dom: int  # items first seen as links in the page
    unread_json: int = 0  # JSON responses that could not be read (too big, not JSON, page gone)


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
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_done)
        page.on("response", self._on_response)

    def _on_request(self, request: Any) -> None:
        if request.resource_type in _TRACKED_TYPES:
            self.inflight += 1

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
    *, url: str, options: BrowserOptions, add: Callable[[list[ListedItem]], bool],
    on_scroll: Callable[[int], None] | None = None,
) -> BrowserListing:
    """Collect the items of the collection page ``url``; ``add`` takes each batch and returns False to
    stop (max items reached)."""
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
            return await _collect(page, url, options, add, on_scroll)
        finally:
            with contextlib.suppress(PlaywrightError):
                await browser.close()


async def _collect(
    page: _Page, url: str, options: BrowserOptions, add: Callable[[list[ListedItem]], bool],
    on_scroll: Callable[[int], None] | None,
) -> BrowserListing:
    seen: set[str] = set()
    from_network = from_dom = 0

    async def take() -> tuple[int, bool]:
        nonlocal from_network, from_dom
        network_keys = {it.item_key for it in page.network_items}
        batch = await page.drain()
        fresh = [it for it in batch if it.item_key not in seen]
        for it in fresh:
            if it.item_key in network_keys:
                from_network += 1
            else:
                from_dom += 1
        seen.update(it.item_key for it in fresh)
        go_on = add(batch) if batch else True
        return len(fresh), go_on

    await _open(page, url, options, take)
    scrolls, idle, complete = 0, 0, False
    while True:
        fresh, go_on = await take()
        if not go_on:
            break
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
    for task in list(page.tasks):
        with contextlib.suppress(Exception):
            await task
    await take()
    return BrowserListing(
        scrolls=scrolls, complete=complete, from_network=from_network, from_dom=from_dom,
        unread_json=page.unread_json,
    )


async def _open(
    page: _Page, url: str, options: BrowserOptions, take: Callable[[], Any],
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
        except PlaywrightTimeout:
            last = f"the page did not load within {options.page_timeout_s:g} s"
        except PlaywrightError as e:
            last = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        else:
            if status == 404:
                raise NftganError(f"no such collection page: {url} answered HTTP 404")
            wait_s = options.page_timeout_s if status is not None and status < 400 else options.interstitial_wait_s
            if await _wait_for_items(page, take, wait_s):
                return
            title = ""
            with contextlib.suppress(PlaywrightError):
                title = await page.page.title()
            last = f"HTTP {status}, page title {title!r}, no items after {wait_s:g} s"
        if attempt < options.page_retries:
            await asyncio.sleep(min(options.backoff_max_s, options.backoff_initial_s * 2 ** (attempt - 1)))
    raise NftganError(
        f"the collection page {url} showed no items after {options.page_retries} tries ({last}); it may be "
        "behind a bot check: try --source api with an OpenSea API key (--api-key or OPENSEA_API_KEY)"
    )


async def _wait_for_items(page: _Page, take: Callable[[], Any], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        fresh, _ = await take()
        if fresh:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)
