"""Incremental listing: a refresh lists only what is new, re-lists everything on --full and on schedule.

The browser source walks the page's feed newest first (CREATED_DATE:DESC) and stops at the first page of
known items; the API source walks the collection's mint events newest first the same way. The fixture's
collection grows, loses a token and changes an image while it is served, and its request logs show how
much of the collection each listing walked.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from pipeline.catalog import LAST_FULL_LISTING_KEY, LISTING_STATE_KEY, Catalog
from scraper.stage import list_items, listing_plan, scrape
from scraper.summaries import ListSummary
from marketplace.fixture import Faults, serve_fixture

from scraper.source_browser import FEED_PAGE_LIMIT

from .conftest import fast_config


def walked_pages(fx) -> list[str]:
    """The ordering of every feed page the scraper's own walk asked for (pages of FEED_PAGE_LIMIT rows; the
    page's own requests, pages of 50 as its reader scrolls, are left out)."""
    out = []
    for query in fx.feed_requests:
        variables = json.loads(query["variables"])
        if variables["limit"] == FEED_PAGE_LIMIT:
            out.append(f"{variables['sort']['by']}:{variables['sort']['direction']}")
    return out


def by_token(ws, slug: str = "demo") -> dict:
    with Catalog(ws.collection(slug).catalog) as cat:
        return {it.token_id: it for it in cat.items()}


# -- the browser source (real Chromium against the os2 fixture page) ---------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_a_grown_collection_is_listed_newest_first_until_known_items(ws) -> None:
    # half the items listed: the price-ordered page asks its feed at once (no idle scrolling to wait out)
    with serve_fixture(n_items=200, mode="os2", card_px=60, listed_share=0.5) as fx:
        config = fast_config(fx)
        first = scrape(ws, "demo", config)
        assert (first.listing.mode, first.listing.why, first.listing.new_items) == ("full", "first listing", 200)
        fresh = {it.token_id for it in fx.grow(10)}  # 5% more, minted after the first scrape
        assert walked_pages(fx) == ["CREATED_DATE:ASC"] * 3  # the first listing walked all 200 (and an empty page)
        fx.reset_counters()
        second = scrape(ws, "demo", config)
        walked = walked_pages(fx)
        images = dict(fx.image_requests)
    listing = second.listing
    assert (listing.mode, listing.new_items, listing.total, listing.removed) == ("incremental", 10, 210, 0)
    # newest first: page 1 holds the 10 new items and 90 known ones, page 2 only known ones: stop there
    assert walked == ["CREATED_DATE:DESC"] * 2, walked  # not the 3 pages of a full walk
    assert set(images) == fresh and max(images.values()) == 1  # only the new items' images
    assert (second.download.attempted, second.download.downloaded) == (10, 10)
    assert listing.coverage_line() == "cataloged 210 of 210 (total supply)"
    text = second.describe()
    assert "incremental listing (the last full listing is 0.0 days old): 10 new" in text
    assert text.splitlines()[-1] == "cataloged 210 of 210 (total supply)"
    assert set(by_token(ws)) == {str(i) for i in range(210)}


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_full_relists_everything_and_notices_a_removed_token_and_a_changed_image(ws) -> None:
    with serve_fixture(n_items=150, mode="os2", card_px=60, listed_share=0.5) as fx:
        config = fast_config(fx)
        scrape(ws, "demo", config)
        before = by_token(ws)
        fx.remove("17")
        new_url = fx.change_image("42")
        fx.reset_counters()
        again = scrape(ws, "demo", dataclasses.replace(config, full=True))
        images = dict(fx.image_requests)
    listing = again.listing
    assert (listing.mode, listing.why, listing.new_items) == ("full", "--full", 0)
    assert (listing.removed, listing.changed, listing.delisted) == (1, 1, 1)
    assert listing.coverage_line() == "cataloged 149 of 149 (total supply)"
    assert images == {"42": 1}  # the changed image is fetched again, nothing else
    after = by_token(ws)
    assert after["17"].delisted_at is not None and after["17"].status == "downloaded"  # flagged, not deleted
    assert ws.collection("demo").resolve(after["17"].stored_path).is_file()
    assert after["42"].image_url.split("?")[0] == new_url and after["42"].previous_image_url == before["42"].image_url
    assert after["42"].sha256 != before["42"].sha256
    assert ws.collection("demo").resolve(before["42"].stored_path).is_file()  # the old image stays stored
    text = listing.describe()
    assert "full listing (--full): 0 new" in text and "removed since the last full listing: 1" in text
    assert "changed image: 1" in text


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_a_page_without_a_feed_ordering_falls_back_to_a_full_listing(ws) -> None:
    with serve_fixture(n_items=60, mode="classic", card_px=60) as fx:  # a plain grid: nothing to walk newest-first
        config = fast_config(fx, idle_scrolls=3)
        list_items(ws, "demo", config)
        fx.grow(3)
        second = list_items(ws, "demo", config)
    assert second.mode == "full" and second.why.startswith("incremental walk could not reach known items: the page "
                                                           "offered no feed")
    assert (second.new_items, second.cataloged) == (3, 63)
    assert "full listing (incremental walk could not reach known items" in second.describe()


