"""Training recipes, measured at the budgets users run, over several seeds, with metrics that see collapse.

**Budgets are the wall-clock budgets users give**, turned into steps per recipe:

- ``demo``: what ``nftgan demo`` trains for (``commands.demo`` ``train_minutes``, 3 minutes);
- ``10min``: ``nftgan train SLUG --minutes 10 --device cpu``.

A recipe's steps for a budget = its steps per second when it trains **alone on the machine** with torch's
default threads (as a user's ``train --minutes M`` does), measured by ``calibrate`` (``CALIB_S`` seconds
after a warm-up), times the budget's seconds. The runs themselves then train that many steps with one
torch thread each, two at a time: the machine's sharing changes their wall clock, not what they learn.
``check`` runs one real ``nftgan train --minutes 10`` alone and compares its steps with the mapping.

**Collections** (imported with their traits and prepared at 32 px by the cleaning stage):
``pixel``: 10,000 tokens of ``marketplace.pixelcollection`` (24x24 trait-layered pixel art, 8 skin types
from 28% down to 0.9%, rare hats, eyes and mouths); ``demo``: the 200-item demo collection.

**Stages** (``--stage``; results.json in ``--work`` keeps everything, so a stopped run resumes):

- ``screen``: every candidate at the ``demo`` budget on ``pixel`` and on ``demo``, ``--seeds`` seeds;
- ``final``: the reference, the former and today's defaults and the chosen candidates (``--final``) at
  ``10min`` on ``pixel``, with Inception KID on ``--inception-fake`` samples;
- ``rescore``: the trait scores of the kept samples of every run of ``--collections`` (``--only``: of these
  recipes) again, no training (after a change of the classifier's view or of the palette snap);
- ``doc``: rewrite docs/quality.md's measured block from results.json.

**Scores**, from the EMA generator's ``--samples`` (2,000) samples on fixed latents:
the trait classifier's view (``evaluation.traits``, trained on the collection): trait_fd, trait_match,
distinct trait sets (against as many real tokens), rare values drawn, and precision/recall and
density/coverage in its features (k-NN on 2,000 vs 2,000 real); KID on Inception-v3 (the first
``--inception-fake`` samples against ``--inception-real`` real images) where the stage asks for it
(Inception costs ~0.5 CPU s per image here); the collapse probe's last reading. On a pixel-art collection
the trait scores are also taken of the samples snapped to its grid and palette (``traits_snapped``), as
``sample``, ``export`` and ``evaluate`` give them to users; the tables' columns score the samples as drawn,
the per-type table of conditioned runs shows both.

    .venv/bin/python bench/quality.py --stage calibrate            # ~1 min per recipe, machine otherwise idle
    .venv/bin/python bench/quality.py --stage screen --seeds 3
    .venv/bin/python bench/quality.py --stage final --final r3gan,mbstd --seeds 3
    .venv/bin/python bench/quality.py --stage doc
    .venv/bin/python bench/quality.py --smoke                      # seconds: tiny collections and budgets
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import os
import multiprocessing as mp
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._report import machine_description  # noqa: E402
from pipeline.atomic import write_json  # noqa: E402
from pipeline.traits_table import labels_from_json, labels_to_json  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from training.recipes import CANDIDATES, recipe_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "quality.md"
GRIDS = ROOT / "docs" / "quality"
SIZE_PX = 32
SAMPLE_SEED = 1234  # fixed latents of every run's saved samples
GRID_N = 64
CALIB_S = 40.0  # seconds of steps measured per recipe (after CALIB_WARMUP_S)
CALIB_WARMUP_S = 10.0
DEMO_MINUTES = 3.0  # commands.demo.run_demo's train_minutes (a test checks they agree)
BUDGETS_S = {"demo": DEMO_MINUTES * 60, "10min": 600.0}
#: collection -> items: "pixel", the 10,000-token pixel collection; "demo", the drawn demo collection `nftgan demo
#: --art drawn` serves; "demo-pixel", the pixel one `nftgan demo --art pixel` serves (its first 200 tokens, here
#: upscaled 10x; the demo downloads them 21x: prepare makes the same 32 px cache of either, checked 2026-12-03)
ITEMS = {"pixel": 10_000, "demo": 200, "demo-pixel": 200}
#: the rows every table holds, whatever was chosen
FIXED_ROWS = ("reference", "former", "today")


# -- collections -----------------------------------------------------------------------------------------
def build_collection(ws: Workspace, which: str, n_items: int, png_root: Path) -> dict[str, Any]:
    """Render ``n_items`` PNGs, import them, put their traits in the catalog, prepare a 32 px cache."""
    from cleaning.importer import import_directory
    from cleaning.prepare import PrepareConfig, prepare
    from pipeline.catalog import Catalog

    if which in ("pixel", "demo-pixel"):
        from marketplace import pixelcollection as mod

        def png(i: int) -> bytes:
            return mod.render_png(i, scale=1 if which == "pixel" else 10)
    else:
        from marketplace import democollection as mod

        def png(i: int) -> bytes:
            return mod.render_png(i, size_px=256)

    folder = png_root / which
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_items):
        path = folder / f"{i:06d}.png"
        if not path.exists():
            path.write_bytes(png(i))
    import_directory(ws, which, folder)
    col = ws.collection(which)
    with Catalog(col.catalog) as cat:
        updates = []
        for it in cat.items():
            index = int(Path(it.item_key.removeprefix("file:")).stem)
            traits = [[k, v] for k, v in mod.item_traits(index).items()]
            updates.append((it.id, {"traits": json.dumps(traits)}))
        cat.update_many(updates)
    summary = prepare(ws, which, PrepareConfig(size_px=SIZE_PX))
    return {"items": n_items, "count": summary.count, "rejected": summary.rejected,
            "duplicates": summary.duplicates}


def _prepared(ws: Workspace, which: str) -> bool:
    from pipeline.cache import open_cache

    try:
        open_cache(ws, which, SIZE_PX)
    except Exception:  # noqa: BLE001 (missing or unreadable: build it)
        return False
    return True


# -- jobs (worker processes) -------------------------------------------------------------------------
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


#: float32 on every machine: what ``--amp auto`` gives on a CPU without native bf16, and the same arithmetic
#: whichever machine a later session resumes the benchmark on (``auto`` would be bf16 on some, not others)
AMP = "off"


def _common(run: str, seed: int) -> dict[str, Any]:
    """What every benchmark run shares: the CPU and float32 (:data:`AMP`)."""
    return dict(size_px=SIZE_PX, device="cpu", run=run, seed=seed, amp=AMP)


def calibrate_job(home: str, which: str, recipe: str) -> dict[str, Any]:
    """Steps per second of ``recipe`` alone on the machine, torch's default threads, outputs as a user's run."""
    import torch

    from training.train import train

    ws = Workspace(Path(home))
    run = f"calib-{recipe}"
    shutil.rmtree(ws.run(which, run).root, ignore_errors=True)
    marks: list[tuple[int, float]] = []
    minutes = (CALIB_WARMUP_S + CALIB_S) / 60
    cfg = recipe_config(recipe, minutes=minutes, log_every=10, **_common(run, 0))
    summary = train(ws, which, cfg, progress=lambda ev: marks.append((int(ev.done), time.monotonic())))
    shutil.rmtree(ws.run(which, run).root, ignore_errors=True)
    after = [(s, t) for s, t in marks if marks and t - marks[0][1] >= CALIB_WARMUP_S]
    if len(after) < 2:  # a budget too short to warm up (--smoke, tests): the whole run
        return {"recipe": recipe, "steps_per_s": summary.steps_done / max(summary.elapsed_s, 1e-9),
                "threads": torch.get_num_threads(), "measured_s": summary.elapsed_s, "steps": summary.steps_done}
    (s0, t0), (s1, t1) = after[0], after[-1]
    return {"recipe": recipe, "steps_per_s": (s1 - s0) / max(t1 - t0, 1e-9), "threads": torch.get_num_threads(),
            "measured_s": t1 - t0, "steps": summary.steps_done, "machine": machine_description(),
            "date": _dt.date.today().isoformat()}


def train_job(home: str, which: str, budget: str, recipe: str, seed: int, steps: int, n_samples: int,
              out_dir: str, grid_path: str | None) -> dict[str, Any]:
    """Train ``steps`` steps of one recipe and seed; save its samples and a grid."""
    from training.checkpoints import load_generator
    from training.sampling import asked_labels, generate_uint8, grid, latents, save_png
    from training.train import train

    from training.checkpoints import list_checkpoints

    ws = Workspace(Path(home))
    run = f"q-{budget}-{recipe}-s{seed}"
    paths = ws.run(which, run)
    # a run that finished before its benchmark process died (its record was not written) is kept, not retrained
    finished = paths.root.exists() and (list_checkpoints(paths) or [0])[-1] >= steps
    if paths.root.exists() and not finished:
        shutil.rmtree(paths.root)  # a half-finished run from an interrupted benchmark
    started, wall = time.process_time(), time.perf_counter()
    cfg = recipe_config(recipe, steps=steps, checkpoint_every=max(1, steps), keep_last=1, sample_every=0,
                        sample_count=16, resume=finished, **_common(run, seed))
    summary = train(ws, which, cfg)
    train_cpu_s, train_wall_s = time.process_time() - started, time.perf_counter() - wall
    loaded = load_generator(ws.run(which, run), "latest", ema=True)
    samples = generate_uint8(loaded, n_samples, seed=SAMPLE_SEED, batch_size=250)
    out = Path(out_dir)
    samples_path = out / f"{which}-{budget}-{recipe}-s{seed}-samples.npy"
    np.save(samples_path, samples)
    # a trait-conditioned run: the trait sets those latents asked for (its conditional accuracy needs them)
    asked = asked_labels(loaded.generator, latents(n_samples, loaded.z_dim, SAMPLE_SEED))
    if asked is not None:
        write_json(asked_path(samples_path), [labels_to_json(a) for a in asked])
    if grid_path:
        save_png(grid(samples[:GRID_N], nrow=8), Path(grid_path))
    rows = [json.loads(line) for line in ws.run(which, run).metrics.read_text().splitlines() if line.strip()]
    probes = [{k: r[k] for k in ("step", "probe_diversity", "probe_coverage", "collapse_suspected")}
              for r in rows if "probe_coverage" in r]
    return {
        "collection": which, "budget": budget, "recipe": recipe, "seed": seed, "steps": summary.steps_done,
        "train_cpu_s": train_cpu_s, "train_wall_s": train_wall_s, "epochs": summary.epochs_done,
        "samples": str(samples_path), "n_samples": int(len(samples)), "loss_g": summary.loss_g,
        "loss_d": summary.loss_d, "probes": probes, "collapse": list(summary.collapse),
        "checkpoint": summary.latest_checkpoint, "recovered": bool(finished),
    }


def asked_path(samples_path: str | Path) -> Path:
    """Where a conditioned run's asked trait sets sit beside its samples."""
    p = Path(samples_path)
    return p.with_name(p.stem + "-asked.json")


