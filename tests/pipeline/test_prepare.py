"""The cleaning stage end to end through the CLI: import → prepare → status."""

from __future__ import annotations

import json

import numpy as np

from pipeline.cache import open_cache
from pipeline.catalog import Catalog

from .corpus import bad_files, encode, hidden_color_rgba, noise, pixel_art, png_bytes, write


def make_corpus(folder):
    good = {
        "a.png": png_bytes(noise(120, 90, seed=1)),
        "nested/b.jpg": encode(noise(80, 80, seed=2), "JPEG", quality=95),
        "c.webp": encode(noise(64, 64, seed=3), "WEBP", lossless=True),
        "punk.png": png_bytes(pixel_art(24, 24, seed=4)),
        "alpha.png": png_bytes(hidden_color_rgba(40, 40)),
        "named-wrong.gif": png_bytes(noise(70, 70, seed=6)),  # PNG bytes, .gif name
        "vector.svg": b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#123456"/></svg>',
    }
    dups = {
        "copy-of-a.png": good["a.png"],  # exact duplicate
        "z-a-small.jpg": encode(noise(120, 90, seed=1).resize((60, 45)), "JPEG", quality=90),  # near
    }
    for name, data in {**good, **dups}.items():
        write(folder, name, data)
    for name, (data, _) in bad_files().items():
        write(folder / "bad", name, data)
    write(folder, "README.txt", b"not an image")
    return good, dups


def test_prepare_builds_a_clean_cache_and_records_every_reason(cli, ws, tmp_path) -> None:
    good, dups = make_corpus(tmp_path / "in")
    r = cli("import", "demo", tmp_path / "in")
    assert r.exit_code == 0, r.stderr
    assert "skipped 1 file" in r.stdout
    r = cli("prepare", "demo", "--size", "32", "--workers", "2")
    assert r.exit_code == 0, r.stderr

    status = json.loads(cli("status", "demo", "--json").stdout)
    n_bad = len(bad_files())
    assert status["items"] == len(good) + len(dups) + n_bad
    per = status["prepared"]["32"]
    assert (per["ok"], per["duplicate"], per["rejected"]) == (len(good), 2, n_bad)
    assert (status["downloaded"], status["failed"], status["rejected"]) == (status["items"], 0, 0)  # downloads
    assert status["caches"] == {"32": len(good)}
    expected_reasons = {}
    for _, reason in bad_files().values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert per["reasons"]["rejected"] == expected_reasons
    assert per["reasons"]["duplicate"] == {"exact-duplicate": 1, "near-duplicate": 1}

    cache = open_cache(ws, "demo", 32)
    assert cache.images.shape == (len(good), 3, 32, 32) and cache.images.dtype == np.uint8
    manifest = cache.manifest
    assert manifest["count"] == len(good) and manifest["size_px"] == 32
    assert manifest["rejected"] == expected_reasons
    assert manifest["config"]["near_dup_threshold"] == 24
    with Catalog(ws.collection("demo").catalog) as cat:
        by_name = {it.file_path.rsplit("/in/", 1)[1]: it for it in cat.items()}
        decided = cat.prepared(32)
        assert manifest["item_ids"] == list(cat.prepared(32, ["ok"]))
        assert decided[by_name["copy-of-a.png"].id]["duplicate_of"] == by_name["a.png"].id
        assert decided[by_name["z-a-small.jpg"].id]["duplicate_of"] == by_name["a.png"].id
        rejects = [it for it in cat.items() if decided[it.id]["status"] == "rejected"]
        assert rejects and all(it.decode_reason == decided[it.id]["reason"] and it.reason is None for it in rejects)
        assert by_name["named-wrong.gif"].stored_path.endswith(".png")  # named by content
        alpha_row = manifest["item_ids"].index(by_name["alpha.png"].id)
    assert tuple(cache.images[alpha_row, :, 0, 0]) == (128, 128, 128)  # neutral default background


