"""Scrape an NFT collection: list its items (browser or OpenSea API v2) and download each image once.

Public face (see :mod:`scraper.api`): :class:`ScrapeConfig`, :func:`list_items`, :func:`download_items`,
:func:`scrape` and their summaries. Imported lazily, so ``import scraper`` stays light (no playwright,
no httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "DownloadSummary", "ListSummary", "ScrapeConfig", "ScrapeSummary", "download_items", "list_items", "scrape",
]

if TYPE_CHECKING:
    from scraper.api import (
        DownloadSummary, ListSummary, ScrapeConfig, ScrapeSummary, download_items, list_items, scrape,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from scraper import api

        return getattr(api, name)
    raise AttributeError(f"module 'scraper' has no attribute {name!r}")
