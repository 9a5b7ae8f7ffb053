"""``nftgan export``: mint-ready images and ERC-721 metadata from a collection's generator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from export.config import ExportConfig

EXPORT_DEFAULTS = ExportConfig()
_CHECK = "Memorization check"
_META = "Metadata"


def register(app: typer.Typer) -> None:
    """Add ``nftgan export`` to ``app``."""
    app.command("export")(export_cmd)


def export_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    run: Annotated[Optional[str], typer.Argument(help="Run name (default: the collection's champion).")] = None,
    n: Annotated[int, typer.Option("--n", help="Tokens to export.")] = EXPORT_DEFAULTS.n,
    out: Annotated[
        Optional[Path],
        typer.Option(help="Export folder (default: <home>/exports/SLUG/<run>-step<step>-seed<seed>-n<n>)."),
    ] = EXPORT_DEFAULTS.out,
    seed: Annotated[int, typer.Option(help="Seed of the latents: the same seed writes the same files.")] = EXPORT_DEFAULTS.seed,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="latest, best or a step number (default: the champion's step, else best, else latest)."),
    ] = EXPORT_DEFAULTS.checkpoint,
    pixel_art: Annotated[
        Optional[bool],
        typer.Option("--pixel-art/--no-pixel-art", help="Snap to the collection's pixel grid and palette "
                     "(default: on when prepare found the collection drawn as pixel art)."),
    ] = EXPORT_DEFAULTS.pixel_art,
    memorization_check: Annotated[
        bool, typer.Option("--memorization-check/--no-memorization-check",
                           help="Drop near-copies of training images.", rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.memorization_check,
    extractor: Annotated[
        str, typer.Option(help="Feature network of the check: inception or tiny (tests).", rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.extractor,
    weights: Annotated[
        Optional[Path], typer.Option(help="Inception weights file (see nftgan evaluate).", rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.weights,
    ratio_max: Annotated[
        Optional[float],
        typer.Option(help="Near-copy when nearest/second-nearest training distance is below this (default 1/3, "
                          "as nftgan evaluate counts them).", rich_help_panel=_CHECK),
    ] = EXPORT_DEFAULTS.ratio_max,
    phash_bits: Annotated[
        int, typer.Option(help="Also a near-copy within this many pHash bits of a training image (-1: off).",
                          rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.phash_bits,
    max_draws_per_token: Annotated[
        Optional[int], typer.Option(help="Give up after this many candidates per token (default: 4; 32 for a "
                                    "trait-conditioned run, whose tokens must show the asked traits).",
                                    rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.max_draws_per_token,
    tries_per_trait_set: Annotated[
        int, typer.Option(help="A trait-conditioned run's token whose traits the classifier has not seen in "
                          f"this many candidates gets another trait set of the table (counted; default: "
                          f"{EXPORT_DEFAULTS.tries_per_trait_set}).", rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.tries_per_trait_set,
    traits: Annotated[
        bool, typer.Option("--traits/--no-traits", help="Attributes from the collection's trait classifier.",
                           rich_help_panel=_META)
    ] = EXPORT_DEFAULTS.traits,
    name_prefix: Annotated[
        Optional[str], typer.Option(help="Token names are '<prefix> #<id>' (default: the slug).", rich_help_panel=_META)
    ] = EXPORT_DEFAULTS.name_prefix,
    description: Annotated[Optional[str], typer.Option(help="Token description.", rich_help_panel=_META)] = EXPORT_DEFAULTS.description,
    image_base_uri: Annotated[
        str, typer.Option(help="'image' is <base><id>.png, e.g. ipfs://<CID>/.", rich_help_panel=_META)
    ] = EXPORT_DEFAULTS.image_base_uri,
    first_token_id: Annotated[int, typer.Option(help="Id of the first token.", rich_help_panel=_META)] = EXPORT_DEFAULTS.first_token_id,
    upscale: Annotated[
        int, typer.Option(help="Write images this many times larger, nearest neighbour (pixel art stays crisp).")
    ] = EXPORT_DEFAULTS.upscale,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = EXPORT_DEFAULTS.device,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA generator if the run has one.")] = EXPORT_DEFAULTS.ema,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = EXPORT_DEFAULTS.batch_size,
    rarity: Annotated[
        Optional[str], typer.Option(help="A trait-conditioned run: 'collection' (its own trait distribution, the "
                                    "default) or a JSON rarity table (type -> value -> share).", rich_help_panel=_META)
    ] = EXPORT_DEFAULTS.rarity,
    trait_check: Annotated[
        bool, typer.Option("--trait-check/--no-trait-check", help="A trait-conditioned run: reject a token whose "
                           "traits the collection's classifier sees otherwise.", rich_help_panel=_CHECK)
    ] = EXPORT_DEFAULTS.trait_check,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Export N mint-ready tokens: images, ERC-721 metadata, a summary with trait counts, a contact sheet."""
    from commands._common import config_options, progress_enabled, workspace
    from commands._progress import progress_bars
    from export.mint import export_collection

    config = ExportConfig(**{**config_options(ctx, ExportConfig), "weights": None if weights is None else str(weights)})
    with progress_bars(progress_enabled() and not as_json) as progress:
        summary = export_collection(workspace(ctx), slug, run, config, progress=progress)
    typer.echo(json.dumps(summary.to_dict(), sort_keys=True) if as_json else summary.describe())
