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
    assert (status["ok"], status["duplicate"], status["rejected"], status["failed"]) == (len(good), 2, n_bad, 0)
    assert status["caches"] == {"32": len(good)}
    expected_reasons = {}
    for _, reason in bad_files().values():
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert status["reasons"]["rejected"] == expected_reasons
    assert status["reasons"]["duplicate"] == {"exact-duplicate": 1, "near-duplicate": 1}

    cache = open_cache(ws, "demo", 32)
    assert cache.images.shape == (len(good), 3, 32, 32) and cache.images.dtype == np.uint8
    manifest = cache.manifest
    assert manifest["count"] == len(good) and manifest["size_px"] == 32
    assert manifest["rejected"] == expected_reasons
    assert manifest["config"]["near_dup_threshold"] == 24
    with Catalog(ws.collection("demo").catalog) as cat:
        by_name = {it.file_path.rsplit("/in/", 1)[1]: it for it in cat.items()}
        assert manifest["item_ids"] == [it.id for it in cat.items(["ok"])]
        assert by_name["copy-of-a.png"].duplicate_of == by_name["a.png"].id
        assert by_name["z-a-small.jpg"].duplicate_of == by_name["a.png"].id
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
    assert json.loads(cli("status", "c2", "--json").stdout)["ok"] == 2
    cli("prepare", "c2", "--size", "16")
    assert json.loads(cli("status", "c2", "--json").stdout)["duplicate"] == 1


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
    second = cli("prepare", "inc", "--size", "16", "--workers", "1", "--no-near-dups")
    assert second.exit_code == 0, second.stderr
    assert len(decodes) == 3 and "3 decoded" in second.stdout, second.stdout  # only the new ones

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
