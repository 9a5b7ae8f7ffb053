"""The collection commands: ``nftgan import``, ``nftgan prepare``, ``nftgan status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cleaning.prepare import PrepareConfig
from commands._common import config_options, progress_enabled, workspace
from commands._progress import progress_bars

PREPARE_DEFAULTS = PrepareConfig()
#: command-line parameters named otherwise than their PrepareConfig field
PREPARE_RENAMED = {"size": "size_px", "min_size": "min_size_px"}


# -- foundation commands --------------------------------------------------------------------------
def import_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug, e.g. 'my-collection'.")],
    directory: Annotated[Path, typer.Argument(help="Folder to import image files from (recursive).")],
) -> None:
    """Register every image file under DIRECTORY in the catalog (copied into content-addressed storage).

    Re-running is a no-op; files whose bytes changed are updated.
    """
    from cleaning.importer import import_directory

    with progress_bars(progress_enabled()) as progress:
        summary = import_directory(workspace(ctx), slug, directory, progress=progress)
    typer.echo(summary.describe())


def prepare_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    size: Annotated[int, typer.Option("--size", help="Output size in pixels (square).")] = PREPARE_DEFAULTS.size_px,
    fit: Annotated[
        str, typer.Option(help="Make images square by 'crop' (center) or 'pad'.")
    ] = PREPARE_DEFAULTS.fit,
    background: Annotated[
        str, typer.Option(help="Color under transparent pixels and padding, #RRGGBB.")
    ] = PREPARE_DEFAULTS.background,
    near_dup_threshold: Annotated[
        float,
        typer.Option(
            help="Near-duplicates: the largest local difference (levels of 0..255, worst cell of ~1/16 "
            "of the side) a lossy or resampled copy may show. Lossless images on one pixel grid merge "
            "only when identical. -1: off.",
        ),
    ] = PREPARE_DEFAULTS.near_dup_threshold,
    near_dups: Annotated[
        bool,
        typer.Option(
            "--near-dups/--no-near-dups",
            help="Search for near-duplicates (exact and same-pixel duplicates are always merged).",
        ),
    ] = PREPARE_DEFAULTS.near_dups,
    resample: Annotated[
        str,
        typer.Option(help="'auto' (pixel art → nearest-neighbor), 'pixel' or 'smooth' (antialiased)."),
    ] = PREPARE_DEFAULTS.resample,
    min_size: Annotated[
        int, typer.Option(help="Reject originals smaller than this (pixels).")
    ] = PREPARE_DEFAULTS.min_size_px,
    max_pixels: Annotated[
        int, typer.Option(help="Reject originals with more pixels than this (decompression bombs).")
    ] = PREPARE_DEFAULTS.max_pixels,
    workers: Annotated[int, typer.Option(help="Decode processes (0 = one per core).")] = PREPARE_DEFAULTS.workers,
) -> None:
    """Clean the collection: decode, normalize, de-duplicate, and write the uint8 tensor cache."""
    from cleaning.prepare import prepare as run_prepare

    config = PrepareConfig(**config_options(ctx, PrepareConfig, PREPARE_RENAMED))
    with progress_bars(progress_enabled()) as progress:
        summary = run_prepare(workspace(ctx), slug, config, progress=progress)
    typer.echo(summary.describe())


def status_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    traits: Annotated[bool, typer.Option("--traits", help="Also count items per trait type and value.")] = False,
) -> None:
    """Counts per status, reject reasons, scrape coverage, caches and runs of a collection."""
    from pipeline.status import collection_status

    info = collection_status(workspace(ctx), slug, traits=traits)
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    typer.echo(f"collection {slug}: {info['items']} items")
    coverage = info.get("coverage")
    if coverage:
        supply = coverage.get("total_supply")
        line = f"  coverage    cataloged {coverage.get('cataloged')} of {supply if supply is not None else '?'} (total supply)"
        if coverage.get("partial"):
            line += " - PARTIAL" + (f": {coverage['stopped_by']}" if coverage.get("stopped_by") else "")
        typer.echo(line + f"  [{coverage.get('source')}, {coverage.get('at')}]")
    for key in ("pending", "downloaded", "failed", "rejected"):  # the download outcome
        typer.echo(f"  {key:<11} {info[key]}")
    for group in ("failed", "rejected"):
        for reason, n in info["reasons"].get(group, {}).items():
            typer.echo(f"    {group}: {reason}: {n}")
    sizes = sorted(set(info["caches"]) | set(info["prepared"]), key=int)
    for size in sizes:  # the cleaning outcome, per cache size
        per = info["prepared"].get(size)
        if per is not None:
            typer.echo(f"  prepared {size}px: {per['ok']} ok, {per['rejected']} rejected, {per['duplicate']} duplicate")
            for group in ("rejected", "duplicate"):
                for reason, n in per["reasons"].get(group, {}).items():
                    typer.echo(f"    {group}: {reason}: {n}")
        if size in info["caches"]:
            typer.echo(f"  cache {size}px: {info['caches'][size]} images")
            sheet = info["review_sheets"].get(size)
            if sheet:
                typer.echo(f"    merged pairs, worst first: {sheet}")
    if not info["caches"]:
        typer.echo("  no tensor cache yet (run: nftgan prepare)")
    if info["runs"]:
        typer.echo(f"  runs: {', '.join(info['runs'])}")
    if info.get("champion"):
        c = info["champion"]
        typer.echo(f"  champion: {c['run']} at step {c['step']} (since {c['since']}; nftgan champion {slug})")
    if info.get("champion_error"):
        typer.echo(f"  champion: {info['champion_error']}")
    if traits:
        counts = info.get("traits") or {}
        if not counts:
            typer.echo("  traits: none listed (the source gave no traits)")
        for kind in sorted(counts):
            values = counts[kind]
            typer.echo(f"  trait {kind} ({len(values)} values, {sum(values.values())} items)")
            for value, n in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
                typer.echo(f"    {value}: {n}")


def register(app: typer.Typer) -> None:
    """Add ``import``, ``prepare`` and ``status`` to ``app``."""
    app.command("import")(import_cmd)
    app.command("prepare")(prepare_cmd)
    app.command("status")(status_cmd)
