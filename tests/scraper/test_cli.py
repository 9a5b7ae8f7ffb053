"""``nftgan scrape`` and ``nftgan fixture serve`` from the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from marketplace.fixture import Faults, serve_fixture


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_scrape_by_hand_against_the_fixture_then_status_reflects_it(cli) -> None:
    faults = Faults(html_as_png={"3"})
    with serve_fixture(n_items=40, faults=faults, card_px=60) as fx:
        result = cli("scrape", "demo", "--base-url", fx.base_url, "--allow-private-hosts", "--image-width", "32",
                     "--idle-scrolls", "3")
    assert result.exit_code == 0, result.stderr
    assert "listed 40 items of demo with the browser (40 new" in result.stdout
    assert "downloaded 39 of 40 items" in result.stdout
    assert "failed: not-an-image:html: 1" in result.stdout
    status = cli("status", "demo", "--json")
    assert status.exit_code == 0, status.stderr
    info = json.loads(status.stdout)
    assert (info["items"], info["downloaded"], info["failed"]) == (40, 39, 1)
    assert info["reasons"]["failed"] == {"not-an-image:html": 1}


def test_scrape_json_summary_with_the_api_source(cli) -> None:
    with serve_fixture(n_items=12) as fx:
        result = cli("scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url,
                     "--allow-private-hosts", "--image-width", "32", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["new"], summary["downloaded"], summary["failed"]) == (12, 12, 12, {})
    assert summary["listing"]["source"] == "api"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "ftp"], "--source must be one of browser, api"),
        (["--concurrency", "0"], "--concurrency must be an integer in 1..256"),
        (["--base-url", "file:///etc"], "--base-url must be an http(s) URL"),
        (["--list-only", "--download-only"], "exclude each other"),
        (["--download-only"], "has no catalog yet"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(cli, args, message) -> None:
    result = cli("scrape", "demo", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("nftgan: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_fixture_on_loopback_needs_allow_private_hosts(cli) -> None:
    with serve_fixture(n_items=2) as fx:
        result = cli("scrape", "demo", "--source", "api", "--api-base-url", fx.api_base_url)
        assert fx.counters["api"] == 0
    assert result.exit_code == 2 and "--allow-private-hosts" in result.stderr


def test_fixture_serve_prints_its_url_and_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "fixture", "serve", "--port", "0", "--items", "5", "--slug", "mini"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # started as a script's background job is (SIGINT ignored, inherited): Ctrl-C must still stop it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("fixture marketplace at http://127.0.0.1:"), first + proc.stderr.read()
        base = first.split()[3]
        page = httpx.get(f"{base}/collection/mini", timeout=10)
        assert page.status_code == 200 and "window.FIXTURE" in page.text
        api = httpx.get(f"{base}/api/v2/collection/mini/nfts", params={"limit": 3}, timeout=10).json()
        assert [n["identifier"] for n in api["nfts"]] == ["0", "1", "2"] and api["next"]
        image = httpx.get(f"{base}/cdn/mini/4.png", params={"w": 40}, timeout=10)
        assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "fixture stopped" in out
