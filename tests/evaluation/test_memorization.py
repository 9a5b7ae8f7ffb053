"""Memorization finds planted copies of training images: exact ones and re-encoded ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from evaluation.extractors import create_extractor, extract_features
from evaluation.memorization import memorization, phash64
from evaluation.metrics import MetricInputs

from .conftest import tokens


def _jpeg(chw: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def planted():
    """80 training tokens; 40 generated: 6 exact copies, 6 JPEG re-encodings (quality 80), 28 new tokens."""
    real = tokens(80, seed=20)
    exact_src = [3, 17, 29, 41, 55, 78]
    jpeg_src = [5, 12, 33, 47, 60, 71]
    fake = np.concatenate([
        real[exact_src],
        np.stack([_jpeg(real[i], 80) for i in jpeg_src]),
        tokens(28, seed=21),
    ])
    return real, fake, exact_src + jpeg_src


def _run(real: np.ndarray, fake: np.ndarray):
    tiny = create_extractor("tiny")
    inputs = MetricInputs(
        real_features=extract_features(tiny, real), fake_features=extract_features(tiny, fake),
        real_images=real, fake_images=fake, real_item_ids=tuple(range(1000, 1000 + len(real))),
    )
    return memorization(inputs)


def test_planted_exact_and_reencoded_copies_are_found_with_their_source(planted):
    real, fake, sources = planted
    record, nearest = _run(real, fake)
    n_planted = len(sources)
    np.testing.assert_array_equal(nearest.feature_index[:n_planted], sources)
    assert nearest.near_copy[:n_planted].all()
    assert nearest.feature_copy[:n_planted].all()  # the feature ratio test alone finds all of them
    assert (nearest.feature_distance[:6] == 0).all() and (nearest.phash_bits[:6] == 0).all()  # exact copies
    np.testing.assert_array_equal(nearest.phash_index[:6], sources[:6])
    assert not nearest.near_copy[n_planted:].any()  # new tokens are not copies
    assert record["memorization_copies"] == n_planted
    assert record["memorization_share"] == pytest.approx(n_planted / len(fake))


def test_record_lists_the_closest_pairs_with_item_ids(planted):
    real, fake, sources = planted
    record, _ = _run(real, fake)
    closest = record["memorization_closest"]
    assert [p["fake_index"] for p in closest[:6]] == list(range(6))  # exact copies: ratio 0, first
    assert {p["real_item_id"] for p in closest[:12]} == {1000 + s for s in sources}
    assert all(p["near_copy"] for p in closest[:12]) and not closest[12]["near_copy"]


def test_no_copies_when_the_generator_makes_new_tokens():
    record, nearest = _run(tokens(60, seed=30), tokens(40, seed=31))
    assert record["memorization_share"] == 0.0
    assert 0.5 < record["memorization_median_ratio"] <= 1.0


def test_phash_is_the_64_bit_hash_imagehash_computes():
    import imagehash

    images = tokens(3, seed=40)
    ours = phash64(images)
    theirs = [int(str(imagehash.phash(Image.fromarray(im.transpose(1, 2, 0)))), 16) for im in images]
    assert [int(h) for h in ours] == theirs