def read_asked(samples_path: str | Path) -> list[dict[str, Any]] | None:
    p = asked_path(samples_path)
    return [labels_from_json(a) for a in json.loads(p.read_text())] if p.is_file() else None


def inception_job(home: str, which: str, images_path: str, rows: int, out_path: str) -> dict[str, Any]:
    """Inception-v3 features of the first ``rows`` images of an .npy (or of the cache, for "real")."""
    from evaluation.extractors import create_extractor, extract_features
    from pipeline.cache import open_cache

    started = time.process_time()
    if images_path == "real":
        images = np.asarray(open_cache(Workspace(Path(home)), which, SIZE_PX).images)
        pick = np.sort(np.random.default_rng(0).permutation(len(images))[:rows])
        images = images[pick]
    else:
        images = np.load(images_path)[:rows]
    feats = extract_features(create_extractor("inception"), images, batch_size=50)
    tmp = Path(out_path).with_name(Path(out_path).name + ".tmp.npy")
    np.save(tmp, feats)
    os.replace(tmp, out_path)  # a killed job leaves no half file that looks finished
    return {"n": int(len(feats)), "cpu_s": time.process_time() - started, "path": out_path}


def features_done(path: str, rows: int) -> bool:
    """Inception features of ``rows`` images are already at ``path`` (from a benchmark process that died
    before recording them)."""
    try:
        return np.load(path, mmap_mode="r").shape == (rows, 2048)
    except (OSError, ValueError):
        return False


