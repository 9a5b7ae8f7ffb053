"""Warm start: a new run loads another checkpoint's weights, EMA and optimizer moments, then trains on the
current cache with its own step counter; incompatible sources are refused in one line; resume stays exact."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.champion import record_decision
from pipeline.errors import NftganError
from training.build import build_models
from training.checkpoints import read_checkpoint
from training.config import TrainConfig
from training.distributed import DistContext
from training.train import train
from training.warm import check_warm_start, warm_start_source

from .conftest import noise_images, tiny_config
from .test_train import assert_same_state, final_state

SMALL = dict(base_width=4, z_dim=8, batch_size=4, sample_every=0)


@pytest.fixture
def source(ws, make_cache):
    """Collection 'tiny' (8 noise images) with run 'src' trained 4 steps (checkpoints at 2 and 4)."""
    make_cache("tiny", 32, n=8)
    train(ws, "tiny", tiny_config(run="src", steps=4, **SMALL))
    return ws.run("tiny", "src")


def test_warm_start_loads_weights_ema_and_optimizer_moments_with_this_runs_hyperparameters(ws, source):
    config = tiny_config(run="new", warm_start="src", lr_g=1e-3, **SMALL)
    warm = warm_start_source(ws, "tiny", config)
    assert (warm.source, warm.run, warm.step, warm.checkpoint) == ("run", "src", 4, source.checkpoint(4))
    models, counters = build_models(config, torch.device("cpu"), None, DistContext(), None, warm)
    saved = read_checkpoint(source.checkpoint(4))
    assert counters.step == 0  # its own steps: --steps is the budget
    assert_same_state(saved["generator"], models.g.state_dict())
    assert_same_state(saved["discriminator"], models.d.state_dict())
    assert_same_state(saved["ema"], models.ema.state_dict())
    assert not torch.equal(saved["ema"]["main.0.weight"], saved["generator"]["main.0.weight"])  # EMA is its own
    for opt, key in ((models.opt_g, "opt_g"), (models.opt_d, "opt_d")):
        assert_same_state(saved[key]["state"], opt.state_dict()["state"])
        assert float(opt.state_dict()["state"][0]["step"]) == 4  # Adam's moments and bias correction carry on
    assert models.opt_g.param_groups[0]["lr"] == 1e-3 and models.opt_d.param_groups[0]["lr"] == 2e-4
    fresh, _ = build_models(config, torch.device("cpu"), None, DistContext(), None, None)
    assert not torch.equal(fresh.g.state_dict()["main.0.weight"], saved["generator"]["main.0.weight"])


def test_a_warm_started_run_trains_on_the_current_cache_and_records_its_source(ws, source, make_cache):
    src_hash = read_checkpoint(source.checkpoint(4))["cache_content_hash"]
    make_cache("tiny", 32, images=noise_images(10, 32, seed=5))  # the cache changed (a refresh)
    summary = train(ws, "tiny", tiny_config(run="new", warm_start="src@2", steps=3, **SMALL))
    assert (summary.steps_done, summary.resumed_from) == (3, None)
    expected = {"source": "run", "run": "src", "step": 2, "checkpoint": str(source.checkpoint(2)),
                "cache_content_hash": src_hash}
    assert summary.warm_started_from == expected
    assert "warm-started from run src step 2 (run, trained on cache " + src_hash[:12] in summary.describe()
    saved = json.loads(ws.run("tiny", "new").config.read_text())
    assert (saved["warm_start"], saved["warm_started_from"]) == ("src@2", expected)
    assert TrainConfig.from_dict(saved).warm_started_from == expected
    ckpt = read_checkpoint(ws.run("tiny", "new").checkpoint(3))
    assert ckpt["cache_content_hash"] != src_hash  # trained on the current cache
    assert ckpt["config"]["warm_started_from"] == expected


def test_warm_start_from_the_champion(ws, source):
    with pytest.raises(NftganError, match="has no champion yet"):
        train(ws, "tiny", tiny_config(run="new", warm_start="champion", **SMALL))
    record_decision(ws, "tiny", {"run": "src", "step": 2, "decision": "promoted", "reason": "test"},
                    new_current={"run": "src", "step": 2, "scores": {}})
    summary = train(ws, "tiny", tiny_config(run="new", warm_start="champion", steps=2, **SMALL))
    assert summary.warm_started_from["source"] == "champion" and summary.warm_started_from["step"] == 2
    source.checkpoint(2).unlink()
    ok, reason = check_warm_start(ws, "tiny", tiny_config(run="other", warm_start="champion", **SMALL))
    assert not ok and "champion's checkpoint (run 'src' step 2) is gone" in reason


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        (dict(z_dim=12), "z_dim 8 differs from 12"),
        (dict(base_width=8), "widths (16, 8, 4) differs from (32, 16, 8)"),
        (dict(spectral_norm=True), "spectral_norm False differs from True"),
        (dict(arch="mlp"), "arch 'dcgan' differs from 'mlp'"),
    ],
)
def test_an_incompatible_source_is_refused_in_one_line(ws, source, options, detail):
    config = tiny_config(run="new", warm_start="src", **{**SMALL, **options})
    with pytest.raises(NftganError) as e:
        train(ws, "tiny", config)
    assert str(e.value).startswith("cannot warm-start from run 'src' step 4: its ") and detail in str(e.value)
    assert "\n" not in str(e.value)
    assert check_warm_start(ws, "tiny", config) == (False, str(e.value))
    assert not ws.run("tiny", "new").checkpoint_files()


def test_a_size_mismatch_and_unknown_sources_are_refused(ws, source, make_cache):
    make_cache("tiny", 64, n=4)
    with pytest.raises(NftganError, match="size_px 32 differs from 64"):
        warm_start_source(ws, "tiny", tiny_config(size_px=64, warm_start="src", **SMALL))
    with pytest.raises(NftganError, match="no run 'ghost'"):
        warm_start_source(ws, "tiny", tiny_config(warm_start="ghost", **SMALL))
    with pytest.raises(NftganError, match="no checkpoint at step 3"):
        warm_start_source(ws, "tiny", tiny_config(warm_start="src@3", **SMALL))
    with pytest.raises(NftganError, match="--warm-start must be none, champion, RUN or RUN@STEP"):
        tiny_config(warm_start="src@x")
    assert check_warm_start(ws, "tiny", tiny_config(**SMALL)) == (False, "--warm-start none")
    assert check_warm_start(ws, "tiny", tiny_config(warm_start="src", **SMALL)) == (
        True, "run 'src' step 4 (run)")


def test_a_warm_started_run_resumes_exactly_from_its_own_checkpoints(ws, source):
    options = dict(warm_start="src", checkpoint_every=2, log_every=1, **SMALL)
    train(ws, "tiny", tiny_config(run="straight", steps=4, **options))
    train(ws, "tiny", tiny_config(run="split", steps=2, **options))
    # resumed without --warm-start (ignored, not an error): it continues from its own step 2
    summary = train(ws, "tiny", tiny_config(run="split", steps=4, resume=True, checkpoint_every=2, log_every=1,
                                             **SMALL))
    assert (summary.resumed_from, summary.steps_done) == (2, 4)
    assert summary.warm_started_from["run"] == "src"
    assert json.loads(ws.run("tiny", "split").config.read_text())["warm_started_from"]["step"] == 4
    assert_same_state(final_state(ws, "straight", 4), final_state(ws, "split", 4))
    summary = train(ws, "tiny", tiny_config(run="split", steps=5, resume=True, warm_start="champion", **SMALL))
    assert any("--warm-start champion ignored" in n for n in summary.notes)


def test_train_cli_takes_warm_start(cli, ws, source):
    tiny = ["--size", "32", "--base-width", "4", "--z-dim", "8", "--batch-size", "4", "--device", "cpu"]
    result = cli("train", "tiny", *tiny, "--steps", "2", "--run", "w", "--warm-start", "src", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["warm_started_from"]["run"] == "src"
    result = cli("train", "tiny", *tiny, "--steps", "2", "--run", "w2", "--warm-start", "src", "--z-dim", "9")
    assert result.exit_code == 2 and "cannot warm-start from run 'src' step 4" in result.stderr
