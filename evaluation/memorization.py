"""Does the generator copy training tokens? Nearest training image of every generated one, two ways.

- In feature space: the nearest and second-nearest training image. A generated image is a near-copy when
  it is much closer to one training image than to any other: ``d1 / d2 < 1/3`` (the ratio test of
  Yoon et al. 2023 and Gu et al. 2023). It needs no absolute threshold, so it works for any extractor.
- By perceptual hash (64-bit pHash of both images at the cache resolution): a near-copy when the
  Hamming distance is at most 4 bits. On trait-layered collections distinct tokens are often this close
  too (which is why ``prepare`` decides duplicates on pixels), so read this count as an upper bound.

The share of near-copies (either test) is the headline; the per-image table says which token was copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from evaluation.metrics import MetricInputs, register_metric
from pipeline.errors import NftganError

RATIO_MAX = 1.0 / 3.0
PHASH_MAX_BITS = 4
TOP_PAIRS = 16
_CHUNK_ROWS = 1024
_CANDIDATES = 4


@dataclass(frozen=True)
class NearestTraining:
    """For each generated image (row), its nearest training images (indices into the real set)."""

    feature_index: np.ndarray  # int64 (M,) nearest real by feature distance
    feature_distance: np.ndarray  # float64 (M,)
    second_distance: np.ndarray  # float64 (M,) distance to the second-nearest real
    phash_index: np.ndarray  # int64 (M,) nearest real by pHash Hamming distance
    phash_bits: np.ndarray  # int64 (M,)

    @property
    def ratio(self) -> np.ndarray:
        """d1 / d2; 0 for an exact copy, 1 when the two nearest are equally far."""
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.feature_distance / self.second_distance
        return np.where(self.feature_distance == 0, 0.0, np.nan_to_num(r, nan=1.0, posinf=1.0))

    @property
    def feature_copy(self) -> np.ndarray:
        return self.ratio < RATIO_MAX

    @property
    def phash_copy(self) -> np.ndarray:
        return self.phash_bits <= PHASH_MAX_BITS

    @property
    def near_copy(self) -> np.ndarray:
        return self.feature_copy | self.phash_copy


def phash64(images_uint8: np.ndarray) -> np.ndarray:
    """64-bit perceptual hash (imagehash.phash) of each uint8 image (N, 3, S, S), as uint64 (N,)."""
    import imagehash

    out = np.empty(len(images_uint8), dtype=np.uint64)
    for i, chw in enumerate(images_uint8):
        bits = imagehash.phash(Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))).hash
        out[i] = np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0]
    return out


def nearest_training(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    real_phash: np.ndarray,
    fake_phash: np.ndarray,
) -> NearestTraining:
    """Nearest training images of every generated one, by feature distance and by pHash."""
    if len(real_features) < 2:
        raise NftganError("memorization needs at least 2 training images (it compares nearest and second-nearest)")
    real = torch.from_numpy(np.asarray(real_features, dtype=np.float64))
    index, d1, d2, p_index, p_bits = [], [], [], [], []
    for start in range(0, len(fake_features), _CHUNK_ROWS):
        fake = torch.from_numpy(np.asarray(fake_features[start : start + _CHUNK_ROWS], dtype=np.float64))
        # Candidates by the fast matrix-product distance, then their exact distances (an exact copy: 0).
        candidates = torch.cdist(fake, real).topk(min(_CANDIDATES, len(real)), dim=1, largest=False).indices
        exact = (fake[:, None, :] - real[candidates]).norm(dim=-1)  # (rows, candidates)
        order = exact.argsort(dim=1, stable=True)[:, :2]
        index.append(candidates.gather(1, order[:, :1])[:, 0].numpy())
        d1.append(exact.gather(1, order[:, :1])[:, 0].numpy())
        d2.append(exact.gather(1, order[:, 1:2])[:, 0].numpy())
        bits = np.bitwise_count(fake_phash[start : start + _CHUNK_ROWS, None] ^ real_phash[None, :])
        p_index.append(bits.argmin(axis=1))
        p_bits.append(bits.min(axis=1))
    return NearestTraining(
        feature_index=np.concatenate(index).astype(np.int64),
        feature_distance=np.concatenate(d1),
        second_distance=np.concatenate(d2),
        phash_index=np.concatenate(p_index).astype(np.int64),
        phash_bits=np.concatenate(p_bits).astype(np.int64),
    )


def memorization(inputs: MetricInputs) -> tuple[dict[str, Any], NearestTraining]:
    """The memorization record and the per-image table behind it."""
    if inputs.real_images is None or inputs.fake_images is None:
        raise ValueError("memorization needs the real and generated images (for their perceptual hashes)")
    real_phash = inputs.real_phash if inputs.real_phash is not None else phash64(inputs.real_images)
    nearest = nearest_training(inputs.real_features, inputs.fake_features, real_phash, phash64(inputs.fake_images))
    ratio = nearest.ratio
    order = np.argsort(ratio, kind="stable")[:TOP_PAIRS]
    ids = inputs.real_item_ids
    pairs = [
        {
            "fake_index": int(i),
            "real_index": int(nearest.feature_index[i]),
            "real_item_id": ids[nearest.feature_index[i]] if ids is not None else None,
            "feature_distance": float(nearest.feature_distance[i]),
            "ratio": float(ratio[i]),
            "phash_real_index": int(nearest.phash_index[i]),
            "phash_bits": int(nearest.phash_bits[i]),
            "near_copy": bool(nearest.near_copy[i]),
        }
        for i in order
    ]
    record = {
        "memorization_share": float(nearest.near_copy.mean()),
        "memorization_share_features": float(nearest.feature_copy.mean()),
        "memorization_share_phash": float(nearest.phash_copy.mean()),
        "memorization_copies": int(nearest.near_copy.sum()),
        "memorization_median_ratio": float(np.median(ratio)),
        "memorization_ratio_max": RATIO_MAX,
        "memorization_phash_max_bits": PHASH_MAX_BITS,
        "memorization_closest": pairs,
    }
    return record, nearest


@register_metric("memorization")
def memorization_metric(inputs: MetricInputs) -> tuple[dict[str, Any], NearestTraining]:
    """The record fields, and the nearest-training table behind them (the sweep draws it as a panel)."""
    return memorization(inputs)