# -- scores ---------------------------------------------------------------------------------------------
class TraitView:
    """The collection's trait classifier and its view of the real side, computed once per collection."""

    def __init__(self, ws: Workspace, which: str) -> None:
        from evaluation.traits import fit_trait_classifier, read_trait_table, real_trait_side
        from pipeline.cache import open_cache
        from training.pixelart import read_pixel_art

        self.classifier = fit_trait_classifier(ws, which, SIZE_PX, device="cpu")
        self.art = read_pixel_art(ws, which, SIZE_PX)  # a pixel-art collection's grid and palette (else None)
        cache = open_cache(ws, which, SIZE_PX)
        table = read_trait_table(ws, which, SIZE_PX, cache)
        self.real = real_trait_side(self.classifier, cache, table) if self.classifier is not None else None

    def score_record(self, rec: dict[str, Any]) -> None:
        """``rec["traits"]``: the scores of the run's samples as the generator drew them; for a pixel-art
        collection also ``rec["traits_snapped"]``: as ``sample``, ``export`` and ``evaluate`` see them, snapped
        to the collection's grid and palette."""
        samples, asked = np.load(rec["samples"]), read_asked(rec["samples"])
        rec["traits"] = self.scores(samples, asked)
        if self.art is not None:
            rec["traits_snapped"] = self.scores(self.art.snap(samples), asked)
            rec["snap"] = self.snap_description()

    def snap_description(self) -> dict[str, Any]:
        """Which snap scored ``traits_snapped`` (the cell palettes changed it; a record scored before says nothing)."""
        assert self.art is not None
        return {"cell_palettes": self.art.settings()["cell_palettes"]}

    def inception_snapped(self, rec: dict[str, Any], rows: int, out: Path, home: str,
                          real: dict[str, Any]) -> None:
        """``rec["inception_snapped"]``: Inception KID of the first ``rows`` samples snapped, against the real
        features (``real``), the snapped images and their features kept in ``out``."""
        assert self.art is not None
        stem = Path(rec["samples"]).stem
        images, feats = out / f"{stem}-snapped.npy", out / f"{stem}-snapped-inception.npy"
        if not (features_done(str(feats), rows) and feats.stat().st_mtime > max(self.art.path.stat().st_mtime,
                                                                                 Path(rec["samples"]).stat().st_mtime)):
            np.save(images, self.art.snap(np.load(rec["samples"])[:rows]))  # (features of this snap: reused)
            inception_job(home, rec["collection"], str(images), rows, str(feats))
        rec["inception_snapped"] = {**kid_of(np.load(real["path"]), np.load(feats)), "snap": self.snap_description()}

    def scores(self, samples: np.ndarray, asked: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The trait classifier's scores of ``samples``; with ``asked`` (a conditioned run's requested trait
        sets, one per sample) also its conditional accuracy per trait type beside the classifier's ceiling."""
        from evaluation.metrics import MetricInputs, density_coverage_of, precision_recall
        from evaluation.traits import trait_cond, trait_fd, trait_match

        assert self.real is not None
        traits = self.real.inputs(samples, asked)
        empty = np.zeros((0, 1), np.float32)
        t_in = MetricInputs(real_features=empty, fake_features=empty, traits=traits)
        fd, match = trait_fd(t_in), trait_match(t_in)
        cond = trait_cond(t_in) if asked is not None else {}
        # k-NN metrics in the classifier's features: as many real rows as samples (a fixed random subset)
        real = self.real.features[np.sort(np.random.default_rng(0).permutation(len(self.real.features))[: len(samples)])]
        pr = precision_recall(MetricInputs(real_features=real, fake_features=traits.fake_features))
        dc = density_coverage_of(real, traits.fake_features)
        return {
            "trait_fd": fd["trait_fd"], "trait_match": match["trait_match"],
            "trait_match_floor": match["trait_match_floor"],
            "sets_fake": match["trait_sets"]["distinct_sets_fake"], "sets_real": match["trait_sets"]["distinct_sets_real"],
            "sets_n": match["trait_sets"]["distinct_sets_n"],
            "rare_drawn": match["trait_rare"]["rare_values_drawn"], "rare_values": match["trait_rare"]["rare_values"],
            "rare_share_fake": match["trait_rare"]["rare_share_fake"],
            "rare_share_real": match["trait_rare"]["rare_share_real"],
            "precision": pr["precision"], "recall": pr["recall"], "density": dc["density"], "coverage": dc["coverage"],
            "n_fake": int(len(samples)), "n_real_knn": int(len(real)),
            **({k: cond[k] for k in ("trait_cond", "trait_cond_per_type", "trait_cond_ceiling", "trait_cond_gap",
                                     "trait_match_asked")} if cond else {}),
            "classifier": {k: traits.classifier.get(k) for k in ("trait_types", "accuracy", "baseline_accuracy")},
        }


