"""``nftgan champion SLUG``: the collection's current generator and every promotion decision;
``--challenge RUN`` compares a run's best checkpoint with it (see :mod:`evaluation.champion`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from evaluation.champion import ChampionConfig

CHAMPION_DEFAULTS = ChampionConfig()


def register(app: typer.Typer) -> None:
    """Add ``nftgan champion`` to ``app``."""
    app.command("champion")(champion_cmd)


def champion_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    challenge: Annotated[
        Optional[str],
        typer.Option(help="Compare this run's best checkpoint with the champion; promote it if it is better "
                     "by more than the noise margin."),
    ] = None,
    extractor: Annotated[
        str, typer.Option(help="'inception' (standard) or 'tiny' (quick, NOT comparable to published numbers).")
    ] = CHAMPION_DEFAULTS.extractor,
    samples: Annotated[int, typer.Option(help="Generated images per generator.")] = CHAMPION_DEFAULTS.samples,
    seed: Annotated[int, typer.Option(help="Seed of the generated images' latents.")] = CHAMPION_DEFAULTS.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = CHAMPION_DEFAULTS.device,
    weights: Annotated[Optional[Path], typer.Option(help="Inception weights file (see nftgan evaluate).")] = CHAMPION_DEFAULTS.weights,
    pixel_art: Annotated[
        Optional[bool], typer.Option("--pixel-art/--no-pixel-art",
                                     help="Score a pixel-art collection's images snapped to its palette (default: "
                                     "when prepare found the collection drawn as pixel art), as evaluate does.")
    ] = CHAMPION_DEFAULTS.pixel_art,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the collection's champion and its history, or (--challenge RUN) decide whether RUN replaces it."""
    from commands._common import workspace
    from pipeline.champion import read_champion

    ws = workspace(ctx)
    if not ws.collection(slug).root.is_dir():
        from pipeline.errors import NftganError

        raise NftganError(f"no collection {slug!r} in {ws.root}")
    if challenge is not None:
        from evaluation.champion import challenge as run_challenge

        config = ChampionConfig(extractor=extractor, samples=samples, seed=seed, device=device,
                                weights=None if weights is None else str(weights), pixel_art=pixel_art)
        decision = run_challenge(ws, slug, challenge, config)
        typer.echo(json.dumps(decision.to_dict(), sort_keys=True) if as_json else decision.describe())
        return
    record = read_champion(ws, slug)
    if as_json:
        typer.echo(json.dumps(record.to_dict(), sort_keys=True))
        return
    cur = record.current
    if cur is None:
        typer.echo(f"{slug}: no champion yet (nftgan champion {slug} --challenge RUN, after nftgan evaluate)")
    else:
        kid = (cur.get("scores") or {}).get("kid_mean")
        score = f", KID {kid:.5g}" if isinstance(kid, (int, float)) else ""
        typer.echo(f"{slug}: champion {cur['run']}@{cur['step']} since {cur.get('since', '?')}{score} "
                   f"({cur.get('samples', '?')} generated vs {cur.get('n_real', '?')} real, "
                   f"{cur.get('extractor', '?')})")
    if record.history:
        typer.echo("history:")
    for entry in record.history:
        where = f"{entry.get('run') or '-'}@{entry.get('step') if entry.get('step') is not None else '-'}"
        typer.echo(f"  {entry.get('date', '?')}  {where}  {entry.get('decision')}: {entry.get('reason', '')}")
