"""What a listing finds: items (chain, contract, token id, image URL), from links, page JSON or the API.

Pure parsing, no I/O: the browser source feeds it anchors and network JSON, the API source feeds it
``nfts`` records, and both hand the resulting :class:`ListedItem` s to the catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from pipeline.catalog import item_key_for_token

#: an item page: ``/item/<chain>/<contract>/<token_id>`` (OpenSea today) or ``/assets/...`` (before)
ITEM_PATH_RE = re.compile(
    r"/(?:item|assets)/(?P<chain>[a-z0-9_-]{1,40})/(?P<contract>[a-z0-9_.-]{1,100})/(?P<token>[0-9a-z_.-]{1,100})/?$",
    re.IGNORECASE,
)
#: a Solana item page has two segments: ``/item/solana/<mint>`` (the mint is the token)
SOLANA_PATH_RE = re.compile(r"/(?:item|assets)/(?P<chain>solana)/(?P<mint>[1-9A-HJ-NP-Za-km-z]{20,64})/?$")
_URL_SCHEMES = ("http://", "https://", "ipfs://")
_IMAGE_KEYS = (
    "display_image_url", "displayImageUrl", "image_url", "imageUrl", "image_preview_url", "imagePreviewUrl",
    "image",
)
_TOKEN_KEYS = ("identifier", "token_id", "tokenId")
_LINK_KEYS = ("opensea_url", "permalink", "url", "href")
#: how deep and how much of a JSON document the walker looks at (page JSON is untrusted input)
_MAX_DEPTH, _MAX_NODES = 24, 500_000


@dataclass(frozen=True)
class ListedItem:
    chain: str
    contract: str  # on Solana: the mint, like the payload's contractAddress
    token_id: str
    name: str | None = None
    page_url: str | None = None
    image_url: str | None = None
    collection: str | None = None  # the collection slug the payload names, when it names one
    traits: tuple[tuple[str, str], ...] = ()  # (trait type, value), in the order listed
    nsfw: bool | None = None

    @property
    def item_key(self) -> str:
        return item_key_for_token(self.chain, self.contract, self.token_id)

    def row(self, source: str) -> dict[str, Any]:
        """A row for :meth:`pipeline.catalog.Catalog.add_items`."""
        row = {
            "item_key": self.item_key, "source": source, "chain": self.chain.lower(),
            "contract": self.contract if self.chain.lower() == "solana" else self.contract.lower(),
            "token_id": self.token_id, "name": self.name, "page_url": self.page_url, "image_url": self.image_url,
        }
        if self.traits:
            row["traits"] = json.dumps([list(t) for t in self.traits])
        if self.nsfw is not None:
            row["nsfw"] = int(self.nsfw)
        return row


def parse_item_href(href: str, base_url: str | None = None) -> tuple[str, str, str] | None:
    """``(chain, contract, token_id)`` of an item link, or None if ``href`` is not one.

    A Solana link (``/item/solana/<mint>``) gives ``("solana", mint, mint)``: case matters in a mint."""
    if not href:
        return None
    path = urlsplit(urljoin(base_url or "", href)).path
    m = SOLANA_PATH_RE.search(path)
    if m:
        return "solana", m["mint"], m["mint"]
    m = ITEM_PATH_RE.search(path)
    if not m:
        return None
    return m["chain"].lower(), m["contract"].lower(), m["token"]


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(_URL_SCHEMES)


def largest_srcset_url(srcset: str, base_url: str | None = None) -> str | None:
    """The candidate of a ``srcset`` with the largest width (``400w``) or density (``2x``)."""
    best, best_size = None, -1.0
    for part in srcset.split(","):
        fields = part.strip().split()
        if not fields:
            continue
        size = 1.0
        if len(fields) > 1:
            try:
                size = float(fields[1][:-1]) if fields[1][-1] in "wx" else 1.0
            except ValueError:
                size = 1.0
        if size > best_size:
            best, best_size = fields[0], size
    return urljoin(base_url or "", best) if best else None


def item_from_card(card: dict[str, Any], page_url: str) -> ListedItem | None:
    """An item from what the page's collector script saw of one link (see ``source_browser``).

    The image is, in order: a lazy ``data-src``, the largest ``srcset`` candidate, ``src``, or a video's
    ``poster``; a video's own ``src`` only when it has no poster (the downloader then records it).
    """
    ids = parse_item_href(card.get("href") or "", page_url)
    if ids is None:
        return None
    image = None
    for key in ("dataSrc", "srcset", "src", "poster", "videoSrc"):
        value = card.get(key)
        if not value or not isinstance(value, str):
            continue
        if key == "srcset":
            value = largest_srcset_url(value, page_url) or ""
        value = urljoin(page_url, value.strip())
        if is_url(value):
            image = value
            break
    name = card.get("name")
    name = name.strip()[:200] if isinstance(name, str) and name.strip() else None
    return ListedItem(*ids, name=name, page_url=urljoin(page_url, card["href"]), image_url=image)


def item_from_api_nft(nft: dict[str, Any], default_chain: str = "ethereum") -> ListedItem | None:
    """An item from one record of OpenSea's API v2 ``nfts`` list (None when it names no token)."""
    token, contract = nft.get("identifier"), nft.get("contract")
    if token in (None, "") or not isinstance(contract, str) or not contract:
        return None
    chain = nft.get("chain") if isinstance(nft.get("chain"), str) else None
    link = nft.get("opensea_url")
    ids = parse_item_href(link) if isinstance(link, str) else None
    if chain is None:
        chain = ids[0] if ids else default_chain
    image = next(
        (nft[k] for k in ("display_image_url", "image_url", "original_image_url") if is_url(nft.get(k))), None
    )
    name = nft.get("name") if isinstance(nft.get("name"), str) else None
    collection = nft.get("collection") if isinstance(nft.get("collection"), str) else None
    nsfw = nft.get("is_nsfw") if isinstance(nft.get("is_nsfw"), bool) else None
    if chain.lower() == "solana":
        contract = str(token)
    return ListedItem(
        chain.lower(), contract if chain.lower() == "solana" else contract.lower(), str(token), name=name,
        page_url=link if isinstance(link, str) else None, image_url=image, collection=collection,
        traits=traits_of(nft.get("traits")), nsfw=nsfw,
    )


