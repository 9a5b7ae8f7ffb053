"""The one scorer: a generator's images from fixed latents, through the registry's metrics, against the real side.

``nftgan evaluate`` (the checkpoint sweep) and the champion decision both score a generator by
:func:`score_generator`: the same latents for a seed, the same feature extraction, the same
:class:`~evaluation.metrics.MetricInputs` (features, FID statistics, images and perceptual hashes for
memorization, the trait classifier's view for the trait metrics), the same registry. What each keeps of the
result (grids and panels for a sweep; the KID noise and a few fields for a decision) is theirs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.progress import Progress

if TYPE_CHECKING:
    import torch

    from evaluation.extractors import FeatureExtractor
    from evaluation.features import RealSide
    from evaluation.traits import RealTraitSide
    from pipeline.cache import TensorCache
    from training.pixelart import PixelArt


@dataclass
class Scored:
    fake: np.ndarray  # uint8 (n, 3, S, S): the scored images
    values: dict[str, Any]  # the metrics' flat record (n_real, n_fake, kid_mean, ...)
    artifacts: dict[str, Any] = field(default_factory=dict)  # metric name -> the objects behind its numbers
    seconds: dict[str, float] = field(default_factory=dict)  # generate, features, metrics, total
    fake_features: np.ndarray | None = None
    asked: list[dict[str, Any]] | None = None  # a trait-conditioned generator's: the trait sets each image drew


def score_generator(
    generator: torch.nn.Module,
    z_dim: int,
    *,
    samples: int,
    seed: int,
    metrics: tuple[str, ...],
    real: RealSide,
    extractor: FeatureExtractor,
    cache: TensorCache | None = None,
    traits: RealTraitSide | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: Progress | None = None,
    label: str = "generated features",
    step: int | None = None,
    pixel_art: PixelArt | None = None,
) -> Scored:
    """Score ``samples`` images of ``generator`` (latents from ``seed``) on ``metrics``.

    ``cache`` gives the real images and their item ids (memorization needs them); ``traits`` the trait
    classifier's real side (the trait metrics need it). A metric that lacks its input is the registry's
    one-line error, never a silent skip. ``pixel_art``: the images are scored snapped to its grid and palette,
    as ``sample`` and ``export`` draw them for a pixel-art collection (what a user gets is what is scored).
    """
    from evaluation.extractors import extract_features
    from evaluation.metrics import MetricInputs, compute_from_features
    from training.sampling import asked_labels, generate_from, latents

    started = time.perf_counter()
    z = latents(samples, z_dim, seed)
    fake = generate_from(generator.to(device).eval(), z, batch_size=batch_size)
    if pixel_art is not None:
        fake = pixel_art.snap(fake)
    asked = asked_labels(generator, z)
    generated = time.perf_counter()
    fake_features = extract_features(
        extractor, fake, batch_size=batch_size, progress=progress,
        detail={"event": "fake_features", "step": step, "label": label},
    )
    featured = time.perf_counter()
    item_ids = None
    if cache is not None:
        ids = cache.manifest.get("item_ids")
        item_ids = tuple(ids) if isinstance(ids, list) and len(ids) == len(cache) else None
    inputs = MetricInputs(
        real_features=real.features, fake_features=fake_features, seed=seed,
        real_images=None if cache is None else cache.images, fake_images=fake,
        real_fid_statistics=real.fid_statistics, real_phash=real.phash, real_item_ids=item_ids,
        traits=None if traits is None else traits.inputs(fake, asked),
    )
    artifacts: dict[str, Any] = {}
    values = compute_from_features(metrics, inputs, artifacts)
    done = time.perf_counter()
    return Scored(fake=fake, values=values, artifacts=artifacts, fake_features=fake_features, asked=asked, seconds={
        "generate": round(generated - started, 3), "features": round(featured - generated, 3),
        "metrics": round(done - featured, 3), "total": round(done - started, 3),
    })
