"""Metrics by name, computed from features: features -> statistics -> metric, math by torch-fidelity.

Like StyleGAN2-ADA's ``metric_main``, each metric is a small function in a registry; like torch-fidelity,
each is split into pure steps whose inputs can be cached (real features, real FID statistics, real
perceptual hashes). Every result carries its sample counts.

- ``fid``: Fréchet distance of the feature Gaussians. Biased for small samples (its expected value grows
  as the sample shrinks), so results with fewer than 2,048 samples per side are flagged ``fid_biased``.
- ``kid``: kernel (cubic polynomial) MMD², the unbiased estimator, averaged over random subsets of up to
  1,000 per side: the right choice for small samples. Can be slightly negative when the two sets are
  alike. ``kid_std`` is the spread over subsets; it is None when both sides have no more images than a
  subset holds, since every subset is then the whole set (a spread of 0 that says nothing).
- ``pr``: improved precision and recall (Kynkäänniemi et al. 2019): k-NN manifolds of each side.
- ``dc``: density and coverage (Naeem et al. 2020): k-NN balls of the real side only, so one outlier
  does not inflate them; coverage (the share of real balls holding a generated image) sees mode collapse.
- ``memorization``: see :mod:`evaluation.memorization`.
- ``trait_fd``, ``trait_match``: the collection's own metric, from a trait classifier trained on its
  images (see :mod:`evaluation.traits`); they read ``MetricInputs.traits``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evaluation.registry import DC_NEIGHBORHOOD, PR_NEIGHBORHOOD, SPECS
from pipeline.errors import NftganError

if TYPE_CHECKING:
    from evaluation.traits import TraitInputs

FID_UNBIASED_MIN_SAMPLES = 2048
KID_SUBSETS = 100
KID_SUBSET_SIZE_MAX = 1000
_PR_BATCH_ROWS = 2048
DEFAULT_METRICS = ("fid", "kid", "pr", "memorization")


@dataclass(frozen=True)
class FidStatistics:
    """Mean and covariance of a feature set (float64), with the sample count behind them."""

    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    n: int


@dataclass(frozen=True)
class MetricInputs:
    """What the metric functions read. Optional fields are cached pieces; missing ones are computed."""

    real_features: np.ndarray  # float32 (N, D)
    fake_features: np.ndarray  # float32 (M, D)
    seed: int = 0
    real_images: np.ndarray | None = None  # uint8 (N, 3, S, S): memorization only
    fake_images: np.ndarray | None = None  # uint8 (M, 3, S, S): memorization only
    real_fid_statistics: FidStatistics | None = None
    real_phash: np.ndarray | None = None  # uint64 (N,), see evaluation.memorization.phash64
    real_item_ids: tuple[Any, ...] | None = None  # catalog ids of the real rows, for memorization reports
    traits: "TraitInputs | None" = None  # the trait classifier's view of both sides: trait_fd, trait_match

    @property
    def n_real(self) -> int:
        return int(self.real_features.shape[0])

    @property
    def n_fake(self) -> int:
        return int(self.fake_features.shape[0])


MetricFn = Callable[[MetricInputs], dict[str, Any]]
_METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Register the function of a metric named in :mod:`evaluation.registry` (its facts live there).

    A function returns its record fields, or ``(fields, artifacts)``: objects behind the numbers that the
    caller may keep (e.g. memorization's nearest-training table, which the sweep draws as a panel)."""
    if name not in SPECS:
        raise ValueError(f"metric {name!r} is not in evaluation.registry.SPECS")

    def add(fn: MetricFn) -> MetricFn:
        _METRICS[name] = fn
        return fn

    return add


def metric_names() -> tuple[str, ...]:
    _load_registry()
    return tuple(_METRICS)


def check_metric_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``names`` without repeats, in the order given; an unknown name is a user error."""
    known = metric_names()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise NftganError(f"unknown metric {unknown[0]!r}: choose from {', '.join(known)}" if unknown
                          else f"no metric chosen: choose from {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def compute_from_features(names: tuple[str, ...] | list[str], inputs: MetricInputs,
                          artifacts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the named metrics on one pair of feature sets; one flat dict with ``n_real``/``n_fake``.
    ``artifacts``, when given, receives each metric's objects behind its numbers, by metric name."""
    names = check_metric_names(names)
    if inputs.real_features.shape[1] != inputs.fake_features.shape[1]:
        raise ValueError("real and fake features come from different extractors (dimensions differ)")
    result: dict[str, Any] = {"n_real": inputs.n_real, "n_fake": inputs.n_fake}
    for name in names:
        _need(inputs.n_real, inputs.n_fake, SPECS[name].min_samples, name)
        out = _METRICS[name](inputs)
        if isinstance(out, tuple):
            out, extra = out
            if artifacts is not None:
                artifacts[name] = extra
        result.update(out)
    return result


def _load_registry() -> None:
    import evaluation.memorization  # noqa: F401  (registers "memorization")
    import evaluation.traits  # noqa: F401  (registers "trait_fd", "trait_match")


def _need(n_real: int, n_fake: int, at_least: int, metric: str) -> None:
    if min(n_real, n_fake) < at_least:
        raise NftganError(
            f"{metric} needs at least {at_least} images per side, got {n_real} real and {n_fake} generated: "
            "use more --samples (or a bigger collection)"
        )


