"""The browser source in real Chromium against the fixture's virtualized, lazy, infinite grid."""

from __future__ import annotations

import pytest

from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from scraper.stage import list_items
from marketplace.fixture import Faults, serve_fixture
from scraper.source_browser import CHROMIUM_ENV, find_chromium

from .conftest import fast_config


def _browser(test):
    """Real Chromium: marked slow, skipped (with the reason) only when no browser exists at all."""
    return pytest.mark.slow(pytest.mark.usefixtures("chromium")(test))


def listed(ws, slug: str = "demo") -> list:
    with Catalog(ws.collection(slug).catalog) as cat:
        return cat.items(source="browser")


@_browser
def test_a_virtualized_grid_of_1000_items_is_collected_completely_from_the_dom(ws) -> None:
    # the opaque feed hides items from the network listener: only the DOM path can find them
    with serve_fixture(n_items=1000, feed="opaque", card_px=60, page_size=100) as fx:
        summary = list_items(ws, "demo", fast_config(fx))
        truth = {it.item_key: it for it in fx.items}
        assert fx.counters["feed"] == 10 and fx.counters["image"] == 0  # the browser fetched no image
    items = listed(ws)
    keys = [it.item_key for it in items]
    assert len(keys) == len(set(keys)) == 1000 and set(keys) == set(truth)  # every token exactly once
    assert (summary.found, summary.new, summary.complete) == (1000, 1000, True)
    for it in items:  # the lazy image (data-src or srcset) of every card, at the thumbnail's URL
        assert it.image_url is not None and f"/cdn/demo/{it.token_id}.png?w=" in it.image_url, it
        assert it.page_url.endswith(f"/{truth[it.item_key].contract}/{it.token_id}")
    assert any("/assets/" in it.page_url for it in items) and any("/item/" in it.page_url for it in items)


@_browser
def test_items_are_taken_from_the_page_json_when_cards_have_no_links(ws) -> None:
    with serve_fixture(n_items=150, card_links=False, card_px=60) as fx:
        summary = list_items(ws, "demo", fast_config(fx))
        truth = {it.item_key for it in fx.items}
    assert summary.found == 150 and {it.item_key for it in listed(ws)} == truth
    assert all(it.image_url and it.image_url.endswith("?w=500") for it in listed(ws))


@_browser
def test_a_slow_first_load_and_interstitials_are_waited_out(ws) -> None:
    faults = Faults(interstitial_loads=2, page_delay_s=0.5)
    with serve_fixture(n_items=40, faults=faults, card_px=60) as fx:
        summary = list_items(ws, "demo", fast_config(fx, page_retries=3))
        assert fx.counters["page"] == 3 and fx.counters["interstitial"] == 2
    assert summary.found == 40


@_browser
def test_a_page_that_never_shows_items_fails_with_a_hint_to_use_the_api(ws) -> None:
    with serve_fixture(n_items=10, faults=Faults(interstitial_loads=99)) as fx:
        with pytest.raises(NftganError, match=r"no items on the collection page after 2 tries.*--source api"):
            list_items(ws, "demo", fast_config(fx, page_retries=2))
        assert fx.counters["page"] == 2


@_browser
def test_max_items_stops_scrolling(ws) -> None:
    with serve_fixture(n_items=600, card_px=60, page_size=100) as fx:
        summary = list_items(ws, "demo", fast_config(fx, max_items=150))
        assert fx.counters["feed"] < 6
    assert (summary.found, summary.total, summary.complete) == (150, 150, False)


@_browser
def test_an_unknown_collection_is_one_clear_error(ws) -> None:
    with serve_fixture(n_items=3) as fx:
        with pytest.raises(NftganError, match="HTTP 404"):
            list_items(ws, "nope", fast_config(fx))


def test_chromium_is_found_from_the_option_then_the_environment(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(fake))
    assert find_chromium() == str(fake)
    assert find_chromium("/usr/bin/env") == "/usr/bin/env"  # the option wins over the environment
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "missing"))
    with pytest.raises(NftganError, match=CHROMIUM_ENV):
        find_chromium()
    with pytest.raises(NftganError, match="--chromium"):
        find_chromium(str(tmp_path / "also-missing"))
