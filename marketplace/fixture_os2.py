"""The fixture's "os2" mode: a collection page that behaves like OpenSea's 2025 redesign.

Facts measured on the real site by public scrapers (2scraper/opensea-scraper, 2026), imitated here:

- Page 1 (50 rows, price ascending) is inlined into the HTML as
  ``(window[Symbol.for("urql_transport")] ??= []).push({"rehydrate": {"<key>": {"hasNext": false,
  "data": {"collectionItems": {"items": [...], "nextPageCursor": ...}}}}})``; no request carries it.
  Another push carries ``collectionBySlug`` with ``stats`` (``totalSupply``, ``uniqueItemCount``,
  ``listedItemCount``, ``ownerCount``) and a "Featured collections" module of other collections' items.
- Later pages: ``GET /graphql?operationName=CollectionItemsListQuery&variables=...&extensions=...
  &app_id=os2-web`` (persisted query: the hash must match), answered ``application/graphql-response+json``
  with ``data.collectionItems.items[]`` and ``nextPageCursor``; ``limit`` is 1..100.
- Orderings: ``PRICE`` walks only the listed items, so its cursor ends where the listed items end;
  ``CREATED_DATE`` walks the whole collection (``DESC``: the newest first; tokens minted with
  :meth:`~marketplace.fixture.MarketplaceFixture.grow` come first). A cursor of one ordering sent with another is answered
  HTTP 200 ``{"errors": [{"message": "Invalid cursor"}]}``.
- Solana items: ``/item/solana/<mint>``; the payload's ``tokenId`` and ``contractAddress`` are the mint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from marketplace.fixture import FixtureItem, MarketplaceFixture

OPERATION = "CollectionItemsListQuery"
#: the persisted query's hash the page sends (a real deployment changes it with every release)
QUERY_HASH = hashlib.sha256(b"nftgan fixture: query CollectionItemsListQuery v1").hexdigest()
SORTS = {("PRICE", "ASC"), ("PRICE", "DESC"), ("CREATED_DATE", "ASC"), ("CREATED_DATE", "DESC")}
MAX_LIMIT = 100
PAGE_ROWS = 50  # rows inlined as page 1
FIRST_CARDS = 30  # of those, cards drawn before the reader scrolls
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
OTHER_SLUG = "featured-other-collection"


def solana_mint(seed: int, index: int) -> str:
    """A deterministic base58 string shaped like a Solana mint address (44 characters)."""
    n = int.from_bytes(hashlib.sha256(f"mint:{seed}:{index}".encode()).digest(), "big")
    out = []
    while len(out) < 44:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "".join(out)


def listed_prices(fx: MarketplaceFixture) -> dict[str, float]:
    """token -> price of the listed items (a seeded ``listed_share`` of the collection)."""
    rng = random.Random(f"listed:{fx.seed}")
    n = round(len(fx.items) * fx.listed_share)
    chosen = rng.sample(fx.items, n) if n else []
    return {it.token_id: round(rng.uniform(0.05, 3.0), 4) for it in chosen}


def ordering(fx: MarketplaceFixture, by: str, direction: str) -> list[FixtureItem]:
    if by == "PRICE":
        prices = fx.prices
        rows = sorted((it for it in fx.items if it.token_id in prices), key=lambda it: (prices[it.token_id], it.index))
    else:
        rows = list(fx.items)
    if fx.faults.feed_stop_after is not None and by == "CREATED_DATE":
        rows = rows[: fx.faults.feed_stop_after]
    return rows[::-1] if direction == "DESC" else rows


def item_node(fx: MarketplaceFixture, it: FixtureItem) -> dict[str, Any]:
    price = fx.prices.get(it.token_id)
    chain = {"identifier": it.chain, "arch": "SVM" if it.chain == "solana" else "EVM",
             "name": it.chain.capitalize(), "__typename": "Chain"}
    listing = None
    if price is not None:
        listing = {"id": f"l{it.index}", "pricePerItem": {"usd": round(price * 3000, 2), "token": {
            "unit": price, "symbol": "ETH", "contractAddress": "0x0", "chain": chain}}, "quantityRemaining": 1}
    traits = fx.item_traits(it.index)
    return {
        "id": f"{it.chain}/{it.contract}/{it.token_id}", "tokenId": it.token_id, "name": it.name,
        "imageUrl": f"{fx.base_url}/cdn/{fx.slug}/{fx.cdn_name(it.token_id)}.png?w=500",
        "contractAddress": it.contract, "chain": chain,
        "collection": {"slug": fx.slug, "name": fx.slug, "__typename": "Collection"},
        "attributes": [{"traitType": k, "value": v, "__typename": "StaticItemAttributeType"} for k, v in traits.items()],
        "bestListing": listing, "createdAt": _iso(it.created_epoch),
        "enforcement": {"isDisabled": False, "isCompromised": False, "isDelisted": False},
        "__typename": "Item",
    }


def _iso(epoch: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def featured_items(fx: MarketplaceFixture) -> list[dict[str, Any]]:
    """Items of another collection that the page shows in a carousel (item-shaped JSON too)."""
    contract = "0x" + hashlib.sha1(f"{OTHER_SLUG}:{fx.seed}".encode()).hexdigest()
    chain = {"identifier": "ethereum", "arch": "EVM", "name": "Ethereum", "__typename": "Chain"}
    return [
        {"id": f"ethereum/{contract}/{k}", "tokenId": str(k), "name": f"Other #{k}", "contractAddress": contract,
         "imageUrl": f"{fx.base_url}/cdn/{fx.slug}/{fx.items[k % len(fx.items)].token_id}.png?w=500",
         "chain": chain, "collection": {"slug": OTHER_SLUG, "name": "Other", "__typename": "Collection"},
         "__typename": "Item"}
        for k in range(1, 5)
    ]


def _cursor(sort_tag: str, offset: int, key: Any) -> str:
    raw = json.dumps([key, offset, sort_tag]).encode()
    return base64.b64encode(raw).decode()


def _offset(cursor: str, sort_tag: str) -> int | None:
    try:
        key, offset, tag = json.loads(base64.b64decode(cursor.encode(), validate=True))
    except (ValueError, TypeError):
        return None
    if tag != sort_tag or not isinstance(offset, int) or offset < 0:
        return None
    return offset


def connection(fx: MarketplaceFixture, by: str, direction: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """One page of an ordering: ``{"items": [...], "nextPageCursor": ...}`` (raises ValueError on a cursor
    of another ordering). The cursor is not looked ahead: a full page always gets one, so an ordering
    whose rows end on a page boundary answers one more, empty, page."""
    tag = f"{by}:{direction}"
    rows = ordering(fx, by, direction)
    offset = 0
    if cursor:
        found = _offset(cursor, tag)
        if found is None:
            raise ValueError("Invalid cursor")
        offset = found
    chunk = rows[offset : offset + limit]
    end = offset + len(chunk)
    next_cursor = None
    if len(chunk) == limit:
        last = chunk[-1]
        next_cursor = _cursor(tag, end, fx.prices.get(last.token_id) if by == "PRICE" else last.index)
    return {"items": [item_node(fx, it) for it in chunk], "nextPageCursor": next_cursor,
            "__typename": "ItemsConnection"}


def graphql_answer(fx: MarketplaceFixture, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON document) for one GET of the GraphQL endpoint."""
    if query.get("operationName") != OPERATION:
        return 200, {"errors": [{"message": f"Unknown operation {query.get('operationName')!r}"}]}
    try:
        variables = json.loads(query.get("variables") or "{}")
        extensions = json.loads(query.get("extensions") or "{}")
    except ValueError:
        return 400, {"errors": [{"message": "variables and extensions must be JSON"}]}
    persisted = (extensions.get("persistedQuery") or {}) if isinstance(extensions, dict) else {}
    if persisted.get("sha256Hash") != QUERY_HASH:
        return 200, {"errors": [{"message": "PersistedQueryNotFound"}]}
    if not isinstance(variables, dict) or variables.get("collectionSlug") != fx.slug:
        return 200, {"data": {"collectionItems": {"items": [], "nextPageCursor": None}}}
    sort = variables.get("sort") or {}
    by, direction = sort.get("by"), sort.get("direction")
    if (by, direction) not in SORTS:
        return 200, {"errors": [{"message": f"Invalid sort {by!r} {direction!r}"}]}
    limit = variables.get("limit", 50)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return 200, {"errors": [{"message": "/collectionItems/limit range must be between 1 and 100"}]}
    try:
        conn = connection(fx, by, direction, variables.get("cursor") or variables.get("after"), limit)
    except ValueError as e:
        return 200, {"errors": [{"message": str(e), "path": ["collectionItems"]}]}
    return 200, {"data": {"collectionItems": conn}}


