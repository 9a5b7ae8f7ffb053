"""Scraper test helpers: a fast config against the fixture, and the Chromium the browser tests need."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest

from scraper.config import ScrapeConfig
from marketplace.fixture import MarketplaceFixture


def fast_config(fx: MarketplaceFixture, **overrides) -> ScrapeConfig:
    """A config aimed at the fixture, with short waits and tiny images."""
    base = ScrapeConfig(
        base_url=fx.base_url, api_base_url=fx.api_base_url, ipfs_gateway=fx.ipfs_gateway, allow_private_hosts=True,
        image_width=32, timeout_s=5.0, backoff_initial_s=0.01, backoff_max_s=2.0, max_retries=2,
        idle_scrolls=4, page_timeout_s=20.0, interstitial_wait_s=0.5, page_size=100,
    )
    return dataclasses.replace(base, **overrides)


@functools.cache
def _browser_or_reason() -> str | None:
    """None when a Chromium can be launched, else why not."""
    from scraper.source_browser import find_chromium

    if find_chromium() is not None:
        return None
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            if Path(pw.chromium.executable_path).exists():
                return None
    except Exception as e:  # noqa: BLE001 - any failure means: no browser here
        return f"no Chromium: none on the system and Playwright's own is unavailable ({e})"
    return "no Chromium: install Debian's chromium or run `playwright install chromium`"


@pytest.fixture
def chromium() -> None:
    """Skip the test (with the reason) when no browser can be found at all."""
    reason = _browser_or_reason()
    if reason:
        pytest.skip(reason)