def test_rerun_reuses_and_changes_rebuild(cli, ws, tmp_path) -> None:
    folder = tmp_path / "in"
    for i in range(4):
        write(folder, f"{i}.png", png_bytes(noise(48, 48, seed=10 + i)))
    assert cli("import", "c1", folder).exit_code == 0
    again = cli("import", "c1", folder)
    assert "0 added" in again.stdout and "4 already imported" in again.stdout
    first = cli("prepare", "c1", "--size", "16", "--workers", "1")
    assert "4 images" in first.stdout
    array = ws.collection("c1").cache_array(16)
    mtime = array.stat().st_mtime_ns
    assert "reused" in cli("prepare", "c1", "--size", "16").stdout
    assert array.stat().st_mtime_ns == mtime

    write(folder, "new.png", png_bytes(noise(48, 48, seed=99)))  # a changed catalog rebuilds
    cli("import", "c1", folder)
    assert "5 images" in cli("prepare", "c1", "--size", "16", "--workers", "1").stdout
    assert open_cache(ws, "c1", 16).images.shape[0] == 5
    # a changed config rebuilds too
    out = cli("prepare", "c1", "--size", "16", "--background", "#000000", "--workers", "1").stdout
    assert "reused" not in out
    assert open_cache(ws, "c1", 16).manifest["background"] == "#000000"


def test_near_dup_threshold_is_configurable(cli, ws, tmp_path) -> None:
    folder = tmp_path / "in"
    base = noise(100, 100, seed=7)
    write(folder, "a.png", png_bytes(base))
    write(folder, "b.jpg", encode(base, "JPEG", quality=70))
    cli("import", "c2", folder)
    cli("prepare", "c2", "--size", "16", "--near-dup-threshold", "-1")
    assert json.loads(cli("status", "c2", "--json").stdout)["prepared"]["16"]["ok"] == 2
    cli("prepare", "c2", "--size", "16")
    assert json.loads(cli("status", "c2", "--json").stdout)["prepared"]["16"]["duplicate"] == 1


def test_user_mistakes_are_one_line_with_exit_code_2(cli, tmp_path) -> None:
    cases = [
        ("import", "Bad_Slug", tmp_path),
        ("import", "../escape", tmp_path),
        ("import", "ok", tmp_path / "missing"),
        ("prepare", "never-imported", "--size", "32"),
        ("status", "never-imported"),
    ]
    for args in cases:
        r = cli(*args)
        assert r.exit_code == 2, (args, r)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    write(tmp_path / "in", "x.png", png_bytes(noise(32, 32)))
    cli("import", "ok", tmp_path / "in")
    for bad in (["--fit", "stretch"], ["--background", "blue"], ["--size", "4"], ["--resample", "x"]):
        r = cli("prepare", "ok", *bad)
        assert r.exit_code == 2 and r.stderr.startswith("nftgan: error:"), (bad, r.stderr)


def test_help_lists_the_commands(cli) -> None:
    r = cli("--help")
    assert r.exit_code == 0
    for command in ("import", "prepare", "status"):
        assert command in r.stdout


def test_a_refresh_decodes_only_new_images_and_builds_the_same_cache(cli, ws, tmp_path, monkeypatch) -> None:
    """Decode results are kept per (content, decode settings): 3 new items are 3 decodes, not 13, and the cache
    (rows, duplicate decisions, reasons) is what a prepare from scratch builds."""
    import cleaning.prepare as prep
    from pipeline.workspace import Workspace

    folder = tmp_path / "in"
    for i in range(10):
        write(folder, f"{i}.png", png_bytes(noise(48, 48, seed=30 + i)))
    write(folder, "copy.png", png_bytes(noise(48, 48, seed=30)))  # a duplicate of 0.png
    write(folder, "bad.png", b"\x89PNG\r\n\x1a\nnot really")
    assert cli("import", "inc", folder).exit_code == 0
    decodes: list[str] = []
    real_decode = prep.decode_file
    monkeypatch.setattr(prep, "decode_file", lambda path, opts: decodes.append(path) or real_decode(path, opts))
    first = cli("prepare", "inc", "--size", "16", "--workers", "1", "--no-near-dups")
    assert first.exit_code == 0, first.stderr and len(decodes) == 12

    for i in range(10, 13):
        write(folder, f"{i}.png", png_bytes(noise(48, 48, seed=30 + i)))
    cli("import", "inc", folder)
    decodes.clear()
    store_reads: list[str] = []
    real_get = prep.DecodeStore.get
    monkeypatch.setattr(prep.DecodeStore, "get", lambda self, sha: store_reads.append(sha) or real_get(self, sha))
    second = cli("prepare", "inc", "--size", "16", "--workers", "1", "--no-near-dups")
    assert second.exit_code == 0, second.stderr
    assert len(decodes) == 3 and "3 decoded" in second.stdout, second.stdout  # only the new ones
    # the 10 kept rows come from the last cache in one copy: the store is read for the 3 new items (a miss
    # each), the duplicate (not in the cache), and its original's thumbnail for the review sheet; the
    # reject's facts are in the catalog
    assert len(store_reads) == 5 and len(set(store_reads)) == 4, store_reads

    other = Workspace(tmp_path / "scratch")  # the same collection prepared from scratch
    monkeypatch.setenv("NFTGAN_HOME", str(other.root))
    from commands import main

    for args in (["import", "inc", str(folder)], ["prepare", "inc", "--size", "16", "--workers", "1", "--no-near-dups"]):
        try:
            main(args)
        except SystemExit as e:
            assert e.code in (0, None)
    mine, theirs = open_cache(ws, "inc", 16), open_cache(other, "inc", 16)
    # the same images (import order gave the items other ids there, so compare rows as a set)
    assert mine.images.shape[0] == theirs.images.shape[0] == 13
    assert sorted(r.tobytes() for r in mine.images) == sorted(r.tobytes() for r in theirs.images)
    assert (mine.manifest["rejected"], mine.manifest["duplicates"]) == (theirs.manifest["rejected"],
                                                                         theirs.manifest["duplicates"])
    assert mine.manifest["duplicates"] == {"exact-duplicate": 1} and sum(mine.manifest["rejected"].values()) == 1