# -- FID -----------------------------------------------------------------------------------------------
def fid_statistics(features: np.ndarray) -> FidStatistics:
    """Mean and covariance of ``features`` in float64 (torch-fidelity's ``fid_features_to_statistics``)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    stats = fid_features_to_statistics(torch.from_numpy(np.asarray(features, dtype=np.float64)))
    return FidStatistics(mu=stats["mu"], sigma=stats["sigma"], n=int(features.shape[0]))


def fid_from_statistics(real: FidStatistics, fake: FidStatistics) -> float:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    stat_real = {"mu": real.mu, "sigma": real.sigma}
    stat_fake = {"mu": fake.mu, "sigma": fake.sigma}
    return float(fid_statistics_to_metric(stat_real, stat_fake, verbose=False)[KEY_METRIC_FID])


@register_metric("fid")
def fid(inputs: MetricInputs) -> dict[str, Any]:
    _need(inputs.n_real, inputs.n_fake, SPECS["fid"].min_samples, "FID")
    real = inputs.real_fid_statistics or fid_statistics(inputs.real_features)
    if real.n != inputs.n_real:
        raise ValueError("cached real FID statistics do not belong to these real features")
    value = fid_from_statistics(real, fid_statistics(inputs.fake_features))
    biased = min(inputs.n_real, inputs.n_fake) < FID_UNBIASED_MIN_SAMPLES
    return {"fid": value, "fid_biased": biased}


# -- KID -----------------------------------------------------------------------------------------------
def _kid_run(real: np.ndarray, fake: np.ndarray, subset_size: int, seed: int) -> tuple[float, float]:
    """KID's one computation (mean, std over subsets): the metric and the champion's noise estimate share it."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    out = kid_features_to_metric(
        torch.from_numpy(np.asarray(real, dtype=np.float64)),
        torch.from_numpy(np.asarray(fake, dtype=np.float64)),
        kid_subsets=KID_SUBSETS,
        kid_subset_size=subset_size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,  # 1 / D
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


@register_metric("kid")
def kid(inputs: MetricInputs) -> dict[str, Any]:
    _need(inputs.n_real, inputs.n_fake, SPECS["kid"].min_samples, "KID")
    subset_size = min(KID_SUBSET_SIZE_MAX, inputs.n_real, inputs.n_fake)
    mean, std = _kid_run(inputs.real_features, inputs.fake_features, subset_size, inputs.seed)
    every_subset_is_everything = subset_size == inputs.n_real == inputs.n_fake
    return {
        "kid_mean": mean,
        "kid_std": None if every_subset_is_everything else std,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": subset_size,
    }


def kid_spread(real: np.ndarray, fake: np.ndarray, seed: int) -> float:
    """KID's spread on half-size subsets: its noise when every full-size subset would be the whole set."""
    return _kid_run(real, fake, max(2, min(len(real), len(fake)) // 2), seed)[1]


# -- precision / recall ------------------------------------------------------------------------------
@register_metric("pr")
def precision_recall(inputs: MetricInputs) -> dict[str, Any]:
    from torch_fidelity.metric_prc import (
        KEY_METRIC_F_SCORE,
        KEY_METRIC_PRECISION,
        KEY_METRIC_RECALL,
        prc_features_to_metric,
    )

    _need(inputs.n_real, inputs.n_fake, SPECS["pr"].min_samples, "precision/recall")
    out = prc_features_to_metric(
        torch.from_numpy(np.asarray(inputs.fake_features, dtype=np.float32)),  # torch-fidelity: 1 = generated
        torch.from_numpy(np.asarray(inputs.real_features, dtype=np.float32)),  # 2 = real
        prc_neighborhood=PR_NEIGHBORHOOD,
        prc_batch_size=_PR_BATCH_ROWS,
        save_cpu_ram=True,  # distances in row blocks: memory grows with N, not N² (same result)
        verbose=False,
    )
    return {
        "precision": float(out[KEY_METRIC_PRECISION]),
        "recall": float(out[KEY_METRIC_RECALL]),
        "f_score": float(out[KEY_METRIC_F_SCORE]),
        "pr_neighborhood": PR_NEIGHBORHOOD,
    }


# -- density / coverage ----------------------------------------------------------------------------------
def density_coverage_of(real: np.ndarray, fake: np.ndarray, k: int = DC_NEIGHBORHOOD) -> dict[str, float]:
    """Density and coverage of ``fake`` against ``real`` (Naeem et al. 2020), distances in row blocks."""
    r = torch.from_numpy(np.asarray(real, dtype=np.float32))
    f = torch.from_numpy(np.asarray(fake, dtype=np.float32))
    radii = torch.empty(len(r))
    for i in range(0, len(r), _PR_BATCH_ROWS):
        radii[i : i + _PR_BATCH_ROWS] = torch.cdist(r[i : i + _PR_BATCH_ROWS], r).kthvalue(k + 1, dim=1).values
    inside = torch.zeros(len(f))  # per fake: how many real balls hold it
    nearest = torch.full((len(r),), float("inf"))  # per real: distance to its nearest fake
    for i in range(0, len(r), _PR_BATCH_ROWS):
        d = torch.cdist(r[i : i + _PR_BATCH_ROWS], f)  # (rows, F)
        inside += (d <= radii[i : i + _PR_BATCH_ROWS, None]).float().sum(dim=0)
        nearest[i : i + _PR_BATCH_ROWS] = d.min(dim=1).values
    return {"density": float(inside.sum() / (k * len(f))), "coverage": float((nearest <= radii).float().mean())}


@register_metric("dc")
def density_coverage(inputs: MetricInputs) -> dict[str, Any]:
    _need(inputs.n_real, inputs.n_fake, SPECS["dc"].min_samples, "density/coverage")
    return {**density_coverage_of(inputs.real_features, inputs.fake_features), "dc_neighborhood": DC_NEIGHBORHOOD}
