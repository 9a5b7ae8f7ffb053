"""The real side is computed once per (cache content, extractor) and survives a crash mid-way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.extractors import create_extractor, extract_features
from evaluation.features import real_side
from pipeline.cache import open_cache

from .conftest import tokens, write_cache


class _Counting(torch.nn.Module):
    """Wraps a feature network and counts the images it has seen."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.images = 0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.images += len(batch)
        return self.inner(batch)


def _counting_tiny():
    extractor = create_extractor("tiny")
    extractor.network = _Counting(extractor.network)
    return extractor


def test_second_call_reads_the_cache_and_extracts_nothing(ws, collection):
    cache = open_cache(ws, collection, 32)
    first_extractor, second_extractor = _counting_tiny(), _counting_tiny()
    first = real_side(ws.collection(collection), cache, first_extractor)
    second = real_side(ws.collection(collection), cache, second_extractor)
    assert first_extractor.network.images == len(cache) and not first.cache_hit
    assert second_extractor.network.images == 0 and second.cache_hit
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.fid_statistics.sigma, second.fid_statistics.sigma)
    np.testing.assert_array_equal(first.phash, second.phash)
    np.testing.assert_allclose(first.features, extract_features(create_extractor("tiny"), cache.images), rtol=1e-6)
    assert all(p.is_relative_to(ws.collection(collection).features) for p in ws.root.rglob("*.npy")
               if "cache" not in p.parts)


def test_new_cache_content_or_other_weights_are_a_miss(ws, collection):
    col = ws.collection(collection)
    real_side(col, open_cache(ws, collection, 32), create_extractor("tiny"))
    other_weights = _counting_tiny()
    other_weights.weights_sha256 = "0" * 64
    assert not real_side(col, open_cache(ws, collection, 32), other_weights).cache_hit
    write_cache(ws, collection, tokens(30, seed=99))  # prepare re-ran: new content, new hash
    changed = _counting_tiny()
    result = real_side(col, open_cache(ws, collection, 32), changed)
    assert not result.cache_hit and changed.network.images == 30 and result.features.shape == (30, 64)


def test_a_crash_mid_extraction_resumes_without_redoing_finished_chunks(ws, collection):
    col, cache = ws.collection(collection), open_cache(ws, collection, 32)

    class Crash(Exception):
        pass

    def crash_after_two_chunks(event) -> None:
        if event.done > 16:
            raise Crash

    crashing = _counting_tiny()
    with pytest.raises(Crash):
        real_side(col, cache, crashing, batch_size=4, chunk_images=8, progress=crash_after_two_chunks)
    resumed = _counting_tiny()
    result = real_side(col, cache, resumed, batch_size=4, chunk_images=8)
    assert resumed.network.images == len(cache) - 16  # chunks 0-7 and 8-15 were kept
    np.testing.assert_allclose(result.features, extract_features(create_extractor("tiny"), cache.images), rtol=1e-6)
    assert not any(p.name.endswith(".parts") for p in col.features.iterdir())  # parts cleaned up


def test_a_damaged_feature_file_is_recomputed(ws, collection):
    col, cache = ws.collection(collection), open_cache(ws, collection, 32)
    real_side(col, cache, create_extractor("tiny"))
    [features_file] = [p for p in col.features.glob("tiny-*.npy")]
    features_file.write_bytes(features_file.read_bytes()[:100])  # truncated
    again = _counting_tiny()
    result = real_side(col, cache, again)
    assert not result.cache_hit and again.network.images == len(cache)
    assert result.features.shape == (len(cache), 64)
