"""CLI commands of this package; :func:`register` adds them to the ``nftgan`` app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app`` (nothing yet)."""
