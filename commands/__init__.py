"""The ``nftgan`` command line: the top layer, with ``flows.py``.

Each command parses options into a stage's config and calls the stage's public function; no stage logic
lives here. This module holds the app, the shared helpers and the collection commands (``import``,
``prepare``, ``status``); ``scrape``, ``train``, ``evaluate`` and ``demo`` have a module each. Heavy
imports (torch, playwright, prefect) happen inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._progress import progress_bars
from pipeline.errors import NftganError
from cleaning.prepare import PrepareConfig
from pipeline.workspace import HOME_ENV, Workspace

PREPARE_DEFAULTS = PrepareConfig()

app = typer.Typer(
    name="nftgan",
    help="Scrape an NFT collection, clean it, train a GAN on it, and score it honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Optional[Path],
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            help=f"Workspace folder (default ./nftgan-data; env {HOME_ENV}).",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = Workspace.from_home(home)


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace chosen by ``--home`` / ``$NFTGAN_HOME`` (for commands of every package)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Workspace) else Workspace.from_home(None)


def fail(message: str) -> None:
    """Raise the one-line user error that :func:`main` prints (exit code 2)."""
    raise NftganError(message)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


# -- foundation commands --------------------------------------------------------------------------
@app.command("import")
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


@app.command()
def prepare(
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

    config = PrepareConfig(
        size_px=size, fit=fit, background=background, near_dup_threshold=near_dup_threshold,
        near_dups=near_dups, resample=resample, min_size_px=min_size, max_pixels=max_pixels, workers=workers,
    )
    with progress_bars(progress_enabled()) as progress:
        summary = run_prepare(workspace(ctx), slug, config, progress=progress)
    typer.echo(summary.describe())


@app.command()
def status(
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
    for key in ("pending", "downloaded", "ok", "rejected", "duplicate", "failed"):
        typer.echo(f"  {key:<11} {info[key]}")
    for group in ("rejected", "failed", "duplicate"):
        for reason, n in info["reasons"].get(group, {}).items():
            typer.echo(f"    {group}: {reason}: {n}")
    if info["caches"]:
        for size, n in sorted(info["caches"].items(), key=lambda kv: int(kv[0])):
            typer.echo(f"  cache {size}px: {n} images")
            sheet = info["review_sheets"].get(size)
            if sheet:
                typer.echo(f"    merged pairs, worst first: {sheet}")
    else:
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


# The other commands, one module each; every module adds its commands to ``app``.
from commands import demo, evaluate, scrape, train  # noqa: E402

for _module in (scrape, train, evaluate, demo):
    _module.register(app)
__import__("commands.champion", fromlist=["register"]).register(app)  # nftgan champion
__import__("commands.export", fromlist=["register"]).register(app)  # nftgan export


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``nftgan`` console script."""
    try:
        app(args=argv, prog_name="nftgan")
    except NftganError as e:
        typer.echo(f"nftgan: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("nftgan: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
