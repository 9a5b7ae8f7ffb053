"""``nftgan status``: what a collection holds, as one JSON-able dict."""

from __future__ import annotations

import json
from typing import Any

from pipeline.catalog import STATUSES, Catalog
from pipeline.errors import NftganError
from pipeline.workspace import Workspace


def collection_status(ws: Workspace, slug: str) -> dict[str, Any]:
    """Counts per status, reasons, caches (size → images) and runs of one collection."""
    col = ws.collection(slug)
    if not col.catalog.is_file():
        known = ws.collections()
        hint = f" (known: {', '.join(known)})" if known else ""
        raise NftganError(f"no collection {slug!r} in {ws.root}{hint}")
    with Catalog(col.catalog) as cat:
        counts = cat.counts()
        reasons = {s: cat.reasons(s) for s in ("rejected", "failed", "duplicate") if counts[s]}
        listing_cursor = cat.get_state("api.cursor")
    caches: dict[str, int] = {}
    for size in col.cache_sizes():
        manifest = col.cache_manifest(size)
        if manifest.is_file() and col.cache_array(size).is_file():
            caches[str(size)] = int(json.loads(manifest.read_text())["count"])
    info: dict[str, Any] = {"slug": slug, "items": sum(counts.values()), **{s: counts[s] for s in STATUSES}}
    info.update(reasons=reasons, caches=caches, runs=ws.runs(slug), home=str(ws.root))
    if listing_cursor:
        info["api_cursor"] = listing_cursor
    return info
