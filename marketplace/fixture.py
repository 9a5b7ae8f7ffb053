"""A local marketplace on 127.0.0.1 that imitates an OpenSea collection, for tests, benchmarks and the demo.

It serves, for one collection of :mod:`marketplace.democollection` avatars (``art="drawn"``) or of
:mod:`marketplace.pixelcollection`'s 24x24 pixel tokens (``art="pixel"``, served upscaled by nearest to the
asked width, as OpenSea's CDN serves CryptoPunks):

- ``/collection/<slug>``: a page with an infinite, virtualized grid (cards far off-screen are removed),
  lazy images and item links ``/item/<chain>/<contract>/<token_id>`` (every 7th ``/assets/...``); the
  grid loads pages of items from ``/feed/<slug>`` (GraphQL-like JSON, or an opaque array format that no
  network listener can read, so tests can prove the DOM path alone);
- ``/api/v2/collection/<slug>/nfts?limit=&next=``: OpenSea's API v2 listing with cursors (no documented
  order: token order here);
- ``/api/v2/events/collection/<slug>?event_type=mint&limit=&next=&after=&before=``: API v2 collection
  events, newest first, each with its ``nft`` record (every token has a mint event at its creation time);
- ``/cdn/<slug>/<token_id>.png?w=W``: images like an image CDN, rendered at width ``W``;
- ``/ipfs/<cid>/<token_id>.png``: a gateway for the items listed with ``ipfs://`` URLs;
- ``/metadata/<slug>/<token_id>.json``: trait metadata.

Faults (:class:`Faults`) can be set up front or changed while it runs: error bursts (429 with
``Retry-After``, 500, 599) on the API or the images, slow and truncated images, an HTML page served as
``image/png``, duplicate images under different tokens, ``ipfs://`` and video items, redirects, a slow
first load and bot-check interstitials. Counters record what was asked, so tests can check that nothing
was fetched twice and that a listing resumed from its cursor.

The collection can change while it is served: :meth:`MarketplaceFixture.grow` mints new tokens (newer
creation dates, drawn like the others), :meth:`~MarketplaceFixture.remove` takes one away and
:meth:`~MarketplaceFixture.change_image` gives one a new image under a new URL.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from marketplace import democollection, fixture_os2, pixelcollection

CHAIN = "ethereum"
#: "os2": the page as OpenSea serves it since its 2025 redesign (see marketplace.fixture_os2);
#: "classic": an infinite grid fed by a plain JSON feed (kept for the regression tests)
MODES = ("os2", "classic")
#: what the collection's tokens are: smooth drawn avatars, or 24x24 trait-layered pixel art
ARTS = ("drawn", "pixel")
MIN_WIDTH_PX, MAX_WIDTH_PX = 8, 2048
#: creation (mint) time of item 0, Unix seconds; item i was created CREATED_STEP_S * i later
CREATED_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
CREATED_STEP_S = 60
EVENT_TYPES = ("sale", "transfer", "mint", "listing", "offer", "cancel", "redemption")
#: the bytes of a "video" item: an MP4 header (``ftyp``) and filler; enough for a sniffer, not a player
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 2000


@dataclass
class Faults:
    """What the fixture does wrong. Lists of status codes are consumed one per request, in order."""

    api_errors: list[int] = field(default_factory=list)  # next API requests get these statuses
    api_fail_from_page: int | None = None  # API pages with this index or later answer 500 (an outage)
    image_errors: list[int] = field(default_factory=list)  # next image requests (any token) get these
    image_errors_by_token: dict[str, int] = field(default_factory=dict)  # token -> n 500s (-1: always)
    retry_after: str = "1"  # Retry-After on 429/599: seconds, or "date:N" for an HTTP date N s ahead
    slow_images: dict[str, float] = field(default_factory=dict)  # token -> extra seconds
    truncated: set[str] = field(default_factory=set)  # body cut in half (Content-Length promises all)
    html_as_png: set[str] = field(default_factory=set)  # an HTML error page labelled image/png
    svg: set[str] = field(default_factory=set)  # the image is an SVG document
    duplicate_of: dict[str, str] = field(default_factory=dict)  # token -> token whose image it serves
    ipfs: set[str] = field(default_factory=set)  # listed with an ipfs:// image URL
    video: set[str] = field(default_factory=set)  # the image is an MP4, no poster
    video_with_poster: set[str] = field(default_factory=set)  # an MP4 plus a still (display image)
    redirect: dict[str, str] = field(default_factory=dict)  # token -> Location of a 302 for its image
    page_delay_s: float = 0.0  # every collection page load waits this long first
    interstitial_loads: int = 0  # the next N page loads get a bot-check page (HTTP 403)
    # os2 mode
    feed_stop_after: int | None = None  # the full (created-date) ordering ends after N items: a cut feed
    feed_status: int | None = None  # every GraphQL request answers this HTTP status (a blocked feed)
    api_rate_limit: tuple[int, float] | None = None  # (requests, window seconds) per API key, announced
    disabled: set[str] = field(default_factory=set)  # API: is_disabled
    nsfw: set[str] = field(default_factory=set)  # API: is_nsfw
    original_only: set[str] = field(default_factory=set)  # API: only original_image_url names the image
    events_status: int | None = None  # every API events request answers this HTTP status


@dataclass(frozen=True)
class FixtureItem:
    index: int
    token_id: str
    chain: str
    contract: str
    name: str

    @property
    def item_key(self) -> str:
        from pipeline.catalog import item_key_for_token

        return item_key_for_token(self.chain, self.contract, self.token_id)

    @property
    def created_epoch(self) -> int:
        """When the token was minted (Unix seconds): later for every later index."""
        return CREATED_EPOCH + CREATED_STEP_S * self.index


class MarketplaceFixture:
    """A running fixture: URLs, the truth (:attr:`items`), counters, and the faults to change."""

    def __init__(
        self, *, collection: str, n_items: int, seed: int, faults: Faults, latency_s: float, page_size: int,
        card_px: int, thumb_px: int, image_px: int, feed: str, card_links: bool, api_key: str | None,
        mode: str = "os2", listed_share: float = 0.05, chain: str = CHAIN, art: str = "drawn",
    ) -> None:
        if feed not in ("graphql", "opaque"):
            raise ValueError(f"feed must be 'graphql' or 'opaque', got {feed!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if art not in ARTS:
            raise ValueError(f"art must be one of {ARTS}, got {art!r}")
        self.art = art
        self.mode = mode
        self.listed_share = listed_share
        self.slug = collection
        self.seed = seed
        self.faults = faults
        self.latency_s = latency_s
        self.page_size = page_size
        self.card_px = card_px
        self.thumb_px = thumb_px
        self.image_px = image_px
        self.feed = feed
        self.card_links = card_links
        self.api_key = api_key
        self.contract = "0x" + hashlib.sha1(f"{collection}:{seed}".encode()).hexdigest()
        self.chain = chain
        self.next_index = 0  # the index the next minted token gets (removed tokens keep theirs)
        self.items: list[FixtureItem] = [self._new_item() for _ in range(n_items)]
        self.prices = fixture_os2.listed_prices(self)
        self._rate_window: tuple[float, int] = (0.0, 0)  # (window start, requests in it)
        self._by_token = {it.token_id: it for it in self.items}
        self.image_versions: dict[str, int] = {}  # token -> how many times its image was changed
        self.counters: Counter[str] = Counter()
        self.image_requests: Counter[str] = Counter()  # token -> image requests
        self.api_requests: list[dict[str, str]] = []  # query of every API listing request
        self.event_requests: list[dict[str, str]] = []  # query of every API events request
        self.feed_requests: list[dict[str, str]] = []  # query of every GraphQL feed request (os2)
        self.image_log: list[tuple[float, str, int]] = []  # (time.monotonic() on arrival, token, status)
        self._lock = threading.Lock()
        self._images: dict[tuple[int, int], bytes] = {}
        self.base_url = ""  # set once the server is bound

    def _new_item(self) -> FixtureItem:
        i = self.next_index
        self.next_index += 1
        if self.chain == "solana":  # every item is its own mint: token id and "contract" alike
            mint = fixture_os2.solana_mint(self.seed, i)
            return FixtureItem(i, mint, "solana", mint, self._art.item_name(i))
        return FixtureItem(i, str(i), self.chain, self.contract, self._art.item_name(i))

    @property
    def _art(self) -> Any:
        return pixelcollection if self.art == "pixel" else democollection

    def item_traits(self, index: int) -> dict[str, str]:
        """Token ``index``'s traits (trait type -> value), as its metadata lists them."""
        return self._art.item_traits(index, seed=self.seed)

    def _render_png(self, index: int, width_px: int) -> bytes:
        if self.art == "pixel":  # whole pixels: the largest nearest-neighbour upscale that fits the width
            return pixelcollection.render_png(index, seed=self.seed,
                                              scale=max(1, width_px // pixelcollection.NATIVE_PX))
        return democollection.render_png(index, seed=self.seed, size_px=width_px)

    # -- the collection changing while it is served ---------------------------------------------------
    def grow(self, n: int) -> list[FixtureItem]:
        """Mint ``n`` new tokens (the newest by creation date, unlisted, drawn and traited like the others);
        the total supply grows by ``n``. Returns the new items."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        with self._lock:
            fresh = [self._new_item() for _ in range(n)]
            self.items = self.items + fresh  # a new list: a request in flight keeps the one it read
            self._by_token = {**self._by_token, **{it.token_id: it for it in fresh}}
        return fresh

    def remove(self, token_id: str) -> FixtureItem:
        """Take a token out of the collection (burned, or hidden by the marketplace): it is no longer listed,
        its image is gone, and the total supply drops by one."""
        with self._lock:
            item = self._by_token[token_id]
            self.items = [it for it in self.items if it.token_id != token_id]
            self._by_token = {k: v for k, v in self._by_token.items() if k != token_id}
            self.prices.pop(token_id, None)
        return item

    def restore(self, item: FixtureItem) -> None:
        """Put a removed token back where it was (the marketplace lists it again)."""
        with self._lock:
            self.items = sorted([*self.items, item], key=lambda it: it.index)
            self._by_token = {**self._by_token, item.token_id: item}

    def change_image(self, token_id: str) -> str:
        """Give a token a new image (a metadata refresh): a new URL, other pixels. Returns the new URL."""
        if token_id not in self._by_token:
            raise KeyError(token_id)
        with self._lock:
            self.image_versions[token_id] = self.image_versions.get(token_id, 0) + 1
        return self.image_url(token_id)

    def cdn_name(self, token_id: str) -> str:
        """The file name (without extension) of a token's image on the CDN: a changed image gets a new one."""
        version = self.image_versions.get(token_id, 0)
        return f"{token_id}~v{version}" if version else token_id

    # -- what tests ask for -------------------------------------------------------------------------
    @property
    def api_base_url(self) -> str:
        return self.base_url

    @property
    def ipfs_gateway(self) -> str:
        return f"{self.base_url}/ipfs/"

    @property
    def collection_url(self) -> str:
        return f"{self.base_url}/collection/{self.slug}"

    def token_ids(self) -> list[str]:
        return [it.token_id for it in self.items]

    def image_url(self, token_id: str) -> str:
        """The image URL the marketplace lists for ``token_id`` (after faults that change it)."""
        if token_id in self.faults.ipfs:
            return f"ipfs://{self._cid}/{token_id}.png"
        if token_id in self.faults.video:
            return f"{self.base_url}/cdn/{self.slug}/{token_id}.mp4"
        return f"{self.base_url}/cdn/{self.slug}/{self.cdn_name(token_id)}.png"

    def image_bytes(self, token_id: str, width_px: int | None = None) -> bytes:
        """The PNG the CDN serves for ``token_id`` at ``width_px`` (cached)."""
        item = self._by_token[token_id]
        width = self.image_px if width_px is None else width_px
        version = self.image_versions.get(token_id, 0)
        key = (item.index, width, version)
        data = self._images.get(key)
        if data is None:
            data = self._render_png(item.index, width)
            if version:  # a changed image: the drawing turned and inverted, once per change
                data = _altered_png(data, version)
            self._images[key] = data
        return data

    def prerender(self, width_px: int | None = None) -> None:
        for it in self.items:
            self.image_bytes(it.token_id, width_px)

    def reset_counters(self) -> None:
        with self._lock:
            self.counters.clear()
            self.image_requests.clear()
            self.api_requests.clear()
            self.event_requests.clear()
            self.feed_requests.clear()
            self.image_log.clear()

    @property
    def _cid(self) -> str:
        return "bafy" + hashlib.sha256(self.contract.encode()).hexdigest()[:40]

    def _count(self, key: str) -> None:
        with self._lock:
            self.counters[key] += 1

    def _pop(self, queue: list[int]) -> int | None:
        with self._lock:
            return queue.pop(0) if queue else None

    # -- documents ----------------------------------------------------------------------------------
    def _page(self, limit_param: str | None, cursor: str | None) -> tuple[list[FixtureItem], str | None, int]:
        limit = max(1, min(200, int(limit_param or self.page_size)))
        offset = _decode_cursor(cursor) if cursor else 0
        chunk = self.items[offset : offset + limit]
        end = offset + len(chunk)
        return chunk, (_encode_cursor(end) if end < len(self.items) else None), offset // limit

    def feed_document(self, query: dict[str, str]) -> dict[str, Any]:
        chunk, next_cursor, _ = self._page(query.get("limit"), query.get("cursor"))
        if self.feed == "opaque":
            return {"r": [[it.token_id, it.name, self._display_url(it)] for it in chunk], "c": next_cursor}
        edges = [
            {
                "node": {
                    "__typename": "Item", "tokenId": it.token_id, "name": it.name,
                    "imageUrl": self._display_url(it),
                    "assetContract": {"address": it.contract, "chain": it.chain},
                    "permalink": f"{self.base_url}/item/{it.chain}/{it.contract}/{it.token_id}",
                }
            }
            for it in chunk
        ]
        return {"data": {"collectionItems": {
            "edges": edges, "pageInfo": {"endCursor": next_cursor, "hasNextPage": next_cursor is not None},
        }}}

    def _display_url(self, it: FixtureItem) -> str:
        """What the grid shows: a poster for video items that have one, else the image URL."""
        if it.token_id in self.faults.video_with_poster:
            return f"{self.base_url}/cdn/{self.slug}/{it.token_id}.png?w=500"
        return self.image_url(it.token_id) + ("?w=500" if "/cdn/" in self.image_url(it.token_id) else "")

    def api_document(self, chunk: list[FixtureItem], next_cursor: str | None) -> dict[str, Any]:
        nfts = []
        for it in chunk:
            original = self.image_url(it.token_id)
            display = None if it.token_id in self.faults.ipfs else self._display_url(it)
            animation = None
            if it.token_id in self.faults.video_with_poster:
                original = animation = f"{self.base_url}/cdn/{self.slug}/{it.token_id}.mp4"
            record = {
                "identifier": it.token_id, "collection": self.slug, "contract": it.contract,
                "token_standard": "erc721", "name": it.name, "description": f"{it.name} of {self.slug}",
                "image_url": original, "display_image_url": display, "display_animation_url": animation,
                "metadata_url": f"{self.base_url}/metadata/{self.slug}/{it.token_id}.json",
                "opensea_url": f"{self.base_url}/assets/{it.chain}/{it.contract}/{it.token_id}",
                "updated_at": "2026-01-01T00:00:00", "is_disabled": it.token_id in self.faults.disabled,
                "is_nsfw": it.token_id in self.faults.nsfw,
            }
            if self.mode == "os2":
                record["chain"] = it.chain
                record["original_image_url"] = original
                record["traits"] = [
                    {"trait_type": k, "value": v, "display_type": None, "max_value": None}
                    for k, v in self.item_traits(it.index).items()
                ]
                if it.token_id in self.faults.original_only:
                    record["image_url"] = record["display_image_url"] = None
            nfts.append(record)
        doc: dict[str, Any] = {"nfts": nfts}
        if next_cursor:
            doc["next"] = next_cursor
        return doc

    def events_document(self, query: dict[str, str]) -> dict[str, Any]:
        """API v2 ``GET /api/v2/events/collection/<slug>``: mint events newest first (``event_type`` other
        than mint finds none here), ``after``/``before`` in Unix seconds, ``limit`` 1..200, ``next``.
        Raises ValueError on a bad parameter or cursor (answered 400)."""
        types = {t for t in query.get("event_type", "").split(",") if t} or {"mint"}
        if not types <= set(EVENT_TYPES):
            raise ValueError(f"invalid event_type {sorted(types - set(EVENT_TYPES))}")
        limit = int(query.get("limit") or 50)
        if not 1 <= limit <= 200:
            raise ValueError("limit must be within 1..200")
        after = int(query["after"]) if query.get("after") else None
        before = int(query["before"]) if query.get("before") else None
        rows = [] if "mint" not in types else sorted(self.items, key=lambda it: -it.created_epoch)
        rows = [it for it in rows if (after is None or it.created_epoch > after)
                and (before is None or it.created_epoch < before)]
        offset = _decode_cursor(query["next"]) if query.get("next") else 0
        chunk = rows[offset : offset + limit]
        end = offset + len(chunk)
        events = []
        for it, nft in zip(chunk, self.api_document(chunk, None)["nfts"]):
            nft.pop("chain", None)  # an event names the chain itself
            events.append({
                "event_type": "mint", "event_timestamp": it.created_epoch, "chain": it.chain,
                "transaction": "0x" + hashlib.sha256(f"mint:{it.item_key}".encode()).hexdigest(),
                "from_address": "0x" + "0" * 40, "to_address": "0x" + hashlib.sha1(it.token_id.encode()).hexdigest(),
                "quantity": 1, "nft": nft,
            })
        doc: dict[str, Any] = {"asset_events": events}
        if end < len(rows):
            doc["next"] = _encode_cursor(end)
        return doc

    def collection_document(self) -> dict[str, Any]:
        """API v2 ``GET /api/v2/collections/<slug>``."""
        return {
            "collection": self.slug, "name": self.slug, "description": "", "is_disabled": False,
            "is_nsfw": False, "opensea_url": self.collection_url,
            "contracts": [{"address": self.contract, "chain": self.items[0].chain if self.items else CHAIN}],
            "total_supply": len(self.items), "unique_item_count": len(self.items),
        }

    def collection_page(self) -> bytes:
        if self.mode == "os2":
            return fixture_os2.page_html(self, _static("os2.html"))
        config = {
            "slug": self.slug, "chain": CHAIN, "contract": self.contract, "feed": f"/feed/{self.slug}",
            "pageSize": self.page_size, "cardPx": self.card_px, "thumbPx": self.thumb_px,
            "overscanPx": 2 * self.card_px, "cardLinks": self.card_links, "opaque": self.feed == "opaque",
        }
        html = _static("collection.html")
        html = html.replace("{{title}}", self.slug).replace("{{count}}", str(len(self.items)))
        return html.replace("{{config}}", json.dumps(config).replace("</", "<\\/")).encode()

    def retry_after_header(self) -> str:
        value = self.faults.retry_after
        if value.startswith("date:"):
            return email.utils.formatdate(time.time() + float(value[5:]), usegmt=True)
        return value


def _svg(index: int) -> bytes:
    hue = (index * 47) % 360
    return (
        f'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        f'<rect width="64" height="64" fill="hsl({hue},60%,50%)"/><circle cx="32" cy="30" r="16" fill="#fff"/>'
        "</svg>"
    ).encode()


def _altered_png(data: bytes, version: int) -> bytes:
    import io

    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data)).convert("RGB")
    for _ in range(version):
        image = ImageOps.invert(image.rotate(90))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    if not raw.startswith("offset:"):
        raise ValueError("bad cursor")
    return int(raw[7:])


