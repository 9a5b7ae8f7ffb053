from __future__ import annotations

import pytest

from scraper.urls import BadUrl, download_url, ipfs_to_gateway, with_width

GW = "https://gw.test/ipfs/"


def test_ipfs_urls_go_through_the_gateway() -> None:
    assert ipfs_to_gateway("ipfs://bafyabc/1.png", GW) == "https://gw.test/ipfs/bafyabc/1.png"
    assert ipfs_to_gateway("ipfs://ipfs/bafyabc/1.png", GW) == "https://gw.test/ipfs/bafyabc/1.png"
    assert download_url("ipfs://bafyabc", ipfs_gateway="http://127.0.0.1:9/ipfs", image_width_px=512) == (
        "http://127.0.0.1:9/ipfs/bafyabc"
    )
    with pytest.raises(BadUrl):
        ipfs_to_gateway("ipfs://", GW)


def test_opensea_cdn_is_asked_for_the_chosen_width() -> None:
    assert with_width("https://i.seadn.io/gae/abc.png?w=500&auto=format", 512) == (
        "https://i.seadn.io/gae/abc.png?auto=format&w=512"
    )
    assert with_width("https://i2.seadn.io/ethereum/x.png", 256) == "https://i2.seadn.io/ethereum/x.png?w=256"
    assert with_width("https://lh3.googleusercontent.com/abc=s250", 512) == "https://lh3.googleusercontent.com/abc=s512"
    assert with_width("https://lh3.googleusercontent.com/abc", 512) == "https://lh3.googleusercontent.com/abc=s512"
    assert with_width("https://example.org/a.png", 512) == "https://example.org/a.png"  # not a resizer
    assert with_width("http://127.0.0.1:5/cdn/d/1.png?w=64", 32) == "http://127.0.0.1:5/cdn/d/1.png?w=32"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "no-image-url"), ("  ", "no-image-url"), ("file:///etc/passwd", "bad-scheme"),
        ("ftp://example.org/a.png", "bad-scheme"), ("ar://", "bad-url"),
        ("javascript:alert(1)", "bad-scheme"), ("/relative.png", "bad-scheme"), ("http:///nohost", "bad-url"),
    ],
)
def test_urls_that_are_never_fetched(url, reason) -> None:
    with pytest.raises(BadUrl) as e:
        download_url(url, ipfs_gateway=GW, image_width_px=512)
    assert e.value.reason == reason
