"""``kill -9`` in the middle of downloading: the re-run finishes, loses nothing, stores nothing twice."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

from pipeline.catalog import Catalog
from scraper.sinks import COMMIT_EVERY
from scraper.stage import scrape
from marketplace.fixture import serve_fixture

from .conftest import fast_config


def downloaded_tokens(catalog_path) -> set[str]:
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute("SELECT token_id FROM items WHERE status = 'downloaded'").fetchall()
    except sqlite3.OperationalError:
        return set()
    return {r[0] for r in rows}


def test_kill_9_while_downloading_then_rerun_is_complete_and_consistent(ws) -> None:
    n = 240
    with serve_fixture(n_items=n, latency_s=0.05) as fx:
        fx.prerender(32)
        catalog = ws.collection("demo").catalog
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands", "--home", str(ws.root), "scrape", "demo", "--source", "api",
             "--api-base-url", fx.api_base_url, "--allow-private-hosts", "--image-width", "32",
             "--concurrency", "4", "--per-host-limit", "4"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while len(downloaded_tokens(catalog)) < 40 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the scrape ended before it could be killed: {proc.stderr.read()!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done_before = downloaded_tokens(catalog)
        requests_before = fx.counters["image"]
        assert 40 <= len(done_before) < n

        fx.reset_counters()
        summary = scrape(ws, "demo", fast_config(fx, source="api", concurrency=16, per_host_limit=16))
        assert summary.listing.new == 0 and summary.listing.mode == "incremental"  # the listing had finished
        assert summary.download.downloaded == n - len(done_before)
        assert set(fx.image_requests) == set(fx.token_ids()) - done_before  # nothing committed is fetched again
        assert max(fx.image_requests.values()) == 1
        # fetched but not committed when killed (at most one commit batch plus what was in flight): fetched again
        assert requests_before - len(done_before) <= COMMIT_EVERY + 4

    with Catalog(catalog) as cat:
        items = cat.items()
        assert cat.counts()["downloaded"] == n and len(items) == n
    files = [p for p in ws.collection("demo").images.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")], "temp files left behind"
    assert len(files) == n  # distinct images: one file each, none twice
    for path in files:
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
    assert {p.stem for p in files} == {it.sha256 for it in items}

