"""A real Prefect server on a free 127.0.0.1 port, with its own PREFECT_HOME, for the flow tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

VENV_BIN = Path(sys.executable).parent
#: IN_PROCESS_LOGS: flows run inside the pytest process keep their logs out of the API
#: (PREFECT_LOGGING_TO_API_ENABLED=false): once a module's server has stopped, Prefect's log worker would
#: otherwise try to send what is left at interpreter exit and hold pytest there for many minutes.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrefectServer:
    api_url: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home),
            PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(self.home / "storage"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_LOGGING_LEVEL="INFO",
            **extra,
        )
        return env


def drain_prefect_services(timeout_s: float = 60) -> None:
    """Send what Prefect's in-process workers still hold (events, logs) while the server is up: once it is
    gone, they would retry at interpreter exit and hold pytest there for many minutes."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker):
        service.drain_all(timeout=timeout_s)


def stop(proc: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGINT first (the worker ignores SIGTERM for a long time), then kill."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen(
        [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--analytics-off"],
        env=server.env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield server
    finally:
        try:
            drain_prefect_services()
        finally:
            stop(proc)
            log.close()
