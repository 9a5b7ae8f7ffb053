"""The real side, computed once: features, FID statistics and perceptual hashes of a collection's cache.

Features are keyed by (cache content_hash, extractor id, extractor weights sha256) and stored under the
collection's ``features/`` folder, so a second evaluation of the same collection only computes the
generated side. Long extractions (the Inception runs ~0.7 s per image on a CPU) are written in chunks,
each file atomic, so a crash or ``kill -9`` loses at most the chunk in progress.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.extractors import FeatureExtractor, extract_features
from evaluation.memorization import phash64
from evaluation.metrics import FidStatistics, fid_statistics
from pipeline.progress import Progress, report
from pipeline.atomic import atomic_path, remove_stale_temps, write_json
from pipeline.cache import TensorCache, hash_strings
from pipeline.workspace import CollectionPaths, FeatureCachePaths

CHUNK_IMAGES = 512


@dataclass(frozen=True)
class RealSide:
    """Everything an evaluation needs from the real images, cached or just computed."""

    features: np.ndarray  # float32 (N, D), rows in cache order
    fid_statistics: FidStatistics
    phash: np.ndarray  # uint64 (N,)
    cache_hit: bool  # True when the features came from disk
    seconds: float
    key: str  # cache key: content_hash x extractor x weights


def cache_key(content_hash: str, extractor: FeatureExtractor) -> str:
    return hash_strings([content_hash, extractor.extractor_id, extractor.weights_sha256])


def _paths(col: CollectionPaths, content_hash: str, extractor: FeatureExtractor) -> FeatureCachePaths:
    return col.feature_cache(f"{extractor.extractor_id}-{cache_key(content_hash, extractor)[:24]}")


#: how the real side's progress events are labelled
REAL = {"unit": "images", "label": "real images: features", "event": "real_features"}


def real_side(
    col: CollectionPaths,
    cache: TensorCache,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    chunk_images: int = CHUNK_IMAGES,
) -> RealSide:
    """Features, FID statistics and pHashes of ``cache``: from disk when cached, else computed and stored."""
    started = time.perf_counter()
    paths = _paths(col, cache.content_hash, extractor)
    remove_stale_temps(col.features)  # left by a run killed mid-write
    features = _load_array(paths.features, (len(cache), extractor.dims), np.float32)
    hit = features is not None
    if features is None:
        features = _extract_in_chunks(cache, extractor, paths, batch_size, progress, chunk_images)
        write_json(paths.meta, {
            "content_hash": cache.content_hash, "size_px": cache.size_px, "count": len(cache),
            **extractor.describe(), "dims": extractor.dims,
        })
    else:
        report(progress, "evaluate", len(cache), len(cache), **REAL)
    stats = _cached_fid_statistics(paths.fid_statistics, features)
    phash_path = col.phash_cache(cache.content_hash)
    phash = _load_array(phash_path, (len(cache),), np.uint64)
    if phash is None:
        phash = phash64(cache.images)
        _save_npy(phash_path, phash)
    return RealSide(features, stats, phash, hit, time.perf_counter() - started,
                    cache_key(cache.content_hash, extractor))


def _extract_in_chunks(
    cache: TensorCache,
    extractor: FeatureExtractor,
    paths: FeatureCachePaths,
    batch_size: int,
    progress: Progress | None,
    chunk_images: int,
) -> np.ndarray:
    total = len(cache)
    paths.parts.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(paths.parts)
    chunks = []
    for start in range(0, total, chunk_images):
        part = paths.parts / f"{start:09d}-{chunk_images}.npy"
        rows = min(chunk_images, total - start)
        done = _load_array(part, (rows, extractor.dims), np.float32)
        if done is None:
            done = extract_features(extractor, cache.images[start : start + rows], batch_size=batch_size,
                                    progress=progress, offset=start, of=total, detail=REAL)
            _save_npy(part, done)
        else:
            report(progress, "evaluate", start + rows, total, **REAL)
        chunks.append(done)
    features = np.concatenate(chunks) if chunks else np.zeros((0, extractor.dims), np.float32)
    _save_npy(paths.features, features)
    shutil.rmtree(paths.parts, ignore_errors=True)
    return features


def _cached_fid_statistics(path: Path, features: np.ndarray) -> FidStatistics:
    with contextlib.suppress(OSError, ValueError, KeyError):
        with np.load(path, allow_pickle=False) as saved:
            stats = FidStatistics(mu=saved["mu"], sigma=saved["sigma"], n=int(saved["n"]))
        d = features.shape[1]
        if stats.n == len(features) and stats.mu.shape == (d,) and stats.sigma.shape == (d, d):
            return stats
    stats = fid_statistics(features)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n))
    return stats


def _load_array(path: Path, shape: tuple[int, ...], dtype: type) -> np.ndarray | None:
    """The array at ``path`` if it has exactly this shape and dtype and holds no NaN; else None."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.shape != shape or array.dtype != dtype:
        return None
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        return None
    return array


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)

