"""The sweep over a run's checkpoints: records, best checkpoint, report, reuse and resume (tiny extractor)."""

from __future__ import annotations

import json

import pytest

from evaluation import EvalConfig, evaluate
from pipeline.errors import NftganError

from .conftest import save_generator_checkpoint

TINY = dict(extractor="tiny", samples=24, batch_size=16, device="cpu")


def _records(run) -> dict[int, dict]:
    doc = json.loads(run.eval.metrics.read_text())
    return {r["step"]: r for r in doc["records"]}


def test_every_checkpoint_gets_one_full_record_and_the_best_is_marked(ws, collection, run):
    from training.checkpoints import best_step, load_generator

    summary = evaluate(ws, collection, run.name, EvalConfig(**TINY))
    records = _records(run)
    assert sorted(records) == [100, 200, 300] == list(summary.evaluated_steps)
    for r in records.values():
        assert r["n_real"] == 48 and r["n_fake"] == 24
        assert r["extractor"] == "tiny-v1-pool16-proj64" and r["comparable_to_published"] is False
        assert len(r["weights_sha256"]) == 64 and r["fid_biased"] is True
        for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "memorization_share"):
            assert isinstance(r[key], float)
        assert r["seconds"]["total"] > 0 and r["real_content_hash"] == summary.records[0]["real_content_hash"]
    winner = min(records.values(), key=lambda r: r["fid"])
    assert summary.best == {"step": winner["step"], "metric": "fid", "value": winner["fid"]}
    assert best_step(run) == winner["step"]  # what `nftgan sample --checkpoint best` reads
    assert load_generator(run, "best").step == winner["step"]
    assert json.loads(run.eval.config.read_text())["samples"] == 24
    assert json.loads(json.dumps(summary.to_dict()))["best_step"] == winner["step"]  # small and JSON-able


def test_report_has_the_curve_the_best_samples_and_the_memorization_panel(ws, collection, run):
    summary = evaluate(ws, collection, run.name, EvalConfig(**TINY))
    paths, best = run.eval, summary.best_step
    report = paths.report.read_text()
    for picture in (paths.curves, paths.samples(best), paths.panel(best)):
        assert picture.is_file() and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({picture.name})" in report
    assert paths.best_samples.read_bytes() == paths.samples(best).read_bytes()
    assert "NOT comparable to published" in report and f"Best checkpoint: step {best}" in report
    assert "biased" in report
    table = paths.nearest(best).read_text().splitlines()
    assert len(table) == 1 + 24 and table[0].startswith("fake_index,real_index,real_item_id")
    assert 101 <= int(table[1].split(",")[2]) <= 148  # catalog item ids from the cache manifest


def test_kid_without_a_spread_is_explained_not_shown_as_zero(ws, collection, run):
    evaluate(ws, collection, run.name, EvalConfig(**{**TINY, "samples": 48, "checkpoints": "latest"}))  # 48 real
    report = run.eval.report.read_text()
    assert "KID without ±" in report and "± 0.000" not in report
    assert all(r["kid_std"] is None for r in _records(run).values())


def test_a_second_evaluation_reuses_the_real_features_and_the_scored_checkpoints(ws, collection, run):
    first = evaluate(ws, collection, run.name, EvalConfig(**TINY))
    second = evaluate(ws, collection, run.name, EvalConfig(**TINY))
    assert not first.real_cache_hit and second.real_cache_hit
    assert second.evaluated_steps == () and second.reused_steps == (100, 200, 300)
    assert second.records == first.records

    save_generator_checkpoint(run, 400, seed=400)  # training went on
    third = evaluate(ws, collection, run.name, EvalConfig(**TINY, checkpoints="latest"))
    assert third.evaluated_steps == (400,) and third.real_cache_hit
    assert sorted(_records(run)) == [100, 200, 300, 400]
    assert [r["step"] for r in third.records] == [100, 200, 300, 400]  # best chosen among all of them

    other = evaluate(ws, collection, run.name, EvalConfig(**{**TINY, "samples": 30}, checkpoints="200"))
    assert other.evaluated_steps == (200,) and [r["step"] for r in other.records] == [200]
    assert _records(run)[200]["n_fake"] == 30


def test_an_interrupted_sweep_resumes_without_scoring_a_checkpoint_twice(ws, collection, run):
    class Stop(Exception):
        pass

    def stop_after_first(event: dict) -> None:
        if event["event"] == "checkpoint_done":
            raise Stop

    with pytest.raises(Stop):
        evaluate(ws, collection, run.name, EvalConfig(**TINY), progress=stop_after_first)
    assert sorted(_records(run)) == [100]
    events = []
    resumed = evaluate(ws, collection, run.name, EvalConfig(**TINY), progress=events.append)
    assert resumed.reused_steps == (100,) and resumed.evaluated_steps == (200, 300)
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [200, 300]
    assert any(e["event"] == "fake_features" and e["done"] == e["total"] == 24 for e in events)


