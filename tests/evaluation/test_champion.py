"""Champion and challenger: real training runs (tiny DCGANs), real evaluation (tiny extractor), the decision
rule, re-scoring under a new protocol, failures that leave the champion, and ``nftgan champion``."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from evaluation.champion import ChampionConfig, challenge, record_failure
from evaluation.config import EvalConfig
from evaluation.extractors import TINY_ID
from evaluation.sweep import evaluate
from pipeline.champion import read_champion
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.config import TrainConfig
from training.train import train

from .conftest import tokens, write_cache

PROTOCOL = ChampionConfig(extractor="tiny", samples=64, device="cpu", metrics=("kid",))


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_train_config(run: str, steps: int, **overrides: Any) -> TrainConfig:
    options = dict(
        size_px=32, base_width=8, z_dim=16, batch_size=16, steps=steps, device="cpu", run=run, amp="off",
        checkpoint_every=steps, log_every=steps, sample_every=0, sample_count=4, lr_g=1e-3, lr_d=1e-3,
    )  # fmt: skip
    return TrainConfig(**{**options, **overrides})


def train_and_evaluate(ws: Workspace, slug: str, run: str, steps: int, *, checkpoints: str = "latest",
                       samples: int = 64, **overrides: Any) -> None:
    """Train run ``run`` for ``steps`` steps, then evaluate its checkpoints (tiny extractor): best.json."""
    train(ws, slug, tiny_train_config(run, steps, **overrides))
    evaluate(ws, slug, run, EvalConfig(checkpoints=checkpoints, samples=samples, metrics=("kid",),
                                       extractor="tiny", device="cpu"))


@pytest.fixture
def weak_champion(ws: Workspace, collection: str) -> str:
    """'punks' with champion 'weak' (1 step of training, promoted as the first champion)."""
    train_and_evaluate(ws, collection, "weak", 1)
    decision = challenge(ws, collection, "weak", PROTOCOL)
    assert decision.promoted and decision.reason == "no champion yet"
    return collection


def test_the_first_challenger_is_promoted_and_recorded(ws, weak_champion):
    record = read_champion(ws, weak_champion)
    assert (record.run, record.step) == ("weak", 1)
    cur = record.current
    assert cur["samples"] == 64 and cur["n_real"] == 48 and cur["extractor"] == TINY_ID
    assert cur["scores"]["kid_mean"] > 0 and cur["scores"]["n_fake"] == 64
    entry = record.history[-1]
    assert entry["decision"] == "promoted" and entry["rule"].startswith("promote when KID_challenger <")
    folder = ws.collection(weak_champion).comparison("weak")
    assert (folder / "challenger.png").is_file() and not (folder / "champion.png").exists()
    assert json.loads((folder / "comparison.json").read_text())["promoted"] is True


def test_a_better_challenger_is_promoted_and_an_equal_one_kept(ws, weak_champion):
    train_and_evaluate(ws, weak_champion, "strong", 60)
    decision = challenge(ws, weak_champion, "strong", PROTOCOL)
    assert decision.promoted, decision.reason
    assert decision.reason.startswith("better than the champion by more than the margin: KID ")
    assert not decision.champion_rescored  # same protocol: weak's recorded numbers were reused
    assert decision.challenger_scores["kid_mean"] < decision.champion_scores["kid_mean"] - decision.margin
    assert decision.champion_grid.is_file() and decision.challenger_grid.is_file()
    rows = {r["metric"]: r for r in decision.table()}
    assert rows["KID"]["champion"] == decision.champion_scores["kid_mean"]
    assert rows["generated"] == {"metric": "generated", "champion": 64, "challenger": 64}
    assert (read_champion(ws, weak_champion).run, read_champion(ws, weak_champion).step) == ("strong", 60)

    # the same training again under another name: the same weights, no better -> kept, with the numbers
    train_and_evaluate(ws, weak_champion, "again", 60)
    kept = challenge(ws, weak_champion, "again", PROTOCOL)
    assert not kept.promoted
    assert kept.reason.startswith("not better than the champion: KID ") and "margin" in kept.reason
    record = read_champion(ws, weak_champion)
    assert (record.run, record.step) == ("strong", 60)
    assert [e["decision"] for e in record.history] == ["promoted", "promoted", "kept"]
    assert record.history[-1]["champion_scores"]["kid_mean"] == kept.champion_scores["kid_mean"]
    assert challenge(ws, weak_champion, "strong", PROTOCOL).reason == "strong@60 is already the champion"


def test_the_champion_is_rescored_under_another_protocol_and_the_numbers_are_reused_after(ws, weak_champion):
    train_and_evaluate(ws, weak_champion, "again", 1)  # the same weights as the champion
    other_samples = ChampionConfig(extractor="tiny", samples=80, device="cpu", metrics=("kid",))
    first = challenge(ws, weak_champion, "again", other_samples)
    assert first.champion_rescored and first.champion_scores["n_fake"] == 80
    assert first.champion_scores["kid_mean"] == first.challenger_scores["kid_mean"]  # same weights, same latents
    assert not first.promoted
    second = challenge(ws, weak_champion, "again", other_samples)
    assert not second.champion_rescored and second.champion_scores == first.champion_scores

    write_cache(ws, weak_champion, tokens(50, seed=7))  # a refresh: the real images changed
    train_and_evaluate(ws, weak_champion, "fresh", 1)
    third = challenge(ws, weak_champion, "fresh", PROTOCOL)
    assert third.champion_rescored and third.champion_scores["n_real"] == 50
    assert third.protocol["cache_hash"] != read_champion(ws, weak_champion).current["cache_hash"]


def test_failures_never_touch_the_champion(ws, weak_champion, monkeypatch):
    before = read_champion(ws, weak_champion).current
    record = record_failure(ws, weak_champion, "r2", "evaluate", RuntimeError("out of memory\ntraceback..."))
    assert record.current == before
    assert record.history[-1]["decision"] == "failed"
    assert record.history[-1]["reason"] == "evaluate failed: RuntimeError: out of memory"

    def crash(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr("training.train.gan_step", crash)
    with pytest.raises(RuntimeError) as e:
        train(ws, weak_champion, tiny_train_config("crashed", 4))
    record_failure(ws, weak_champion, "crashed", "train", e.value)
    with pytest.raises(NftganError, match="run 'crashed' has no best checkpoint: evaluate it first"):
        challenge(ws, weak_champion, "crashed", PROTOCOL)
    with pytest.raises(NftganError, match="no run 'ghost'"):
        challenge(ws, weak_champion, "ghost", PROTOCOL)
    record = read_champion(ws, weak_champion)
    assert record.current == before
    assert [e["decision"] for e in record.history] == ["promoted", "failed", "failed"]


def test_a_lost_champion_checkpoint_makes_the_challenger_pass_on_its_own(ws, weak_champion):
    ws.run(weak_champion, "weak").checkpoint(1).unlink()
    train_and_evaluate(ws, weak_champion, "barely", 1, seed=3)
    kept = challenge(ws, weak_champion, "barely", PROTOCOL)  # no better than an untrained generator
    assert not kept.promoted and "could not be scored (its checkpoint" in kept.reason
    assert "kept: " in kept.reason and kept.baseline_scores is not None and kept.champion_scores is None
    assert read_champion(ws, weak_champion).run == "weak"
    train_and_evaluate(ws, weak_champion, "strong", 60)
    promoted = challenge(ws, weak_champion, "strong", PROTOCOL)
    assert promoted.promoted and "promoted on its own: better than an untrained generator" in promoted.reason
    assert read_champion(ws, weak_champion).run == "strong"


def test_champion_cli(cli, ws, collection):
    assert cli("champion", "nobody").exit_code == 2
    result = cli("champion", collection)
    assert result.exit_code == 0 and "punks: no champion yet" in result.stdout
    train_and_evaluate(ws, collection, "r", 2)
    args = ["--extractor", "tiny", "--samples", "64", "--device", "cpu"]
    result = cli("champion", collection, "--challenge", "r", *args)
    assert result.exit_code == 0, result.stderr
    assert "challenger r@2 PROMOTED: no champion yet" in result.stdout and "rule: promote when" in result.stdout
    result = cli("champion", collection, "--challenge", "r", *args, "--json")
    assert json.loads(result.stdout)["reason"] == "r@2 is already the champion"
    result = cli("champion", collection)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("punks: champion r@2 since ") and "64 generated vs 48 real" in lines[0]
    assert lines[1] == "history:" and lines[2].endswith("  r@2  promoted: no champion yet")
    assert lines[3].endswith("  r@2  kept: r@2 is already the champion")
    doc = json.loads(cli("champion", collection, "--json").stdout)
    assert doc["current"]["run"] == "r" and len(doc["history"]) == 2
    result = cli("champion", collection, "--challenge", "ghost", *args)
    assert result.exit_code == 2 and "no run 'ghost'" in result.stderr
    result = cli("champion", collection, "--challenge", "r", "--extractor", "nope")
    assert result.exit_code == 2 and "--extractor must be one of" in result.stderr


# -- the refresh experiment (run by hand; the integrator's end-to-end test) ---------------------------------
def refresh_experiment(ws: Workspace, slug: str = "exp", *, steps: int = 400, n: int = 200,
                       samples: int = 256, seed: int = 1, **train_options: Any) -> dict[str, Any]:
    """Train ``steps`` steps to a champion, add 5% images, warm-start for ``steps // 4`` steps from the
    champion (and, to compare, a fresh run of ``steps // 4``), evaluate every checkpoint as the refresh flow
    does and challenge the champion with each run's best. Returns the KIDs, the decisions and the seconds.

    ``warm_reaches_champion``: the warm run's best is within the rule's noise margin of the champion (or
    better). A GAN's KID swings from checkpoint to checkpoint far more than the sampling noise, so a single
    last checkpoint rarely matches the champion (itself a best-of); the best of a few checkpoints does."""
    images = tokens(n + n // 20, seed=seed)
    protocol = ChampionConfig(extractor="tiny", samples=samples, device="cpu", metrics=("kid",))
    times = {}
    write_cache(ws, slug, images[:n])
    t = time.perf_counter()
    train_and_evaluate(ws, slug, "base", steps, samples=samples, **train_options)
    times["base_train_s"] = time.perf_counter() - t
    first = challenge(ws, slug, "base", protocol)
    write_cache(ws, slug, images)  # the refresh: 5% more images
    t = time.perf_counter()
    every = dict(checkpoints="all", samples=samples, checkpoint_every=max(1, steps // 16), keep_last=100,
                 **train_options)
    train_and_evaluate(ws, slug, "warm", steps // 4, warm_start="champion", **every)
    times["warm_train_s"] = time.perf_counter() - t
    t = time.perf_counter()
    train_and_evaluate(ws, slug, "cold", steps // 4, **every)
    times["cold_train_s"] = time.perf_counter() - t
    warm = challenge(ws, slug, "warm", protocol)
    cold = challenge(ws, slug, "cold", protocol)
    return {
        "steps": steps, "warm_steps": steps // 4, "n_before": n, "n_after": len(images),
        "champion_kid_at_promotion": first.challenger_scores["kid_mean"],
        "champion_kid_on_new_cache": warm.champion_scores["kid_mean"],
        "warm_kid": warm.challenger_scores["kid_mean"], "warm_noise": warm.challenger_scores["kid_noise"],
        "warm_best_step": warm.step, "cold_best_step": cold.step, "margin": warm.margin,
        "warm_reaches_champion": warm.challenger_scores["kid_mean"] <= warm.champion_scores["kid_mean"] + warm.margin,
        "cold_kid": cold.challenger_scores["kid_mean"], "warm_decision": warm.decision,
        "warm_reason": warm.reason, "cold_reason": cold.reason, **{k: round(v, 1) for k, v in times.items()},
    }


def test_a_decision_against_a_champion_that_changed_meanwhile_is_refused(ws, weak_champion, monkeypatch):
    """Two refreshes challenge champion 'weak'; the first one's promotion lands while the second is scoring:
    the second decision must not replace a champion it was never compared with."""
    import evaluation.champion as module
    from pipeline.champion import record_decision as real_record

    train_and_evaluate(ws, weak_champion, "other", 2)

    def promote_someone_first(ws_, slug, entry, **kwargs):
        real_record(ws_, slug, {"decision": "promoted", "run": "weak", "step": 0},
                    new_current={"run": "weak", "step": 0})  # the champion moves under our feet
        return real_record(ws_, slug, entry, **kwargs)

    monkeypatch.setattr(module, "record_decision", promote_someone_first)
    with pytest.raises(NftganError, match="changed while other was being compared"):
        challenge(ws, weak_champion, "other", PROTOCOL)
    assert read_champion(ws, weak_champion).current["step"] == 0  # untouched by the refused decision


def test_the_margin_rule_with_known_numbers() -> None:
    """The rule in numbers: promote only when KID_new < KID_champion - max(5% of it, 2 sigma of the noise)."""
    from evaluation.champion import ChampionConfig, _compare

    cfg = ChampionConfig()
    assert (cfg.rel_margin, cfg.sigmas) == (0.05, 2.0)

    def verdict(new_kid: float, base_noise: float = 0.0, new_noise: float = 0.0) -> tuple[bool, float]:
        promoted, margin, _ = _compare({"kid_mean": 0.100, "kid_noise": base_noise},
                                       {"kid_mean": new_kid, "kid_noise": new_noise}, cfg, "the champion")
        return promoted, margin

    # the relative term: 5% of 0.100 is 0.005 (noise negligible)
    assert verdict(0.0949) == (True, pytest.approx(0.005))
    assert verdict(0.0951)[0] is False  # better, but by less than 5%
    assert verdict(0.100)[0] is False and verdict(0.2)[0] is False
    # the noise term: sigmas 0.003 and 0.004 combine to 0.005, times 2 is 0.010, which beats the 5%
    assert verdict(0.0899, 0.003, 0.004) == (True, pytest.approx(0.010))
    assert verdict(0.0901, 0.003, 0.004)[0] is False
    assert verdict(float("nan"))[0] is False
    _, _, why = _compare({"kid_mean": 0.1, "kid_noise": 0.0}, {"kid_mean": 0.098, "kid_noise": 0.0}, cfg, "x")
    assert "within the noise margin" in why and "margin 0.005" in why


def test_the_sweep_and_the_champion_decision_score_a_checkpoint_alike(ws, collection):
    """One scorer: the champion's KID of a checkpoint is the sweep's KID of it under the same protocol (same
    latents, features and metric), not a second computation that could drift from it."""
    train(ws, collection, tiny_train_config("same", 3))
    summary = evaluate(ws, collection, "same", EvalConfig(checkpoints="latest", samples=64, metrics=("kid",),
                                                          extractor="tiny", device="cpu", seed=7))
    sweep_kid = summary.records[-1]["kid_mean"]
    decision = challenge(ws, collection, "same", ChampionConfig(extractor="tiny", samples=64, device="cpu",
                                                                metrics=("kid",), seed=7))
    assert decision.challenger_scores["kid_mean"] == sweep_kid
    other = challenge(ws, collection, "same", ChampionConfig(extractor="tiny", samples=64, device="cpu",
                                                             metrics=("kid",), seed=8))
    assert other.challenger_scores["kid_mean"] != sweep_kid  # the seed is the latents: the check can fail
