"""Unreachable or refusing sites end in one line naming the host and the cause, with a documented code."""

from __future__ import annotations

import socket

import pytest

from pipeline.errors import EXIT_REFUSED, EXIT_UNREACHABLE
from marketplace.fixture import Faults, serve_fixture


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def one_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    return lines[0]


@pytest.mark.parametrize("source", ["browser", "api"])
def test_an_unresolvable_host(cli, source) -> None:
    url = "https://no-such-host.invalid"
    flag = "--base-url" if source == "browser" else "--api-base-url"
    r = cli("scrape", "demo", "--source", source, flag, url, "--api-key", "k")
    assert r.exit_code == EXIT_UNREACHABLE, (r.stdout, r.stderr)
    line = one_line(r)
    assert "no-such-host.invalid" in line and "does not resolve" in line


def test_a_refused_port_with_the_api_source(cli) -> None:
    port = closed_port()
    r = cli("scrape", "demo", "--source", "api", "--api-base-url", f"http://127.0.0.1:{port}",
            "--allow-private-hosts", "--max-retries", "0")
    assert r.exit_code == EXIT_UNREACHABLE, (r.stdout, r.stderr)
    line = one_line(r)
    assert f"127.0.0.1:{port}" in line and "refused" in line


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_a_refused_port_with_the_browser(cli) -> None:
    port = closed_port()
    r = cli("scrape", "demo", "--base-url", f"http://127.0.0.1:{port}", "--allow-private-hosts")
    assert r.exit_code == EXIT_UNREACHABLE, (r.stdout, r.stderr)
    line = one_line(r)
    assert f"127.0.0.1:{port}" in line and "refused" in line


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_a_403_bot_check_page(cli) -> None:
    with serve_fixture(n_items=10, mode="os2", faults=Faults(interstitial_loads=100)) as fx:
        r = cli("scrape", "demo", "--base-url", fx.base_url, "--allow-private-hosts", "--page-retries", "2",
                "--interstitial-wait", "0.3", "--backoff-initial", "0.05")
    assert r.exit_code == EXIT_REFUSED, (r.stdout, r.stderr)
    line = one_line(r)
    assert "127.0.0.1" in line and "HTTP 403" in line
    assert "--source api" in line and "--no-headless" in line


def test_a_401_from_the_api_for_a_wrong_key(cli) -> None:
    with serve_fixture(n_items=10, mode="os2", api_key="right") as fx:
        r = cli("scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url, "--allow-private-hosts",
                "--api-key", "wrong")
        assert len(fx.api_requests) == 1  # refused at once, not retried
    assert r.exit_code == EXIT_REFUSED, (r.stdout, r.stderr)
    line = one_line(r)
    assert "refused" in line and "HTTP 401" in line and "--api-key" in line


def test_a_403_from_the_api_with_a_right_key(cli) -> None:
    # a key that is right but forbidden (a blocked account or address): refused the same way, and said so
    with serve_fixture(n_items=10, mode="os2", api_key="right", faults=Faults(api_errors=[403] * 5)) as fx:
        r = cli("scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url, "--allow-private-hosts",
                "--api-key", "right")
        assert len(fx.api_requests) == 1
    assert r.exit_code == EXIT_REFUSED, (r.stdout, r.stderr)
    line = one_line(r)
    assert "refused" in line and "HTTP 403" in line