# -- the API source (mint events, newest first) ------------------------------------------------------
def test_the_api_lists_new_mints_newest_first_and_downloads_only_them(ws) -> None:
    with serve_fixture(n_items=100) as fx:
        config = fast_config(fx, source="api", page_size=10)
        first = scrape(ws, "demo", config)
        assert (first.listing.mode, first.listing.new_items, len(fx.event_requests)) == ("full", 100, 0)
        fresh = {it.token_id for it in fx.grow(5)}
        fx.reset_counters()
        second = scrape(ws, "demo", config)
        events = list(fx.event_requests)
        nfts_pages = len(fx.api_requests)
        images = dict(fx.image_requests)
    listing = second.listing
    assert (listing.mode, listing.new_items, listing.total, listing.complete) == ("incremental", 5, 105, True)
    assert [q.get("event_type") for q in events] == ["mint", "mint"]  # 5 new + 5 known, then 10 known: stop
    assert nfts_pages == 0  # the whole /nfts listing (11 pages) was not walked
    assert set(images) == fresh and (second.download.attempted, second.download.downloaded) == (5, 5)
    assert listing.coverage_line() == "cataloged 105 of 105 (total supply)"
    assert listing.how == "2 page(s) of mint events, newest first"
    flat = second.to_dict()
    assert (flat["mode"], flat["new_items"], flat["listing"]["new_items"]) == ("incremental", 5, 5)
    with Catalog(ws.collection("demo").catalog) as cat:
        state = json.loads(cat.get_state(LISTING_STATE_KEY))
    assert (state["mode"], state["finished"], state["new_items"]) == ("incremental", True, 5)


def test_a_second_scrape_with_nothing_new_makes_no_image_requests(ws) -> None:
    with serve_fixture(n_items=30) as fx:
        config = fast_config(fx, source="api", page_size=10)
        scrape(ws, "demo", config)
        fx.reset_counters()
        again = scrape(ws, "demo", config)
        assert fx.counters["image"] == 0 and len(fx.event_requests) == 1
    assert (again.listing.mode, again.listing.new_items, again.download.attempted) == ("incremental", 0, 0)


def test_an_api_full_listing_flags_removed_tokens_and_requeues_changed_images(ws) -> None:
    with serve_fixture(n_items=40) as fx:
        config = fast_config(fx, source="api", page_size=20)
        scrape(ws, "demo", config)
        fx.remove("3")
        fx.change_image("5")
        fx.grow(2)
        fx.reset_counters()
        full = scrape(ws, "demo", dataclasses.replace(config, full=True))
        assert dict(fx.image_requests) == {"5": 1, "40": 1, "41": 1}
        assert fx.event_requests == []
    listing = full.listing
    assert (listing.mode, listing.new_items, listing.removed, listing.changed) == ("full", 2, 1, 1)
    assert (listing.cataloged, listing.total_supply, listing.partial) == (41, 41, False)
    items = by_token(ws)
    assert items["3"].delisted_at and items["5"].previous_image_url and items["5"].status == "downloaded"


def test_a_removed_token_listed_again_is_no_longer_delisted(ws) -> None:
    with serve_fixture(n_items=20) as fx:
        config = fast_config(fx, source="api", page_size=20, full_every_days=0)
        list_items(ws, "demo", config)
        gone = fx.remove("7")
        assert list_items(ws, "demo", config).removed == 1
        fx.restore(gone)
        back = list_items(ws, "demo", config)
    assert (back.mode, back.why, back.removed, back.delisted) == ("full", "--full-every-days 0: every listing is full",
                                                                  0, 0)
    assert by_token(ws)["7"].delisted_at is None


