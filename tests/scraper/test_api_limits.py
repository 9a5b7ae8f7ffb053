"""The API source against announced rate limits, flags and traits (the fixture's "os2" API)."""

from __future__ import annotations

import time

import pytest

from pipeline.catalog import Catalog
from scraper.stage import list_items
from marketplace.fixture import Faults, serve_fixture
from scraper.source_api import RatePacer

from .conftest import fast_config


def test_pacer_spreads_the_last_requests_and_waits_for_an_empty_window() -> None:
    now = [1_000_000_000.0]
    pacer = RatePacer(clock=lambda: now[0])
    assert pacer.wait_s() == 0.0  # nothing announced yet
    pacer.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "500", "x-ratelimit-reset": str(now[0] + 3000)})
    assert pacer.wait_s() == 0.0  # plenty left: no waiting
    pacer.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "29", "x-ratelimit-reset": str(now[0] + 300)})
    assert pacer.wait_s() == pytest.approx(10.0)  # 300 s over the 29 left (+1)
    pacer.observe({"x-ratelimit-limit": "600", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "42"})
    assert pacer.wait_s() == pytest.approx(42.0)  # small Reset values are seconds from now


def test_requests_are_spaced_by_the_announced_limit_without_a_429_storm(ws) -> None:
    faults = Faults(api_rate_limit=(5, 1.0))
    with serve_fixture(n_items=600, mode="os2", faults=faults) as fx:
        started = time.monotonic()
        summary = list_items(ws, "demo", fast_config(fx, source="api", page_size=50))
        elapsed = time.monotonic() - started
        limited = fx.counters["rate-limited"]
        requests = fx.counters["api"] + fx.counters["api-collection"]
    assert (summary.cataloged, summary.total_supply, summary.partial) == (600, 600, False)
    assert limited == 0  # the pacer never let a request hit the limit
    assert requests == 13 and elapsed >= 1.5  # 13 requests at 5 per second: spread over the windows
    with Catalog(ws.collection("demo").catalog) as cat:
        items = cat.items()
    assert all(dict(it.trait_pairs()).get("Skin") for it in items)


def test_a_long_rate_limit_wait_ends_the_run_and_the_next_resumes_from_the_cursor(cli) -> None:
    faults = Faults(api_rate_limit=(3, 3.0))
    with serve_fixture(n_items=300, mode="os2", faults=faults) as fx:
        args = ["scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url, "--allow-private-hosts",
                "--page-size", "50", "--list-only", "--max-rate-wait", "0.5"]
        first = cli(*args)
        assert first.exit_code == 3, first.stdout + first.stderr
        assert "more than --max-rate-wait" in first.stdout and "PARTIAL" in first.stdout
        assert "cataloged 100 of 300 (total supply)" in first.stdout  # 1 collection + 2 pages in the window
        pages_before = len(fx.api_requests)
        time.sleep(3.2)  # the window resets
        second = cli(*args, "--max-rate-wait", "10")
        assert second.exit_code == 0, second.stdout + second.stderr
        assert "resumed from the saved API cursor" in second.stdout
        assert "next" in fx.api_requests[pages_before]  # the first request of the second run had the cursor
        assert fx.counters["rate-limited"] == 0
    assert second.stdout.strip().splitlines()[-1] == "cataloged 300 of 300 (total supply)"


def test_disabled_items_are_skipped_and_nsfw_recorded_or_skipped(cli, ws) -> None:
    faults = Faults(disabled={"3", "4"}, nsfw={"7"}, original_only={"9"})
    with serve_fixture(n_items=30, mode="os2", faults=faults) as fx:
        base = ["scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url, "--allow-private-hosts",
                "--list-only"]
        r = cli(*base)
        assert r.exit_code == 0, r.stdout + r.stderr
        assert r.stdout.strip().splitlines()[-1] == "cataloged 28 of 30 (total supply); skipped 2 disabled"
        with Catalog(ws.collection("demo").catalog) as cat:
            by_token = {it.token_id: it for it in cat.items()}
        assert "3" not in by_token and by_token["7"].nsfw == 1 and by_token["8"].nsfw == 0
        assert by_token["9"].image_url.endswith("/cdn/demo/9.png")  # original_image_url as the fallback
        r = cli(*base, "--skip-nsfw", "--restart-listing")
        assert "skipped 2 disabled, 1 nsfw" in r.stdout


def test_traits_are_counted_by_status_and_written_with_the_cache(cli, ws) -> None:
    with serve_fixture(n_items=40, mode="os2") as fx:
        r = cli("scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url, "--allow-private-hosts",
                "--image-width", "32")
        assert r.exit_code == 0, r.stderr
    out = cli("status", "demo", "--traits").stdout
    assert "trait Skin (" in out and "40 items)" in out
    from marketplace import democollection

    skins: dict[str, int] = {}
    for i in range(40):
        skin = democollection.item_traits(i)["Skin"]
        skins[skin] = skins.get(skin, 0) + 1
    for skin, n in skins.items():
        assert f"    {skin}: {n}" in out

    assert cli("prepare", "demo", "--size", "16").exit_code == 0
    import csv

    from pipeline.cache import open_cache

    cache = open_cache(ws, "demo", 16)
    with open(ws.collection("demo").cache_traits(16), newline="") as f:
        rows = list(csv.DictReader(f))
    assert cache.manifest["traits_table"] == "traits.csv"
    assert [int(r["item_id"]) for r in rows] == cache.manifest["item_ids"]
    assert [r["row"] for r in rows] == [str(i) for i in range(len(rows))]
    with Catalog(ws.collection("demo").catalog) as cat:
        first = cat.get(int(rows[0]["item_id"]))
    assert rows[0]["Skin"] == dict(first.trait_pairs())["Skin"] and rows[0]["token_id"] == first.token_id
