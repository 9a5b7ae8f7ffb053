"""The browser source against a page that behaves like today's OpenSea (the fixture's "os2" mode).

Page 1 is inlined (no request carries it), the default ordering is price ascending and its cursor ends
where the listed items end, later pages come from a persisted GraphQL query, cursors of two orderings
must never be mixed, and a carousel shows another collection's items.
"""

from __future__ import annotations

import json

import pytest

from pipeline.catalog import Catalog
from scraper.stage import list_items
from marketplace.fixture import Faults, serve_fixture
from marketplace.fixture_os2 import OTHER_SLUG

from .conftest import fast_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium")]


def cursor_errors(fx) -> int:
    """Feed requests the fixture answered with "Invalid cursor" (it never should be asked one)."""
    from marketplace import fixture_os2

    errors = 0
    for query in fx.feed_requests:
        status, doc = fixture_os2.graphql_answer(fx, query)
        errors += any("cursor" in e.get("message", "") for e in doc.get("errors", []))
    return errors


def test_every_item_of_a_mostly_unlisted_collection_is_cataloged(ws) -> None:
    with serve_fixture(n_items=1000, mode="os2", listed_share=0.05, card_px=60) as fx:
        assert len(fx.prices) == 50  # 5% listed: the price ordering ends after 50 rows
        summary = list_items(ws, "demo", fast_config(fx))
        feed_orderings = {json.loads(q["variables"])["sort"]["by"] for q in fx.feed_requests}
        assert cursor_errors(fx) == 0
    assert (summary.found, summary.cataloged, summary.total_supply) == (1000, 1000, 1000)
    assert not summary.partial and summary.stopped_by is None
    assert summary.ignored == 4  # the "Featured collections" carousel
    assert "CREATED_DATE" in feed_orderings  # the page's own feed, walked in a full ordering
    assert summary.coverage_line() == "cataloged 1000 of 1000 (total supply)"
    with Catalog(ws.collection("demo").catalog) as cat:
        items = cat.items()
        assert {it.token_id for it in items} == {str(i) for i in range(1000)}
        assert {it.contract for it in items} == {fx.contract}
        assert all(it.trait_pairs() for it in items)  # traits came with the feed
        coverage = json.loads(cat.get_state("scrape.coverage"))
    assert (coverage["cataloged"], coverage["total_supply"], coverage["partial"]) == (1000, 1000, False)
    assert OTHER_SLUG not in json.dumps([it.page_url for it in items])


def test_a_feed_cut_short_is_reported_as_partial_with_its_exit_code(cli, tmp_path) -> None:
    faults = Faults(feed_stop_after=300)
    with serve_fixture(n_items=1000, mode="os2", card_px=60, faults=faults) as fx:
        r = cli("scrape", "demo", "--base-url", fx.base_url, "--allow-private-hosts", "--list-only",
                "--idle-scrolls", "3")
        reached = len({str(i) for i in range(300)} | set(fx.prices))  # the cut feed, plus the listed items
    assert r.exit_code == 3, (r.stdout, r.stderr)
    last = r.stdout.strip().splitlines()[-1]
    assert last == f"cataloged {reached} of 1000 (total supply) - PARTIAL: the listing ended {1000 - reached} " \
        "short of the total supply", last
    status = cli("status", "demo")
    assert f"coverage    cataloged {reached} of 1000 (total supply) - PARTIAL" in status.stdout
    info = json.loads(cli("status", "demo", "--json").stdout)
    assert info["coverage"]["partial"] is True


def test_the_inlined_first_page_alone_gives_its_rows(ws) -> None:
    faults = Faults(feed_status=403)  # every feed request refused: only the HTML has items
    with serve_fixture(n_items=400, mode="os2", listed_share=0.25, card_px=60, faults=faults) as fx:
        summary = list_items(ws, "demo", fast_config(fx, idle_scrolls=3))
        by_price = sorted(fx.prices, key=lambda token: (fx.prices[token], int(token)))
    assert summary.partial and "HTTP 403" in (summary.stopped_by or "")
    with Catalog(ws.collection("demo").catalog) as cat:
        cataloged = {it.token_id for it in cat.items()}
    assert cataloged == set(by_price[:50])  # all 50 inlined rows, though only 30 were ever drawn at first
    assert summary.cataloged == 50 and summary.total_supply == 400


def test_a_solana_collection_is_cataloged_by_mint(ws) -> None:
    with serve_fixture(n_items=150, mode="os2", chain="solana", card_px=60) as fx:
        summary = list_items(ws, fx.slug, fast_config(fx))
        mints = {it.token_id for it in fx.items}
    assert (summary.cataloged, summary.total_supply, summary.partial) == (150, 150, False)
    with Catalog(ws.collection(fx.slug).catalog) as cat:
        items = cat.items()
    assert {it.token_id for it in items} == mints
    assert all(it.chain == "solana" and it.contract == it.token_id for it in items)
    assert all(it.item_key == f"solana/{it.token_id.lower()}/{it.token_id}" for it in items)