def test_an_old_full_listing_makes_the_next_one_full(ws) -> None:
    with serve_fixture(n_items=30) as fx:
        config = fast_config(fx, source="api", page_size=10)
        list_items(ws, "demo", config)
        with Catalog(ws.collection("demo").catalog) as cat:
            eight_days_ago = time.time() - 8 * 86400
            cat.set_state(LAST_FULL_LISTING_KEY, json.dumps({"source": "api", "epoch": eight_days_ago}))
            assert listing_plan(cat, config)[0] == "full"
            assert listing_plan(cat, dataclasses.replace(config, full_every_days=10))[0] == "incremental"
        fx.reset_counters()
        weekly = list_items(ws, "demo", config)
        assert len(fx.api_requests) == 3 and fx.event_requests == []
        after = list_items(ws, "demo", config)  # the full listing reset the clock
    assert weekly.mode == "full" and weekly.why.startswith("scheduled full re-list due: the last full listing is 8.0 "
                                                           "days old (--full-every-days 7)")
    assert after.mode == "incremental"


def test_the_api_falls_back_to_a_full_listing_when_the_events_cannot_be_walked(ws) -> None:
    with serve_fixture(n_items=30) as fx:
        config = fast_config(fx, source="api", page_size=10, max_retries=0)
        list_items(ws, "demo", config)
        fx.grow(2)
        fx.faults.events_status = 404
        fx.reset_counters()
        second = list_items(ws, "demo", config)
        assert len(fx.api_requests) == 4  # the whole /nfts listing
    assert second.mode == "full" and second.why.startswith("incremental walk could not reach known items: the newest-first walk failed: the events "
                                                           "endpoint failed: the OpenSea API does not know")
    assert (second.new_items, second.cataloged, second.complete, second.stopped_by) == (2, 32, True, None)


def test_events_that_end_without_known_tokens_fall_back_to_a_full_listing(ws) -> None:
    with serve_fixture(n_items=12) as fx:
        config = fast_config(fx, source="api", page_size=5)
        list_items(ws, "demo", config)
        for it in list(fx.items):
            fx.remove(it.token_id)  # every token replaced: no known token anywhere
        fx.grow(7)
        second = list_items(ws, "demo", config)
    assert second.mode == "full" and "the newest-first walk ended (2 page(s)) without reaching a known item" in second.why
    assert (second.new_items, second.removed, second.cataloged) == (7, 12, 7)


def test_an_interrupted_listing_makes_the_next_one_full(ws) -> None:
    with serve_fixture(n_items=30) as fx:
        config = fast_config(fx, source="api", page_size=10)
        list_items(ws, "demo", config)
        stopped = list_items(ws, "demo", dataclasses.replace(config, full=True, max_items=5))
        assert stopped.stopped_by == "max-items"
        again = list_items(ws, "demo", config)
    assert (again.mode, again.why) == ("full", "the last listing did not finish")


def test_the_summary_says_the_mode_and_counts(ws) -> None:
    summary = ListSummary(slug="demo", source="api", found=5, new=5, total=105, complete=True, cataloged=105,
                          total_supply=105, mode="incremental", why="the last full listing is 1.0 days old")
    assert summary.to_dict()["new_items"] == 5 and summary.to_dict()["mode"] == "incremental"
    assert summary.describe().splitlines()[1] == "  incremental listing (the last full listing is 1.0 days old): 5 new"


def test_full_every_days_must_not_be_negative() -> None:
    from pipeline.errors import NftganError
    from scraper.config import ScrapeConfig

    with pytest.raises(NftganError, match="--full-every-days must be a number >= 0"):
        ScrapeConfig(full_every_days=-1)


def test_a_collection_that_fits_in_one_events_page_is_listed_incrementally(ws) -> None:
    """The walk reached the last mint and saw known tokens on the way: nothing is missing, no full re-list."""
    with serve_fixture(n_items=20) as fx:
        config = fast_config(fx, source="api", page_size=200)
        list_items(ws, "demo", config)
        fx.grow(1)
        fx.reset_counters()
        second = list_items(ws, "demo", config)
        assert len(fx.api_requests) == 0 and len(fx.event_requests) == 1  # one events page, no /nfts walk
    assert second.mode == "incremental" and (second.new_items, second.cataloged) == (1, 21)


def test_tokens_skipped_by_the_last_full_listing_still_count_in_an_incremental_one(ws) -> None:
    """A disabled token is skipped by the full listing; the walk of the newest mints never meets it again,
    yet the incremental listing is not 'partial' for it."""
    with serve_fixture(n_items=30) as fx:
        fx.faults.disabled = {fx.items[3].token_id}
        config = fast_config(fx, source="api", page_size=10)
        first = list_items(ws, "demo", config)
        fx.grow(2)
        second = list_items(ws, "demo", config)
    assert first.skipped == {"disabled": 1} and not first.partial
    assert second.mode == "incremental" and second.new_items == 2
    assert second.skipped == {"disabled": 1} and not second.partial and second.stopped_by is None, second
