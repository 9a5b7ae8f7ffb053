"""The scrape stage's options: :class:`ScrapeConfig`, one field per ``nftgan scrape`` option, saved beside
the collection as ``scrape-config.json`` (the API key redacted)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import NftganError

if TYPE_CHECKING:
    from scraper.backoff import RetryPolicy

SOURCES = ("browser", "api")
MODES = ("incremental", "full")
API_KEY_ENV = "OPENSEA_API_KEY"


@dataclass(frozen=True)
class ScrapeConfig:
    """Options of ``nftgan scrape`` (one field per option); saved as ``scrape-config.json``."""

    source: str = "browser"  # browser | api
    base_url: str = "https://opensea.io"
    api_base_url: str = "https://api.opensea.io"
    api_key: str | None = None  # else $OPENSEA_API_KEY; never written to disk
    max_items: int | None = None  # stop listing after this many items (None: all)
    image_width: int = 512  # px asked of image CDNs (w=)
    concurrency: int = 16
    per_host_limit: int = 8
    allow_private_hosts: bool = False
    #: gateways for ipfs:// URLs, comma-separated, tried in turn (the next one when one fails)
    ipfs_gateway: str = "https://ipfs.io/ipfs/,https://dweb.link/ipfs/,https://w3s.link/ipfs/"
    arweave_gateway: str = "https://arweave.net/"
    idle_scrolls: int = 6  # browser: stop after this many scrolls bring nothing new
    page_size: int = 200  # API: items per page (at most 200)
    timeout_s: float = 30.0  # per HTTP request
    page_timeout_s: float = 60.0  # browser: first load of the collection page
    page_retries: int = 3  # browser: loads before giving up (slow page, interstitial)
    interstitial_wait_s: float = 10.0  # browser: how long an error/interstitial page may take to clear
    max_bytes: int = 50 * 2**20  # per image
    max_retries: int = 4  # 5xx, timeouts, connection errors
    rate_limit_retries: int = 8  # 429 / 599
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    chromium_path: str | None = None  # else $NFTGAN_CHROMIUM, else /usr/bin/chromium, else Playwright's
    headless: bool = True
    restart_listing: bool = False  # API: forget a saved cursor and list from the first page
    skip_nsfw: bool = False  # API: leave out items the marketplace flags NSFW (they are counted)
    max_rate_wait_s: float = 3600.0  # API: longest wait for a rate-limit window; longer ends the run (resumable)
    full: bool = False  # list the whole collection even when an incremental listing would do
    #: a full listing also happens when the last finished one is older than this (0: every listing is full)
    full_every_days: float = 7.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise NftganError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        for name in ("base_url", "api_base_url", "ipfs_gateway", "arweave_gateway"):
            value = getattr(self, name)
            parts = value.split(",") if isinstance(value, str) and name == "ipfs_gateway" else [value]
            for part in parts:
                if not isinstance(part, str) or not part.strip().lower().startswith(("http://", "https://")):
                    raise NftganError(f"--{name.replace('_', '-')} must be an http(s) URL, not {part!r}")
        positive = {
            "image_width": (16, 4096), "concurrency": (1, 256), "per_host_limit": (1, 256), "idle_scrolls": (1, 1000),
            "page_size": (1, 200), "page_retries": (1, 100), "max_bytes": (1024, 2**40),
        }
        for name, (low, high) in positive.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise NftganError(f"--{name.replace('_', '-')} must be an integer in {low}..{high}, not {value!r}")
        if self.max_items is not None and (not isinstance(self.max_items, int) or self.max_items < 1):
            raise NftganError(f"--max-items must be at least 1, not {self.max_items!r}")
        for name in ("max_retries", "rate_limit_retries"):
            if not isinstance(getattr(self, name), int) or not 0 <= getattr(self, name) <= 100:
                raise NftganError(f"--{name.replace('_', '-')} must be an integer in 0..100")
        for name in ("timeout_s", "page_timeout_s", "interstitial_wait_s", "backoff_initial_s", "backoff_max_s",
                     "max_rate_wait_s", "full_every_days"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise NftganError(f"--{name.replace('_', '-')} must be a number >= 0")

    def ipfs_gateways(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.ipfs_gateway.split(",") if part.strip())

    def resolved_api_key(self) -> str | None:
        return self.api_key or os.environ.get(API_KEY_ENV) or None

    def to_json(self) -> dict[str, Any]:
        """The config as saved: the API key is only said to be set, never written."""
        out = dataclasses.asdict(self)
        out["api_key"] = "(set)" if self.resolved_api_key() else None
        return out

    def retry_policy(self) -> RetryPolicy:
        from scraper.backoff import RetryPolicy

        return RetryPolicy(
            max_retries=self.max_retries, rate_limit_retries=self.rate_limit_retries,
            initial_s=self.backoff_initial_s, max_s=self.backoff_max_s,
        )
