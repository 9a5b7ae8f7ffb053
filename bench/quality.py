"""Training recipes, measured: each candidate recipe trains for the same CPU budget and is scored.

Budget = CPU seconds of the training process (``time.process_time``), one torch thread per process, so a
shared machine slows the wall clock but not the budget. Each recipe first trains ``--calib-steps`` steps;
its steps per CPU second over the second half of those gives the number of steps that fits the budget,
and the same run is resumed to that step count (the calibration steps are part of the run and of the
budget). Two recipes train at once (two processes, one thread each).

Collections: ``pixel`` (marketplace.pixelcollection, ``--pixel-items`` 24 px trait-layered tokens) and
``demo`` (marketplace.democollection, 200 items, as ``nftgan demo`` builds it), both imported and prepared
at 32 px by cleaning (importer + prepare), traits in the catalog. The candidates (training/recipes.py)
all train on ``pixel``; the best few by KID plus the baseline then train on ``demo``.

Scores: KID on the standard Inception-v3 features (``--inception-fake`` generated images from fixed
latents vs ``--inception-real`` real images; torch-fidelity's KID over 100 subsets, its std reported),
KID on the tiny extractor over more images (NOT comparable to published numbers: a low-noise check),
and, when ``evaluation.traits`` exists, the collection's trait scores (trait_fd, trait_match).

Everything a recipe leaves (samples .npy, checkpoint, features) goes to ``--work`` (not in git);
``results.json`` there is updated after every job, so an interrupted run resumes where it stopped.
``--rescore`` only re-scores the saved samples (e.g. once evaluation.traits has landed) and rewrites
docs/quality.md.

    .venv/bin/python bench/quality.py                         # the full benchmark (~1 h on 2 shared cores)
    .venv/bin/python bench/quality.py --rescore               # scores only, from the saved samples
    .venv/bin/python bench/quality.py --smoke                 # seconds: tiny budget, 2 recipes, tiny extractor
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._report import machine_description  # noqa: E402
from pipeline.atomic import write_json  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from training.recipes import CANDIDATES, recipe_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "quality.md"
GRIDS = ROOT / "docs" / "quality"
SIZE_PX = 32
SAMPLE_SEED = 1234  # fixed latents of every recipe's saved samples
GRID_N = 64


# -- collections -----------------------------------------------------------------------------------------
def build_collection(ws: Workspace, which: str, n_items: int, png_root: Path) -> dict[str, Any]:
    """Render ``n_items`` PNGs, import them, put their traits in the catalog, prepare a 32 px cache."""
    from cleaning.importer import import_directory
    from cleaning.prepare import PrepareConfig, prepare
    from pipeline.catalog import Catalog

    if which == "pixel":
        from marketplace import pixelcollection as mod

        def png(i: int) -> bytes:
            return mod.render_png(i)
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


# -- jobs (run in worker processes, one torch thread each) -------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def real_features_job(home: str, which: str, n_inception: int, extractor: str, out_dir: str) -> dict[str, Any]:
    """Features of the real side: the first ``n_inception`` cache rows of a fixed permutation."""
    from evaluation.extractors import create_extractor, extract_features
    from pipeline.cache import open_cache

    started = time.process_time()
    images = np.asarray(open_cache(Workspace(Path(home)), which, SIZE_PX).images)
    rows = np.random.default_rng(0).permutation(len(images))[:n_inception]
    feats = extract_features(create_extractor(extractor), images[np.sort(rows)], batch_size=50)
    tiny = extract_features(create_extractor("tiny"), images, batch_size=500)
    out = Path(out_dir)
    np.save(out / f"{which}-real-{extractor}.npy", feats)
    np.save(out / f"{which}-real-tiny.npy", tiny)
    return {"n_real": len(feats), "n_real_tiny": len(tiny), "cpu_s": time.process_time() - started}


def train_job(home: str, which: str, recipe: str, seed: int, budget_cpu_s: float, calib_steps: int,
              n_samples: int, n_inception: int, extractor: str, out_dir: str, grid_path: str) -> dict[str, Any]:
    """Train one recipe for ``budget_cpu_s`` CPU seconds; save samples, a grid and their features."""
    from evaluation.extractors import create_extractor, extract_features
    from training.checkpoints import load_generator
    from training.sampling import generate_uint8, grid, save_png
    from training.train import train

    ws = Workspace(Path(home))
    run = f"q-{recipe}-s{seed}"
    if ws.run(which, run).root.exists():
        shutil.rmtree(ws.run(which, run).root)  # a half-finished run from an interrupted benchmark
    half = max(1, calib_steps // 2)
    common = dict(size_px=SIZE_PX, device="cpu", run=run, seed=seed, amp="off", checkpoint_every=10**9,
                  sample_every=0, sample_count=16, log_every=half, keep_last=1)
    marks: list[tuple[int, float]] = []
    started = time.process_time()
    wall = time.perf_counter()
    train(ws, which, recipe_config(recipe, steps=calib_steps, **common),
          progress=lambda ev: marks.append((ev.done, time.process_time())))
    (s0, t0), (s1, t1) = marks[-2], marks[-1]
    steps_per_cpu_s = (s1 - s0) / max(t1 - t0, 1e-9)
    spent = time.process_time() - started
    steps = max(calib_steps, calib_steps + int((budget_cpu_s - spent) * steps_per_cpu_s))
    summary = train(ws, which, recipe_config(recipe, steps=steps, resume=True, **common))
    train_cpu_s = time.process_time() - started
    train_wall_s = time.perf_counter() - wall

    loaded = load_generator(ws.run(which, run), "latest", ema=True)
    samples = generate_uint8(loaded, n_samples, seed=SAMPLE_SEED, batch_size=250)
    out = Path(out_dir)
    samples_path = out / f"{which}-{recipe}-s{seed}-samples.npy"
    np.save(samples_path, samples)
    save_png(grid(samples[:GRID_N], nrow=8), Path(grid_path))
    feats = extract_features(create_extractor(extractor), samples[:n_inception], batch_size=50)
    np.save(out / f"{which}-{recipe}-s{seed}-{extractor}.npy", feats)
    tiny = extract_features(create_extractor("tiny"), samples, batch_size=500)
    np.save(out / f"{which}-{recipe}-s{seed}-tiny.npy", tiny)
    return {
        "collection": which, "recipe": recipe, "seed": seed, "budget_cpu_s": budget_cpu_s,
        "steps_per_cpu_s": steps_per_cpu_s, "steps": summary.steps_done, "train_cpu_s": train_cpu_s,
        "train_wall_s": train_wall_s, "epochs": summary.epochs_done, "checkpoint": summary.latest_checkpoint,
        "samples": str(samples_path), "n_samples": n_samples, "loss_g": summary.loss_g, "loss_d": summary.loss_d,
        "total_cpu_s": time.process_time() - started,
    }


# -- scores ---------------------------------------------------------------------------------------------
def kid_of(real: np.ndarray, fake: np.ndarray) -> dict[str, Any]:
    from evaluation.metrics import MetricInputs, kid

    r = kid(MetricInputs(real_features=real, fake_features=fake, seed=0))
    return {"kid": r["kid_mean"], "kid_std": r["kid_std"], "n_real": len(real), "n_fake": len(fake)}


def trait_scores_of(ws: Workspace, which: str, samples: np.ndarray) -> dict[str, Any] | None:
    try:
        from evaluation.traits import trait_scores
    except ImportError:
        return None
    return trait_scores(ws, which, SIZE_PX, samples, device="cpu")


def score(state: dict[str, Any], out: Path, ws: Workspace, extractor: str, *, traits: bool) -> None:
    """Fill every finished recipe's scores from the saved features (and samples, for trait scores)."""
    for key, rec in state["recipes"].items():
        which, seed = rec["collection"], rec["seed"]
        real_path = out / f"{which}-real-{extractor}.npy"
        if not real_path.exists():
            continue
        stem = out / f"{which}-{rec['recipe']}-s{seed}"
        if not (rec.get("kid_inception") and rec.get("kid_tiny")):  # KID over 100 subsets costs seconds
            rec["kid_inception"] = kid_of(np.load(real_path), np.load(f"{stem}-{extractor}.npy"))
            rec["kid_tiny"] = kid_of(np.load(out / f"{which}-real-tiny.npy"), np.load(f"{stem}-tiny.npy"))
        if traits and rec.get("traits") is None:
            try:
                rec["traits"] = trait_scores_of(ws, which, np.load(rec["samples"]))
            except Exception as e:  # a module under construction must not lose the benchmark's results
                rec["traits_error"] = f"{type(e).__name__}: {e}"


