"""``nftgan demo``: the whole pipeline offline, on one machine, through the ``refresh-collection`` flow.

It starts the local marketplace fixture with the demo collection, then runs the same Prefect flow a
deployment runs: scrape (real Chromium), prepare, train on the CPU for a few minutes, evaluate. Prefect
runs in its ephemeral mode unless ``PREFECT_API_URL`` points at a server, in which case the run shows
up in that server's UI.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

DEMO_SLUG = "demo"
#: the training recipe the demo runs for each kind of demo collection (training.recipes), the best of that
#: collection's screen at the demo's budget (docs/quality.md, 3 seeds each). Pixel art: the trait-conditioned
#: networks on the native grid (trait_fd 120 ± 4 against 381 ± 8 for "demo-w16-b16", coverage 0.995 against 0.80;
#: the classifier's "both" view, the CLI's default since, was no better there at 137 ± 8). The CLI's default row
#: ("…-snap-cin") drew the asked traits more often there (0.89 against 0.84, trait_fd 93 ± 1) but its snapped
#: samples' Inception KID was apart, worse (109 ± 6 against 82 ± 11 ×10³, 400 samples against the 200 items), so
#: the demo keeps this row. Drawn avatars: base width 16, batch 16, EMA 0.98 (trait_fd 38 ± 9 against 83 ± 6 for
#: the former demo options)
DEMO_RECIPES = {"pixel": "demo-w16-b16-cond-ac3-native", "drawn": "demo-w16-b16"}


@dataclass(frozen=True)
class DemoConfig:
    """What ``nftgan demo`` runs, by default: the options of the command and of :func:`run_demo`."""

    items: int = 200
    size_px: int = 32
    train_minutes: float = 3.0
    eval_samples: int = 200
    extractor: str = "inception"
    seed: int = 0
    # what the demo collection is: 24x24 trait-layered pixel art ("pixel", the kind of PFP collection the product
    # is made for, recognizable after the demo's 3 minutes) or smooth drawn avatars ("drawn", still blurred
    # figures at that budget, docs/quality.md)
    art: str = "pixel"


DEMO_DEFAULTS = DemoConfig()


def run_demo(
    home: Path,
    *,
    items: int = DEMO_DEFAULTS.items,
    size_px: int = DEMO_DEFAULTS.size_px,
    train_minutes: float = DEMO_DEFAULTS.train_minutes,
    eval_samples: int = DEMO_DEFAULTS.eval_samples,
    extractor: str = DEMO_DEFAULTS.extractor,
    seed: int = DEMO_DEFAULTS.seed,
    art: str = DEMO_DEFAULTS.art,
) -> dict[str, Any]:
    """Serve the demo collection locally and run ``refresh-collection`` on it; returns the flow's result."""
    from flows import refresh_collection
    from marketplace.fixture import serve_fixture

    with serve_fixture(collection=DEMO_SLUG, n_items=items, seed=seed, mode="os2", art=art) as fixture:
        return refresh_collection(
            slug=DEMO_SLUG,
            home=str(home),
            scrape={"source": "browser", "base_url": fixture.base_url, "allow_private_hosts": True},
            prepare={"size": size_px},
            # the demo's recipe for this art (measured in docs/quality.md's demo tables)
            train={"minutes": train_minutes, "device": "cpu", "recipe": DEMO_RECIPES[art],
                   "options": {"checkpoint_every": 200, "sample_every": 100, "log_every": 20, "seed": seed}},
            evaluate={"samples": eval_samples, "checkpoints": "latest", "extractor": extractor},
        )


def _score_line(evaluated: dict[str, Any]) -> str:
    """The best checkpoint's metrics, with what they were computed on."""
    from evaluation.sweep import describe_scores

    best = evaluated.get("best_step")
    record = next((r for r in evaluated.get("records", []) if r.get("step") == best), None)
    if record is None:
        return "not computed (see the report)"
    network = "Inception-v3 features, the standard FID network" if evaluated.get("comparable_to_published") else (
        f"{evaluated.get('extractor')} features: NOT comparable to published FID")
    return (f"{describe_scores(record)}  at step {best}, {record['n_real']} real vs {record['n_fake']} "
            f"generated images ({network})")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        ctx: typer.Context,
        items: Annotated[int, typer.Option(help="Items in the demo collection.")] = DEMO_DEFAULTS.items,
        size: Annotated[int, typer.Option(help="Image size to train at (pixels).")] = DEMO_DEFAULTS.size_px,
        minutes: Annotated[float, typer.Option(help="Training budget in minutes (CPU).")] = DEMO_DEFAULTS.train_minutes,
        eval_samples: Annotated[int, typer.Option(help="Generated images to evaluate.")] = DEMO_DEFAULTS.eval_samples,
        extractor: Annotated[
            str, typer.Option(help="'inception' (standard FID) or 'tiny' (quick, not comparable).")
        ] = DEMO_DEFAULTS.extractor,
        art: Annotated[
            str, typer.Option(help="The demo collection's tokens: 'drawn' avatars or 24x24 'pixel' art.")
        ] = DEMO_DEFAULTS.art,
    ) -> None:
        """Run the whole pipeline offline on the built-in demo collection (what `make demo` runs)."""
        from commands._common import workspace

        from marketplace.fixture import ARTS
        from pipeline.errors import NftganError

        if art not in ARTS:
            raise NftganError(f"--art must be one of {', '.join(ARTS)}, got {art!r}")
        ws = workspace(ctx)
        started = time.monotonic()
        # offline: the ephemeral server's telemetry would only log an ERROR about a failed DNS lookup
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # a busy 2-core machine can take longer than Prefect's default 20 s to start its ephemeral server
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        typer.echo(f"nftgan demo: workspace {ws.root}")
        if not os.environ.get("PREFECT_API_URL"):
            typer.echo("  Prefect: ephemeral mode (set PREFECT_API_URL, e.g. after `make server`, to see the run in the UI)")
        result = run_demo(ws.root, items=items, size_px=size, train_minutes=minutes,
                          eval_samples=eval_samples, extractor=extractor, art=art)
        run = ws.run(DEMO_SLUG, result["run"])
        evaluated = result.get("evaluate", {})
        typer.echo("")
        typer.echo(f"done in {(time.monotonic() - started) / 60:.1f} min")
        typer.echo(f"  items scraped:   {result['scrape'].get('found', result['scrape'])}")
        typer.echo(f"  cache:           {result['prepare']['count']} images at {size}px ({result['prepare']['cache_path']})")
        typer.echo(f"  run:             {run.root}")
        typer.echo(f"  score:           {_score_line(evaluated)}")
        for key in ("report_path", "metrics_path"):
            if key in evaluated:
                typer.echo(f"  {key.replace('_', ' ') + ':':<16} {evaluated[key]}")
        grids = run.sample_grids()
        if grids:
            typer.echo(f"  latest samples:  {grids[max(grids)]}")
        typer.echo(f"  progress GIF:    {run.progress_gif}")
        typer.echo("  Prefect UI:      `make server`, then re-run with PREFECT_API_URL=http://127.0.0.1:4200/api")
        typer.echo(f"  look at it:      nftgan studio --home {ws.root}   (then open http://127.0.0.1:8765/)")
