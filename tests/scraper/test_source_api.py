"""The API source against the fixture's API v2: complete through rate limits, resumable from its cursor."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.catalog import Catalog
from pipeline.errors import NftganError
from scraper.stage import list_items
from marketplace.fixture import Faults, serve_fixture
from scraper.source_api import CURSOR_KEY

from .conftest import fast_config


def catalog_keys(ws, slug: str = "demo") -> list[str]:
    with Catalog(ws.collection(slug).catalog) as cat:
        return [it.item_key for it in cat.items(source="api")]


def test_the_whole_collection_is_listed_through_429_and_599_bursts(ws) -> None:
    faults = Faults(api_errors=[429, 429, 599], retry_after="0.1")
    with serve_fixture(n_items=1000, faults=faults, api_key="k-123") as fx:
        summary = list_items(ws, "demo", fast_config(fx, source="api", api_key="k-123", page_size=200))
        truth = [it.item_key for it in fx.items]
        api_requests = list(fx.api_requests)
    assert (summary.found, summary.new, summary.total, summary.complete) == (1000, 1000, 1000, True)
    keys = catalog_keys(ws)
    assert sorted(keys) == sorted(truth) and len(keys) == len(set(keys))  # every token exactly once
    assert len(api_requests) == 5 + 3  # five pages, three of them retried
    with Catalog(ws.collection("demo").catalog) as cat:
        assert cat.get_state(CURSOR_KEY) is None  # finished: the next listing starts over
        item = cat.get_by_key(truth[7])
        assert item.image_url.endswith("/cdn/demo/7.png?w=500") and item.name == "Demo #7"


def test_an_interrupted_listing_resumes_from_its_saved_cursor(ws) -> None:
    faults = Faults(api_fail_from_page=3)  # an outage from the fourth page on
    with serve_fixture(n_items=500, faults=faults) as fx:
        config = fast_config(fx, source="api", page_size=100, max_retries=1)
        with pytest.raises(NftganError, match="resumes from the saved cursor"):
            list_items(ws, "demo", config)
        assert len(catalog_keys(ws)) == 300  # three pages saved, each with its cursor
        with Catalog(ws.collection("demo").catalog) as cat:
            saved_cursor = cat.get_state(CURSOR_KEY)
        assert saved_cursor
        fx.reset_counters()
        faults.api_fail_from_page = None
        summary = list_items(ws, "demo", config)
        assert fx.api_requests[0] == {"limit": "100", "next": saved_cursor}  # not from the first page
        assert len(fx.api_requests) == 2
        truth = [it.item_key for it in fx.items]
    assert summary.resumed and summary.complete and (summary.found, summary.new, summary.total) == (200, 200, 500)
    assert catalog_keys(ws) == truth  # in collection order, each once


def test_a_rescrape_adds_only_new_items(ws) -> None:
    with serve_fixture(n_items=50) as fx:
        config = fast_config(fx, source="api", page_size=20)
        first = list_items(ws, "demo", config)
        second = list_items(ws, "demo", config)
        full = list_items(ws, "demo", dataclasses.replace(config, full=True))
    assert (first.mode, first.new, first.total) == ("full", 50, 50)
    assert (second.mode, second.found, second.new, second.total) == ("incremental", 20, 0, 50)  # one page of mints
    assert (full.mode, full.found, full.new, full.total) == ("full", 50, 0, 50)


def test_max_items_stops_the_listing_and_leaves_no_cursor(ws) -> None:
    with serve_fixture(n_items=300) as fx:
        summary = list_items(ws, "demo", fast_config(fx, source="api", page_size=50, max_items=120))
        assert len(fx.api_requests) == 3
    assert (summary.found, summary.total, summary.complete) == (120, 120, False)
    with Catalog(ws.collection("demo").catalog) as cat:
        assert cat.get_state(CURSOR_KEY) is None


def test_a_bad_key_fails_at_once_with_a_clear_message(ws) -> None:
    with serve_fixture(n_items=5, api_key="right") as fx:
        with pytest.raises(NftganError, match=r"HTTP 401.*--api-key"):
            list_items(ws, "demo", fast_config(fx, source="api", api_key="wrong"))
        assert len(fx.api_requests) == 1  # not retried


def test_the_key_comes_from_the_environment(ws, monkeypatch) -> None:
    monkeypatch.setenv("OPENSEA_API_KEY", "from-env")
    with serve_fixture(n_items=5, api_key="from-env") as fx:
        assert list_items(ws, "demo", fast_config(fx, source="api")).found == 5


def test_opensea_without_a_key_is_refused_before_any_request(ws, monkeypatch) -> None:
    monkeypatch.delenv("OPENSEA_API_KEY", raising=False)
    from scraper.config import ScrapeConfig

    monkeypatch.setattr("scraper.guard.system_resolver", _fake_public_resolver)
    with pytest.raises(NftganError, match="API key"):
        list_items(ws, "demo", ScrapeConfig(source="api"))


async def _fake_public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # never connected to: the key check comes first


def test_unknown_collection_and_persistent_5xx_give_one_line_errors(ws) -> None:
    with serve_fixture(n_items=5) as fx:
        with pytest.raises(NftganError, match="404"):
            list_items(ws, "other", fast_config(fx, source="api"))
        fx.faults.api_errors = [500, 500, 500]
        with pytest.raises(NftganError, match="HTTP 500 after retries"):
            list_items(ws, "demo", fast_config(fx, source="api", max_retries=2))
        assert len(fx.api_requests) == 1 + 3
