"""The ``nftgan`` app: the root options, every command module's commands, and the entry point."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from commands import champion, collection, demo, evaluate, export, refresh, scrape, studio, train
from pipeline.errors import NftganError
from pipeline.workspace import HOME_ENV, Workspace

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


# every command module adds its commands to ``app`` (in the order ``--help`` lists them)
for _module in (collection, scrape, train, evaluate, champion, export, refresh, demo, studio):
    _module.register(app)


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
