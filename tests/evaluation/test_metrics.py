"""Metric math: torch-fidelity's numbers checked against independent computations on the same features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from evaluation.config import EXTRACTOR_NAMES, METRIC_NAMES
from evaluation.extractors import create_extractor, extract_features, extractor_names
from evaluation.metrics import (
    KID_SUBSETS,
    MetricInputs,
    check_metric_names,
    compute_from_features,
    metric_names,
)
from evaluation.sweep import compute_metrics
from pipeline.errors import NftganError

from .conftest import tokens


@pytest.fixture(scope="module")
def tiny():
    return create_extractor("tiny")


@pytest.fixture(scope="module")
def feature_sets(tiny):
    """Tiny features of two samples of one token distribution and of a shifted one (300 images each)."""
    a = extract_features(tiny, tokens(300, seed=10))
    b = extract_features(tiny, tokens(300, seed=11))
    shifted = extract_features(tiny, tokens(300, seed=12, palette_shift=60))
    return a, b, shifted


def _reference_fid(x: np.ndarray, y: np.ndarray) -> float:
    """FID by the textbook formula with scipy's matrix square root (not torch-fidelity's eigenvalue trick)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _reference_kid(x: np.ndarray, y: np.ndarray, *, subsets: int, subset_size: int, seed: int):
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)³, written out term by term over the same subsets."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[1]
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        xs = x[rng.choice(len(x), subset_size, replace=False)]
        ys = y[rng.choice(len(y), subset_size, replace=False)]
        kxx, kyy, kxy = ((xs @ xs.T) / d + 1) ** 3, ((ys @ ys.T) / d + 1) ** 3, ((xs @ ys.T) / d + 1) ** 3
        m = subset_size
        off = ~np.eye(m, dtype=bool)
        values.append(kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def test_fid_of_a_set_against_itself_is_zero(feature_sets):
    a, b, _ = feature_sets
    same = compute_from_features(["fid"], MetricInputs(a, a))["fid"]
    other = compute_from_features(["fid"], MetricInputs(a, b))["fid"]
    assert abs(same) < 1e-6 * other
    assert other > 0


def test_fid_agrees_with_an_independent_computation(feature_sets):
    a, b, shifted = feature_sets
    for x, y in ((a, b), (a, shifted)):
        ours = compute_from_features(["fid"], MetricInputs(x, y))["fid"]
        assert ours == pytest.approx(_reference_fid(x, y), rel=1e-4)


def test_kid_agrees_with_an_independent_computation(feature_sets):
    a, _, shifted = feature_sets
    result = compute_from_features(["kid"], MetricInputs(a[:250], shifted, seed=7))
    assert result["kid_subset_size"] == 250 and result["kid_subsets"] == KID_SUBSETS
    mean, std = _reference_kid(a[:250], shifted, subsets=KID_SUBSETS, subset_size=250, seed=7)
    assert result["kid_mean"] == pytest.approx(mean, rel=1e-4)
    assert result["kid_std"] == pytest.approx(std, rel=1e-4)


def test_kid_reports_no_spread_when_every_subset_is_the_whole_set(feature_sets):
    a, _, shifted = feature_sets
    n = min(len(a), len(shifted), 300)
    result = compute_from_features(["kid"], MetricInputs(a[:n], shifted[:n]))
    assert result["kid_subset_size"] == n and result["kid_std"] is None  # not a "± 0" that says nothing
    assert result["kid_mean"] > 0


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    """Over many small draws, KID of two same-distribution samples averages 0; the biased MMD does not."""
    rng = np.random.default_rng(0)
    d, n, draws = 16, 40, 150
    unbiased, biased = [], []
    for _ in range(draws):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        unbiased.append(compute_from_features(["kid"], MetricInputs(x, y))["kid_mean"])
        k = lambda p, q: ((p @ q.T) / d + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    standard_error = np.std(unbiased) / np.sqrt(draws)
    assert abs(np.mean(unbiased)) < 3 * standard_error
    assert np.mean(biased) > 20 * standard_error  # what a biased estimator would have reported


def test_a_shifted_distribution_scores_worse(feature_sets):
    a, b, shifted = feature_sets
    near = compute_from_features(["fid", "kid", "pr"], MetricInputs(a, b))
    far = compute_from_features(["fid", "kid", "pr"], MetricInputs(a, shifted))
    assert far["fid"] > 3 * near["fid"]
    assert far["kid_mean"] > 10 * abs(near["kid_mean"])
    assert far["precision"] < near["precision"]
    assert far["recall"] < near["recall"]


def test_precision_recall_agree_with_a_brute_force_count(feature_sets):
    a, _, shifted = feature_sets
    real, fake = a[:120].astype(np.float64), np.concatenate([a[200:260], shifted[:60]]).astype(np.float64)
    result = compute_from_features(["pr"], MetricInputs(real, fake))

    def covered(points, manifold, k=3):
        radii = np.sort(np.linalg.norm(manifold[:, None] - manifold[None], axis=-1), axis=1)[:, k]
        dist = np.linalg.norm(points[:, None] - manifold[None], axis=-1)
        return float((dist <= radii[None, :]).any(axis=1).mean())

    assert result["precision"] == pytest.approx(covered(fake, real), abs=1e-6)
    assert result["recall"] == pytest.approx(covered(real, fake), abs=1e-6)


def test_density_and_coverage_agree_with_a_brute_force_count(feature_sets):
    a, _, shifted = feature_sets
    real, fake = a[:120].astype(np.float64), np.concatenate([a[200:260], shifted[:60]]).astype(np.float64)
    result = compute_from_features(["dc"], MetricInputs(real, fake))
    radii = np.sort(np.linalg.norm(real[:, None] - real[None], axis=-1), axis=1)[:, 5]
    inside = np.linalg.norm(fake[:, None] - real[None], axis=-1) <= radii[None, :]  # (fake, real)
    assert result["density"] == pytest.approx(inside.sum() / (5 * len(fake)), abs=1e-5)
    assert result["coverage"] == pytest.approx(inside.any(axis=0).mean(), abs=1e-6)
    collapsed = compute_from_features(["dc"], MetricInputs(real, np.repeat(real[:1], 120, axis=0)))
    assert collapsed["coverage"] < 0.1 < result["coverage"]  # one point repeated covers few real balls


def test_fid_is_flagged_biased_below_2048_samples_per_side():
    rng = np.random.default_rng(1)
    small = compute_from_features(["fid"], MetricInputs(rng.standard_normal((100, 8)), rng.standard_normal((3000, 8))))
    full = compute_from_features(["fid"], MetricInputs(rng.standard_normal((2048, 8)), rng.standard_normal((2048, 8))))
    assert small["fid_biased"] is True and small["n_real"] == 100 and small["n_fake"] == 3000
    assert full["fid_biased"] is False


def test_features_do_not_depend_on_the_batch_size(tiny):
    images = tokens(37, seed=3)
    one = extract_features(tiny, images, batch_size=1)
    many = extract_features(tiny, images, batch_size=16)
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_compute_metrics_on_images_says_what_it_measured():
    real, fake = tokens(40, seed=4), tokens(30, seed=5)
    result = compute_metrics(real, fake, metrics=("fid", "kid", "pr", "memorization"), extractor="tiny")
    assert result["n_real"] == 40 and result["n_fake"] == 30
    assert result["comparable_to_published"] is False
    assert "NOT comparable" in result["extractor_label"]
    assert len(result["weights_sha256"]) == 64
    assert result["fid"] > 0 and result["fid_biased"] is True


def test_too_few_samples_and_unknown_names_are_clear_errors():
    rng = np.random.default_rng(2)
    with pytest.raises(NftganError, match="at least 4 images per side"):
        compute_from_features(["pr"], MetricInputs(rng.standard_normal((3, 4)), rng.standard_normal((10, 4))))
    with pytest.raises(NftganError, match="unknown metric 'is'"):
        check_metric_names(["fid", "is"])
    with pytest.raises(NftganError, match="unknown feature extractor"):
        create_extractor("vgg")


def test_config_names_match_the_registries():
    assert set(metric_names()) == set(METRIC_NAMES)
    assert set(extractor_names()) == set(EXTRACTOR_NAMES)


def test_the_registry_is_the_only_list_of_metrics() -> None:
    """Names, minimum samples, what each reads and how --select-by ranks come from evaluation.registry."""
    from evaluation import config as eval_config
    from evaluation import registry
    from evaluation.metrics import register_metric

    assert eval_config.METRIC_NAMES is registry.METRIC_NAMES and set(metric_names()) == set(registry.SPECS)
    assert registry.TRAIT_METRIC_NAMES == ("trait_fd", "trait_match", "trait_cond")
    with pytest.raises(ValueError, match="not in evaluation.registry"):
        register_metric("is")
    # --samples is checked against the registry's minimum of the chosen metrics
    need = registry.SPECS["dc"].min_samples
    with pytest.raises(NftganError, match=f"at least {need}"):
        eval_config.EvalConfig(metrics=("dc",), samples=need - 1)
    eval_config.EvalConfig(metrics=("dc",), samples=need)
