"""The fixture itself behaves like the marketplace the scraper tests claim it imitates."""

from __future__ import annotations

import io
import socket

import httpx
import pytest
from PIL import Image

from marketplace.fixture import Faults, serve_fixture


def test_api_cursors_walk_the_whole_collection_once() -> None:
    with serve_fixture(n_items=23) as fx:
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 10, **({"next": cursor} if cursor else {})}
            doc = httpx.get(f"{fx.api_base_url}/api/v2/collection/demo/nfts", params=params).json()
            seen += [n["identifier"] for n in doc["nfts"]]
            pages += 1
            cursor = doc.get("next")
            if not cursor:
                break
        assert (seen, pages) == (fx.token_ids(), 3)
        bad = httpx.get(f"{fx.api_base_url}/api/v2/collection/demo/nfts", params={"next": "garbage"})
        assert bad.status_code == 400


def test_images_honour_w_and_faults_misbehave_as_promised() -> None:
    faults = Faults(image_errors=[429, 599], retry_after="date:5", duplicate_of={"2": "1"}, html_as_png={"3"})
    with serve_fixture(n_items=5, faults=faults) as fx:
        cdn = f"{fx.base_url}/cdn/demo"
        first, second = httpx.get(f"{cdn}/0.png"), httpx.get(f"{cdn}/0.png")
        assert (first.status_code, second.status_code) == (429, 599) and "GMT" in first.headers["retry-after"]
        image = httpx.get(f"{cdn}/0.png", params={"w": 40})
        assert Image.open(io.BytesIO(image.content)).size == (40, 40)
        assert Image.open(io.BytesIO(httpx.get(f"{cdn}/0.png").content)).size == (256, 256)  # no w: original
        assert httpx.get(f"{cdn}/2.png").content == httpx.get(f"{cdn}/1.png").content
        html = httpx.get(f"{cdn}/3.png")
        assert html.headers["content-type"] == "image/png" and html.content.startswith(b"<!DOCTYPE html>")


def test_a_truncated_image_promises_more_bytes_than_it_sends() -> None:
    with serve_fixture(n_items=2, faults=Faults(truncated={"1"})) as fx:
        port = int(fx.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /cdn/demo/1.png?w=64 HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
        declared = int(headers[b"content-length"])
        assert 0 < len(body) < declared


def test_ipfs_items_are_listed_as_ipfs_and_served_by_the_gateway() -> None:
    with serve_fixture(n_items=3, faults=Faults(ipfs={"2"})) as fx:
        nfts = httpx.get(f"{fx.api_base_url}/api/v2/collection/demo/nfts").json()["nfts"]
        url = nfts[2]["image_url"]
        assert url.startswith("ipfs://") and nfts[2]["display_image_url"] is None
        served = httpx.get(fx.ipfs_gateway + url[len("ipfs://"):])
        assert served.status_code == 200 and served.content.startswith(b"\x89PNG")


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_the_grid_is_virtualized_and_its_images_are_lazy() -> None:
    from playwright.sync_api import sync_playwright

    from scraper.source_browser import CHROMIUM_ARGS, VIEWPORT, find_chromium

    with serve_fixture(n_items=400, card_px=60, page_size=100) as fx, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
        page = browser.new_page(viewport={"width": VIEWPORT["width"], "height": 600})
        page.goto(fx.collection_url)
        page.wait_for_selector("a.card")
        first_href = page.eval_on_selector("a.card", "a => a.getAttribute('href')")
        # rendered cards just below the fold have no image URL yet: lazy
        page.wait_for_function(
            "document.querySelectorAll('a.card img').length >"
            " document.querySelectorAll('a.card img[src], a.card img[srcset]').length", timeout=10_000,
        )
        for _ in range(200):  # scroll to the end until the feed is exhausted
            page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
            page.wait_for_timeout(30)
            if page.text_content("#status").startswith("All 400"):
                break
        page.wait_for_timeout(200)
        in_dom = page.eval_on_selector_all("a.card", "els => els.map(a => a.getAttribute('href'))")
        browser.close()
    assert 0 < len(in_dom) < 400 and first_href not in in_dom  # cards far off-screen left the DOM


def test_a_pixel_art_collection_is_served_in_whole_pixels_with_its_own_traits() -> None:
    import numpy as np

    from marketplace import pixelcollection

    with serve_fixture(n_items=3, art="pixel", mode="os2") as fx:
        cdn = f"{fx.base_url}/cdn/demo"
        token = np.asarray(pixelcollection.render_item(1))
        for width, scale in ((500, 20), (64, 2), (10, 1)):  # the largest whole upscale that fits, at least 1x
            got = np.asarray(Image.open(io.BytesIO(httpx.get(f"{cdn}/1.png", params={"w": width}).content)).convert("RGB"))
            assert got.shape == (24 * scale, 24 * scale, 3)
            assert (got[::scale, ::scale] == token).all()  # each cell one colour: the token's own pixel
            assert (got == np.repeat(np.repeat(token, scale, 0), scale, 1)).all()
        doc = httpx.get(f"{fx.api_base_url}/api/v2/collection/demo/nfts", params={"limit": 3}).json()
        listed = {n["identifier"]: {t["trait_type"]: t["value"] for t in n["traits"]} for n in doc["nfts"]}
        assert listed == {str(i): pixelcollection.item_traits(i) for i in range(3)}
        assert [n["name"] for n in doc["nfts"]] == [pixelcollection.item_name(i) for i in range(3)]
    with pytest.raises(ValueError, match="art must be one of"):
        with serve_fixture(n_items=1, art="vector"):
            pass