def test_each_size_keeps_its_own_decisions(cli, ws, tmp_path) -> None:
    """prepare --size 16 and --size 32 decide apart: the second does not overwrite the first's outcomes."""
    folder = tmp_path / "in"
    base = noise(100, 100, seed=7)
    write(folder, "a.png", png_bytes(base))
    write(folder, "b.jpg", encode(base, "JPEG", quality=70))  # a near-duplicate of a.png
    cli("import", "two", folder)
    assert cli("prepare", "two", "--size", "16", "--near-dup-threshold", "-1").exit_code == 0  # keeps both
    assert cli("prepare", "two", "--size", "32").exit_code == 0  # merges b into a
    info = json.loads(cli("status", "two", "--json").stdout)
    assert (info["prepared"]["16"]["ok"], info["prepared"]["16"]["duplicate"]) == (2, 0)
    assert (info["prepared"]["32"]["ok"], info["prepared"]["32"]["duplicate"]) == (1, 1)
    assert info["caches"] == {"16": 2, "32": 1} and info["downloaded"] == 2
    out = cli("status", "two").stdout
    assert "prepared 16px: 2 ok, 0 rejected, 0 duplicate" in out and "prepared 32px: 1 ok, 0 rejected, 1 duplicate" in out
    r = cli("prepare", "two", "--size", "16", "--near-dup-threshold", "-1")  # reused as it was: still both
    assert r.exit_code == 0 and json.loads(cli("status", "two", "--json").stdout)["prepared"]["16"]["ok"] == 2


def test_a_schema_4_workspace_upgrades_in_place(cli, ws, tmp_path) -> None:
    """A catalog of schema 4 (one shared ok/rejected/duplicate per item) upgrades when opened: each cache
    size gets the decisions its manifest and the catalog imply, decode rejects keep their reason apart from
    the download outcome, the items return to downloaded, and the next prepare reuses the cache."""
    from .legacy import to_schema_4

    make_corpus(tmp_path / "in")
    cli("import", "up", tmp_path / "in")
    assert cli("prepare", "up", "--size", "32", "--workers", "2").exit_code == 0
    before = json.loads(cli("status", "up", "--json").stdout)
    col = ws.collection("up")
    with Catalog(col.catalog) as cat:
        decided = cat.prepared(32)
        decode_reasons = {it.id: it.decode_reason for it in cat.items()}
    to_schema_4(col.catalog)
    import sqlite3

    with sqlite3.connect(col.catalog) as db:  # what schema 4 looked like: the decisions in items.status
        legacy = dict(db.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall())
        assert legacy.get("ok") == before["prepared"]["32"]["ok"] and "prepared" not in {
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    after = json.loads(cli("status", "up", "--json").stdout)  # opening it upgrades it
    assert after["prepared"] == before["prepared"] and after["downloaded"] == before["downloaded"]
    with Catalog(col.catalog) as cat:
        assert cat.prepared(32) == decided
        assert {it.id: it.decode_reason for it in cat.items()} == decode_reasons
        assert {it.status for it in cat.items()} == {"downloaded"}
        assert cat.get_state("schema_version") == "5"
    r = cli("prepare", "up", "--size", "32", "--workers", "2")
    assert r.exit_code == 0 and "reused" in r.stdout, r.stdout
