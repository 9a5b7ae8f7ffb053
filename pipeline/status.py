"""``nftgan status``: what a collection holds, as one JSON-able dict."""

from __future__ import annotations

import json
from typing import Any

from pipeline.cache import read_manifest
from pipeline.catalog import COVERAGE_STATE_KEY, STATUSES, Catalog
from pipeline.champion import read_champion
from pipeline.errors import NftganError
from pipeline.workspace import Workspace


def collection_status(ws: Workspace, slug: str, *, traits: bool = False) -> dict[str, Any]:
    """Counts per download outcome and their reasons, the cleaning outcomes per cache size (``prepared``:
    size -> ok / rejected / duplicate and their reasons), coverage of the last scrape, caches (size ->
    images) and runs of one collection; with ``traits``, the number of items per trait type and value too."""
    col = ws.collection(slug)
    if not col.catalog.is_file():
        known = ws.collections()
        hint = f" (known: {', '.join(known)})" if known else ""
        raise NftganError(f"no collection {slug!r} in {ws.root}{hint}")
    with Catalog(col.catalog) as cat:
        counts = cat.counts()
        reasons = {s: cat.reasons(s) for s in ("rejected", "failed") if counts[s]}
        prepared: dict[str, Any] = {}
        for size in cat.prepared_sizes():
            per = cat.prepared_counts(size)
            prepared[str(size)] = {**per, "reasons": {
                s: cat.prepared_reasons(size, s) for s in ("rejected", "duplicate") if per[s]}}
        listing_cursor = cat.get_state("api.cursor")
        coverage_text = cat.get_state(COVERAGE_STATE_KEY)
        trait_counts = cat.trait_counts() if traits else None
    caches: dict[str, int] = {}
    sheets: dict[str, str] = {}
    for size in col.cache_sizes():
        manifest = read_manifest(ws, slug, size)
        if manifest is not None:
            caches[str(size)] = int(manifest["count"])
            if col.cache_review_sheet(size).is_file():
                sheets[str(size)] = str(col.cache_review_sheet(size))
    info: dict[str, Any] = {"slug": slug, "items": sum(counts.values()), **{s: counts[s] for s in STATUSES}}
    info.update(reasons=reasons, prepared=prepared, caches=caches, review_sheets=sheets, runs=ws.runs(slug), home=str(ws.root))
    if listing_cursor:
        info["api_cursor"] = listing_cursor
    if coverage_text:
        try:
            info["coverage"] = json.loads(coverage_text)
        except ValueError:
            pass
    if trait_counts is not None:
        info["traits"] = trait_counts
    try:
        champion = read_champion(ws, slug)
    except NftganError as e:  # a damaged champion.json must not hide the rest of the collection
        info["champion_error"] = str(e)
    else:
        if champion.current is not None:
            info["champion"] = {"run": champion.run, "step": champion.step, "since": champion.current.get("since")}
    return info