def _static(name: str) -> str:
    return resources.files("marketplace").joinpath("fixture_static", name).read_text(encoding="utf-8")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent_status = 0
    # headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every keep-alive response, which no real server does
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests read counters instead

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        fx = self.server.fixture
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = [p for p in parts.path.split("/") if p]
        try:
            if not path:
                self._send(200, "text/html", f'<a href="/collection/{fx.slug}">{fx.slug}</a>'.encode())
            elif path[0] == "collection" and len(path) == 2:
                self._collection_page(fx, path[1])
            elif path[0] == "static" and len(path) == 2 and path[1] in ("grid.js", "os2.js"):
                fx._count("static")
                self._send(200, "application/javascript", _static(path[1]).encode())
            elif path == ["graphql"] and fx.mode == "os2":
                self._graphql(fx, query)
            elif path[:3] == ["api", "v2", "collections"] and len(path) == 4:
                self._api_collection(fx, path[3])
            elif path[0] == "feed" and len(path) == 2 and path[1] == fx.slug:
                fx._count("feed")
                self._json(200, fx.feed_document(query))
            elif path[:3] == ["api", "v2", "collection"] and len(path) == 5 and path[4] == "nfts":
                self._api(fx, path[3], query)
            elif path[:4] == ["api", "v2", "events", "collection"] and len(path) == 5:
                self._events(fx, path[4], query)
            elif path[0] == "cdn" and len(path) == 3 and path[1] == fx.slug:
                self._image(fx, path[2], query)
            elif path[0] == "ipfs" and len(path) == 3 and path[1] == fx._cid:
                fx._count("ipfs")
                self._image(fx, path[2], {})
            elif path[0] == "metadata" and len(path) == 3 and path[2].endswith(".json"):
                self._metadata(fx, path[2][:-5])
            else:
                self._send(404, "text/html", b"<!doctype html><title>404</title><h1>Not found</h1>")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _collection_page(self, fx: MarketplaceFixture, slug: str) -> None:
        fx._count("page")
        if fx.faults.page_delay_s:
            time.sleep(fx.faults.page_delay_s)
        if fx.faults.interstitial_loads > 0:
            with fx._lock:
                fx.faults.interstitial_loads -= 1
            fx._count("interstitial")
            self._send(403, "text/html", _static("interstitial.html").encode())
            return
        if slug != fx.slug:
            self._send(404, "text/html", b"<!doctype html><title>Not found</title><h1>Collection not found</h1>")
            return
        self._send(200, "text/html; charset=utf-8", fx.collection_page())

    def _graphql(self, fx: MarketplaceFixture, query: dict[str, str]) -> None:
        fx._count("feed")
        with fx._lock:
            fx.feed_requests.append(dict(query))
        if fx.faults.feed_status is not None:
            self._json(fx.faults.feed_status, {"errors": [{"message": "blocked"}]})
            return
        status, doc = fixture_os2.graphql_answer(fx, query)
        self._send(status, "application/graphql-response+json", json.dumps(doc).encode())

    def _api_collection(self, fx: MarketplaceFixture, slug: str) -> None:
        fx._count("api-collection")
        if fx.api_key is not None and self.headers.get("X-API-KEY") != fx.api_key:
            self._json(401, {"detail": "Invalid API key"})
            return
        if slug != fx.slug:
            self._json(404, {"errors": [f"Collection {slug} not found"]})
            return
        self._json(200, fx.collection_document(), headers=self._rate_headers(fx))

    def _rate_headers(self, fx: MarketplaceFixture) -> dict[str, str] | None:
        """Count one API request against the announced window; None when over the limit (answer 429)."""
        if fx.faults.api_rate_limit is None:
            return {}
        limit, window_s = fx.faults.api_rate_limit
        now = time.time()
        with fx._lock:
            start, used = fx._rate_window
            if now >= start + window_s:
                start, used = now, 0
            used += 1
            fx._rate_window = (start, used)
        headers = {
            "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": f"{start + window_s:.3f}",
        }
        if used > limit:
            fx._count("rate-limited")
            return None
        return headers

    def _api(self, fx: MarketplaceFixture, slug: str, query: dict[str, str]) -> None:
        fx._count("api")
        with fx._lock:
            fx.api_requests.append(dict(query))
        if fx.api_key is not None and self.headers.get("X-API-KEY") != fx.api_key:
            self._json(401, {"detail": "Invalid API key"})
            return
        rate = self._rate_headers(fx)
        if rate is None:
            self._json(429, {"detail": "rate limited"}, headers={"Retry-After": "1"})
            return
        status = fx._pop(fx.faults.api_errors)
        if status is not None:
            self._error(fx, status)
            return
        if slug != fx.slug:
            self._json(404, {"errors": [f"Collection {slug} not found"]})
            return
        try:
            chunk, next_cursor, page_index = fx._page(query.get("limit"), query.get("next"))
        except ValueError:
            self._json(400, {"errors": ["invalid cursor"]})
            return
        if fx.faults.api_fail_from_page is not None and page_index >= fx.faults.api_fail_from_page:
            self._error(fx, 500)
            return
        self._json(200, fx.api_document(chunk, next_cursor), headers=rate)

    def _events(self, fx: MarketplaceFixture, slug: str, query: dict[str, str]) -> None:
        fx._count("api-events")
        with fx._lock:
            fx.event_requests.append(dict(query))
        if fx.api_key is not None and self.headers.get("X-API-KEY") != fx.api_key:
            self._json(401, {"detail": "Invalid API key"})
            return
        rate = self._rate_headers(fx)
        if rate is None:
            self._json(429, {"detail": "rate limited"}, headers={"Retry-After": "1"})
            return
        if fx.faults.events_status is not None:
            self._error(fx, fx.faults.events_status)
            return
        if slug != fx.slug:
            self._json(404, {"errors": [f"Collection {slug} not found"]})
            return
        try:
            doc = fx.events_document(query)
        except ValueError as e:
            self._json(400, {"errors": [str(e)]})
            return
        self._json(200, doc, headers=rate)

    def _image(self, fx: MarketplaceFixture, name: str, query: dict[str, str]) -> None:
        stem, _, ext = name.rpartition(".")
        token, _, version = stem.partition("~")
        if token not in fx._by_token or ext not in ("png", "mp4") or stem != fx.cdn_name(token) and ext == "png":
            self._send(404, "text/html", b"<!doctype html><h1>no such image</h1>")
            return
        fx._count("image")
        with fx._lock:
            fx.image_requests[token] += 1
        arrived = time.monotonic()
        try:
            self._answer_image(fx, token, ext, query)
        finally:
            with fx._lock:
                fx.image_log.append((arrived, token, self.sent_status))

    def _answer_image(self, fx: MarketplaceFixture, token: str, ext: str, query: dict[str, str]) -> None:
        faults = fx.faults
        delay = fx.latency_s + faults.slow_images.get(token, 0.0)
        if delay:
            time.sleep(delay)
        status = fx._pop(faults.image_errors)
        if status is None:
            with fx._lock:
                left = faults.image_errors_by_token.get(token, 0)
                if left:
                    status = 500
                    if left > 0:
                        faults.image_errors_by_token[token] = left - 1
        if status is not None:
            self._error(fx, status)
            return
        if token in faults.redirect:
            self.send_response(302)
            self.send_header("Location", faults.redirect[token])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if token in faults.html_as_png:
            page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>upstream error</p></body></html>"
            self._send(200, "image/png", page)
            return
        if ext == "mp4":
            self._send(200, "video/mp4", FAKE_MP4)
            return
        if token in faults.svg:
            self._send(200, "image/svg+xml", _svg(fx._by_token[token].index))
            return
        width = self.server.default_width(query.get("w"))
        data = fx.image_bytes(faults.duplicate_of.get(token, token), width)
        if token in faults.truncated:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, "image/png", data, cache=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.sent_status = code
        super().send_response(code, message)

    def _metadata(self, fx: MarketplaceFixture, token: str) -> None:
        item = fx._by_token.get(token)
        if item is None:
            self._json(404, {"error": "no such token"})
            return
        traits = fx.item_traits(item.index)
        self._json(200, {
            "name": item.name, "image": fx.image_url(token),
            "attributes": [{"trait_type": k, "value": v} for k, v in traits.items()],
        })

    def _error(self, fx: MarketplaceFixture, status: int) -> None:
        headers = {"Retry-After": fx.retry_after_header()} if status in (429, 503, 599) else {}
        body = json.dumps({"detail": f"fixture fault {status}"}).encode()
        self._send(status, "application/json", body, headers=headers)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, "application/json", json.dumps(doc).encode(), headers=headers)

    def _send(
        self, status: int, content_type: str, body: bytes, *, headers: dict[str, str] | None = None,
        cache: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if cache:
            self.send_header("Cache-Control", "public, max-age=3600")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, fixture: MarketplaceFixture, port: int) -> None:
        self.fixture = fixture
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer (a test's timeout, a killed scraper) are normal here."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def default_width(self, value: str | None) -> int:
        try:
            width = int(value) if value else self.fixture.image_px
        except ValueError:
            width = self.fixture.image_px
        return max(MIN_WIDTH_PX, min(MAX_WIDTH_PX, width))


@contextlib.contextmanager
def serve_fixture(
    *,
    collection: str = "demo",
    n_items: int = 100,
    faults: Faults | None = None,
    latency_s: float = 0.0,
    seed: int = 0,
    port: int = 0,
    page_size: int = 50,
    card_px: int = 160,
    thumb_px: int = 64,
    image_px: int = 256,
    feed: str = "graphql",
    card_links: bool = True,
    api_key: str | None = None,
    mode: str = "classic",
    listed_share: float = 0.05,
    chain: str = CHAIN,
    art: str = "drawn",
) -> Iterator[MarketplaceFixture]:
    """Serve a fixture marketplace on 127.0.0.1 (``port`` 0: a free one) for the ``with`` block.

    ``latency_s`` is added to every image response; ``image_px`` is the width of an image asked for
    without ``w=``; ``feed="opaque"`` hides the items from network listeners; ``card_links=False``
    renders cards without links (only the network feed then names the items). ``mode="os2"`` serves the
    page as OpenSea does since its redesign (:mod:`marketplace.fixture_os2`), with ``listed_share`` of the
    items listed and ``chain="solana"`` for a Solana collection.
    """
    fixture = MarketplaceFixture(
        collection=collection, n_items=n_items, seed=seed, faults=faults or Faults(), latency_s=latency_s,
        page_size=page_size, card_px=card_px, thumb_px=thumb_px, image_px=image_px, feed=feed,
        card_links=card_links, api_key=api_key, mode=mode, listed_share=listed_share, chain=chain, art=art,
    )
    server = _Server(fixture, port)
    fixture.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="nftgan-fixture", daemon=True
    )
    thread.start()
    try:
        yield fixture
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
