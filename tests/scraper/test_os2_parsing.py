"""Pure parsing of what today's OpenSea pages carry, and of the image URLs they list."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from scraper.listing import (
    CollectionScope, collection_totals, item_from_api_nft, items_from_json, parse_item_href, urql_pushes,
)
from scraper.source_browser import feed_request
from scraper.urls import BadUrl, decode_data_uri, download_urls

MINT = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


def push(data: dict) -> str:
    doc = {"rehydrate": {"-123": {"hasNext": False, "data": data}}}
    return f'<script>(window[Symbol.for("urql_transport")] ??= []).push({json.dumps(doc)})</script>'


def row(token: str, slug: str = "punks", contract: str = "0xAbC", chain: str = "ethereum") -> dict:
    return {"tokenId": token, "name": f"#{token}", "imageUrl": f"https://i.seadn.io/{token}.png",
            "contractAddress": contract, "chain": {"identifier": chain}, "collection": {"slug": slug},
            "attributes": [{"traitType": "Hat", "value": "Cap"}], "__typename": "Item"}


def test_inlined_pushes_rows_and_totals_are_read_from_html() -> None:
    html = (
        "<html><body>" + push({"collectionBySlug": {"slug": "punks", "stats": {
            "totalSupply": 9998, "uniqueItemCount": 9998, "listedItemCount": 283, "ownerCount": 5601},
            "contracts": [{"address": "0xABC", "chain": "ethereum"}]}})
        + push({"collectionItems": {"items": [row("1"), row("2"), row("9", slug="other", contract="0xdef")],
                                    "nextPageCursor": "WzEsMl0="}}) + "</body></html>"
    )
    pushes = urql_pushes(html)
    assert len(pushes) == 2
    totals = collection_totals(pushes[0], "punks")
    assert (totals.total_supply, totals.listed, totals.owners) == (9998, 283, 5601)
    scope = CollectionScope("punks")
    scope.learn(pushes[0])
    assert scope.contracts == {"0xabc"}
    items = items_from_json(pushes[1])
    kept = scope.keep(items)
    assert [it.token_id for it in kept] == ["1", "2"] and scope.ignored_count == 1
    assert kept[0].traits == (("Hat", "Cap"),) and kept[0].contract == "0xabc"
    # a card (no collection named) of another contract is ignored; one of ours is kept
    card = items_from_json({"href": "/item/ethereum/0xdef/5", "imageUrl": "https://x/5.png", "tokenId": "5",
                            "contractAddress": "0xdef", "chain": "ethereum"})
    assert scope.keep(card) == [] and scope.ignored_count == 2


def test_api_totals_and_solana_items() -> None:
    assert collection_totals({"collection": "punks", "total_supply": 10000}, "punks").total_supply == 10000
    assert collection_totals({"collection": "other", "total_supply": 5}, "punks") is None
    assert parse_item_href(f"https://opensea.io/item/solana/{MINT}") == ("solana", MINT, MINT)
    assert parse_item_href("/item/ethereum/0xAB/12") == ("ethereum", "0xab", "12")
    sol = items_from_json(row(MINT, contract=MINT, chain="solana"))[0]
    assert (sol.chain, sol.contract, sol.token_id) == ("solana", MINT, MINT)
    nft = item_from_api_nft({"identifier": "4", "contract": "0xAB", "collection": "punks", "image_url": None,
                             "display_image_url": None, "original_image_url": "ipfs://bafy/4.png",
                             "is_nsfw": True, "traits": [{"trait_type": "Eyes", "value": 3}]})
    assert nft.image_url == "ipfs://bafy/4.png" and nft.nsfw is True and nft.traits == (("Eyes", "3"),)


def test_the_feed_request_is_replayed_with_another_ordering_and_its_own_cursor() -> None:
    variables = {"collectionSlug": "punks", "cursor": "PRICECURSOR", "limit": 50,
                 "sort": {"by": "PRICE", "direction": "ASC"}, "filter": {}}
    url = ("https://gql.example/graphql?operationName=CollectionItemsListQuery&variables="
           + json.dumps(variables) + '&extensions={"persistedQuery":{"sha256Hash":"abc","version":1}}&app_id=os2-web')
    template = {"url": url, "method": "GET", "headers": {"x-app-id": "os2-web"}, "body": None}
    first = feed_request(template, by="CREATED_DATE", direction="ASC", cursor=None, limit=100)
    query = parse_qs(urlsplit(first["url"]).query)
    changed = json.loads(query["variables"][0])
    assert changed["cursor"] is None  # never the price ordering's cursor
    assert changed["sort"] == {"by": "CREATED_DATE", "direction": "ASC"} and changed["limit"] == 100
    assert json.loads(query["extensions"][0])["persistedQuery"]["sha256Hash"] == "abc"
    assert query["app_id"] == ["os2-web"] and first["headers"] == {"x-app-id": "os2-web"}
    post = {"url": "https://gql.example/graphql", "method": "POST", "headers": {},
            "body": json.dumps({"query": "query CollectionItemsListQuery", "variables": {"after": "X"}})}
    body = json.loads(feed_request(post, by="CREATED_DATE", direction="ASC", cursor="C2", limit=100)["body"])
    assert body["variables"]["after"] == "C2" and "cursor" not in body["variables"]


def test_image_urls_of_every_kind() -> None:
    gateways = ("https://a.example/ipfs/", "https://b.example/ipfs/")
    kw = {"ipfs_gateways": gateways, "arweave_gateway": "https://arweave.net/", "image_width_px": 512}
    assert download_urls("ipfs://bafyX/1.png", **kw) == ["https://a.example/ipfs/bafyX/1.png",
                                                        "https://b.example/ipfs/bafyX/1.png"]
    assert download_urls("ar://TXID/img.png", **kw) == ["https://arweave.net/TXID/img.png"]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"x" * 20).decode()
    data_url = f"data:image/png;base64,{png}"
    assert download_urls(data_url, **kw) == [data_url]
    assert decode_data_uri(data_url, 1000).startswith(b"\x89PNG")
    assert decode_data_uri("data:image/svg+xml,%3Csvg%3E%3C/svg%3E", 1000) == b"<svg></svg>"
    with pytest.raises(BadUrl) as e:
        decode_data_uri("data:image/png;base64," + "A" * 4000, 1000)
    assert e.value.reason == "file-too-large"
    for bad in ("file:///etc/passwd", "javascript:alert(1)", "ar://"):
        with pytest.raises(BadUrl):
            download_urls(bad, **kw)
