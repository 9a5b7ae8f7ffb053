from __future__ import annotations

import pytest

from scraper.listing import (
    ListedItem, item_from_api_nft, item_from_card, items_from_json, largest_srcset_url, parse_item_href,
)

C = "0xbc4ca0eda7647a8ab7c2061c2e118a18a936f13d"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        (f"/item/ethereum/{C}/1234", ("ethereum", C, "1234")),
        (f"https://opensea.io/assets/ethereum/{C.upper().replace('0X', '0x')}/7/", ("ethereum", C, "7")),
        (f"/item/Base/{C}/0?tab=activity", ("base", C, "0")),
        ("/collection/boredapeyachtclub", None),
        (f"/item/ethereum/{C}", None),
        (f"/item/ethereum/{C}/1/offers", None),
        ("", None),
    ],
)
def test_parse_item_href(href, expected) -> None:
    assert parse_item_href(href, "https://opensea.io/collection/x") == expected


def test_largest_srcset_candidate_wins() -> None:
    assert largest_srcset_url("a.png 1x, b.png 2x", "http://h/p/") == "http://h/p/b.png"
    assert largest_srcset_url("/s.png 200w, /l.png 800w, /m.png 400w", "http://h/") == "http://h/l.png"
    assert largest_srcset_url("", "http://h/") is None


def test_card_prefers_lazy_source_then_srcset_then_src_and_takes_video_posters() -> None:
    page = "http://m.test/collection/x"
    card = {"href": f"http://m.test/item/ethereum/{C}/5", "dataSrc": "http://cdn.test/5.png?w=64",
            "src": "http://m.test/placeholder.png", "name": " Ape #5 "}
    item = item_from_card(card, page)
    assert item == ListedItem("ethereum", C, "5", name="Ape #5", page_url=card["href"], image_url=card["dataSrc"])
    srcset = {"href": f"/item/ethereum/{C}/6", "srcset": "/a 1x, /b 2x"}
    assert item_from_card(srcset, page).image_url == "http://m.test/b"
    assert item_from_card({"href": f"/item/ethereum/{C}/7", "src": "data:image/gif;base64,R0"}, page).image_url is None
    video = {"href": f"/item/ethereum/{C}/8", "poster": "http://cdn.test/8.jpg", "videoSrc": "http://cdn.test/8.mp4"}
    assert item_from_card(video, page).image_url == "http://cdn.test/8.jpg"
    bare_video = {"href": f"/item/ethereum/{C}/9", "videoSrc": "/9.mp4"}
    assert item_from_card(bare_video, page).image_url == "http://m.test/9.mp4"
    assert item_from_card({"href": "/about"}, page) is None


def test_items_in_graphql_like_json_are_found_in_document_order() -> None:
    doc = {"data": {"items": {"edges": [
        {"node": {"tokenId": "2", "name": "two", "imageUrl": "https://i.seadn.io/2.png",
                  "assetContract": {"address": C.upper().replace("0X", "0x"), "chain": {"identifier": "ETHEREUM"}}}},
        {"node": {"tokenId": 3, "imageUrl": "ipfs://bafy/3.png", "permalink": f"https://opensea.io/item/base/{C}/3"}},
        {"node": {"tokenId": "4", "assetContract": {"address": C, "chain": "ethereum"}}},  # no image: skipped
        {"node": {"tokenId": "5", "imageUrl": "https://i.seadn.io/5.png"}},  # no contract: skipped
    ]}}}
    items = items_from_json(doc, "https://opensea.io/collection/x")
    assert [(i.chain, i.contract, i.token_id, i.image_url) for i in items] == [
        ("ethereum", C, "2", "https://i.seadn.io/2.png"),
        ("base", C, "3", "ipfs://bafy/3.png"),
    ]


def test_json_walker_survives_hostile_documents() -> None:
    deep: dict = {}
    node = deep
    for _ in range(10_000):
        node["x"] = {}
        node = node["x"]
    assert items_from_json(deep) == []
    assert items_from_json([1, "a", None, {"image_url": 5}]) == []


def test_api_nft_record() -> None:
    nft = {"identifier": "42", "contract": C, "name": "n", "image_url": "ipfs://c/42.png",
           "display_image_url": "https://i.seadn.io/s/42.png?w=500",
           "opensea_url": f"https://opensea.io/assets/matic/{C}/42"}
    item = item_from_api_nft(nft)
    assert (item.chain, item.token_id, item.image_url) == ("matic", "42", "https://i.seadn.io/s/42.png?w=500")
    assert item_from_api_nft({"identifier": "1", "contract": C, "image_url": None}).image_url is None
    assert item_from_api_nft({"identifier": "1", "contract": C}).chain == "ethereum"
    assert item_from_api_nft({"contract": C}) is None
    assert item.row("api")["item_key"] == f"matic/{C}/42"
