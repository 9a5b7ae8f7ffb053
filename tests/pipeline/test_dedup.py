"""The pieces of duplicate detection: candidate search, native grids, the pixel comparison."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from cleaning import dedup
from cleaning.decode import Decoded, DecodeOptions, decode_bytes
from marketplace import pixelcollection as pc

from .corpus import encode, noise, png_bytes

R = Image.Resampling


@pytest.mark.parametrize("k", [0, 1, 4, 10])
def test_multi_index_search_finds_exactly_the_hashes_within_k(k: int) -> None:
    rng = random.Random(k)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    for _ in range(150):  # plant near copies at every distance up to k + 2
        base = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, k + 2)):
            base ^= 1 << bit
        hashes.append(base)
    index = dedup.NearDuplicateIndex(k)
    for i, h in enumerate(hashes):
        expected = [(j, (hashes[j] ^ h).bit_count()) for j in range(i) if (hashes[j] ^ h).bit_count() <= k]
        assert index.within(h) == expected
        index.add(h, i)


@pytest.mark.parametrize("factor", [2, 3, 5, 8])
def test_native_grid_undoes_integer_nearest_neighbour_upscales(factor: int) -> None:
    token = np.asarray(pc.render_item(7))
    up = np.asarray(pc.render_item(7, scale=factor))
    assert np.array_equal(dedup.native_grid(up), token)
    wide = np.repeat(np.repeat(token[:, :12], factor, 0), factor, 1)  # not square
    assert np.array_equal(dedup.native_grid(wide), token[:, :12])


def test_native_grid_leaves_other_images_alone() -> None:
    token = np.asarray(pc.render_item(7))
    assert dedup.native_grid(token) is token  # already native
    smooth = np.asarray(pc.render_item(7).resize((48, 48), R.BICUBIC))
    assert dedup.native_grid(smooth).shape == (48, 48, 3)
    odd = np.asarray(pc.render_item(7).resize((100, 100), R.NEAREST))  # 4.17x: not an integer upscale
    assert dedup.native_grid(odd).shape == (100, 100, 3)


def decoded(data: bytes) -> Decoded:
    out = decode_bytes(data, DecodeOptions(size_px=32))
    assert isinstance(out, Decoded), out
    return out


def difference(original: bytes, copy: bytes) -> float:
    a, b = decoded(original), decoded(copy)
    d = dedup.compare(a.thumb, (a.native_w, a.native_h), b.thumb, (b.native_w, b.native_h))
    assert d is not None
    return d[0]


def test_decode_records_what_dedup_needs() -> None:
    token = pc.render_item(3)
    png, jpeg = png_bytes(token.resize((96, 96), R.NEAREST)), encode(token.resize((96, 96)), "JPEG", quality=90)
    a, b = decoded(png), decoded(jpeg)
    assert (a.native_w, a.native_h, a.lossy, a.drawn_as_pixel_art) == (24, 24, False, True)
    assert (b.native_w, b.native_h, b.lossy) == (96, 96, True)
    assert decoded(encode(token, "WEBP", lossless=True)).lossy is False
    assert decoded(encode(token, "WEBP", quality=80)).lossy is True
    assert a.pixel_hash == decoded(png_bytes(token)).pixel_hash != b.pixel_hash
    assert a.thumb.shape == (24, 24, 3) and b.thumb.shape == (64, 64, 3)


def test_copies_are_close_and_a_changed_trait_is_far() -> None:
    original = pc.render_item(23)
    changed = np.asarray(original).copy()
    changed[14:16, 6] = 255 - changed[14:16, 6]  # two pixels changed (an earring, say)
    sibling = png_bytes(Image.fromarray(changed))
    orig = png_bytes(original)
    copies = {
        "bicubic x4": png_bytes(original.resize((96, 96), R.BICUBIC)),
        "bilinear 1000 px": png_bytes(original.resize((1000, 1000), R.BILINEAR)),
        "jpeg 85 of x4": encode(original.resize((96, 96), R.NEAREST), "JPEG", quality=85),
        "webp of x8": encode(original.resize((192, 192), R.NEAREST), "WEBP", quality=80),
    }
    for name, data in copies.items():
        near, far = difference(orig, data), difference(sibling, data)
        assert near <= dedup.DEFAULT_MAX_DIFFERENCE < far, (name, near, far)


def test_pairs_of_another_shape_are_not_compared() -> None:
    photo = noise(120, 60, seed=1)
    assert dedup.compare(
        np.asarray(photo.resize((64, 32))), (120, 60), np.asarray(photo.resize((32, 32))), (32, 32)
    ) is None


def test_entries_in_one_lossless_class_are_never_compared() -> None:
    entries = [
        dedup.Entry(id=i, sha256=f"s{i}", pixel_hash=f"p{i}", phash=0, lossy=False, native_wh=(24, 24),
                    pixel_art=True)
        for i in range(50)
    ]

    def thumb_of(i: int) -> np.ndarray:
        raise AssertionError("a lossless pair on one grid must be decided without pixels")

    assert dedup.find_duplicates(entries, thumb_of) == {}
    assert dedup.find_duplicates(entries, thumb_of, None) == {}


def test_exact_and_same_pixel_groups_keep_the_first_item() -> None:
    def entry(i: int, sha: str, pixels: str) -> dedup.Entry:
        return dedup.Entry(i, sha, pixels, 0, False, (24, 24), True)

    merges = dedup.find_duplicates([entry(3, "a", "x"), entry(1, "a", "x"), entry(2, "b", "x")], lambda i: None)
    assert {m.id: (m.kind, m.of) for m in merges.values()} == {
        3: ("exact-duplicate", 1), 2: ("same-pixels", 1),
    }


def test_the_difference_is_the_worst_cell_not_an_average() -> None:
    base = np.full((64, 64, 3), 100, np.uint8)
    spread = base + np.random.default_rng(0).integers(-3, 4, base.shape).astype(np.uint8)
    local = base.copy()
    local[:4, :4] = 160  # one cell much brighter
    assert dedup.local_difference(base, spread)[0] < 3
    assert dedup.local_difference(base, local)[0] == pytest.approx(60)
    # a global average would call the local change small
    assert np.abs(base.astype(int) - local).mean() < 1


def test_recorded_merges_sort_like_the_review_sheet() -> None:
    """The studio lists merges from the catalog's records in the review sheet's order (worst first)."""
    from cleaning.dedup import Merge
    from cleaning.review import order, order_recorded

    merges = [Merge(1, "exact-duplicate", 9), Merge(2, "near-duplicate", 9, 3.0, 2), Merge(3, "same-pixels", 8),
              Merge(4, "near-duplicate", 7, 12.5, 5), Merge(5, "near-duplicate", 7, 0.5, 1)]
    rows = [{"id": m.id, "reason": m.kind, "detail": m.detail(40.0)} for m in reversed(merges)]
    assert [r["id"] for r in order_recorded(rows)] == [m.id for m in order(merges)] == [4, 2, 5, 3, 1]