def traits_of(value: Any) -> tuple[tuple[str, str], ...]:
    """``(type, value)`` pairs from any of the shapes marketplaces use: API v2 ``traits`` and token
    metadata ``attributes`` (``trait_type``/``value``), the site's feed (``traitType``/``value``)."""
    if not isinstance(value, list):
        return ()
    out = []
    for t in value[:200]:
        if not isinstance(t, dict):
            continue
        kind = next((t[k] for k in ("trait_type", "traitType", "type") if isinstance(t.get(k), str)), None)
        v = t.get("value")
        if kind is None or v is None or isinstance(v, (dict, list)):
            continue
        out.append((kind.strip()[:100], str(v).strip()[:200]))
    return tuple(out)


def items_from_json(doc: Any, page_url: str | None = None) -> list[ListedItem]:
    """Items found anywhere in a JSON document (a page's API responses), those that carry an image URL.

    An object counts as an item when it names a token id, a contract (a string, or an object with an
    ``address``) and a chain (directly, inside the contract object, or in an item link), plus an image.
    """
    found: dict[str, ListedItem] = {}
    for obj in _objects(doc):
        item = _item_from_object(obj, page_url)
        if item is not None and item.item_key not in found:
            found[item.item_key] = item
    return list(found.values())


def _objects(doc: Any) -> Iterator[dict[str, Any]]:
    stack: list[tuple[Any, int]] = [(doc, 0)]
    seen = 0
    while stack and seen < _MAX_NODES:
        node, depth = stack.pop()
        seen += 1
        if depth > _MAX_DEPTH:
            continue
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict):
            yield node
        # pushed in reverse, so items come out in document order
        stack.extend((v, depth + 1) for v in reversed(list(children)) if isinstance(v, (dict, list)))


