"""Near-duplicate search: same answers as brute force, and real re-encoded copies are found."""

from __future__ import annotations

import random

import imagehash
import pytest
from PIL import Image

from pipeline.dedup import NearDuplicateIndex, find_near_duplicates

from .corpus import noise


def brute_force(hashes: list[int], k: int) -> dict[int, tuple[int, int]]:
    kept: list[int] = []
    dups = {}
    for i, h in enumerate(hashes):
        best = min(((bin(hashes[j] ^ h).count("1"), j) for j in kept), default=None)
        if best is not None and best[0] <= k:
            dups[i] = (best[1], best[0])
        else:
            kept.append(i)
    return dups


@pytest.mark.parametrize("k", [0, 1, 4, 8])
def test_multi_index_search_matches_brute_force(k: int) -> None:
    rng = random.Random(k)
    hashes = [rng.getrandbits(64) for _ in range(400)]
    for _ in range(150):  # plant near copies at every distance up to k + 2
        base = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, k + 2)):
            base ^= 1 << bit
        hashes.append(base)
    rng.shuffle(hashes)
    assert find_near_duplicates(hashes, k) == brute_force(hashes, k)


def test_index_returns_the_nearest_kept_hash() -> None:
    index = NearDuplicateIndex(4)
    index.add(0b1111, "a")
    index.add(0b0000, "b")
    assert index.nearest(0b0001) == ("b", 1)
    assert index.nearest(0xFFFF_0000_0000_0000) is None


def test_re_encoded_and_resized_copies_are_near_duplicates_and_distinct_images_are_not() -> None:
    originals = [noise(256, 256, seed=s) for s in range(20)]
    copies = []
    for image in originals[:5]:
        copies.append(image.resize((181, 181), Image.Resampling.BILINEAR))
        copies.append(image.convert("P").convert("RGB"))  # palette round trip
    import io

    for image in originals[5:8]:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=60)
        copies.append(Image.open(io.BytesIO(buf.getvalue())))
    hashes = [int(str(imagehash.phash(im)), 16) for im in originals + copies]
    dups = find_near_duplicates(hashes, 4)
    assert set(dups) == set(range(20, len(hashes)))  # every copy, and no original
    expected_sources = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7]
    assert [dups[i][0] for i in range(20, len(hashes))] == expected_sources