def kid_of(real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
    from evaluation.metrics import MetricInputs, fid, kid, precision_recall

    inputs = MetricInputs(real_features=real, fake_features=fake, seed=0)
    k, f, pr = kid(inputs), fid(inputs), precision_recall(inputs)
    return {"kid": k["kid_mean"], "kid_std": k["kid_std"], "fid": f["fid"], "fid_biased": f["fid_biased"],
            "precision": pr["precision"], "recall": pr["recall"], "n_real": len(real), "n_fake": len(fake)}


# -- aggregation and report ---------------------------------------------------------------------------
#: (column, record path, format, lower is better)
COLUMNS = (
    ("trait_fd", ("traits", "trait_fd"), "{:.0f}", True),
    ("trait_match", ("traits", "trait_match"), "{:.3f}", True),
    ("trait sets", ("traits", "sets_fake"), "{:.0f}", False),
    ("rare drawn", ("traits", "rare_drawn"), "{:.1f}", False),
    ("recall", ("traits", "recall"), "{:.3f}", False),
    ("coverage", ("traits", "coverage"), "{:.3f}", False),
    ("precision", ("traits", "precision"), "{:.3f}", False),
    ("KID×10³ Inception", ("inception", "kid"), "{:.1f}", True),
    ("cond. accuracy", ("traits", "trait_cond"), "{:.3f}", False),
)


def _value(rec: dict[str, Any], path: tuple[str, ...]) -> float | None:
    v: Any = rec
    for key in path:
        v = v.get(key) if isinstance(v, dict) else None
    if not isinstance(v, (int, float)):
        return None
    return float(v) * (1e3 if path[-1] == "kid" else 1)


def alarms(rec: dict[str, Any]) -> list[int]:
    """The steps at which the collapse alarm fires, by today's rule (training.probe), from the run's metrics."""
    from training import probe

    path = Path(rec["checkpoint"]).parent.parent / "metrics.jsonl" if rec.get("checkpoint") else None
    if path is None or not path.is_file():
        return [p["step"] for p in rec.get("probes", []) if p.get("collapse_suspected")]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    from training.config import TrainConfig

    saved = path.parent / "config.json"  # the run's own config: also for a recipe this checkout does not name
    cfg = TrainConfig.from_dict(json.loads(saved.read_text())) if saved.is_file() else recipe_config(rec["recipe"])
    return [r["step"] for r in rows if "probe_diversity" in r and r["probe_diversity"] < probe.COLLAPSE_SHARE
            and probe.warmed_up(r["step"], cfg.probe_every, r["step"] * cfg.batch_size, r["step"] / rec["steps"])]


def aggregate(state: dict[str, Any], which: str, budget: str, view: str = "traits") -> list[dict[str, Any]]:
    """One row per recipe: mean and spread (sample std over seeds) of every column. ``view``: "traits", the
    trait columns of the samples as drawn; "traits_snapped", of the samples snapped to the palette, as users
    get them (a pixel-art collection's; KID too, where ``rescore --inception-snapped`` measured it). A run
    without that view is left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in state["runs"].values():
        if rec["collection"] == which and rec["budget"] == budget and rec.get("traits") and rec.get(view):
            groups.setdefault(rec["recipe"], []).append(rec)
    rows = []
    for recipe, recs in groups.items():
        row: dict[str, Any] = {"recipe": recipe, "seeds": sorted(r["seed"] for r in recs),
                               "steps": statistics.mean(r["steps"] for r in recs)}
        for name, path, _, _ in COLUMNS:
            viewed = ((view, *path[1:]) if path[0] == "traits" else
                      ("inception_snapped", "kid") if path == ("inception", "kid") and view == "traits_snapped" else path)
            values = [v for v in (_value(r, viewed) for r in recs) if v is not None]
            row[name] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None,
                         len(values)) if values else None
        row["collapse"] = sum(bool(alarms(r)) for r in recs)
        cells = {bool(r.get("snap", {}).get("cell_palettes")) for r in recs}
        row["snap"] = "cell palettes" if cells == {True} else "palette" if cells == {False} else "mixed"
        rows.append(row)
    rows.sort(key=lambda r: r["trait_fd"][0] if r["trait_fd"] else 1e18)
    return rows


def _cell(row: dict[str, Any], name: str, fmt: str, best: tuple[float, float | None] | None, lower: bool) -> str:
    v = row[name]
    if not v:
        return "–"
    mean, std, _ = v
    text = fmt.format(mean) + (f" ± {fmt.format(std)}" if std is not None else "")
    if best is not None and best[1] is not None and std is not None:
        # bold: the best mean, and every row whose spread overlaps it (no difference shown)
        lo, hi = mean - std, mean + std
        b_lo, b_hi = best[0] - best[1], best[0] + best[1]
        if hi >= b_lo and lo <= b_hi:
            text = f"**{text}**"
    return text


def table(state: dict[str, Any], which: str, budget: str, view: str = "traits") -> str:
    rows = aggregate(state, which, budget, view)
    if not rows:
        return "_not measured yet_"
    snapped = view == "traits_snapped"  # which snap scored each row: the cell palettes changed it
    head = ("| recipe | what | seeds | steps | " + " | ".join(f"{c[0]} {'↓' if c[3] else '↑'}" for c in COLUMNS)
            + " | alarm |" + (" snap |" if snapped else ""))
    lines = [head, "|" + " --- |" * 4 + " ---: |" * len(COLUMNS) + " ---: |" + (" --- |" if snapped else "")]
    bests: dict[str, tuple[float, float | None] | None] = {}
    for name, _, _, lower in COLUMNS:
        present = [r[name] for r in rows if r[name]]
        bests[name] = (min if lower else max)(present, key=lambda v: v[0])[:2] if present else None
    for r in rows:
        cells = [_cell(r, name, fmt, bests[name], lower) for name, _, fmt, lower in COLUMNS]
        lines.append(f"| `{r['recipe']}` | {CANDIDATES.get(r['recipe'], ('(not in this checkout)',))[0]} | {len(r['seeds'])} | {r['steps']:,.0f} | "
                     + " | ".join(cells) + f" | {r['collapse']}/{len(r['seeds'])} |" + (f" {r['snap']} |" if snapped else ""))
    real = next((rec["traits"] for rec in state["runs"].values()
                 if rec["collection"] == which and rec.get("traits")), None)
    if real:
        ceilings = next((rec["traits"]["trait_cond_ceiling"] for rec in state["runs"].values()
                         if rec["collection"] == which and rec.get("traits", {}).get("trait_cond_ceiling")), None)
        ceiling = f"{statistics.mean(ceilings.values()):.3f} (ceiling)" if ceilings else ""
        lines.append(f"| real tokens | {real['sets_n']:,} real images through the same classifier | | | "
                     f"| {real['trait_match_floor']:.3f} (floor) | {real['sets_real']} | {real['rare_values']} | | | | "
                     f"| {ceiling} | |" + (" |" if snapped else ""))
    return "\n".join(lines)


def snapped_table(state: dict[str, Any], which: str, budget: str) -> str:
    """A pixel-art collection's table again with the trait columns of the samples snapped to its palette, as
    ``sample``, ``export`` and ``evaluate`` give them to users ("" when no run has that view)."""
    if not any(rec["collection"] == which and rec["budget"] == budget and rec.get("traits_snapped")
               for rec in state["runs"].values()):
        return ""
    return ("The same runs scored as users get them, each sample snapped to the collection's grid and palette "
            "(`training.pixelart`, with the colours the collection draws at each cell), KID too where measured "
            "(`--stage rescore --inception-snapped 1000`; '–': not measured). The last column says which snap "
            "scored a row: with the cell palettes (today's) or the palette alone (rows whose samples are not on the "
            "machine that rescored them):\n\n"
            + table(state, which, budget, "traits_snapped") + "\n\n")


def cond_table(state: dict[str, Any], which: str, budget: str) -> str:
    """Conditioned rows: per trait type the share of samples in which the classifier sees the asked value, as
    drawn and snapped to the palette (mean ± sample std over seeds), beside the classifier's ceiling."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in state["runs"].values():
        if rec["collection"] == which and rec["budget"] == budget and rec.get("traits", {}).get("trait_cond_per_type"):
            groups.setdefault(rec["recipe"], []).append(rec)
    if not groups:
        return ""
    kinds = sorted({k for recs in groups.values() for r in recs for k in r["traits"]["trait_cond_per_type"]})
    ceiling = next(r["traits"]["trait_cond_ceiling"] for recs in groups.values() for r in recs)

    def cell(recs: list[dict[str, Any]], key: str, kind: str) -> str:
        values = [r[key]["trait_cond_per_type"][kind] for r in recs
                  if kind in r.get(key, {}).get("trait_cond_per_type", {})]
        if not values:
            return "–"
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.2f}{spread}"

    lines = ["| recipe | seeds | " + " | ".join(f"{k} (ceiling {ceiling.get(k, float('nan')):.2f})" for k in kinds) + " |",
             "| --- | ---: |" + " ---: |" * len(kinds)]
    for recipe, recs in sorted(groups.items()):
        cells = [f"{cell(recs, 'traits', k)} / {cell(recs, 'traits_snapped', k)}" for k in kinds]
        lines.append(f"| `{recipe}` | {len(recs)} | " + " | ".join(cells) + " |")
    return ("Conditional accuracy per trait type, as drawn / snapped to the palette (what `sample`, `export` and "
            "`evaluate` give):\n\n" + "\n".join(lines) + "\n")


