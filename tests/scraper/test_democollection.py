from __future__ import annotations

import imagehash
import numpy as np

from marketplace import democollection as dc


def test_items_are_deterministic_per_seed_and_index() -> None:
    a = np.asarray(dc.render_item(5, seed=1, size_px=64))
    b = np.asarray(dc.render_item(5, seed=1, size_px=64))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert dc.item_traits(5, seed=1) == dc.item_traits(5, seed=1)
    assert not np.array_equal(a, np.asarray(dc.render_item(5, seed=2, size_px=64)))
    assert not np.array_equal(a, np.asarray(dc.render_item(6, seed=1, size_px=64)))


def test_traits_are_layered_and_varied() -> None:
    traits = [dc.item_traits(i) for i in range(200)]
    for layer in ("Background", "Pattern", "Skin", "Head", "Shirt", "Eyes", "Mouth", "Headwear", "Accessory"):
        values = {t[layer] for t in traits}
        assert len(values) >= 3, layer
    assert len({tuple(sorted(t.items())) for t in traits}) == 200


def _hashes(n: int, size_px: int) -> np.ndarray:
    return np.array(
        [int(str(imagehash.phash(dc.render_item(i, size_px=size_px))), 16) for i in range(n)], dtype=np.uint64
    )


def test_a_few_hundred_items_are_not_near_duplicates_for_the_cleaning_stage() -> None:
    # the cleaning stage merges items whose 64-bit phash differs by <= 4 bits; check the sizes the demo
    # downloads (256 px) and the scraper's default width (512 px)
    for size_px, n in ((256, 400), (512, 150)):
        h = _hashes(n, size_px)
        distance = np.bitwise_count(h[:, None] ^ h[None, :]).astype(int)
        np.fill_diagonal(distance, 64)
        assert distance.min() > 4, (size_px, np.argwhere(distance <= 4)[:5].tolist())


def test_png_encoding_roundtrips() -> None:
    import io

    from PIL import Image

    data = dc.render_png(3, size_px=48)
    img = Image.open(io.BytesIO(data))
    assert img.size == (48, 48) and img.format == "PNG"
    assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(dc.render_item(3, size_px=48)))