def _push(key: str, data: dict[str, Any]) -> str:
    doc = {"rehydrate": {key: {"hasNext": False, "data": data}}}
    text = json.dumps(doc, separators=(",", ":")).replace("</", "<\\/")
    return f'<script>(window[Symbol.for("urql_transport")] ??= []).push({text})</script>'


def page_html(fx: MarketplaceFixture, template: str) -> bytes:
    stats = {
        "totalSupply": len(fx.items), "uniqueItemCount": len(fx.items), "listedItemCount": len(fx.prices),
        "ownerCount": max(1, len(fx.items) * 3 // 5), "__typename": "CollectionStats",
    }
    featured = featured_items(fx)
    collection = {
        "slug": fx.slug, "name": fx.slug, "stats": stats,
        "contracts": [{"address": fx.contract, "chain": fx.items[0].chain if fx.items else "ethereum"}],
        "content": {"merchandising": {"modules": [{
            "__typename": "CollectionContentBlockModule", "title": "Featured collections",
            "sections": [{"__typename": "FeatureContentBlock", "collectionSlug": OTHER_SLUG}],
            "previewItems": featured,
        }]}},
        "__typename": "Collection",
    }
    pushes = [
        _push("-6802658376", {"collectionBySlug": collection}),
        _push("9789815238", {"collectionItems": connection(fx, "PRICE", "ASC", None, PAGE_ROWS)}),
    ]
    config = {
        "slug": fx.slug, "gql": "/graphql", "queryHash": QUERY_HASH, "pageSize": PAGE_ROWS,
        "firstCards": FIRST_CARDS, "cardPx": fx.card_px, "thumbPx": fx.thumb_px, "overscanPx": 2 * fx.card_px,
        "featured": featured,
    }
    html = (
        template.replace("{{title}}", fx.slug).replace("{{total}}", f"{len(fx.items):,}")
        .replace("{{listed}}", f"{len(fx.prices):,}").replace("{{owners}}", f"{stats['ownerCount']:,}")
        .replace("{{config}}", json.dumps(config).replace("</", "<\\/"))
        .replace("{{pushes}}", "\n".join(pushes))
    )
    return html.encode()
