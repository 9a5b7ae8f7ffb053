"""bench/quality.py's pieces on a tiny budget: recipes, calibration, a trained run scored, the aggregated table."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench import quality
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.config import TrainConfig
from training.recipes import BASE, CANDIDATES, DEFAULT_ROW, PRODUCT, RECIPES, recipe_config


def test_every_recipe_builds_a_valid_config_and_spells_out_the_former_defaults() -> None:
    for name in RECIPES:
        cfg = recipe_config(name, steps=5)
        assert isinstance(cfg, TrainConfig) and cfg.steps == 5
    assert recipe_config("cpu") == TrainConfig()  # the product's cpu recipe is the defaults
    # ...which are the measured row of docs/quality.md, conditioned wherever the collection lists traits
    measured = {**RECIPES[DEFAULT_ROW], "condition": "auto"}
    default = TrainConfig()
    # "auto" augmentation: what train() records for a conditioned run on the benchmark's collection (10,000)
    resolved = {**{k: getattr(default, k) for k in measured},
                "augment": replace(default, condition="traits").resolved_augment(10_000)}
    assert resolved == measured
    # the reference is pytorch/examples' DCGAN: width 64, bce, no EMA, no augmentation, BN in D
    ref = recipe_config("reference")
    assert (ref.base_width, ref.loss, ref.ema, ref.augment, ref.d_norm, ref.mbstd_group, ref.batch_size,
            ref.lr_g, ref.lr_d, ref.beta1) == (64, "bce", 0.0, "none", "batch", 0, 64, 2e-4, 2e-4, 0.5)
    # every candidate states every option BASE names, so a row means the same recipe whatever the defaults
    for name in CANDIDATES:
        assert set(BASE) <= set(RECIPES[name])
    assert {"cpu", "gpu"} <= set(PRODUCT) and set(CANDIDATES) <= set(RECIPES)
    with pytest.raises(NftganError, match="unknown recipe"):
        recipe_config("nope")


def test_the_demo_budget_is_the_demos_training_time() -> None:
    from commands.demo import run_demo

    assert inspect.signature(run_demo).parameters["train_minutes"].default == quality.DEMO_MINUTES
    from commands.demo import DEMO_DEFAULTS, DEMO_RECIPES
    from marketplace.fixture import ARTS

    # the demo trains a measured row of docs/quality.md for each kind of demo collection, and the bench has both
    assert set(DEMO_RECIPES) == set(ARTS) and set(DEMO_RECIPES.values()) <= set(CANDIDATES)
    assert DEMO_DEFAULTS.art in ARTS and {"demo", "demo-pixel"} <= set(quality.ITEMS)


def test_calibration_train_job_scores_and_table(ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    info = quality.build_collection(ws, "pixel", 48, tmp_path / "png")
    assert info["count"] + sum(info["duplicates"].values()) + sum(info["rejected"].values()) == 48
    monkeypatch.setattr(quality, "CALIB_S", 1.0)
    monkeypatch.setattr(quality, "CALIB_WARMUP_S", 0.5)
    cal = quality.calibrate_job(str(ws.root), "pixel", "today")
    assert cal["steps_per_s"] > 0 and cal["threads"] >= 1 and not ws.run("pixel", "calib-today").root.exists()

    out = tmp_path / "out"
    out.mkdir()
    grid_png = tmp_path / "grid.png"
    rec = quality.train_job(str(ws.root), "pixel", "demo", "today", 0, 6, 40, str(out), str(grid_png))
    assert rec["steps"] == 6 and grid_png.stat().st_size > 0
    samples = np.load(rec["samples"])
    assert samples.shape == (40, 3, 32, 32) and samples.dtype == np.uint8
    again = quality.train_job(str(ws.root), "pixel", "demo", "today", 0, 6, 40, str(out), None)
    assert np.array_equal(np.load(again["samples"]), samples)  # fixed seed and latents: same samples

    view = quality.TraitView(ws, "pixel")
    scores = view.scores(samples)
    assert scores["n_fake"] == 40 and scores["sets_n"] == 40 and 1 <= scores["sets_fake"] <= 40
    assert 0 <= scores["coverage"] <= 1 and 0 <= scores["recall"] <= 1
    real = view.scores(np.asarray(__import__("pipeline.cache", fromlist=["open_cache"]).open_cache(ws, "pixel", 32).images[:40]))
    assert real["sets_fake"] > scores["sets_fake"]  # real tokens hold more trait sets than a 6-step generator

    # two seeds of two recipes: means, spreads, the best and what overlaps it in bold
    runs = {}
    for recipe, values in (("today", (0.5, 0.6)), ("reference", (0.2, 0.3))):
        for seed, v in enumerate(values):
            runs[f"pixel/demo/{recipe}/s{seed}"] = {**rec, "recipe": recipe, "seed": seed,
                                                    "traits": {**scores, "trait_match": v}}
    state = {"runs": runs, "calibration": {"today": cal}, "collections": {"pixel": info}, "meta": {}}
    rows = {r["recipe"]: r for r in quality.aggregate(state, "pixel", "demo")}
    mean, std, n = rows["today"]["trait_match"]
    assert (mean, n) == (pytest.approx(0.55), 2) and std == pytest.approx(0.0707, abs=1e-3)
    text = quality.table(state, "pixel", "demo")
    assert "**0.250 ± 0.071**" in text and "| 0.550 ± 0.071 |" in text  # best bold; no overlap: not bold
    json.dumps(state)

    # a conditioned row: its samples' asked trait sets are kept beside them, and its conditional accuracy
    # is scored per trait type against the classifier's ceiling
    cond = quality.train_job(str(ws.root), "pixel", "demo", "demo-w16-b16-cond", 0, 4, 40, str(out), None)
    asked = quality.read_asked(cond["samples"])
    assert asked is not None and len(asked) == 40 and all(set(a) <= set(view.classifier.trait_types) for a in asked)
    assert quality.read_asked(rec["samples"]) is None  # an unconditioned run has none
    cs = view.scores(np.load(cond["samples"]), asked)
    assert 0 <= cs["trait_cond"] <= 1 and set(cs["trait_cond_per_type"]) == set(cs["trait_cond_ceiling"])
    assert "trait_cond" not in scores

    # a pixel-art collection's samples are also scored snapped to its palette, as users get them
    assert view.art is not None
    view.score_record(cond)
    snapped = view.art.snap(np.load(cond["samples"]))
    assert not np.array_equal(snapped, np.load(cond["samples"]))  # the snap changes a 4-step generator's samples
    assert cond["traits_snapped"] == view.scores(snapped, asked) and cond["traits"] == cs
    cstate = {**state, "runs": {f"pixel/demo/demo-w16-b16-cond/s{i}": {**cond, "seed": i} for i in (0, 1)}}
    per_type = quality.cond_table(cstate, "pixel", "demo")
    kind = sorted(cs["trait_cond_per_type"])[0]
    raw_v, snap_v = cs["trait_cond_per_type"][kind], cond["traits_snapped"]["trait_cond_per_type"][kind]
    assert f"| `demo-w16-b16-cond` | 2 | {raw_v:.2f} ± 0.00 / {snap_v:.2f} ± 0.00 |" in per_type
    # the main table again on the snapped view: its trait columns are the snapped samples' scores
    snapped_rows = quality.aggregate(cstate, "pixel", "demo", "traits_snapped")
    assert snapped_rows[0]["trait_fd"][0] == pytest.approx(cond["traits_snapped"]["trait_fd"])
    assert snapped_rows[0]["trait_fd"][0] != pytest.approx(cs["trait_fd"])
    assert "snapped to the collection's grid and palette" in quality.snapped_table(cstate, "pixel", "demo")
    assert quality.snapped_table(state, "pixel", "demo") == ""  # runs without a snapped view: no such table


def test_inception_features_left_by_a_dead_benchmark_are_recognised(tmp_path) -> None:
    """A benchmark process that died after an Inception job wrote its file must not recompute it (7 CPU-minutes)
    nor accept a half-written one."""
    import numpy as np

    from bench.quality import features_done

    path = tmp_path / "f.npy"
    assert not features_done(str(path), 4)
    np.save(path, np.zeros((4, 2048), np.float32))
    assert features_done(str(path), 4) and not features_done(str(path), 5)
    path.write_bytes(path.read_bytes()[:1000])  # torn
    assert not features_done(str(path), 4)


def test_two_benchmark_processes_keep_each_others_newer_records() -> None:
    """Process A read results.json, then B (another stage) replaced a record and added one; when A saves its
    own new record, B's changes stay (A once wrote its stale copy back over B's Inception scores)."""
    from bench.quality import merge_state

    keys = ("runs",)
    read_by_a = {"runs": {"x/s0": {"kid": None}, "x/s1": {"kid": None}}}
    a = json.loads(json.dumps(read_by_a))
    a["runs"]["y/s0"] = {"kid": 0.3}  # A's own new record
    a["runs"]["x/s1"] = {"kid": 0.2}  # and one A changed itself
    disk = {"runs": {"x/s0": {"kid": 0.1}, "x/s1": {"kid": 0.9}, "z/s0": {"kid": 0.5}}}  # B saved meanwhile
    merge_state(a, read_by_a, disk, keys)
    assert a["runs"] == {"x/s0": {"kid": 0.1}, "x/s1": {"kid": 0.2}, "y/s0": {"kid": 0.3}, "z/s0": {"kid": 0.5}}
    # both changed one run, each another field (a final stage its raw KID, a rescore its snapped KID): both kept
    read = {"runs": {"r/s0": {"traits": 1}}}
    a = {"runs": {"r/s0": {"traits": 2, "kid": 0.4}}}
    merge_state(a, read, {"runs": {"r/s0": {"traits": 1, "kid_snapped": 0.3}}}, keys)
    assert a["runs"] == {"r/s0": {"traits": 2, "kid": 0.4, "kid_snapped": 0.3}}
