"""Duplicate detection on trait-layered PFP collections, end to end through ``nftgan prepare``.

Distinct tokens of such a collection are near-duplicates by construction (one small trait apart, a few
bits of perceptual hash apart); every one must be kept, while the copies that marketplaces really
produce must still be merged into the right original.
"""

from __future__ import annotations

import json
import sqlite3

import imagehash
import numpy as np
from PIL import Image

from cleaning import dedup
from pipeline.cache import open_cache
from pipeline.catalog import Catalog
from marketplace import pixelcollection as pc

from .legacy import to_schema_4
from .corpus import encode, png_bytes, write

R = Image.Resampling


def one_trait_siblings(trait: str, *, where=lambda t: True, limit: int = 6000) -> tuple[int, int]:
    """(token with ``trait``, token without it, otherwise identical) among the first ``limit`` tokens."""
    index = {tuple(sorted(pc.item_traits(i).items())): i for i in range(limit)}
    for key, i in index.items():
        traits = dict(key)
        if traits.get(trait) and where(traits):
            del traits[trait]
            j = index.get(tuple(sorted(traits.items())))
            if j is not None:
                return i, j
    raise AssertionError(f"no {trait} pair in the first {limit} tokens")


def status(cli, slug: str) -> dict:
    return json.loads(cli("status", slug, "--json").stdout)


def test_two_thousand_distinct_tokens_lose_none(cli, tmp_path) -> None:
    n = 2000
    folder = tmp_path / "tokens"
    hashes = []
    for i in range(n):
        image = pc.render_item(i)
        hashes.append(int(str(imagehash.phash(image)), 16))
        write(folder, f"{i:05d}.png", png_bytes(image))
    # not vacuous: the old rule ("pHash within 4 bits = duplicate") had plenty to merge here
    close_pairs = dedup.phash_pairs_within(hashes, 4)
    assert close_pairs > 5000, close_pairs
    assert len(set(hashes)) < n - 300  # many distinct tokens even share their hash exactly

    assert cli("import", "punks", folder).exit_code == 0
    r = cli("prepare", "punks", "--size", "32", "--workers", "2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == (
        f"punks: kept {n} of {n} (0 exact-duplicate, 0 same-pixels, 0 near-duplicate, 0 rejected)"
    )
    info = status(cli, "punks")
    assert (info["prepared"]["32"]["ok"], info["prepared"]["32"]["duplicate"], info["caches"]) == (n, 0, {"32": n})


