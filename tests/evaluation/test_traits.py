"""The collection's own metric: a trait classifier on a trait-layered collection, trait FD, trait match, --select-by.

One 32 px collection of 256 pixel-art tokens (marketplace.pixelcollection: weighted, rare traits) with its
traits.csv, and its classifier trained once for the module (default settings, so ``evaluate`` reuses it).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageFilter

from evaluation import EvalConfig, evaluate
from evaluation.traits import NONE, fit_trait_classifier, trait_frequency_match, trait_scores
from marketplace import pixelcollection as pc
from pipeline.cache import open_cache
from pipeline.errors import NftganError
from pipeline.workspace import Workspace

from .conftest import save_generator_checkpoint, write_cache

SLUG, SIZE, N = "pixels", 32, 256
UNLABELLED = (7, 99)  # rows whose traits were never listed
TINY = dict(extractor="tiny", samples=24, batch_size=16, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's cores are shared: one thread is several times faster
    yield
    torch.set_num_threads(before)


def write_traits(ws: Workspace, slug: str, size_px: int, traits: list[dict[str, str] | None]) -> None:
    """traits.csv as ``prepare`` writes it: row, item_id, token_id, one column per trait type ('' = absent)."""
    kinds = sorted({k for t in traits if t for k in t})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["row", "item_id", "token_id", *kinds])
    for row, t in enumerate(traits):
        writer.writerow([row, 101 + row, row, *((t or {}).get(k, "") for k in kinds)])
    ws.collection(slug).cache_traits(size_px).write_text(buf.getvalue())


@pytest.fixture(scope="module")
def traits_ws(tmp_path_factory) -> tuple[Workspace, list[dict[str, str] | None]]:
    ws = Workspace(tmp_path_factory.mktemp("traits-ws"))
    images = np.stack([
        np.asarray(pc.render_item(i, seed=3).resize((SIZE, SIZE), Image.Resampling.NEAREST)).transpose(2, 0, 1)
        for i in range(N)
    ])
    write_cache(ws, SLUG, images)
    traits: list[dict[str, str] | None] = [
        {**pc.item_traits(i, seed=3), "Name": f"Pixel #{i}", "Type": "Pixel"} for i in range(N)]
    for row in UNLABELLED:
        traits[row] = None
    write_traits(ws, SLUG, SIZE, traits)
    return ws, traits


@pytest.fixture(scope="module")
def classifier(traits_ws):
    ws, _ = traits_ws
    return fit_trait_classifier(ws, SLUG, SIZE, device="cpu")


def blurred(images: np.ndarray) -> np.ndarray:
    return np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0))).filter(ImageFilter.GaussianBlur(1)))
        .transpose(2, 0, 1) for x in images
    ])


def test_the_classifier_learns_the_traits_well_above_the_majority_baseline(traits_ws, classifier):
    ws, traits = traits_ws
    c = classifier
    assert c is not None
    # the identifier and the constant are dropped with their reasons, every drawn trait type is learned
    assert set(c.meta["dropped"]) == {"Name", "Type"}
    assert "identifier" in c.meta["dropped"]["Name"] and "one value" in c.meta["dropped"]["Type"]
    assert set(c.trait_types) == {k for t in traits if t for k in t} - {"Name", "Type"}
    assert c.meta["unlabelled_rows"] == len(UNLABELLED)
    held = c.heldout_rows
    assert 0.1 * N <= len(held) <= 0.2 * N and not set(held.tolist()) & set(UNLABELLED)
    for kind in ("Background", "Hair", "Eyes", "Skin"):
        assert c.accuracy[kind] >= c.baseline[kind] + 0.3, (kind, c.accuracy[kind], c.baseline[kind])
    summary = c.summary()
    assert summary["heldout_accuracy_mean"] > summary["majority_baseline_mean"] + 0.15
    # every value is a class however rare; an absent trait type is the class NONE
    for kind in c.trait_types:
        assert set(c.classes[kind]) == {(t or {}).get(kind, NONE) for t in traits if t}
    assert NONE in c.classes["Hair Color"] and NONE not in c.classes["Background"]
    # rows carrying a value with fewer than 5 examples are always trained on, never held out
    counts = {k: Counter((t or {}).get(k, NONE) for t in traits if t) for k in c.trait_types}
    assert any(n < 5 for k in c.trait_types for n in counts[k].values())  # the collection has such values
    assert all(counts[k][traits[r].get(k, NONE)] >= 5 for r in held for k in c.trait_types)
    # predict: trait type -> value, absent types left out, values from the collection
    images = open_cache(ws, SLUG, SIZE).images
    predicted = c.predict(images[held])
    right = [p.get("Background") == traits[r]["Background"] for p, r in zip(predicted, held)]
    assert np.mean(right) > 0.8
    assert all(NONE not in p.values() for p in predicted)
    assert c.features(images[:5]).shape == (5, c.feature_dims)


def test_the_classifier_is_cached_by_content_and_reloaded_with_weights_only(traits_ws, classifier):
    import torch

    ws, traits = traits_ws
    path = ws.collection(SLUG).trait_classifier(classifier.key)
    assert path.is_file()
    saved = torch.load(path, weights_only=True)  # no pickled code in it
    assert json.loads(json.dumps(saved["meta"]))["accuracy"] == classifier.accuracy
    stamp = path.stat().st_mtime_ns
    again = fit_trait_classifier(ws, SLUG, SIZE)
    assert path.stat().st_mtime_ns == stamp and again.key == classifier.key  # reused, not retrained
    images = np.asarray(open_cache(ws, SLUG, SIZE).images[:16])
    np.testing.assert_allclose(again.features(images), classifier.features(images), rtol=1e-5, atol=1e-5)
    # other settings are another classifier
    from evaluation.traits import TraitClassifierConfig, classifier_key, read_trait_table

    cache = open_cache(ws, SLUG, SIZE)
    table = read_trait_table(ws, SLUG, SIZE, cache)
    assert classifier_key(cache, table, TraitClassifierConfig(), 0) == classifier.key
    assert classifier_key(cache, table, TraitClassifierConfig(feature_dims=64), 0) != classifier.key
    assert classifier_key(cache, table, TraitClassifierConfig(), 1) != classifier.key


def test_trait_fd_ranks_real_heldout_images_far_better_than_blurred_or_mode_collapsed(traits_ws, classifier):
    ws, _ = traits_ws
    held = np.asarray(open_cache(ws, SLUG, SIZE).images[classifier.heldout_rows])
    real = trait_scores(ws, SLUG, SIZE, held)
    blur = trait_scores(ws, SLUG, SIZE, blurred(held))
    collapsed = trait_scores(ws, SLUG, SIZE, np.repeat(held[:1], len(held), 0))
    assert real["trait_fd"] * 3 < blur["trait_fd"], (real["trait_fd"], blur["trait_fd"])
    assert real["trait_fd"] * 5 < collapsed["trait_fd"], (real["trait_fd"], collapsed["trait_fd"])
    assert real["trait_fd_n_real"] == N and real["trait_fd_n_fake"] == len(held)
    assert real["trait_match_n_real"] == N - len(UNLABELLED) and real["trait_match_n_fake"] == len(held)
    assert real["trait_classifier"]["heldout_accuracy"] == classifier.accuracy
    assert real["trait_match"] < 0.2 < 0.4 < collapsed["trait_match"]
    assert collapsed["trait_rare"]["rare_share_fake"] == 0 < collapsed["trait_rare"]["rare_share_real"]


def test_trait_match_is_zero_for_the_collection_against_itself(traits_ws, classifier):
    ws, traits = traits_ws
    labels = [{k: v for k, v in t.items() if k in classifier.trait_types} for t in traits if t]
    itself = trait_frequency_match(labels, labels)
    assert itself["trait_match"] == 0.0 and set(itself["tv"].values()) == {0.0}
    assert itself["rare_share_fake"] == itself["rare_share_real"] > 0 and itself["rare_values"] > 0
    assert trait_frequency_match(labels, list(reversed(labels)))["trait_match"] == 0.0  # frequencies, not order
    collapsed = trait_frequency_match(labels, [labels[0]] * 50)
    assert collapsed["trait_match"] > 0.4 and collapsed["rare_share_fake"] in (0.0, 1.0)
    # a collapsed generator draws one trait set (of 50 real ones) and at most its own rare values
    assert collapsed["distinct_sets_fake"] == 1 and collapsed["distinct_sets_n"] == 50
    assert collapsed["distinct_sets_real"] == len({tuple(sorted(x.items())) for x in itself_sample(labels, 50)})
    assert collapsed["rare_values_drawn"] <= 1 < itself["rare_values_drawn"] == itself["rare_values"]
    # the classifier's labels of the collection come close to its own labels (its error is the floor)
    images = open_cache(ws, SLUG, SIZE).images
    rows = [i for i, t in enumerate(traits) if t]
    assert trait_frequency_match(labels, classifier.predict(images[rows]))["trait_match"] < 0.08


def itself_sample(labels, n):
    """The real subset trait_frequency_match counts distinct sets on (seeded, as many as the other side)."""
    pick = np.sort(np.random.default_rng(0).permutation(len(labels))[:n])
    return [labels[i] for i in pick]


def test_trait_frequency_match_by_hand():
    real = [{"Hat": "Cap"}, {"Hat": "Cap"}, {}, {"Hat": "Crown", "Eyes": "VR"}]
    fake = [{"Hat": "Cap"}, {}, {}, {}]
    out = trait_frequency_match(real, fake, rare_below=0.3)
    # Hat: real Cap .5 none .25 Crown .25, fake Cap .25 none .75 -> TV .5; Eyes: real VR .25 none .75 vs none 1 -> .25
    assert out["tv"] == {"Eyes": 0.25, "Hat": 0.5} and out["trait_match"] == 0.375
    assert out["rare_values"] == 2 and out["rare_share_real"] == 0.25 and out["rare_share_fake"] == 0.0
    with pytest.raises(NftganError):
        trait_frequency_match(real, [])


def test_evaluate_records_the_trait_metrics_and_select_by_picks_by_them(traits_ws, classifier):
    from training.checkpoints import best_step

    ws, _ = traits_ws
    run = ws.run(SLUG, "r-traits")
    for step in (100, 200, 300):
        save_generator_checkpoint(run, step, seed=step)
    summary = evaluate(ws, SLUG, run.name, EvalConfig(**TINY, select_by="trait_fd"))
    records = {r["step"]: r for r in json.loads(run.eval.metrics.read_text())["records"]}
    for r in records.values():
        assert r["trait_fd_n_real"] == N and r["trait_fd_n_fake"] == 24
        assert r["trait_match_n_real"] == N - len(UNLABELLED) and r["trait_match_n_fake"] == 24
        assert r["trait_classifier"]["heldout_accuracy"] == classifier.accuracy and "skipped" not in r
        assert isinstance(r["trait_fd"], float) and 0 <= r["trait_match"] <= 1 and "fid" in r
    by_fd = min(records.values(), key=lambda r: r["trait_fd"])["step"]
    assert summary.best == {"step": by_fd, "metric": "trait_fd", "value": records[by_fd]["trait_fd"]}
    assert best_step(run) == by_fd
    report = run.eval.report.read_text()
    assert "The collection's own metric" in report and "held-out accuracy" in report
    assert f"| Background | {len(classifier.classes['Background'])} | {classifier.accuracy['Background']:.1%}" in report
    assert "trait classifier: held-out accuracy" in summary.describe()

    for select_by, field in (("trait_match", "trait_match"), ("fid", "fid"), ("kid", "kid_mean")):
        again = evaluate(ws, SLUG, run.name, EvalConfig(**TINY, select_by=select_by))
        assert again.evaluated_steps == ()  # the choice of the best does not rescore anything
        winner = min(records.values(), key=lambda r: (r[field], r["step"]))["step"]
        assert again.best["step"] == winner == best_step(run) and again.best["metric"] == field


def test_a_collection_without_traits_evaluates_as_before_with_a_note(ws, collection, run):
    assert fit_trait_classifier(ws, collection, 32) is None
    summary = evaluate(ws, collection, run.name, EvalConfig(**TINY))
    for r in json.loads(run.eval.metrics.read_text())["records"]:
        assert "trait_fd" not in r and "trait_match" not in r and isinstance(r["fid"], float)
        assert set(r["skipped"]) == {"trait_fd", "trait_match", "trait_cond"} and "traits.csv" in r["skipped"]["trait_fd"]
    assert summary.best["metric"] == "fid"
    assert any(n.startswith("trait_fd skipped") for n in summary.notes)
    assert "`trait_fd` not computed" in run.eval.report.read_text()
    with pytest.raises(NftganError, match="trait_fd, trait_match, trait_cond cannot be computed"):
        evaluate(ws, collection, run.name, EvalConfig(**TINY, select_by="trait_fd"))
    with pytest.raises(NftganError, match="trait_match cannot be computed"):
        evaluate(ws, collection, run.name, EvalConfig(**TINY, metrics=("trait_match",)))


def test_select_by_options_are_checked(cli, collection, run):
    with pytest.raises(NftganError, match="--select-by must be"):
        EvalConfig(select_by="lpips")
    with pytest.raises(NftganError, match="needs kid among --metrics"):
        EvalConfig(metrics=("fid",), select_by="kid")
    result = cli("evaluate", collection, run.name, "--extractor", "tiny", "--samples", "16", "--device", "cpu",
                 "--metrics", "fid,kid", "--select-by", "kid", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["best"]["metric"] == "kid_mean"
    bad = cli("evaluate", collection, run.name, "--extractor", "tiny", "--select-by", "trait_fd")
    assert bad.exit_code == 2 and "cannot be computed" in bad.stderr and "Traceback" not in bad.stderr
