"""Inception KID of the demo-budget rows on the pixel demo collection, their samples snapped as users get them.

The quality benchmark keeps real Inception features for the 10,000-token collection only, so its demo-pixel
rows have no KID column. This scores the kept samples of the screen's runs (``bench/quality.py --stage screen
--collections demo-pixel``) against the collection's 200 items, with the benchmark's own ``inception_job`` and
``kid_of``; features are cached in ``--out``. docs/quality.md (thirteenth session) has its results::

    .venv/bin/python bench/demo_kid.py --recipes demo-w16-b16-cond-ac3-native,demo-w16-b16-cond-ac5-native-both-snap-cin,demo-w16-b16-cond-ac5-native-both-snap
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.quality import GRIDS, inception_job, kid_of  # noqa: E402

WHICH = "demo-pixel"


def _features(job: tuple[str, str, int, str]) -> str:
    import torch

    torch.set_num_threads(1)
    home, images, rows, path = job
    if not Path(path).is_file():
        inception_job(home, WHICH, images, rows, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", required=True, help="comma-separated rows of the demo-pixel screen")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", type=int, default=400, help="snapped samples per run")
    parser.add_argument("--home", default=str(Path.home() / ".cache/nftgan-bench-quality2/home"))
    parser.add_argument("--out", default=str(Path.home() / ".cache/nftgan-bench-quality2/demo-kid"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from bench.quality import TraitView
    from pipeline.workspace import Workspace

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = json.loads((GRIDS / "results.json").read_text())["runs"]
    view = TraitView(Workspace(Path(args.home)), WHICH)
    jobs = [(args.home, "real", 200, str(out / "real.npy"))]
    rows: list[tuple[str, int, str]] = []
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        for seed in (int(s) for s in args.seeds.split(",")):
            rec = runs[f"{WHICH}/demo/{recipe}/s{seed}"]
            snapped = out / f"{recipe}-s{seed}-snapped.npy"
            if not snapped.is_file():
                np.save(snapped, view.art.snap(np.load(rec["samples"])[: args.rows]))
            feats = str(out / f"{recipe}-s{seed}-inception.npy")
            jobs.append((args.home, str(snapped), args.rows, feats))
            rows.append((recipe, seed, feats))
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_features, jobs))
    real = np.load(out / "real.npy")
    by_recipe: dict[str, list[float]] = {}
    for recipe, seed, feats in rows:
        k = kid_of(real, np.load(feats))
        by_recipe.setdefault(recipe, []).append(k["kid"] * 1e3)
        print(f"{recipe} s{seed}: KID×10³ {k['kid'] * 1e3:.1f}  FID {k['fid']:.1f}  P {k['precision']:.3f}  "
              f"R {k['recall']:.3f}", flush=True)
    for recipe, kids in by_recipe.items():
        spread = np.std(kids, ddof=1) if len(kids) > 1 else 0.0
        print(f"{recipe}: KID×10³ {np.mean(kids):.1f} ± {spread:.1f} over {len(kids)} seeds", flush=True)


if __name__ == "__main__":
    main()
