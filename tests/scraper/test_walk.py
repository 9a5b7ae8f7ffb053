"""The one walker (scraper.walk): cursors, the incremental stop, and the fallback decision, on orderings
made of plain pages (the browser's feed and the API's endpoints are tested through real servers in
test_incremental, test_os2 and test_source_api)."""

from __future__ import annotations

import asyncio

from scraper.listing import ListedItem
from scraper.walk import Page, PageFailed, list_pages, walk


def items(*tokens: int) -> list[ListedItem]:
    return [ListedItem("ethereum", "0xabc", str(t)) for t in tokens]


class Pages:
    """An ordering over fixed pages; ``fail_at``: the page index that raises (with ``other_orderings``)."""

    def __init__(self, name, pages, *, end_is_full=True, fail_at=None, other_orderings=True, stop_after=None):
        self.name, self.pages, self.end_is_full = name, pages, end_is_full
        self.fail_at, self.other_orderings, self.stop_after = fail_at, other_orderings, stop_after
        self.asked: list[str | None] = []
        self.committed: list[list[str]] = []

    async def page(self, cursor):
        self.asked.append(cursor)
        i = 0 if cursor is None else int(cursor)
        if i == self.fail_at:
            raise PageFailed(f"page {i} failed", other_orderings=self.other_orderings)
        nxt = str(i + 1) if i + 1 < len(self.pages) else None
        return Page(self.pages[i], nxt)

    def commit(self, page):
        self.committed.append([it.token_id for it in page.items])
        return self.stop_after is None or len(self.committed) < self.stop_after


def run(coro):
    return asyncio.run(coro)


def known_below(n):
    return lambda key: int(key.rsplit("/", 1)[-1]) < n


def test_walk_follows_cursors_to_the_last_page_and_resumes_at_a_cursor() -> None:
    o = Pages("asc", [items(1, 2), items(3), items(4)])
    w = run(walk(o))
    assert (w.pages, w.complete, w.error, o.asked) == (3, True, None, [None, "1", "2"])
    o2 = Pages("asc", [items(1, 2), items(3), items(4)])
    w2 = run(walk(o2, cursor="1"))
    assert (w2.pages, o2.asked, o2.committed) == (2, ["1", "2"], [["3"], ["4"]])


def test_a_cursor_answered_twice_ends_the_walk_with_an_error() -> None:
    class Loop(Pages):
        async def page(self, cursor):
            self.asked.append(cursor)
            return Page(items(len(self.asked)), "same")

    w = run(walk(Loop("loop", [])))
    assert w.error == "the source answered the same cursor twice" and w.pages == 2 and not w.complete


def test_incremental_stops_at_the_first_page_of_known_items() -> None:
    newest = Pages("desc", [items(9, 8), items(7, 6), items(5, 4), items(3, 2)])
    full = Pages("asc", [items(1)])
    w = run(list_pages(full=[full], newest=newest, known=known_below(7)))
    assert (w.mode, w.reached_known, w.pages, w.fallback, w.ordering) == ("incremental", True, 3, None, "desc")
    assert full.asked == []  # no full walk


def test_known_items_met_before_the_last_page_count_as_reaching_them() -> None:
    newest = Pages("desc", [items(9, 2)], end_is_full=False)  # one page: a new token and a known one
    w = run(list_pages(full=[Pages("asc", [items(1)])], newest=newest, known=known_below(3)))
    assert (w.mode, w.reached_known) == ("incremental", True)


def test_a_failed_newest_first_walk_falls_back_to_the_full_listing_and_counts_both() -> None:
    newest = Pages("desc", [items(9), items(8), items(7)], fail_at=1)
    full = Pages("asc", [items(1), items(2)])
    w = run(list_pages(full=[full], newest=newest, known=known_below(5)))
    assert w.mode == "full" and w.fallback == "the newest-first walk failed: page 1 failed"
    assert (w.pages, w.ordering, w.complete) == (3, "asc", True)  # 1 newest page + 2 full ones


def test_the_end_of_an_ordering_that_does_not_cover_the_collection_falls_back() -> None:
    newest = Pages("mints", [items(9), items(8)], end_is_full=False)
    full = Pages("nfts", [items(1)])
    w = run(list_pages(full=[full], newest=newest, known=known_below(0)))  # nothing known: every token new
    assert w.fallback == "the newest-first walk ended (2 page(s)) without reaching a known item"
    assert (w.mode, full.asked) == ("full", [None])


def test_the_end_of_an_ordering_that_covers_the_collection_is_the_full_listing() -> None:
    newest = Pages("desc", [items(9), items(8)], end_is_full=True)
    full = Pages("asc", [items(1)])
    w = run(list_pages(full=[full], newest=newest, known=known_below(0)))
    assert w.mode == "full" and "reached the end of the collection (2 page(s))" in w.fallback
    assert full.asked == [] and w.complete


def test_a_stopped_incremental_walk_stays_incremental_and_does_not_list_in_full() -> None:
    newest = Pages("desc", [items(9), items(8), items(7)], stop_after=1)
    full = Pages("asc", [items(1)])
    w = run(list_pages(full=[full], newest=newest, known=known_below(5)))
    assert (w.mode, w.stopped, w.complete, full.asked) == ("incremental", True, False, [])


def test_no_newest_first_ordering_is_a_full_listing_that_says_why() -> None:
    w = run(list_pages(full=[Pages("asc", [items(1)])], known=known_below(5)))
    assert (w.mode, w.fallback) == ("full", "the source offers no newest-first ordering")


def test_a_full_ordering_that_fails_on_its_first_page_gives_way_to_the_next() -> None:
    first = Pages("asc", [items(1)], fail_at=7)  # the page at the saved cursor fails
    second = Pages("desc", [items(2), items(1)])
    w = run(list_pages(full=[first, second], resume="7"))
    assert (w.ordering, w.pages, w.error, w.complete) == ("desc", 2, None, True)
    assert first.asked == ["7"] and second.asked == [None, "1"]  # the saved cursor belongs to the first only


def test_a_failure_after_some_pages_or_a_final_one_does_not_try_another_ordering() -> None:
    first = Pages("asc", [items(1), items(2)], fail_at=1)
    second = Pages("desc", [items(2)])
    w = run(list_pages(full=[first, second]))
    assert (w.ordering, w.pages, w.error, second.asked) == ("asc", 1, "page 1 failed", [])
    final = Pages("asc", [items(1)], fail_at=0, other_orderings=False)
    w = run(list_pages(full=[final, second]))
    assert (w.ordering, w.final, second.asked) == ("asc", True, [])