# -- report ---------------------------------------------------------------------------------------------
def _fmt_kid(k: dict[str, Any] | None, scale: float = 1e3) -> str:
    if not k:
        return "–"
    std = f" ± {k['kid_std'] * scale:.2f}" if k.get("kid_std") is not None else ""
    return f"{k['kid'] * scale:.2f}{std} ({k['n_fake']})"


def _trait_cells(t: dict[str, Any] | None) -> tuple[str, str]:
    if not t:
        return "–", "–"
    fd, match = t.get("trait_fd"), t.get("trait_match")
    return (f"{fd:.3g}" if isinstance(fd, (int, float)) else "–",
            f"{match:.3f}" if isinstance(match, (int, float)) else "–")


def table(state: dict[str, Any], which: str) -> str:
    recs = [r for r in state["recipes"].values() if r["collection"] == which and r.get("kid_inception")]
    if not recs:
        return "_not measured yet_"
    base = next((r for r in recs if r["recipe"] == "baseline" and r["seed"] == 0), None)
    recs.sort(key=lambda r: r["kid_inception"]["kid"])
    lines = ["| recipe | what changed | seed | steps (CPU s) | KID×10³ Inception ± std (n gen) | KID×10³ tiny ± std (n gen) "
             "| trait_fd | trait_match | KID vs baseline |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in recs:
        rel = "–"
        if base is not None:
            rel = f"{(r['kid_inception']['kid'] / base['kid_inception']['kid'] - 1) * 100:+.0f}%"
        fd, match = _trait_cells(r.get("traits"))
        lines.append(
            f"| `{r['recipe']}` | {CANDIDATES[r['recipe']][0]} | {r['seed']} | {r['steps']} ({r['train_cpu_s']:.0f}) "
            f"| {_fmt_kid(r['kid_inception'])} | {_fmt_kid(r['kid_tiny'])} | {fd} | {match} | {rel} |"
        )
    return "\n".join(lines)


def grids(state: dict[str, Any], which: str) -> str:
    recs = [r for r in state["recipes"].values() if r["collection"] == which and r["seed"] == 0]
    recs.sort(key=lambda r: (r.get("kid_inception") or {}).get("kid", 1e9))
    cells = [f"| `{r['recipe']}` | ![{which} {r['recipe']}](quality/{which}-{r['recipe']}.png) |" for r in recs]
    return "| recipe | 64 samples (EMA generator, fixed latents) |\n| --- | --- |\n" + "\n".join(cells)


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

    meta = state["meta"]
    cols = state.get("collections", {})
    parts = [
        f"_Measured {meta['date']} on {meta['machine']}; torch {meta['torch']}; one torch thread per training "
        f"process, {meta.get('workers', 2)} processes at a time; load average {meta.get('load_start', 0):.1f} at "
        f"the start (other jobs share these cores)._\n",
        "Command: `" + meta["command"] + "`\n",
    ]
    for which, title in (("pixel", "Trait-layered pixel collection"), ("demo", "Demo collection")):
        info = cols.get(which, {})
        budget = meta["budget_cpu_s"].get(which)
        parts.append(
            f"### {title} (`{which}`)\n\n{info.get('count', '?')} images in the 32 px cache "
            f"({info.get('items', '?')} items rendered; duplicates merged: {info.get('duplicates') or 'none'}; "
            f"rejected: {info.get('rejected') or 'none'}). Budget: {budget:g} CPU seconds per recipe. "
            f"Inception KID: {meta['inception_fake']} generated vs "
            f"{state.get('real', {}).get(which, {}).get('n_real', '?')} real; tiny KID: "
            f"{meta['n_samples']} generated vs all real. Sorted by Inception KID (lower is better).\n\n"
            + table(state, which) + "\n\n" + grids(state, which) + "\n"
        )
    for png in (DOC.parent / "quality").glob("*.png"):
        shrink_grid(png)
    block = "<!-- quality:results -->\n" + "\n".join(parts).strip() + "\n<!-- /quality:results -->"
    text = DOC.read_text() if DOC.exists() else "# Training recipes, measured (`bench/quality.py`)\n\n"
    pattern = re.compile(r"<!-- quality:results -->.*?<!-- /quality:results -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


# -- main -----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nftgan-bench-quality")
    parser.add_argument("--pixel-items", type=int, default=5000)
    parser.add_argument("--demo-items", type=int, default=200)
    parser.add_argument("--budget-pixel", type=float, default=180.0, help="CPU seconds per recipe on pixel")
    parser.add_argument("--budget-demo", type=float, default=90.0, help="CPU seconds per recipe on demo")
    parser.add_argument("--recipes", default=",".join(CANDIDATES), help="candidates trained on pixel")
    parser.add_argument("--demo-top", type=int, default=4, help="best N pixel recipes (+ baseline) on demo")
    parser.add_argument("--calib-steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000, help="generated images saved per recipe")
    parser.add_argument("--inception-fake", type=int, default=200)
    parser.add_argument("--inception-real", type=int, default=600)
    parser.add_argument("--extractor", default="inception")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rescore", action="store_true", help="score saved samples only, rewrite the doc")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--no-traits", action="store_true", help="skip the trait scores (evaluation.traits)")
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny budgets, 2 recipes, tiny extractor")
    args = parser.parse_args()
    if args.smoke:
        args.pixel_items, args.demo_items, args.budget_pixel, args.budget_demo = 300, 60, 3.0, 2.0
        args.recipes, args.demo_top, args.calib_steps, args.samples = "baseline,width-16", 1, 4, 64
        args.inception_fake, args.inception_real, args.extractor, args.no_doc = 64, 64, "tiny", True
        args.work = args.work.with_name(args.work.name + "-smoke")

    out = args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    ws = Workspace(args.work / "home")
    state_path = args.work / "results.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    state.setdefault("recipes", {})
    state.setdefault("real", {})
    state.setdefault("collections", {})

    def save() -> None:
        write_json(state_path, state)

    if not args.rescore:
        import torch

        before = state.get("meta") or {}
        command = " ".join([".venv/bin/python bench/quality.py", *sys.argv[1:]])
        if before.get("command") and state["recipes"] and before["command"] != command:
            command = before["command"] + "`, then (resumed, more candidates) `" + command  # one doc, two runs
        state["meta"] = {
            "date": _dt.date.today().isoformat(), "machine": machine_description(), "torch": torch.__version__,
            "command": command, "load_start": before.get("load_start", os.getloadavg()[0]), "budget_cpu_s": {"pixel": args.budget_pixel, "demo": args.budget_demo},
            "inception_fake": args.inception_fake, "n_samples": args.samples, "extractor": args.extractor,
            "calib_steps": args.calib_steps, "workers": args.workers,
        }
        for which, n in (("pixel", args.pixel_items), ("demo", args.demo_items)):
            if which not in state["collections"]:
                t = time.perf_counter()
                state["collections"][which] = build_collection(ws, which, n, args.work / "png")
                state["collections"][which]["seconds"] = time.perf_counter() - t
                print(f"{which}: {state['collections'][which]}", flush=True)
                save()
        grid_dir = args.work / "grids" if args.smoke else GRIDS
        grid_dir.mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures: dict[cf.Future, tuple[str, str]] = {}
            for which, n_real in (("pixel", args.inception_real), ("demo", args.inception_real)):
                if which not in state["real"]:
                    futures[pool.submit(real_features_job, str(ws.root), which, n_real, args.extractor,
                                        str(out))] = ("real", which)

            def submit(which: str, recipe: str, seed: int = 0) -> None:
                key = f"{which}/{recipe}/s{seed}"
                if key in state["recipes"]:
                    return
                budget = args.budget_pixel if which == "pixel" else args.budget_demo
                futures[pool.submit(train_job, str(ws.root), which, recipe, seed, budget, args.calib_steps,
                                    args.samples, args.inception_fake, args.extractor, str(out),
                                    str(grid_dir / f"{which}-{recipe}.png"))] = ("train", key)

            pixel_recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
            for recipe in pixel_recipes:
                submit("pixel", recipe)
            demo_submitted = False
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
                        state["real"][key] = result
                    else:
                        state["recipes"][key] = result
                    print(f"done {kind} {key}: {json.dumps(result)[:300]}", flush=True)
                    score(state, out, ws, args.extractor, traits=False)
                    save()
                pixel_done = all(f"pixel/{r}/s0" in state["recipes"] for r in pixel_recipes)
                if not demo_submitted and pixel_done and "pixel" in state["real"]:
                    ranked = sorted((r for r in state["recipes"].values()
                                     if r["collection"] == "pixel" and r.get("kid_inception")),
                                    key=lambda r: r["kid_inception"]["kid"])
                    chosen = ["baseline"] + [r["recipe"] for r in ranked if r["recipe"] != "baseline"][: args.demo_top]
                    for recipe in chosen:
                        submit("demo", recipe)
                    demo_submitted = True
        state["meta"]["load_end"] = os.getloadavg()[0]
    score(state, out, ws, state.get("meta", {}).get("extractor", args.extractor), traits=not args.no_traits)
    save()
    if not args.no_doc:
        write_doc(state)
    print(f"results: {state_path}", flush=True)


if __name__ == "__main__":
    main()
