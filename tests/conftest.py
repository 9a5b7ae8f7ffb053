"""Shared test fixtures: a temporary workspace and an in-process ``nftgan`` runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.workspace import Workspace

# Keep library threads in check on small CI machines: under pytest-xdist (`make test` runs two workers) each
# worker gets one thread, so two torch processes never fight over two cores (that is ~10x slower, not 2x).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# 2-thread OpenBLAS makes a 2048x2048 eigvals (FID) ~5x slower on a busy 2-core machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """An empty workspace under the test's temp folder."""
    return Workspace(tmp_path / "home")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(ws: Workspace, capsys: pytest.CaptureFixture[str]):
    """Run ``nftgan --home <ws> ARGS...`` in-process, the way the console script does."""
    from commands import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main(["--home", str(ws.root), *map(str, args)])
        except SystemExit as e:  # click/typer and main() end with sys.exit
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run
