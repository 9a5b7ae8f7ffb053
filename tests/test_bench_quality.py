"""bench/quality.py's pieces on a tiny budget: collection, one recipe trained by CPU budget, scores, doc block."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import quality
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.config import TrainConfig
from training.recipes import CANDIDATES, PRODUCT, RECIPES, recipe_config


def test_every_recipe_builds_a_valid_config() -> None:
    for name in RECIPES:
        cfg = recipe_config(name, steps=5)
        assert isinstance(cfg, TrainConfig) and cfg.steps == 5
    # the baseline is the former defaults (width 64); today's defaults are the measured "cpu" recipe
    assert recipe_config("baseline") == TrainConfig(base_width=64)
    assert recipe_config("cpu") == TrainConfig() and TrainConfig().base_width == 16
    assert {"cpu", "gpu"} <= set(PRODUCT) and set(CANDIDATES) <= set(RECIPES)
    assert recipe_config("hinge-sn").spectral_norm and recipe_config("hinge-sn").loss == "hinge"
    with pytest.raises(NftganError, match="unknown recipe"):
        recipe_config("nope")


def test_collection_train_job_scores_and_doc_block(ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    info = quality.build_collection(ws, "pixel", 40, tmp_path / "png")
    assert info["count"] + sum(info["duplicates"].values()) + sum(info["rejected"].values()) == 40
    assert ws.collection("pixel").cache_traits(quality.SIZE_PX).is_file()  # traits reached the cache

    out = tmp_path / "out"
    out.mkdir()
    real = quality.real_features_job(str(ws.root), "pixel", 30, "tiny", str(out))
    assert real["n_real"] == 30 and real["n_real_tiny"] == info["count"]
    grid_png = tmp_path / "grid.png"
    # budget 0 CPU s: only the calibration steps (a budget never cuts a run below them)
    rec = quality.train_job(str(ws.root), "pixel", "width-16", 0, 0.0, 4, 32, 32, "tiny", str(out), str(grid_png))
    assert rec["steps"] == 4 and rec["steps_per_cpu_s"] > 0
    assert rec["train_cpu_s"] > 0 and grid_png.stat().st_size > 0
    samples = np.load(rec["samples"])
    assert samples.shape == (32, 3, 32, 32) and samples.dtype == np.uint8
    again = quality.train_job(str(ws.root), "pixel", "width-16", 0, 0.0, 4, 32, 32, "tiny", str(out), str(grid_png))
    assert np.array_equal(np.load(again["samples"]), samples)  # fixed seed and latents: same samples

    state = {"recipes": {"pixel/width-16/s0": rec, "pixel/baseline/s0": {**rec, "recipe": "baseline"}},
             "real": {"pixel": real}, "collections": {"pixel": info},
             "meta": {"date": "2026-01-01", "machine": "m", "torch": "t", "command": "c", "load_start": 0.0,
                      "load_end": 0.0, "budget_cpu_s": {"pixel": 2.0, "demo": 1.0}, "inception_fake": 32,
                      "n_samples": 32}}
    np.save(out / "pixel-baseline-s0-tiny.npy", np.load(out / "pixel-width-16-s0-tiny.npy"))
    quality.score(state, out, ws, "tiny", traits=False)
    k = state["recipes"]["pixel/width-16/s0"]["kid_inception"]
    # with --extractor tiny the "Inception" files are the tiny ones: every real row, all 32 samples
    assert k["n_fake"] == 32 and k["n_real"] == info["count"] and np.isfinite(k["kid"])
    text = quality.table(state, "pixel")
    assert "`width-16`" in text and "+0%" in text  # same features as the baseline: 0% difference

    doc = tmp_path / "quality.md"
    doc.write_text("# Title\n\nprose before\n\n<!-- quality:results -->\nold\n<!-- /quality:results -->\n\nafter\n")
    monkeypatch.setattr(quality, "DOC", doc)
    quality.write_doc(state)
    body = doc.read_text()
    assert "prose before" in body and "after" in body and "old" not in body and "`width-16`" in body
    json.dumps(state)  # what results.json holds stays JSON
