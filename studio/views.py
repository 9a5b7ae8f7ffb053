"""What each studio page shows, as plain dicts read through the stages' public faces (the functions the CLI
calls: ``collection_status``, the catalog, the tensor cache and its traits.csv, ``read_champion``, a run's
metrics.jsonl and its evaluation's metrics.json). No page decides anything a stage does not already decide.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.champion import read_champion
from pipeline.errors import NftganError
from pipeline.status import collection_status
from pipeline.workspace import Workspace

#: items per page of the data grid
PAGE_ITEMS = 120
#: duplicates and rejects listed on the data page (worst first)
LISTED_MAX = 60


def sizes_of(ws: Workspace, slug: str) -> list[int]:
    return ws.collection(slug).cache_sizes()


def default_size(ws: Workspace, slug: str) -> int | None:
    """The cache size the champion was trained on, else the largest cache."""
    sizes = sizes_of(ws, slug)
    champion = read_champion(ws, slug)
    if champion.run is not None:
        cfg = run_config(ws, slug, champion.run)
        if cfg.get("size_px") in sizes:
            return int(cfg["size_px"])
    return max(sizes) if sizes else None


def run_config(ws: Workspace, slug: str, run: str) -> dict[str, Any]:
    path = ws.run(slug, run).config
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def collection_cards(ws: Workspace) -> list[dict[str, Any]]:
    """One card per collection: coverage, counts per status, the last listing, the champion, the last refresh."""
    cards = []
    for slug in ws.collections():
        try:
            status = collection_status(ws, slug)
        except NftganError as e:
            cards.append({"slug": slug, "error": str(e)})
            continue
        try:
            champion = read_champion(ws, slug)
            history = list(champion.history)
        except NftganError as e:
            champion, history = None, []
            status["champion_error"] = str(e)
        last = history[-1] if history else None
        cards.append({
            "slug": slug, "status": status, "coverage": status.get("coverage"),
            "champion": status.get("champion"), "last_decision": last,
            "has_champion": champion is not None and champion.run is not None,
        })
    return cards


def collection_page(ws: Workspace, slug: str) -> dict[str, Any]:
    """What every page of a collection shows around its tab: the slug and the cache sizes to choose from."""
    return {"slug": slug, "sizes": sizes_of(ws, slug), "size": default_size(ws, slug)}


def data_view(ws: Workspace, slug: str, size: int, trait: str | None, page: int) -> dict[str, Any]:
    """The kept items of one cache (filtered by one ``type=value``), with every trait value's share; the
    rejected and merged items with their reasons (duplicates worst first, beside their originals)."""
    from pipeline.cache import open_cache
    from pipeline.catalog import Catalog
    from pipeline.traits_table import read_table

    cache = open_cache(ws, slug, size)
    ids = cache.manifest.get("item_ids") or []
    col = ws.collection(slug)
    labels: list[Any] = [None] * len(cache)
    types: tuple[str, ...] = ()
    traits_error = None
    if col.cache_traits(size).is_file():
        try:
            types, _, labels = read_table(col.cache_traits(size), len(cache), ids)
        except (ValueError, OSError) as e:  # shown on the page: the items still are
            traits_error = f"{col.cache_traits(size)}: {e}: re-run `nftgan prepare {slug} --size {size}`"
    counts: dict[str, Counter[str]] = {t: Counter() for t in types}
    for lab in labels:
        for t in types:
            value = (lab or {}).get(t)
            values = sorted(value) if isinstance(value, frozenset) else [value] if value is not None else ["(none)"]
            counts[t].update(values)
    n = max(1, len(cache))
    rarity = {t: [(v, c, c / n) for v, c in sorted(counts[t].items(), key=lambda kv: -kv[1])] for t in types}

    rows = list(range(len(cache)))
    want = None
    if trait and "=" in trait:
        kind, _, value = trait.partition("=")
        want = (kind, value)
        rows = [r for r in rows if _has(labels[r], kind, value)]
    pages = max(1, -(-len(rows) // PAGE_ITEMS))
    page = min(max(1, page), pages)
    shown = rows[(page - 1) * PAGE_ITEMS: page * PAGE_ITEMS]
    row_of = {int(i): r for r, i in enumerate(ids)}

    with Catalog(col.catalog) as cat:
        decisions = cat.prepared(size, ("rejected", "duplicate"))
        by_id = {it.id: it for it in cat.items_by_id(list(decisions))}
        not_downloaded = [it for it in cat.items(("rejected", "failed"))]
    duplicates, rejected = [], []
    for item_id, d in decisions.items():
        it = by_id.get(item_id)
        entry = {"id": item_id, "name": (it.name if it else None) or f"item {item_id}", "reason": d["reason"],
                 "detail": d["detail"], "original": d["duplicate_of"],
                 "original_row": row_of.get(d["duplicate_of"]) if d["duplicate_of"] is not None else None}
        (duplicates if d["status"] == "duplicate" else rejected).append(entry)
    from cleaning.review import order_recorded

    duplicates = order_recorded(duplicates)  # worst first, as the review sheet draws them
    downloads = [{"id": it.id, "name": it.name or it.item_key, "status": it.status, "reason": it.reason,
                  "detail": it.detail} for it in not_downloaded]
    return {
        "size": size, "count": len(cache), "traits_error": traits_error, "types": types, "rarity": rarity, "filter": trait, "want": want,
        "rows": [{"row": r, "labels": _label_text(labels[r])} for r in shown], "matching": len(rows),
        "page": page, "pages": pages, "duplicates": duplicates[:LISTED_MAX], "duplicates_total": len(duplicates),
        "rejected": rejected[:LISTED_MAX], "rejected_total": len(rejected),
        "downloads": downloads[:LISTED_MAX], "downloads_total": len(downloads),
    }


def _has(labels: Any, kind: str, value: str) -> bool:
    have = (labels or {}).get(kind)
    if have is None:
        return value == "(none)"
    return value in have if isinstance(have, frozenset) else have == value


def _label_text(labels: Any) -> str:
    if not labels:
        return ""
    parts = []
    for k, v in sorted(labels.items()):
        parts.append(f"{k}: {', '.join(sorted(v)) if isinstance(v, frozenset) else v}")
    return "; ".join(parts)


def generator_view(ws: Workspace, slug: str) -> dict[str, Any]:
    """The champion (or why there is none) and, for a trait-conditioned one, its vocabulary for the pickers."""
    champion = read_champion(ws, slug)
    if champion.run is None:
        runs = ws.runs(slug)
        return {"champion": None, "runs": runs}
    cfg = run_config(ws, slug, champion.run)
    vocab = None
    cond = cfg.get("conditioning")
    if cond:
        from training.conditioning import OTHER, UNKNOWN, Vocabulary

        v = Vocabulary.from_dict(cond["vocabulary"])
        vocab = [{"name": t.name, "is_set": t.is_set,
                  "values": [c for c in t.classes if c not in (OTHER, UNKNOWN)]} for t in v.types]
    return {"champion": {"run": champion.run, "step": champion.step, "since": (champion.current or {}).get("since")},
            "config": cfg, "vocabulary": vocab}


def history_view(ws: Workspace, slug: str) -> dict[str, Any]:
    """Every champion decision (newest first) with its grids and scores, and every run's curves."""
    from evaluation.sweep import current_records
    from studio.charts import line_chart
    from training.visuals import read_metrics

    champion = read_champion(ws, slug)
    col = ws.collection(slug)
    decisions = []
    for entry in reversed(champion.history):
        run = entry.get("run")
        folder = Path(entry["comparison"]).parent if entry.get("comparison") else (
            col.comparison(str(run)) if run else None)
        grids = {}
        for name in ("champion", "challenger"):
            path = folder / f"{name}.png" if folder is not None else None
            if path is not None and path.is_file() and inside(ws, path):
                grids[name] = ws_relative(ws, path)
        decisions.append({**entry, "grids": grids,
                          "scores": _side_by_side(entry.get("champion_scores"), entry.get("scores"))})
    runs = []
    for run in ws.runs(slug):
        paths = ws.run(slug, run)
        rows = read_metrics(paths)
        loss = [r for r in rows if "loss_g" in r]
        probe = [r for r in rows if "probe_coverage" in r or "probe_diversity" in r]
        charts = []
        if loss:
            charts.append(line_chart("losses", [("loss G", [(r["step"], r["loss_g"]) for r in loss]),
                                                ("loss D", [(r["step"], r["loss_d"]) for r in loss])]))
        if probe:
            charts.append(line_chart("collapse probe", [
                ("diversity", [(r["step"], r["probe_diversity"]) for r in probe if "probe_diversity" in r]),
                ("coverage", [(r["step"], r["probe_coverage"]) for r in probe if "probe_coverage" in r])]))
        records = current_records(paths.eval.metrics)
        if records:
            charts.append(line_chart("KID per checkpoint", [
                ("KID", [(r["step"], r["kid_mean"]) for r in records if isinstance(r.get("kid_mean"), (int, float))])]))
        alarms = sorted({int(r["step"]) for r in rows if r.get("collapse_suspected")})
        runs.append({"name": run, "config": run_config(ws, slug, run), "charts": charts, "steps": len(loss),
                     "alarms": alarms, "last_step": loss[-1]["step"] if loss else None})
    return {"decisions": decisions, "runs": runs, "current": champion.current}


def _side_by_side(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    keys = [k for k in ("kid_mean", "kid_noise", "fid", "precision", "recall", "n_fake", "n_real")
            if k in before or k in after]
    return [(k, before.get(k), after.get(k)) for k in keys]


def inside(ws: Workspace, path: Path) -> bool:
    """``path``, with every symlink resolved, lies inside the workspace."""
    try:
        Path(path).resolve(strict=True).relative_to(ws.root.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def ws_relative(ws: Workspace, path: Path) -> str:
    return Path(path).resolve().relative_to(ws.root.resolve()).as_posix()
