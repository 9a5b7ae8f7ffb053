"""CLI commands of the scraper: ``nftgan scrape`` and ``nftgan fixture serve``."""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from pipeline.errors import EXIT_PARTIAL
from scraper.config import ScrapeConfig

SCRAPE_DEFAULTS = ScrapeConfig()
#: command-line parameters named otherwise than their ScrapeConfig field
SCRAPE_RENAMED = {"timeout": "timeout_s", "page_timeout": "page_timeout_s", "interstitial_wait": "interstitial_wait_s",
                  "backoff_initial": "backoff_initial_s", "backoff_max": "backoff_max_s", "chromium": "chromium_path",
                  "max_rate_wait": "max_rate_wait_s"}

if TYPE_CHECKING:
    from marketplace.fixture import Faults

fixture_app = typer.Typer(help="The local marketplace fixture (tests, demos, trying the scraper offline).")


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("scrape")(scrape_cmd)
    app.add_typer(fixture_app, name="fixture")


def scrape_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug, as in opensea.io/collection/<slug>.")],
    source: Annotated[
        str, typer.Option(help="Where to list items: 'browser' (the collection page) or 'api'.")
    ] = SCRAPE_DEFAULTS.source,
    base_url: Annotated[str, typer.Option(help="Marketplace site for the browser source.")] = SCRAPE_DEFAULTS.base_url,
    api_base_url: Annotated[
        str, typer.Option(help="OpenSea API v2 base for the API source.")
    ] = SCRAPE_DEFAULTS.api_base_url,
    api_key: Annotated[
        Optional[str], typer.Option(help="OpenSea API key (else $OPENSEA_API_KEY); never saved.", show_default=False)
    ] = SCRAPE_DEFAULTS.api_key,
    max_items: Annotated[
        Optional[int], typer.Option(help="Stop listing after this many items.", show_default=False)
    ] = SCRAPE_DEFAULTS.max_items,
    image_width: Annotated[int, typer.Option(help="Image width (px) asked of OpenSea's image CDN.")] = SCRAPE_DEFAULTS.image_width,
    concurrency: Annotated[int, typer.Option(help="Downloads at once.")] = SCRAPE_DEFAULTS.concurrency,
    per_host_limit: Annotated[int, typer.Option(help="Downloads at once from one host.")] = SCRAPE_DEFAULTS.per_host_limit,
    allow_private_hosts: Annotated[
        bool, typer.Option(help="Allow loopback/private addresses (needed for the local fixture).")
    ] = SCRAPE_DEFAULTS.allow_private_hosts,
    ipfs_gateway: Annotated[
        str, typer.Option(help="Gateways for ipfs:// URLs, comma-separated, tried in turn when one fails.")
    ] = SCRAPE_DEFAULTS.ipfs_gateway,
    arweave_gateway: Annotated[str, typer.Option(help="Gateway for ar:// URLs.")] = SCRAPE_DEFAULTS.arweave_gateway,
    idle_scrolls: Annotated[int, typer.Option(help="Browser: stop after this many scrolls bring nothing new.")] = SCRAPE_DEFAULTS.idle_scrolls,
    page_size: Annotated[int, typer.Option(help="API: items per page (at most 200).")] = SCRAPE_DEFAULTS.page_size,
    skip_nsfw: Annotated[bool, typer.Option(help="API: leave out items flagged NSFW (counted in the summary).")] = SCRAPE_DEFAULTS.skip_nsfw,
    max_rate_wait: Annotated[
        float, typer.Option(help="API: longest wait (s) for a rate-limit window to reset; a longer one ends the run "
                                 "with the cursor saved (exit 3), and the next run resumes.")
    ] = SCRAPE_DEFAULTS.max_rate_wait_s,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = SCRAPE_DEFAULTS.timeout_s,
    page_timeout: Annotated[float, typer.Option(help="Browser: seconds for the collection page to show items.")] = SCRAPE_DEFAULTS.page_timeout_s,
    page_retries: Annotated[int, typer.Option(help="Browser: page loads before giving up.")] = SCRAPE_DEFAULTS.page_retries,
    interstitial_wait: Annotated[float, typer.Option(help="Browser: seconds an error/bot-check page may take.")] = SCRAPE_DEFAULTS.interstitial_wait_s,
    max_bytes: Annotated[int, typer.Option(help="Largest image file accepted, in bytes.")] = SCRAPE_DEFAULTS.max_bytes,
    max_retries: Annotated[int, typer.Option(help="Retries after 5xx, timeouts and connection errors.")] = SCRAPE_DEFAULTS.max_retries,
    rate_limit_retries: Annotated[int, typer.Option(help="Retries after 429/599 rate limits.")] = SCRAPE_DEFAULTS.rate_limit_retries,
    backoff_initial: Annotated[float, typer.Option(help="First backoff in seconds (doubles each retry).")] = SCRAPE_DEFAULTS.backoff_initial_s,
    backoff_max: Annotated[float, typer.Option(help="Longest wait in seconds, Retry-After included.")] = SCRAPE_DEFAULTS.backoff_max_s,
    chromium: Annotated[
        Optional[str], typer.Option(help="Chromium to use (else $NFTGAN_CHROMIUM, /usr/bin/chromium, Playwright's).",
                                    show_default=False)
    ] = SCRAPE_DEFAULTS.chromium_path,
    headless: Annotated[bool, typer.Option(help="Run the browser without a window.")] = SCRAPE_DEFAULTS.headless,
    restart_listing: Annotated[bool, typer.Option(help="API: forget a saved cursor, list from the start.")] = SCRAPE_DEFAULTS.restart_listing,
    full: Annotated[
        bool, typer.Option("--full", help="List the whole collection, not only what is new; notices removed tokens "
                                          "(flagged delisted) and changed images (downloaded again).")
    ] = SCRAPE_DEFAULTS.full,
    full_every_days: Annotated[
        float, typer.Option(help="A listing is full when the last full one is older than this many days "
                                 "(0: every listing is full); otherwise only new items are listed.")
    ] = SCRAPE_DEFAULTS.full_every_days,
    list_only: Annotated[bool, typer.Option(help="List items, download nothing.")] = False,
    download_only: Annotated[bool, typer.Option(help="Download pending/failed items, list nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """List a collection's items and download their images (resumable: re-run to finish or update).

    Once a listing has finished, the next ones list only what is new (newest first, until known items),
    with a full listing on --full and every --full-every-days days.

    Ends with "cataloged X of Y (total supply)". Exit codes: 0 done; 2 a mistake in the options;
    3 partial (fewer items than the total supply: re-run to continue); 4 the site cannot be reached
    (DNS, refused, TLS, timeout); 5 the site refuses (HTTP 403, a bot check).

    Against the local fixture: `nftgan fixture serve` in one terminal, then
    `nftgan scrape demo --base-url http://127.0.0.1:PORT --allow-private-hosts` in another.
    """
    from commands._common import fail, progress_enabled, workspace
    from commands._progress import progress_bars
    from commands._common import config_options
    from scraper.stage import download_items, list_items, scrape

    if list_only and download_only:
        fail("--list-only and --download-only exclude each other")
    config = ScrapeConfig(**config_options(ctx, ScrapeConfig, SCRAPE_RENAMED))
    ws = workspace(ctx)
    run = list_items if list_only else download_items if download_only else scrape
    with progress_bars(progress_enabled()) as progress:
        summary = run(ws, slug, config, progress=progress)
    typer.echo(json.dumps(summary.to_dict(), sort_keys=True) if as_json else summary.describe())
    listing = getattr(summary, "listing", summary)
    if getattr(listing, "partial", False) and listing.stopped_by != "max-items":
        raise typer.Exit(EXIT_PARTIAL)  # short of the total supply: the run says so, and so does its code




@fixture_app.command("serve")
def fixture_serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 0,
    items: Annotated[int, typer.Option(help="Items in the collection.")] = 300,
    slug: Annotated[str, typer.Option(help="Collection slug.")] = "demo",
    seed: Annotated[int, typer.Option(help="Seed of the demo collection's drawings.")] = 0,
    latency_ms: Annotated[float, typer.Option(help="Added latency per image response, in ms.")] = 0.0,
    image_px: Annotated[int, typer.Option(help="Image width when a request names none.")] = 256,
    with_faults: Annotated[
        bool, typer.Option(help="Inject a sample of faults (429 bursts, 500s, truncated, HTML-as-PNG, ipfs, video).")
    ] = False,
    prerender: Annotated[
        Optional[int], typer.Option(help="Render every image at this width before serving.", show_default=False)
    ] = None,
    mode: Annotated[
        str, typer.Option(help="'os2': the page as OpenSea serves it today (inlined first page, GraphQL feed, "
                               "price ordering that stops at the listed items); 'classic': a plain JSON feed.")
    ] = "os2",
    listed: Annotated[float, typer.Option(help="os2: share of the items that are listed for sale.")] = 0.05,
    chain: Annotated[str, typer.Option(help="'ethereum', or 'solana' (items are mints).")] = "ethereum",
    art: Annotated[str, typer.Option(help="'drawn' avatars, or 24x24 'pixel' art (what `nftgan demo` serves).")] = "drawn",
) -> None:
    """Serve a fake marketplace for the demo collection on 127.0.0.1 until Ctrl-C (or SIGTERM)."""
    import time

    from commands._common import fail
    from pipeline.workspace import validate_slug
    from marketplace.fixture import ARTS, serve_fixture

    validate_slug(slug)
    if not 1 <= items <= 100_000:
        fail("--items must be within 1..100000")
    if not 0 <= port <= 65535:
        fail("--port must be within 0..65535")
    if mode not in ("os2", "classic"):
        fail("--mode must be 'os2' or 'classic'")
    if chain not in ("ethereum", "solana"):
        fail("--chain must be 'ethereum' or 'solana'")
    if not 0 <= listed <= 1:
        fail("--listed must be within 0..1")
    if art not in ARTS:
        fail(f"--art must be one of {', '.join(ARTS)}")
    faults = sample_faults(items) if with_faults else None
    signal.signal(signal.SIGTERM, _stop)  # `kill PID` stops it as cleanly as Ctrl-C
    # and Ctrl-C (SIGINT) stops it even when started from a parent that ignores SIGINT (a background job of a
    # script, a test runner's worker): Python leaves an inherited "ignore" in place
    signal.signal(signal.SIGINT, _stop)
    try:
        with serve_fixture(collection=slug, n_items=items, seed=seed, port=port, latency_s=latency_ms / 1000,
                           image_px=image_px, faults=faults, mode=mode, listed_share=listed, chain=chain,
                           art=art) as fx:
            if prerender:
                fx.prerender(prerender)
            typer.echo(f"fixture marketplace at {fx.base_url}  ({items} items of {slug!r}, seed {seed}, {mode} page, "
                       f"{len(fx.prices)} listed)")
            typer.echo(f"  collection page  {fx.collection_url}")
            typer.echo(f"  API v2           {fx.api_base_url}/api/v2/collection/{slug}/nfts")
            typer.echo(f"  IPFS gateway     {fx.ipfs_gateway}")
            typer.echo(f"try: nftgan scrape {slug} --base-url {fx.base_url} --allow-private-hosts"
                       + (f" --ipfs-gateway {fx.ipfs_gateway}" if with_faults else ""))
            typer.echo("Ctrl-C stops it.")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
    except OSError as e:
        fail(f"cannot serve on 127.0.0.1:{port}: {e}")
    except KeyboardInterrupt:
        typer.echo("fixture stopped")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def sample_faults(n_items: int) -> Faults:
    """A few of every fault, on tokens that exist in a collection of ``n_items``."""
    from marketplace.fixture import Faults

    tokens = [str(i) for i in range(3, n_items, 7)]
    pick = iter(tokens)

    def take(k: int) -> set[str]:
        return {t for _, t in zip(range(k), pick)}

    faults = Faults(api_errors=[429, 599], image_errors=[429, 429, 500], retry_after="1")
    faults.image_errors_by_token = dict.fromkeys(take(2), 2)
    faults.truncated = take(1)
    faults.html_as_png = take(1)
    duplicates = sorted(take(1))
    faults.duplicate_of = {t: "0" for t in duplicates}
    faults.ipfs = take(1)
    faults.video = take(1)
    faults.video_with_poster = take(1)
    return faults