def test_every_copy_kind_is_merged_into_its_original_and_invisible_traits_are_kept(cli, ws, tmp_path) -> None:
    folder = tmp_path / "in"
    rosy = one_trait_siblings("Rosy Cheeks", where=lambda t: t["Skin"] in ("Dark", "Deep"))
    chain = one_trait_siblings("Chain")
    originals = sorted({*range(40), *rosy, *chain})
    for i in originals:
        write(folder, f"a-{i:05d}.png", png_bytes(pc.render_item(i)))
    # the near-invisible pairs really are near-invisible (a few pixels, a few levels)
    for a, b in (rosy, chain):
        d = np.abs(np.asarray(pc.render_item(a), int) - np.asarray(pc.render_item(b), int)).max(axis=2)
        assert 1 <= np.count_nonzero(d) <= 4 and d.max() <= 12

    token = pc.render_item(5)
    x4, x8 = token.resize((96, 96), R.NEAREST), token.resize((192, 192), R.NEAREST)
    copies = {  # name -> (bytes, expected reason), all copies of token 5
        "bytes.png": (png_bytes(token), "exact-duplicate"),
        "resaved.png": (png_bytes(token, compress_level=1, pnginfo=_text_chunk()), "same-pixels"),
        "palette.png": (png_bytes(token.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)), "same-pixels"),
        "lossless.webp": (encode(token, "WEBP", lossless=True), "same-pixels"),
        "copy.gif": (encode(token, "GIF"), "same-pixels"),
        **{f"nearest-x{f}.png": (png_bytes(token.resize((24 * f, 24 * f), R.NEAREST)), "same-pixels") for f in (2, 3, 8)},
        "smooth-x2-bicubic.png": (png_bytes(token.resize((48, 48), R.BICUBIC)), "near-duplicate"),
        "smooth-x4-bilinear.png": (png_bytes(token.resize((96, 96), R.BILINEAR)), "near-duplicate"),
        "smooth-x8-lanczos.png": (png_bytes(token.resize((192, 192), R.LANCZOS)), "near-duplicate"),
        "x4-q85.jpg": (encode(x4, "JPEG", quality=85), "near-duplicate"),
        "x8-q95.jpg": (encode(x8, "JPEG", quality=95), "near-duplicate"),
        "x4-lossy.webp": (encode(x4, "WEBP", quality=80), "near-duplicate"),
        "cdn-336.png": (png_bytes(token.resize((336, 336), R.NEAREST)), "same-pixels"),  # 14x
        "cdn-500.png": (png_bytes(token.resize((500, 500), R.LANCZOS)), "near-duplicate"),
        "cdn-1000.webp": (encode(token.resize((1000, 1000), R.BILINEAR), "WEBP", quality=85), "near-duplicate"),
        "cdn-100.png": (png_bytes(token.resize((100, 100), R.NEAREST)), "near-duplicate"),  # 4.17x
    }
    for name, (data, _) in copies.items():
        write(folder, f"z-copy-{name}", data)
    # lossy copies of one of each near-invisible pair: matched to that one, not to its sibling
    write(folder, "z-chain.jpg", encode(pc.render_item(chain[0], scale=8), "JPEG", quality=95))
    write(folder, "z-rosy.jpg", encode(pc.render_item(rosy[0]).resize((512, 512), R.LANCZOS), "JPEG", quality=90))

    assert cli("import", "mix", folder).exit_code == 0
    r = cli("prepare", "mix", "--size", "32", "--workers", "2")
    assert r.exit_code == 0, r.stderr

    with Catalog(ws.collection("mix").catalog) as cat:
        by_name = {it.file_path.rsplit("/", 1)[1]: it for it in cat.items()}
        decided = cat.prepared(32)
    ids = {i: by_name[f"a-{i:05d}.png"].id for i in originals}
    for i in originals:
        assert decided[ids[i]]["status"] == "ok", (i, decided[ids[i]])
    for name, (_, reason) in copies.items():
        d = decided[by_name[f"z-copy-{name}"].id]
        assert (d["status"], d["reason"], d["duplicate_of"]) == ("duplicate", reason, ids[5]), (name, d)
    for name, source in (("z-chain.jpg", chain[0]), ("z-rosy.jpg", rosy[0])):
        d = decided[by_name[name].id]
        assert (d["reason"], d["duplicate_of"]) == ("near-duplicate", ids[source]), (name, d)
        assert "worst local difference" in d["detail"]

    n_copies = len(copies) + 2
    kinds = {k: sum(1 for _, r in copies.values() if r == k) for k in ("exact-duplicate", "same-pixels")}
    kinds["near-duplicate"] = n_copies - sum(kinds.values())
    assert r.stdout.strip().splitlines()[-1] == (
        f"mix: kept {len(originals)} of {len(originals) + n_copies} ({kinds['exact-duplicate']} exact-duplicate, "
        f"{kinds['same-pixels']} same-pixels, {kinds['near-duplicate']} near-duplicate, 0 rejected)"
    )
    sheet = ws.collection("mix").cache_review_sheet(32)
    assert str(sheet) in r.stdout
    with Image.open(sheet) as image:
        assert image.width > 400 and image.height > 64 * (n_copies // 4)
    shown = cli("status", "mix")
    assert str(sheet) in shown.stdout


def _text_chunk():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "re-saved by a marketplace")
    return info


