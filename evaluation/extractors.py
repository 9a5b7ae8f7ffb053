"""Feature extractors, by name: uint8 images (B, 3, H, W) in, float32 features (B, D) out.

- ``inception``: the standard FID network (torch-fidelity's ``FeatureExtractorInceptionV3``, 2048-d pool3
  features, TF 2015-12-05 weights from :mod:`evaluation.weights`). Its numbers compare with published ones.
- ``tiny``: a fixed random projection of 16x16 average-pooled pixels, for tests and quick checks. It runs
  in milliseconds and its numbers are NOT comparable to published FID/KID; every record says so.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.progress import Progress, report
import torch.nn.functional as F

from pipeline.errors import NftganError

if TYPE_CHECKING:
    from evaluation.weights import InceptionWeights

INCEPTION_ID = "inception-v3-tf-2015-12-05-pool3"
TINY_ID = "tiny-v1-pool16-proj64"
NOT_COMPARABLE = "NOT comparable to published FID/KID (tiny test extractor)"


@dataclass
class FeatureExtractor:
    """A feature network plus what a metric record must say about it."""

    name: str  # registry name: "inception" or "tiny"
    extractor_id: str  # what the features are; part of every cache key
    weights_sha256: str
    weights_source: str
    comparable: bool  # True only for the standard network: numbers comparable with published ones
    dims: int
    network: torch.nn.Module  # uint8 (B, 3, H, W) -> float32 (B, dims)
    device: str = "cpu"

    @property
    def label(self) -> str:
        if self.comparable:
            return "Inception-v3 (TF 2015-12-05 weights), 2048-d pool3: the standard FID network"
        return f"{self.extractor_id}: {NOT_COMPARABLE}"

    def to(self, device: str) -> "FeatureExtractor":
        self.network.to(device)
        self.device = device
        return self

    @torch.inference_mode()
    def __call__(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return self.network(batch_uint8.to(self.device)).float().cpu()

    def describe(self) -> dict[str, object]:
        """The fields every record carries about its extractor."""
        return {
            "extractor": self.extractor_id,
            "extractor_label": self.label,
            "comparable_to_published": self.comparable,
            "weights_sha256": self.weights_sha256,
            "weights_source": self.weights_source,
        }


def create_extractor(
    name: str, *, weights: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> FeatureExtractor:
    """The extractor registered as ``name`` ("inception" or "tiny"), on ``device``."""
    factory = _EXTRACTORS.get(name)
    if factory is None:
        raise NftganError(f"unknown feature extractor {name!r}: choose one of {', '.join(sorted(_EXTRACTORS))}")
    return factory(weights).to(device)


def extract_features(
    extractor: FeatureExtractor,
    images_uint8: np.ndarray,
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
    offset: int = 0,
    of: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Features of uint8 images (N, 3, S, S) -> float32 (N, D).

    After each batch ``progress`` gets ``ProgressEvent("evaluate", offset + done, of or N, **detail)``
    (``offset``/``of``: when these images are a chunk of a larger set)."""
    if images_uint8.ndim != 4 or images_uint8.shape[1] != 3 or images_uint8.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, 3, H, W), got {images_uint8.dtype} {images_uint8.shape}")
    total = int(images_uint8.shape[0])
    out = np.empty((total, extractor.dims), dtype=np.float32)
    for start in range(0, total, batch_size):
        batch = torch.from_numpy(np.array(images_uint8[start : start + batch_size], copy=True))  # memmaps are read-only
        out[start : start + len(batch)] = extractor(batch).numpy()
        report(progress, "evaluate", offset + start + len(batch), of or total, **{"unit": "images", **(detail or {})})
    return out


# -- the standard network ------------------------------------------------------------------------------
class _InceptionPool3(torch.nn.Module):
    """torch-fidelity's Inception-v3 returning only the 2048-d pool3 features (it resizes to 299 itself)."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        from evaluation.weights import state_dict_file

        self.inception = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=state_dict_file(state_dict)
        )

    def forward(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return self.inception(batch_uint8)[0]


def _inception(weights: str | os.PathLike[str] | None) -> FeatureExtractor:
    from evaluation.weights import find_inception_weights

    return inception_extractor(find_inception_weights(weights))


def inception_extractor(found: "InceptionWeights") -> FeatureExtractor:
    """The standard network with weights already found (see :func:`evaluation.weights.find_inception_weights`)."""
    return FeatureExtractor(
        name="inception",
        extractor_id=INCEPTION_ID,
        weights_sha256=found.sha256,
        weights_source=found.describe(),
        comparable=True,
        dims=2048,
        network=_InceptionPool3(found.state_dict),
    )


# -- the tiny test extractor ---------------------------------------------------------------------------
class _TinyNet(torch.nn.Module):
    POOL_PX = 16
    DIMS = 64

    def __init__(self) -> None:
        super().__init__()
        n_in = 3 * self.POOL_PX * self.POOL_PX
        rng = np.random.default_rng(20151205)
        projection = rng.standard_normal((n_in, self.DIMS)) / np.sqrt(n_in)
        self.register_buffer("projection", torch.from_numpy(projection.astype(np.float32)))

    def forward(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        x = (batch_uint8.float() - 128.0) / 128.0  # (B, 3, H, W) in [-1, 1)
        x = F.adaptive_avg_pool2d(x, self.POOL_PX)  # (B, 3, 16, 16)
        return x.flatten(1) @ self.projection  # (B, 64)


def _tiny(weights: str | os.PathLike[str] | None) -> FeatureExtractor:
    if weights not in (None, ""):
        raise NftganError("the tiny extractor has no weights file: drop --weights or use --extractor inception")
    network = _TinyNet()
    digest = hashlib.sha256(network.projection.numpy().tobytes()).hexdigest()
    return FeatureExtractor(
        name="tiny",
        extractor_id=TINY_ID,
        weights_sha256=digest,
        weights_source="built in (fixed random projection, seed 20151205)",
        comparable=False,
        dims=_TinyNet.DIMS,
        network=network,
    )


_EXTRACTORS: dict[str, Callable[[str | os.PathLike[str] | None], FeatureExtractor]] = {
    "inception": _inception,
    "tiny": _tiny,
}


def extractor_names() -> tuple[str, ...]:
    return tuple(sorted(_EXTRACTORS))