def test_the_same_seed_gives_the_same_numbers(ws, collection, run):
    a = evaluate(ws, collection, run.name, EvalConfig(**TINY, checkpoints="100"))
    run.eval.metrics.unlink()
    b = evaluate(ws, collection, run.name, EvalConfig(**TINY, checkpoints="100"))
    assert b.evaluated_steps == (100,)
    assert a.records[0]["fid"] == b.records[0]["fid"] and a.records[0]["kid_mean"] == b.records[0]["kid_mean"]


def test_memorization_only_marks_no_best(ws, collection, run):
    summary = evaluate(ws, collection, run.name, EvalConfig(**TINY, metrics=("memorization",)))
    assert summary.best is None and "memorization_share" in summary.records[0]
    assert "fid" not in summary.records[0]
    assert run.eval.report.is_file()


def test_user_mistakes_are_one_line_errors(ws, collection, run):
    with pytest.raises(NftganError, match="no run 'nope'"):
        evaluate(ws, collection, "nope", EvalConfig(**TINY))
    with pytest.raises(NftganError, match=r"no complete checkpoint at step\(s\) \[150\]"):
        evaluate(ws, collection, run.name, EvalConfig(**TINY, checkpoints="100,150"))
    with pytest.raises(NftganError, match="--checkpoints must be"):
        EvalConfig(checkpoints="best")
    with pytest.raises(NftganError, match="--samples must be at least 6"):
        EvalConfig(samples=3)
    with pytest.raises(NftganError, match="--metrics takes"):
        EvalConfig(metrics=("fid", "inception_score"))
    with pytest.raises(NftganError, match="--weights is for the inception extractor"):
        EvalConfig(extractor="tiny", weights="/x.pth")
    empty = ws.run(collection, "empty")
    empty.root.mkdir(parents=True)
    with pytest.raises(NftganError, match="no complete checkpoint to evaluate"):
        evaluate(ws, collection, "empty", EvalConfig(**TINY))


def test_a_run_without_a_cache_of_its_size_says_to_prepare(ws, run):
    import shutil

    shutil.rmtree(ws.collection(run.slug).cache_dir(32))
    with pytest.raises(NftganError, match="nftgan prepare punks --size 32"):
        evaluate(ws, run.slug, run.name, EvalConfig(**TINY))


def test_kill_9_mid_sweep_then_rerun_scores_each_checkpoint_once(ws, collection, run):
    import os
    import signal
    import subprocess
    import sys
    import time

    for step in (400, 500):
        save_generator_checkpoint(run, step, seed=step)
    metrics_file = run.eval.metrics
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "--home", str(ws.root), "evaluate", collection, run.name,
         "--extractor", "tiny", "--samples", "600", "--metrics", "fid,memorization", "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not (metrics_file.is_file() and _records(run)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed: give it more work"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sorted(_records(run))
    assert 0 < len(done_before) < 5

    resumed = evaluate(ws, collection, run.name,
                       EvalConfig(extractor="tiny", samples=600, metrics=("fid", "memorization"), device="cpu"))
    assert list(resumed.reused_steps) == done_before
    assert sorted(resumed.reused_steps + resumed.evaluated_steps) == [100, 200, 300, 400, 500]
    assert [r["step"] for r in json.loads(metrics_file.read_text())["records"]] == [100, 200, 300, 400, 500]
    assert not [p.name for p in run.eval.root.iterdir() if ".tmp" in p.name]  # no half-written files left


def test_a_run_trained_on_another_cache_is_refused_unless_allowed_and_both_hashes_are_recorded(ws, collection):
    from pipeline.cache import open_cache
    from training.checkpoints import save_checkpoint
    from training.config import TrainConfig
    from training.models import make_generator

    current = open_cache(ws, collection, 32).content_hash
    config = TrainConfig(size_px=32, base_width=4, z_dim=8)
    g = make_generator(config.arch, config.size_px, config.z_dim, config.resolved_widths())
    for name, trained_on in (("same", current), ("older", "0" * 64)):
        save_checkpoint(ws.run(collection, name), {"step": 10, "config": config.to_dict(), "generator": g.state_dict(),
                                                  "ema": g.state_dict(), "cache_content_hash": trained_on})
    same = evaluate(ws, collection, "same", EvalConfig(**TINY))
    assert same.trained_on == same.cache_hash == current
    assert "(the same cache)" in ws.run(collection, "same").eval.report.read_text()
    with pytest.raises(NftganError, match="re-prepared since.*--allow-other-cache"):
        evaluate(ws, collection, "older", EvalConfig(**TINY))
    older = evaluate(ws, collection, "older", EvalConfig(**TINY, allow_other_cache=True))
    assert (older.trained_on, older.cache_hash) == ("0" * 64, current)
    assert older.to_dict()["trained_on_cache_hash"] == "0" * 64
    assert "a different cache than the real images" in ws.run(collection, "older").eval.report.read_text()