def test_near_duplicate_search_can_be_switched_off_or_made_stricter(cli, tmp_path) -> None:
    folder = tmp_path / "in"
    token = pc.render_item(9)
    write(folder, "a.png", png_bytes(token))
    write(folder, "b.jpg", encode(token.resize((96, 96), R.NEAREST), "JPEG", quality=85))
    write(folder, "c.png", png_bytes(token.resize((48, 48), R.NEAREST)))  # same pixels
    cli("import", "c", folder)
    assert cli("prepare", "c", "--size", "32", "--no-near-dups").exit_code == 0
    assert status(cli, "c")["prepared"]["32"]["reasons"]["duplicate"] == {"same-pixels": 1}
    assert cli("prepare", "c", "--size", "32", "--near-dup-threshold", "0.5").exit_code == 0
    assert status(cli, "c")["prepared"]["32"]["reasons"]["duplicate"] == {"same-pixels": 1}
    assert cli("prepare", "c", "--size", "32").exit_code == 0
    assert status(cli, "c")["prepared"]["32"]["reasons"]["duplicate"] == {"same-pixels": 1, "near-duplicate": 1}
    r = cli("prepare", "c", "--size", "32", "--near-dup-threshold", "300")
    assert r.exit_code == 2 and "levels" in r.stderr


def test_a_workspace_prepared_with_the_old_rule_heals(cli, ws, tmp_path) -> None:
    n = 400
    folder = tmp_path / "tokens"
    for i in range(n):
        write(folder, f"{i:05d}.png", png_bytes(pc.render_item(i)))
    cli("import", "old", folder)
    assert cli("prepare", "old", "--size", "32").exit_code == 0
    col = ws.collection("old")

    # Put the workspace back the way the old rule (pHash within 4 bits = near-duplicate) and the old
    # catalog schema left it: two thirds merged, a version-1 cache of the survivors.
    with Catalog(col.catalog) as cat:
        items = cat.items()
    index, merged = dedup.NearDuplicateIndex(4), {}
    for it in items:
        hit = index.nearest(int(it.phash, 16))
        if hit is None:
            index.add(int(it.phash, 16), it.id)
        else:
            merged[it.id] = hit
    assert len(merged) > n // 3
    kept = [it.id for it in items if it.id not in merged]
    to_schema_4(col.catalog)
    with sqlite3.connect(col.catalog) as db:
        db.executemany(
            "UPDATE items SET status = 'duplicate', reason = 'near-duplicate', duplicate_of = ?, detail = ? WHERE id = ?",
            [(of, f"perceptual hash {bits} bits from item {of}", i) for i, (of, bits) in merged.items()],
        )
        db.execute("UPDATE items SET prep_key = 'v1-pass'")
        for column in ("pixel_hash", "lossy", "native_w", "native_h", "pixel_art"):
            db.execute(f"ALTER TABLE items DROP COLUMN {column}")
        db.execute("UPDATE state SET value = '1' WHERE key = 'schema_version'")
    np.save(col.cache_array(32), np.zeros((len(kept), 3, 32, 32), np.uint8))
    manifest = json.loads(col.cache_manifest(32).read_text())
    manifest.update(format_version=1, count=len(kept), item_ids=kept, input_key="v1-pass",
                    duplicates={"near-duplicate": len(merged)})
    col.cache_manifest(32).write_text(json.dumps(manifest))
    col.cache_review_sheet(32).unlink(missing_ok=True)
    old = status(cli, "old")["prepared"]["32"]  # opening the catalog upgraded it: the decisions are per size now
    assert (old["ok"], old["duplicate"]) == (len(kept), len(merged))

    r = cli("prepare", "old", "--size", "32")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith(f"old: kept {n} of {n} ")
    info = status(cli, "old")
    assert (info["prepared"]["32"]["ok"], info["prepared"]["32"]["duplicate"], info["caches"]) == (n, 0, {"32": n})
    with Catalog(col.catalog) as cat:
        restored = [cat.get(i) for i in merged]
        decided = cat.prepared(32)
    assert all(it.status == "downloaded" and it.reason is None and it.duplicate_of is None for it in restored)
    assert all(decided[i] == {"status": "ok", "reason": None, "detail": None, "duplicate_of": None} for i in merged)
    cache = open_cache(ws, "old", 32)
    assert cache.manifest["item_ids"] == [it.id for it in items]
    assert cache.images.shape[0] == n and np.asarray(cache.images).any()
