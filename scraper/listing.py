"""What a listing finds: items (chain, contract, token id, image URL), from links, page JSON or the API.

Pure parsing, no I/O: the browser source feeds it anchors and network JSON, the API source feeds it
``nfts`` records, and both hand the resulting :class:`ListedItem` s to the catalog.
"""

from __future__ import annotations

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
    contract: str
    token_id: str
    name: str | None = None
    page_url: str | None = None
    image_url: str | None = None

    @property
    def item_key(self) -> str:
        return item_key_for_token(self.chain, self.contract, self.token_id)

    def row(self, source: str) -> dict[str, Any]:
        """A row for :meth:`pipeline.catalog.Catalog.add_items`."""
        return {
            "item_key": self.item_key, "source": source, "chain": self.chain.lower(),
            "contract": self.contract.lower(), "token_id": self.token_id, "name": self.name,
            "page_url": self.page_url, "image_url": self.image_url,
        }


def parse_item_href(href: str, base_url: str | None = None) -> tuple[str, str, str] | None:
    """``(chain, contract, token_id)`` of an item link, or None if ``href`` is not one."""
    if not href:
        return None
    path = urlsplit(urljoin(base_url or "", href)).path
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
    image = next((nft[k] for k in ("display_image_url", "image_url") if is_url(nft.get(k))), None)
    name = nft.get("name") if isinstance(nft.get("name"), str) else None
    return ListedItem(
        chain.lower(), contract.lower(), str(token), name=name,
        page_url=link if isinstance(link, str) else None, image_url=image,
    )


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
    return ListedItem(chain.lower(), contract.lower(), str(token), name=name, page_url=page, image_url=image)


def _chain_name(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("identifier", "name"):
            if isinstance(value.get(key), str) and value[key]:
                return value[key]
    return None
