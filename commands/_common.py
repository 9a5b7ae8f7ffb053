"""What every command module shares: the workspace of ``--home``, the one-line user error, progress on a
terminal. Imported by the command modules, never importing them (no cycle)."""

from __future__ import annotations

import dataclasses
import sys
from types import SimpleNamespace
from typing import Any

import typer

from pipeline.errors import NftganError
from pipeline.workspace import Workspace


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace chosen by ``--home`` / ``$NFTGAN_HOME`` (for commands of every package)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Workspace) else Workspace.from_home(None)


def fail(message: str) -> None:
    """Raise the one-line user error that :func:`main` prints (exit code 2)."""
    raise NftganError(message)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def defaults_of(config_class: Any) -> SimpleNamespace:
    """A config's field defaults by name (also for a config with required fields): what its command's options
    default to, so that each default is written once, in the stage's config."""
    out = {}
    for f in dataclasses.fields(config_class):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return SimpleNamespace(**out)


def config_options(ctx: Any, config_class: Any, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """The command's parameters that are fields of ``config_class`` (``rename``: parameter -> field), by name,
    so a command does not list its options a second time to build its config."""
    rename = rename or {}
    names = {f.name for f in dataclasses.fields(config_class)}
    return {rename.get(k, k): v for k, v in ctx.params.items() if rename.get(k, k) in names}
