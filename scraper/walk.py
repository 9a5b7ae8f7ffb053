"""The one walker over a listing's pages, for every source.

A source offers its listing as :class:`Ordering` s: page iterators for one order of the collection (the
site's feed in ``CREATED_DATE:ASC``, the API's ``/nfts`` cursor, the API's mint events newest first). Each
reads one page at a time (:meth:`Ordering.page`) and commits it (:meth:`Ordering.commit`: the page's items
and, where the source saves one, the cursor after it, in one catalog transaction).

:func:`walk` follows one ordering's cursors; :func:`list_pages` decides the listing: newest first until a
page whose items are all known (an incremental listing), else, or when that walk cannot show that it
reached the known items, the full orderings in turn. Whether a listing was incremental, and why it fell
back to a full one, is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from scraper.listing import ListedItem


@dataclass(frozen=True)
class Page:
    items: list[ListedItem]  # this collection's items on the page
    cursor: str | None  # the cursor of the next page; None: this is the last page


class PageFailed(Exception):
    """A page could not be read, for ``reason``. ``other_orderings`` says whether another ordering of the
    same source may still work (a feed that refuses one sort may serve another); False ends the listing."""

    def __init__(self, reason: str, *, other_orderings: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.other_orderings = other_orderings


class Ordering(Protocol):
    #: what the summary calls it, e.g. "CREATED_DATE:ASC"
    name: str
    #: walking it to its last page lists the whole collection (the site's feed does; mint events do not
    #: show tokens minted outside the events the API keeps)
    end_is_full: bool

    async def page(self, cursor: str | None) -> Page:
        """The page at ``cursor`` (None: the first); raises :class:`PageFailed`."""
        ...

    def commit(self, page: Page) -> bool:
        """Keep the page's items (and the cursor after it); False stops the listing (``--max-items``)."""
        ...


@dataclass
class Walk:
    ordering: str | None = None
    pages: int = 0
    complete: bool = False  # walked to the last page, or (newest first) to a page of known items
    reached_known: bool = False  # an incremental walk met the known items: everything older is cataloged
    stopped: bool = False  # a commit asked to stop (--max-items)
    error: str | None = None  # why the walk ended early
    final: bool = False  # that error ends the listing: no other ordering may help
    mode: str = "full"  # what the listing turned out to be: "incremental" or "full"
    fallback: str | None = None  # asked for an incremental listing, it became a full one: why


async def walk(ordering: Ordering, *, known: Callable[[str], bool] | None = None, cursor: str | None = None) -> Walk:
    """Follow ``ordering`` from ``cursor`` to its last page; with ``known``, stop after the first page whose
    items are all known (and, at the last page, count the known items met on the way as reaching them)."""
    w = Walk(ordering=ordering.name)
    seen: set[str] = set()
    saw_known = False
    while True:
        try:
            page = await ordering.page(cursor)
        except PageFailed as e:
            w.error, w.final = e.reason, not e.other_orderings
            return w
        w.pages += 1
        if not ordering.commit(page):
            w.stopped = True
            return w
        if known is not None:
            if page.items and all(known(it.item_key) for it in page.items):
                w.complete = w.reached_known = True
                return w
            saw_known = saw_known or any(known(it.item_key) for it in page.items)
        if page.cursor is None:
            w.complete = True
            w.reached_known = known is not None and saw_known
            return w
        if page.cursor in seen or page.cursor == cursor:
            w.error = "the source answered the same cursor twice"
            return w
        seen.add(page.cursor)
        cursor = page.cursor


async def list_pages(
    *, full: Sequence[Ordering], newest: Ordering | None = None, known: Callable[[str], bool] | None = None,
    resume: str | None = None,
) -> Walk:
    """The listing: incremental when ``known`` is given (newest first until the known items), else full.

    A full listing walks the first of ``full`` that serves a page (``resume``: the saved cursor of the
    first); an ordering that fails on its first page gives way to the next. An incremental walk that
    cannot show that it reached the known items (no newest-first ordering, a failure, the end of an
    ordering that does not cover the collection without meeting a known item) becomes a full listing,
    and ``fallback`` says why; one that reached the end of an ordering covering the whole collection *is*
    a full listing (and says so).
    """
    fallback, walked = None, 0
    if known is not None:
        if newest is None:
            fallback = "the source offers no newest-first ordering"
        else:
            inc = await walk(newest, known=known)
            if inc.reached_known or inc.stopped:  # stopped: --max-items, an incremental listing cut short
                inc.mode = "incremental"
                return inc
            if inc.complete and newest.end_is_full:
                inc.fallback = (f"the newest-first walk reached the end of the collection ({inc.pages} page(s)) "
                                "without meeting a known item, so it was a full listing")
                return inc
            fallback = (f"the newest-first walk failed: {inc.error}" if inc.error else
                        f"the newest-first walk ended ({inc.pages} page(s)) without reaching a known item")
            walked = inc.pages
    w = Walk(error="no ordering to walk")
    for i, ordering in enumerate(full):
        w = await walk(ordering, cursor=resume if i == 0 else None)
        if w.error is None or w.pages or w.stopped or w.final:
            break
    w.fallback, w.pages = fallback, w.pages + walked
    return w


def unwalked(known: Callable[[str], bool] | None, why: str) -> Walk:
    """A listing that had no pages to walk (a page scrolled to its end instead), for a summary."""
    return Walk(mode="full", fallback=why if known is not None else None)
