"""``nftgan refresh SLUG``: one refresh of a collection without a Prefect server (cron, or debugging one
night's decision): the same policy as the ``refresh-collection`` flow (``refresh``), stages called directly."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from refresh.params import EvalParams, PrepareParams, ScrapeParams, TrainParams

SCRAPE_P, PREPARE_P, TRAIN_P, EVAL_P = ScrapeParams(), PrepareParams(), TrainParams(), EvalParams()


def register(app: typer.Typer) -> None:
    app.command("refresh")(refresh_cmd)


def refresh_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    source: Annotated[str, typer.Option(help="browser or api (see nftgan scrape).")] = SCRAPE_P.source,
    base_url: Annotated[str, typer.Option(help="Marketplace site for the browser source.")] = SCRAPE_P.base_url,
    api_base_url: Annotated[str, typer.Option(help="OpenSea API v2 base for the API source.")] = SCRAPE_P.api_base_url,
    allow_private_hosts: Annotated[
        bool, typer.Option(help="Allow loopback/private addresses (the local fixture).")
    ] = SCRAPE_P.allow_private_hosts,
    full: Annotated[bool, typer.Option("--full", help="List the whole collection, not only what is new.")] = SCRAPE_P.full,
    size: Annotated[int, typer.Option(help="Tensor cache size in pixels.")] = PREPARE_P.size,
    minutes: Annotated[Optional[float], typer.Option(help="Training budget in minutes.")] = TRAIN_P.minutes,
    steps: Annotated[Optional[int], typer.Option(help="Or this many steps.")] = TRAIN_P.steps,
    recipe: Annotated[Optional[str], typer.Option(help="A named recipe of training/recipes.py.")] = TRAIN_P.recipe,
    condition: Annotated[
        Optional[str], typer.Option(help="'traits': train a trait-conditioned generator; 'auto': when the collection lists "
                                    "traits; 'none' (default: the recipe's).")
    ] = TRAIN_P.condition,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = TRAIN_P.device,
    warm_start: Annotated[
        str, typer.Option(help="auto (from a compatible champion), none, champion, RUN or RUN@STEP.")
    ] = TRAIN_P.warm_start,
    eval_samples: Annotated[int, typer.Option(help="Generated images per checkpoint.")] = EVAL_P.samples,
    extractor: Annotated[str, typer.Option(help="inception (standard FID) or tiny (quick).")] = EVAL_P.extractor,
    challenge_champion: Annotated[
        bool, typer.Option("--challenge/--no-challenge", help="Challenge the champion with the new run.")
    ] = EVAL_P.challenge_champion,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Scrape (new items), prepare, train (warm-started), evaluate, challenge the champion: what the nightly
    deployment does, in this process."""
    from commands._common import progress_enabled, workspace
    from commands._progress import progress_bars
    from refresh import DirectStages, refresh

    ws = workspace(ctx)
    scrape = ScrapeParams(source=source, base_url=base_url, api_base_url=api_base_url,
                          allow_private_hosts=allow_private_hosts, full=full)
    train = TrainParams(minutes=None if steps else minutes, steps=steps, recipe=recipe, condition=condition, device=device,
                        warm_start=warm_start)
    evaluate = EvalParams(samples=eval_samples, extractor=extractor, challenge_champion=challenge_champion)
    echo = (lambda m: typer.echo(m, err=True)) if as_json else typer.echo
    with progress_bars(progress_enabled(), echo=not as_json) as progress:
        result = refresh(ws, slug, DirectStages(ws, progress=progress, echo=echo), scrape, PrepareParams(size=size),
                         train, evaluate)
    if as_json:
        typer.echo(json.dumps(result, sort_keys=True, default=str))
        return
    decision = result.get("champion") or {}
    typer.echo(f"refresh of {slug}: run {result['run']} ({result['training_plan']}); champion: "
               f"{decision.get('decision', 'not challenged')}")