def grids(state: dict[str, Any], which: str, budget: str) -> str:
    recs = sorted((r for r in state["runs"].values()
                   if r["collection"] == which and r["budget"] == budget and r["seed"] == 0 and r.get("grid")),
                  key=lambda r: r["recipe"])
    cells = [f"| `{r['recipe']}` | ![{which} {budget} {r['recipe']}]({(GRIDS / Path(r['grid']).name).relative_to(DOC.parent)}) |"
             for r in recs]
    if not cells:
        return ""
    real = f"| real | ![{which} real](quality/{which}-real.png) |\n" if (GRIDS / f"{which}-real.png").exists() else ""
    return "| recipe | 64 samples, seed 0 (EMA generator, fixed latents) |\n| --- | --- |\n" + real + "\n".join(cells)


def shrink_grid(path: Path, colors: int = 128) -> None:
    """Re-save a committed grid as a palette PNG (a third of the bytes; the doc only shows it)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            return
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def write_doc(state: dict[str, Any]) -> None:
    """Replace the measured block of docs/quality.md (between its markers); the prose around it stays."""
    import re

    meta = state.get("meta", {})
    parts = [f"_Measured {meta.get('date', '?')} on {meta.get('machine', '?')}; torch {meta.get('torch', '?')}._\n"]
    commands = [c for i, c in enumerate(meta.get("commands", [])) if i == 0 or c != meta["commands"][i - 1]]
    parts.append("Commands, in order: " + ", ".join(f"`{c}`" for c in commands) + "\n")
    cal = state.get("calibration", {})
    if cal:
        lines = ["| recipe | steps/s alone (threads) | demo budget (180 s) | 10-minute budget |", "| --- | ---: | ---: | ---: |"]
        for recipe, c in sorted(cal.items()):
            lines.append(f"| `{recipe}` | {c['steps_per_s']:.1f} ({c['threads']}) | {steps_for(state, recipe, 'demo'):,} | "
                         f"{steps_for(state, recipe, '10min'):,} |")
        parts.append("### Budgets as steps\n\n" + "\n".join(lines) + "\n")
    check = state.get("check")
    if check:
        here = (f" Calibrated again on that machine ({check['machine']}, {check['date']}) right after, the mapping "
                f"says {check['mapped_here']:,} there (**{check['ratio_here'] - 1:+.1%}**): the table's steps are "
                f"its first machine's, this one runs {check['mapped_here'] / check['mapped']:.2f}× as fast."
                if "mapped_here" in check else "")
        parts.append(f"Check: `{check['command']}` alone on the machine reached **{check['steps']:,} steps** "
                     f"({check['recipe']}); the table's mapping says {check['mapped']:,} ({check['ratio'] - 1:+.1%})."
                     f"{here}\n")
    for which, budget, title in (("pixel", "10min", "10-minute budget, trait-layered pixel collection (10,000)"),
                                 ("pixel", "demo", "Demo budget (3 minutes), trait-layered pixel collection (10,000)"),
                                 ("demo", "demo", "Demo budget (3 minutes), drawn demo collection (200)"),
                                 ("demo-pixel", "demo", "Demo budget (3 minutes), pixel demo collection (200)")):
        info = state.get("collections", {}).get(which, {})
        parts.append(f"### {title}\n\n{info.get('count', '?')} images in the 32 px cache. Mean ± sample std over "
                     "seeds; **bold**: the best mean and every row whose spread overlaps it. ↓ lower is better, "
                     "↑ higher.\n\n" + table(state, which, budget) + "\n\n" + snapped_table(state, which, budget)
                     + cond_table(state, which, budget) + "\n" + grids(state, which, budget) + "\n")
    for png in GRIDS.glob("*.png"):
        shrink_grid(png)
    block = "<!-- quality:results -->\n" + "\n".join(parts).strip() + "\n<!-- /quality:results -->"
    text = DOC.read_text() if DOC.exists() else "# Training recipes, measured (`bench/quality.py`)\n\n"
    pattern = re.compile(r"<!-- quality:results -->.*?<!-- /quality:results -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def steps_for(state: dict[str, Any], recipe: str, budget: str) -> int:
    return max(1, round(state["calibration"][recipe]["steps_per_s"] * BUDGETS_S[budget]))


# -- main -----------------------------------------------------------------------------------------------
def merge_state(state: dict[str, Any], as_read: dict[str, Any], disk: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Merge results.json as another benchmark process left it (``disk``) into this process's ``state``, per
    entry and, for an entry both changed, per field: what this process added or changed since it read the
    file (``as_read``) wins, everything else takes the file's version, so two processes never overwrite
    each other's newer records (a rescore's snapped KID and a final stage's raw KID of the same run)."""
    for key in keys:
        read, saved = as_read.get(key, {}), disk.get(key, {})
        mine = {}
        for k, v in state[key].items():
            if k in saved and v == read.get(k):
                continue  # unchanged here: the file's version
            before = read.get(k)
            if isinstance(v, dict) and isinstance(before, dict) and isinstance(saved.get(k), dict):
                changed = {f: fv for f, fv in v.items() if f not in before or fv != before[f]}
                v = {**saved[k], **changed}  # both changed it: the file's fields, then the ones changed here
            mine[k] = v
        state[key] = {**saved, **mine}


