"""The 24x24 trait-layered collection: deterministic, distinct, and as close as real PFP tokens are."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
from PIL import Image

from marketplace import pixelcollection as pc


def test_tokens_are_deterministic_and_pixel_distinct() -> None:
    assert np.array_equal(np.asarray(pc.render_item(11, seed=3)), np.asarray(pc.render_item(11, seed=3)))
    assert pc.item_traits(11, seed=3) == pc.item_traits(11, seed=3)
    pixels = {np.asarray(pc.render_item(i)).tobytes() for i in range(1500)}
    assert len(pixels) == 1500
    with Image.open(io.BytesIO(pc.render_png(4, scale=3))) as image:
        assert image.size == (72, 72) and image.mode == "RGB"


def test_traits_are_weighted_so_rare_traits_stay_rare() -> None:
    skins = Counter(pc.item_traits(i)["Skin"] for i in range(3000))
    assert skins["Light"] > 10 * skins["Alien"] > 0
    small = Counter(k for i in range(3000) for k in pc.item_traits(i) if k in pc.SMALL_TRAITS)
    assert set(small) == set(pc.SMALL_TRAITS)


def test_some_traits_are_almost_invisible() -> None:
    base = {"Background": "Blue", "Skin": "Dark", "Hair": "None", "Eyes": "Normal", "Mouth": "Normal"}
    plain = pc.render_traits(base).astype(int)
    rosy = pc.render_traits({**base, "Rosy Cheeks": "Yes"}).astype(int)
    chain = pc.render_traits({**base, "Chain": "Yes"}).astype(int)
    d = np.abs(rosy - plain).max(axis=2)
    assert np.count_nonzero(d) == 4 and d.max() == 5
    d = np.abs(chain - plain).max(axis=2)
    assert np.count_nonzero(d) == 3 and d.max() == 11
