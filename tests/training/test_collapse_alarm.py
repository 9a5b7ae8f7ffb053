"""The collapse alarm on the 200-item demo collection: a deliberately collapsing recipe triggers it, in the CLI's
output, the summary, metrics.jsonl, report.md and the best-checkpoint choice; a healthy run with the demo's
options does not.

The collapsing recipe: a generator that can only draw a two-dimensional family of images (``--z-dim 2``), pushed
by a G learning rate x20 with no augmentation. (G's learning rate x20 alone collapses the demo generator for a few
hundred steps, then it partly recovers; D's x20 alone did not collapse it at all in our trials.)"""

from __future__ import annotations


import pytest

from bench.quality import build_collection
from commands import main
from evaluation import EvalConfig, evaluate
from pipeline.workspace import Workspace
from training import probe
from training.train import train
from training.visuals import read_metrics

# the collapsing recipe's base: the demo's former options (width 32, batch 32), at a step budget a test can afford
DEMO = dict(size_px=32, device="cpu", amp="off", batch_size=32, base_width=32, ema=0.98, sample_every=0,
            log_every=50, probe_every=100, steps=700, checkpoint_every=100, keep_last=10)
#: what `nftgan demo` trains today (commands.demo.DEMO_RECIPES), past the alarm's warm-up (20,000 images)
HEALTHY = dict(size_px=32, device="cpu", amp="off", sample_every=0, log_every=100, probe_every=200, steps=1400,
               checkpoint_every=1400)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("alarm")
    ws = Workspace(root / "home")
    build_collection(ws, "demo", 200, root / "png")
    return ws


def test_a_collapsing_recipe_triggers_the_alarm_everywhere(demo, capsys) -> None:
    capsys.readouterr()
    args = ["--home", str(demo.root), "train", "demo", "--run", "collapse", "--z-dim", "2", "--lr-g", "0.004",
            "--augment", "none", "--condition", "none"]  # unconditioned: the traits would keep it diverse
    for key, value in DEMO.items():
        args += [f"--{'size' if key == 'size_px' else key.replace('_', '-')}", str(value)]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code in (0, None)
    out = capsys.readouterr()
    assert "collapse suspected at step" in out.err  # the one line, as it happens
    assert "WARNING: collapse suspected at step" in out.out  # and in the summary
    rows = read_metrics(demo.run("demo", "collapse"))
    flagged = probe.collapsed_steps(rows)
    probes = [r for r in rows if "probe_diversity" in r]
    assert [r["step"] for r in probes] == [100, 200, 300, 400, 500, 600, 700]
    # never during the warm-up (20,000 images: step 625 at batch 32), then at every probe
    assert flagged == [700] and all(r["probe_diversity"] < probe.COLLAPSE_SHARE for r in probes)
    assert all(r["probe_diversity"] < probe.COLLAPSE_SHARE for r in probes if r["step"] in flagged)

    summary = evaluate(demo, "demo", "collapse", EvalConfig(extractor="tiny", samples=64, device="cpu",
                                                            metrics=("kid",)))
    by_step = {r["step"]: r for r in summary.records}
    assert {s for s, r in by_step.items() if r["collapse_suspected"]} == {s for s in by_step if probe.flagged(s, rows)}
    assert summary.best is None or not by_step[summary.best["step"]]["collapse_suspected"]
    report = demo.run("demo", "collapse").eval.report.read_text()
    assert "Collapse suspected" in report


@pytest.mark.parametrize("art", ["pixel", "drawn"])
def test_a_healthy_demo_run_does_not_trigger_it(demo, art, tmp_path) -> None:
    """Either demo collection (`nftgan demo --art ...`) with the recipe the demo trains on it."""
    from commands.demo import DEMO_RECIPES
    from training.recipes import recipe_config

    slug = {"drawn": "demo", "pixel": "demo-pixel"}[art]
    if art == "pixel":
        build_collection(demo, slug, 200, tmp_path / "png")
    summary = train(demo, slug, recipe_config(DEMO_RECIPES[art], run="healthy", **HEALTHY))
    rows = read_metrics(demo.run(slug, "healthy"))
    diversity = [r["probe_diversity"] for r in rows if "probe_diversity" in r]
    assert len(diversity) == 7 and summary.collapse == ()
    assert diversity[-1] >= probe.COLLAPSE_SHARE  # what the alarm reads past the warm-up
    assert summary.probe is not None and summary.probe["probe_real_coverage"] > 0.5


def test_best_checkpoint_selection_skips_flagged_checkpoints(tmp_path, monkeypatch) -> None:
    from evaluation.sweep import _mark_best
    from pipeline.workspace import Workspace as W

    marked: list[int] = []
    monkeypatch.setattr("training.checkpoints.mark_best", lambda run, step, info: marked.append(step))
    run = W(tmp_path).run("c", "r")
    records = [{"step": s, "fid": f, "n_real": 1, "n_fake": 1, "extractor": "x", "comparable_to_published": False,
                "collapse_suspected": s == 200} for s, f in ((100, 50.0), (200, 10.0), (300, 30.0))]
    best = _mark_best(run, records, [100, 200, 300], EvalConfig(extractor="tiny"))
    assert best["step"] == 300 and marked == [300]  # 200 scores best but is flagged
    assert _mark_best(run, [dict(r, collapse_suspected=True) for r in records], [100, 200, 300],
                      EvalConfig(extractor="tiny", select_by="fid")) is None


def test_the_flows_log_a_warning_event_as_one_warning_line() -> None:
    import flows
    from pipeline.progress import ProgressEvent

    lines: list[tuple[str, str]] = []

    class Logger:
        def info(self, fmt, *a):
            lines.append(("info", fmt % a))

        def warning(self, fmt, *a):
            lines.append(("warning", fmt % a))

    show = flows._progress(Logger(), "train r")
    show(ProgressEvent("train", 5, 10, detail={"loss_g": 1.0}))
    show(ProgressEvent("train", 6, 10, kind="warning", message="collapse suspected at step 6 (x)"))
    assert lines[-1] == ("warning", "train r: collapse suspected at step 6 (x)")