def main() -> None:  # noqa: C901 (one straight script)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nftgan-bench-quality2",
                        help="collections, runs, samples and features (this machine's; rebuilt when missing)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs",
                        help="where quality.md, its grids and results.json live (committed: the measurements "
                        "outlive the machine, so a later session resumes them)")
    parser.add_argument("--stage", choices=("calibrate", "screen", "final", "check", "rescore", "doc"),
                        default="screen")
    parser.add_argument("--recipes", default=",".join(CANDIDATES), help="screened recipes")
    parser.add_argument("--final", default="", help="candidates of the final table (beside the fixed rows)")
    parser.add_argument("--collections", default="pixel,demo", help="screened collections")
    parser.add_argument("--only", default="", help="train only these rows this time (e.g. the reference and the "
                        "defaults first: reference,former); the others stay for a later invocation")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-list", default="", help="these seeds instead of 0..--seeds-1 (e.g. 1,2)")
    parser.add_argument("--check-recipe", default="today", help="the recipe of --stage check")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--inception-fake", type=int, default=1000)
    parser.add_argument("--inception-real", type=int, default=2000)
    parser.add_argument("--budgets", default="", help="--stage rescore: only the runs of these budgets (demo,10min)")
    parser.add_argument("--inception-snapped", type=int, default=0,
                        help="--stage rescore: also Inception KID of this many samples snapped to the palette")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny collections and budgets, no Inception")
    args = parser.parse_args()
    global DOC, GRIDS
    DOC, GRIDS = args.docs / "quality.md", args.docs / "quality"
    if args.smoke:
        ITEMS.update({"pixel": 300, "demo": 60, "demo-pixel": 60})
        BUDGETS_S.update(demo=1.0, **{"10min": 2.0})
        global CALIB_S, CALIB_WARMUP_S  # noqa: PLW0603
        CALIB_S, CALIB_WARMUP_S = 3.0, 1.0
        args.recipes, args.seeds, args.samples, args.inception_fake, args.no_doc = "reference,today", 1, 64, 0, True
        args.work = args.work.with_name(args.work.name + "-smoke")

    out = args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace(args.work / "home")
    state_path = (args.work if args.smoke else GRIDS) / "results.json"
    GRIDS.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    merged = ("runs", "collections", "calibration", "inception_real")
    for key in merged:
        state.setdefault(key, {})
    as_read = json.loads(json.dumps({key: state[key] for key in merged}))  # what this process has not changed

    def save() -> None:
        """Write results.json, keeping what another benchmark process added or changed meanwhile (a lock, then
        a merge per entry: an entry this process left as it read it takes the file's newer version)."""
        import fcntl

        nonlocal as_read
        with open(args.work / "results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = json.loads(state_path.read_text()) if state_path.exists() else {}
            merge_state(state, as_read, disk, merged)
            write_json(state_path, state)
            as_read = json.loads(json.dumps({key: state[key] for key in merged}))

    import torch

    meta = state.setdefault("meta", {})
    meta.update(date=_dt.date.today().isoformat(), machine=machine_description(), torch=torch.__version__)
    if args.stage != "doc":
        meta.setdefault("commands", []).append(" ".join([".venv/bin/python bench/quality.py", *sys.argv[1:]]))
    for which, n in ITEMS.items():
        if which not in state["collections"] or not _prepared(ws, which):  # a new machine: build it again
            state["collections"][which] = build_collection(ws, which, n, args.work / "png")
            print(f"{which}: {state['collections'][which]}", flush=True)
            save()
    if not args.smoke:
        from pipeline.cache import open_cache
        from training.sampling import grid, save_png

        GRIDS.mkdir(parents=True, exist_ok=True)
        for which in ITEMS:
            if not (GRIDS / f"{which}-real.png").exists():
                save_png(grid(np.asarray(open_cache(ws, which, SIZE_PX).images[:GRID_N]), nrow=8),
                         GRIDS / f"{which}-real.png")

    screened = [r.strip() for r in args.recipes.split(",") if r.strip()]
    final = list(FIXED_ROWS) + [r.strip() for r in args.final.split(",") if r.strip() and r.strip() not in FIXED_ROWS]

    if args.stage == "calibrate":  # one at a time, alone: what a user's run reaches
        for recipe in dict.fromkeys(screened + final):
            if recipe not in state["calibration"]:
                state["calibration"][recipe] = calibrate_job(str(ws.root), "pixel", recipe)
                print(f"calibrated {recipe}: {state['calibration'][recipe]}", flush=True)
                save()

    if args.stage == "check":  # one real `nftgan train --minutes 10`, alone on the machine
        import subprocess

        recipe = args.check_recipe
        run = f"check-minutes-10-{recipe}"
        shutil.rmtree(ws.run("pixel", run).root, ignore_errors=True)
        command = ["nftgan", "--home", str(ws.root), "train", "pixel", "--size", str(SIZE_PX), "--minutes",
                   f"{BUDGETS_S['10min'] / 60:g}", "--device", "cpu", "--recipe", recipe, "--run", run, "--json"]
        done = subprocess.run([str(Path(sys.executable).parent / "nftgan"), *command[1:]], capture_output=True,
                              text=True, check=True)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        mapped = steps_for(state, recipe, "10min")
        # the table's mapping was calibrated on its first machine; the method is checked against a calibration
        # on this one (the same measurement, alone, right after), and the host's speed against the table's
        if state.get("check") and "mapped_here" not in state["check"]:
            state["check_first_machine"] = state["check"]  # an earlier machine's check, kept
        here = calibrate_job(str(ws.root), "pixel", recipe)
        here_mapped = max(1, round(here["steps_per_s"] * BUDGETS_S["10min"]))
        state["check"] = {"command": " ".join(command[:-1]), "steps": summary["steps_done"], "recipe": recipe,
                          "mapped": mapped, "ratio": summary["steps_done"] / mapped,
                          "machine": machine_description(), "date": _dt.date.today().isoformat(),
                          "calibrated_here": here, "mapped_here": here_mapped,
                          "ratio_here": summary["steps_done"] / here_mapped}
        print(f"check: {state['check']}", flush=True)
        save()

    if args.stage == "rescore":  # the trait scores of every run's kept samples again (no training)
        views: dict[str, TraitView] = {}
        which_ones = {c.strip() for c in args.collections.split(",") if c.strip()}
        recipes = {r.strip() for r in args.only.split(",") if r.strip()}
        budgets = {b.strip() for b in args.budgets.split(",") if b.strip()}
        for key in sorted(state["runs"]):
            rec = state["runs"][key]  # the entry as it is now: each save() replaces state's entries with merged ones
            if (rec["collection"] not in which_ones or recipes and rec["recipe"] not in recipes
                    or budgets and rec["budget"] not in budgets):
                continue
            if not Path(rec.get("samples", "-")).is_file():
                print(f"skipped {key}: its samples are not on this machine", flush=True)
                continue
            which = rec["collection"]
            if which not in views:
                views[which] = TraitView(ws, which)
            views[which].score_record(rec)
            snapped = rec.get("traits_snapped", {}).get("trait_cond")
            print(f"rescored {key}: cond {rec['traits'].get('trait_cond')} snapped {snapped}", flush=True)
            real = state["inception_real"].get(which)
            if args.inception_snapped and views[which].art is not None and real:
                views[which].inception_snapped(rec, args.inception_snapped, out, str(ws.root), real)
                print(f"  snapped KID×10³ {rec['inception_snapped']['kid'] * 1e3:.1f}", flush=True)
            save()

    if args.stage in ("screen", "final"):
        jobs: list[tuple[str, str, str, int]] = []
        seeds = [int(x) for x in args.seed_list.split(",") if x.strip()] or list(range(args.seeds))
        if args.stage == "screen":
            for which in [c.strip() for c in args.collections.split(",") if c.strip()]:
                jobs += [(which, "demo", r, s) for s in seeds for r in screened]
        else:
            jobs += [("pixel", "10min", r, s) for s in seeds for r in final]
        only = {r.strip() for r in args.only.split(",") if r.strip()}
        jobs = [j for j in jobs if not only or j[2] in only]
        missing = sorted({r for _, _, r, _ in jobs if r not in state["calibration"]})
        if missing:
            raise SystemExit(f"calibrate first: --stage calibrate --recipes {','.join(missing)}")
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_one_thread) as pool:
            futures: dict[cf.Future, tuple[str, Any]] = {}
            # what waits for a worker, submitted a worker at a time (not all at once) so that Inception features,
            # which complete a row already trained, go before the next training run: a stopped benchmark leaves
            # finished rows, not many runs without KID
            inception_q: list[tuple[Any, ...]] = []
            train_q: list[tuple[Any, ...]] = []
            want_inception = args.stage == "final" and args.inception_fake > 0
            if want_inception and not Path(state["inception_real"].get("pixel", {}).get("path", "-")).is_file():
                path = out / "pixel-real-inception.npy"
                inception_q.append(("real", ("pixel", str(path)), inception_job,
                                    (str(ws.root), "pixel", "real", args.inception_real, str(path))))

            def want_features(key: str) -> None:
                rec = state["runs"][key]
                path = str(out / f"{Path(rec['samples']).stem}-inception.npy")
                if features_done(path, min(args.inception_fake, args.samples)):
                    rec["inception_features"] = path  # computed before, not recorded: reused
                    return
                inception_q.append(("inception", key, inception_job,
                                    (str(ws.root), rec["collection"], rec["samples"], args.inception_fake, path)))

            for which, budget, recipe, seed in jobs:
                key = f"{which}/{budget}/{recipe}/s{seed}"
                if key in state["runs"]:
                    rec = state["runs"][key]
                    if want_inception and not rec.get("inception") and Path(rec["samples"]).is_file():
                        want_features(key)  # trained by a run that computed no Inception features
                    continue
                grid_path = str(GRIDS / f"{which}-{budget}-{recipe}.png") if seed == 0 and not args.smoke else None
                train_q.append(("train", key, train_job, (str(ws.root), which, budget, recipe, seed,
                                                          steps_for(state, recipe, budget), args.samples, str(out),
                                                          grid_path)))

            def fill() -> None:
                while len(futures) < args.workers and (inception_q or train_q):
                    kind, key, fn, fn_args = (inception_q or train_q).pop(0)
                    futures[pool.submit(fn, *fn_args)] = (kind, key)

            views: dict[str, TraitView] = {}

            def fill_kid() -> None:
                for rec in state["runs"].values():  # KID once both sides are there
                    real = state["inception_real"].get(rec["collection"])
                    feats = rec.get("inception_features")
                    if real and feats and not rec.get("inception"):
                        rec["inception"] = kid_of(np.load(real["path"]), np.load(feats))

            fill_kid()  # features computed by an earlier process
            fill()
            while futures:
                done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    kind, key = futures.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as e:
                        print(f"FAILED {kind} {key}: {type(e).__name__}: {e}", flush=True)
                        continue
                    if kind == "real":
                        state["inception_real"][key[0]] = {**result, "path": key[1]}
                    elif kind == "inception":
                        state["runs"][key]["inception_features"] = result["path"]
                    else:
                        rec = state["runs"][key] = result
                        if result.get("seed") == 0 and not args.smoke:
                            rec["grid"] = str(GRIDS / f"{rec['collection']}-{rec['budget']}-{rec['recipe']}.png")
                        which = rec["collection"]
                        if which not in views:
                            views[which] = TraitView(ws, which)
                        views[which].score_record(rec)
                        if want_inception:
                            want_features(key)
                    fill_kid()
                    print(f"done {kind} {key}: {json.dumps(state['runs'].get(key, {}).get('traits'))[:240]}", flush=True)
                    save()
                    if not args.no_doc:
                        write_doc(state)
                fill()
    save()
    if not args.no_doc:
        write_doc(state)
    print(f"results: {state_path}", flush=True)


if __name__ == "__main__":
    main()
