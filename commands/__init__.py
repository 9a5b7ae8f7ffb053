"""The ``nftgan`` command line: the top layer, with ``flows.py``.

Each command parses options into a stage's config and calls the stage's public function; no stage logic
lives here. ``cli`` holds the app and the entry point, ``_common`` the helpers every command module shares,
and each group of commands has a module (``collection``: import, prepare, status; ``scrape``, ``train``,
``evaluate``, ``demo``, ``champion``, ``export``). Heavy
imports (torch, playwright, prefect) happen inside commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from commands.cli import app, main

__all__ = ["app", "main"]
