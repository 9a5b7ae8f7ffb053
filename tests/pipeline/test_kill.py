"""``kill -9`` during ``prepare``: the re-run resumes and ends with a complete, consistent cache."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np

from pipeline.cache import open_cache
from cleaning.importer import import_directory
from cleaning.prepare import PrepareConfig, prepare
from pipeline.workspace import Workspace

from .corpus import noise, png_bytes, write


def committed_facts(catalog_path) -> int:
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM items WHERE prep_key IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_during_prepare_then_rerun_is_complete_and_consistent(tmp_path) -> None:
    folder = tmp_path / "in"
    n = 900
    for i in range(n):
        write(folder, f"{i:04d}.png", png_bytes(noise(160, 160, seed=i)))
    write(folder, "dup.png", png_bytes(noise(160, 160, seed=3)))
    killed_ws, clean_ws = Workspace(tmp_path / "killed"), Workspace(tmp_path / "clean")
    for ws in (killed_ws, clean_ws):
        import_directory(ws, "k", folder)
    config = PrepareConfig(size_px=32, workers=1)

    catalog = killed_ws.collection("k").catalog
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "--home", str(killed_ws.root), "prepare", "k",
         "--size", "32", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while committed_facts(catalog) < 256 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "prepare finished before it could be killed: make the corpus bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = committed_facts(catalog)
    assert 0 < done_before < n + 1
    assert not killed_ws.collection("k").cache_manifest(32).exists()

    resumed = prepare(killed_ws, "k", config)
    # nothing decoded twice: the committed rows are kept, and so are the decode store's entries written after
    # the last catalog commit (at most one commit's worth); the exact duplicate shares its original's entry
    from cleaning.prepare import COMMIT_EVERY

    left = n + 1 - done_before
    assert left - COMMIT_EVERY <= resumed.decoded_now <= left
    reference = prepare(clean_ws, "k", config)
    assert resumed.count == reference.count == n
    assert resumed.duplicates == reference.duplicates == {"exact-duplicate": 1}
    a, b = open_cache(killed_ws, "k", 32), open_cache(clean_ws, "k", 32)
    assert a.manifest["item_ids"] == b.manifest["item_ids"]
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
    cache_dir = killed_ws.collection("k").cache_dir(32)
    names = sorted(p.name for p in cache_dir.iterdir())
    assert names[1:] == ["duplicates.png", "images.npy", "manifest.json"] and names[0].startswith("decoded-")
    store = cache_dir / names[0]  # the decode store: one entry per distinct image, no temp file left
    assert not list(store.rglob(".*.tmp*")) and len(list(store.rglob("*.bin"))) == n
