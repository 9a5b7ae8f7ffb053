"""``nftgan studio``: a local web app over the workspace (see :mod:`studio`)."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.errors import NftganError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(app: typer.Typer) -> None:
    """Add ``nftgan studio`` to ``app``."""
    app.command("studio")(studio_cmd)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def studio_token(host: str, token: Optional[str]) -> Optional[str]:
    """The token every request must carry: none on a loopback address unless given; on any other address a
    token is required (``--token generate`` makes one), else a one-line error."""
    if token == "generate":
        return secrets.token_urlsafe(24)
    if token is not None:
        if len(token) < 16:
            raise NftganError("--token must be at least 16 characters (or 'generate')")
        return token
    if not is_loopback(host):
        raise NftganError(f"--host {host} serves the studio beyond this machine: give --token TOKEN "
                          "(or --token generate), which every request must then carry")
    return None


def studio_cmd(
    ctx: typer.Context,
    home: Annotated[Optional[Path], typer.Option("--home", help="Workspace folder (default: the root --home).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    token: Annotated[
        Optional[str], typer.Option(help="A token every request must carry ('generate': a new one, printed).")
    ] = None,
) -> None:
    """Serve the studio: the collections, their data, generators, history and exports, in a browser."""
    from commands._common import workspace
    from pipeline.workspace import Workspace

    ws = Workspace.from_home(home) if home is not None else workspace(ctx)
    secret = studio_token(host, token)
    if not 1 <= port <= 65535:
        raise NftganError(f"--port must be 1 to 65535, got {port}")
    import socket

    import uvicorn

    from studio.app import create_app

    try:  # a taken port or an address this machine does not have: one line, before the server starts
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as e:
        raise NftganError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    app = create_app(ws, token=secret)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/" + (f"?token={secret}" if secret else "")
    typer.echo(f"nftgan studio on {ws.root}: open {url}  (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
