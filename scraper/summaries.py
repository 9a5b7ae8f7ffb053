"""What a scrape reports: :class:`ListSummary` (how much of the collection the catalog holds, and how it was
listed), :class:`DownloadSummary` (what was fetched, what failed and why) and :class:`ScrapeSummary` (both)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ListSummary:
    slug: str
    source: str
    found: int  # distinct items seen by this listing
    new: int  # of those, not in the catalog before
    total: int  # items in the catalog afterwards
    complete: bool  # the listing reached the end (not stopped by --max-items or an error)
    resumed: bool = False  # the API listing continued from a saved cursor
    pages: int = 0  # API pages or browser scroll steps
    seconds: float = 0.0
    cataloged: int = 0  # this collection's listed items in the catalog afterwards
    total_supply: int | None = None  # as the marketplace states it (None: it did not say)
    ignored: int = 0  # items of other collections seen on the page
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> items not cataloged (disabled, nsfw)
    stopped_by: str | None = None  # why the listing ended early: "max-items", or what went wrong
    how: str | None = None  # how the items were reached (e.g. "feed walked in CREATED_DATE:ASC, 10 pages")
    mode: str = "full"  # "incremental": newest first until known items; "full": the whole collection
    why: str | None = None  # why this mode ("--full", "first listing", "scheduled full re-list due", ...)
    removed: int = 0  # full listing: cataloged items it no longer saw, now flagged delisted
    changed: int = 0  # items whose image URL changed: their download is queued again
    delisted: int = 0  # items of the catalog flagged delisted afterwards (not counted as cataloged)

    @property
    def new_items(self) -> int:
        """Items first cataloged by this listing."""
        return self.new

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self), "new_items": self.new_items, "partial": self.partial,
            "coverage": self.coverage_line(),
        }

    @property
    def partial(self) -> bool:
        """Fewer items cataloged than the collection's total supply (or the listing did not finish)."""
        if self.total_supply is not None:
            return self.cataloged + sum(self.skipped.values()) < self.total_supply
        return not self.complete

    def coverage_line(self) -> str:
        supply = f"{self.total_supply}" if self.total_supply is not None else "an unknown number"
        line = f"cataloged {self.cataloged} of {supply} (total supply)"
        if self.skipped:
            line += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        if self.partial:
            line += " - PARTIAL"
            if self.stopped_by:
                line += f": {self.stopped_by}"
        return line

    def describe(self, *, coverage: bool = True) -> str:
        how = "the API" if self.source == "api" else "the browser"
        lines = [f"listed {self.found} items of {self.slug} with {how} ({self.new} new; catalog now {self.total})"]
        lines.append(f"  {self.mode} listing" + (f" ({self.why})" if self.why else "") + f": {self.new_items} new")
        if self.how:
            lines.append(f"  {self.how}")
        relist = self.mode == "full" and self.complete and not self.resumed and not self.partial
        if self.removed or (relist and self.why != "first listing"):
            lines.append(f"  removed since the last full listing: {self.removed} (flagged delisted, files kept)")
        if self.changed:
            lines.append(f"  changed image: {self.changed} (downloads queued again; old files kept)")
        if self.resumed:
            lines.append("  resumed from the saved API cursor")
        if self.ignored:
            lines.append(f"  ignored {self.ignored} items of other collections seen on the page")
        if self.stopped_by == "max-items":
            lines.append("  stopped at --max-items before the end of the collection")
        if coverage:
            lines.append(self.coverage_line())
        return "\n".join(lines)


@dataclass(frozen=True)
class DownloadSummary:
    slug: str
    attempted: int  # items that were pending or failed
    downloaded: int
    skipped: int  # not attempted: downloaded (or rejected, or prepared) before this run
    failed: dict[str, int] = field(default_factory=dict)  # reason -> items
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> items (videos without a poster)
    urls: int = 0  # distinct URLs fetched (items sharing an image URL share one download)
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        n_failed = sum(self.failed.values())
        lines = [
            f"downloaded {self.downloaded} of {self.attempted} items ({self.bytes / 2**20:.1f} MiB in "
            f"{self.seconds:.1f} s), {self.skipped} done before, {n_failed} failed"
        ]
        for reason, n in sorted(self.failed.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  failed: {reason}: {n}")
        for reason, n in sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  skipped: {reason}: {n}")
        if n_failed:
            lines.append("  failed items are tried again by the next `nftgan scrape`")
        return "\n".join(lines)


@dataclass(frozen=True)
class ScrapeSummary:
    listing: ListSummary
    download: DownloadSummary

    def to_dict(self) -> dict[str, Any]:
        """The headline numbers flat (found, new, downloaded, skipped, failed, ...), plus both parts whole."""
        flat = {k: v for k, v in self.download.to_dict().items() if k not in ("seconds",)}
        flat.update({k: v for k, v in self.listing.to_dict().items() if k not in ("seconds", "pages")})
        return {**flat, "listing": self.listing.to_dict(), "download": self.download.to_dict()}

    def describe(self) -> str:
        """Listing, downloads, and last the coverage line: ``cataloged X of Y (total supply)``."""
        return "\n".join(
            [self.listing.describe(coverage=False), self.download.describe(), self.listing.coverage_line()]
        )
