"""Scrape an NFT collection: list its items (browser or OpenSea API v2) and download each image once.

Public face (:mod:`scraper.config`, :mod:`scraper.stage`, :mod:`scraper.summaries`): :class:`ScrapeConfig`, :func:`list_items`, :func:`download_items`,
:func:`scrape` and their summaries. Imported lazily, so ``import scraper`` stays light (no playwright,
no httpx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "DownloadSummary", "ListSummary", "ScrapeConfig", "ScrapeSummary", "download_items", "list_items", "scrape",
]

if TYPE_CHECKING:
    from scraper.config import ScrapeConfig
    from scraper.stage import download_items, list_items, scrape
    from scraper.summaries import DownloadSummary, ListSummary, ScrapeSummary

_HOME = {"ScrapeConfig": "config", "download_items": "stage", "list_items": "stage", "scrape": "stage",
         "DownloadSummary": "summaries", "ListSummary": "summaries", "ScrapeSummary": "summaries"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"scraper.{_HOME[name]}"), name)
    raise AttributeError(f"module 'scraper' has no attribute {name!r}")