def _item_from_object(obj: dict[str, Any], page_url: str | None) -> ListedItem | None:
    image = next((obj[k].strip() for k in _IMAGE_KEYS if is_url(obj.get(k))), None)
    if image is None:
        return None
    token = next((obj[k] for k in _TOKEN_KEYS if isinstance(obj.get(k), (str, int)) and obj.get(k) != ""), None)
    contract_field = next(
        (obj[k] for k in ("contract", "contract_address", "contractAddress", "assetContract") if obj.get(k)), None
    )
    contract, chain = None, None
    if isinstance(contract_field, str):
        contract = contract_field
    elif isinstance(contract_field, dict):
        contract = contract_field.get("address") if isinstance(contract_field.get("address"), str) else None
        chain = _chain_name(contract_field.get("chain"))
    chain = _chain_name(obj.get("chain")) or _chain_name(obj.get("chain_identifier")) or chain
    link = next((obj[k] for k in _LINK_KEYS if isinstance(obj.get(k), str)), None)
    ids = parse_item_href(link, page_url) if link else None
    if ids is not None:
        link_chain, link_contract, link_token = ids
        chain = chain or link_chain
        contract = contract or link_contract
        token = token if token is not None else link_token
    if token is None or not contract or not chain:
        return None
    name = obj.get("name") if isinstance(obj.get("name"), str) else None
    page = urljoin(page_url or "", link) if link and ids else None
    collection = obj.get("collection")
    if isinstance(collection, dict):
        collection = collection.get("slug")
    collection = collection if isinstance(collection, str) and collection else None
    traits = traits_of(obj.get("attributes")) or traits_of(obj.get("traits"))
    chain = chain.lower()
    if chain == "solana":  # the mint is both the token and the "contract"
        contract = str(token)
    else:
        contract = contract.lower()
    return ListedItem(
        chain, contract, str(token), name=name, page_url=page, image_url=image, collection=collection,
        traits=traits,
    )


def _chain_name(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("identifier", "name"):
            if isinstance(value.get(key), str) and value[key]:
                return value[key]
    return None


# -- the inlined first page (urql's SSR transport) ----------------------------------------------------
_URQL_PUSH_RE = re.compile(r"""urql_transport["']\)\]\s*\?\?=\s*\[\]\)\.push\(""")


def urql_pushes(html: str) -> list[dict[str, Any]]:
    """Every object a page pushes into ``window[Symbol.for("urql_transport")]`` (server-side rendered
    query results: the first page of items, the collection's totals), parsed from the page's HTML."""
    decoder = json.JSONDecoder()
    out = []
    for m in _URQL_PUSH_RE.finditer(html):
        try:
            doc, _ = decoder.raw_decode(html, m.end())
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


@dataclass(frozen=True)
class CollectionTotals:
    total_supply: int | None = None
    unique_items: int | None = None
    listed: int | None = None
    owners: int | None = None


def collection_totals(doc: Any, slug: str) -> CollectionTotals | None:
    """The totals of collection ``slug`` in a JSON document: the site's ``collectionBySlug.stats``
    (``totalSupply``, ``uniqueItemCount``, ``listedItemCount``, ``ownerCount``) or API v2's collection
    (``total_supply``, ``unique_item_count``)."""
    for obj in _objects(doc):
        named = obj.get("slug") or obj.get("collection")
        stats = obj.get("stats") if isinstance(obj.get("stats"), dict) else None
        if stats is not None and (named in (None, slug)) and "totalSupply" in stats:
            return CollectionTotals(
                _int(stats.get("totalSupply")), _int(stats.get("uniqueItemCount")),
                _int(stats.get("listedItemCount")), _int(stats.get("ownerCount")),
            )
        if named == slug and "total_supply" in obj:
            return CollectionTotals(_int(obj.get("total_supply")), _int(obj.get("unique_item_count")))
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class CollectionScope:
    """Which listed items belong to collection ``slug`` (pages also show other collections' items).

    An item that names its collection is kept when the slug matches. One that does not (a card in the
    page) is kept when its contract is one of the collection's (learned from the page's own data), or,
    on Solana, when the page's data already named it as this collection's. Pages that say nothing about
    collections (older layouts) keep everything. The rest is ignored and counted.
    """

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.contracts: set[str] = set()
        self.keys: set[str] = set()  # items the page's data named as this collection's
        self._ignored: set[str] = set()

    @property
    def known(self) -> bool:
        return bool(self.contracts or self.keys)

    @property
    def ignored_count(self) -> int:
        return len(self._ignored - self.keys)

    def learn(self, doc: Any) -> None:
        """Read the collection's contracts from a document about it (``contracts: [{address}]``)."""
        for obj in _objects(doc):
            if obj.get("slug") == self.slug or obj.get("collection") == self.slug:
                for c in obj.get("contracts") or []:
                    if isinstance(c, dict) and isinstance(c.get("address"), str):
                        self.contracts.add(c["address"].lower())

    def keep(self, items: list[ListedItem]) -> list[ListedItem]:
        kept = []
        for it in items:
            if it.collection is not None:
                mine = it.collection == self.slug
                if mine:
                    self.keys.add(it.item_key)
                    if it.chain != "solana":
                        self.contracts.add(it.contract)
            elif self.known:
                mine = it.item_key in self.keys or (it.chain != "solana" and it.contract in self.contracts)
            else:
                mine = True
            if mine:
                kept.append(it)
            else:
                self._ignored.add(it.item_key)
        return kept
