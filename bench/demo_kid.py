"""Inception KID of the demo-budget rows on the pixel demo collection, their samples snapped as users get them.

The quality benchmark keeps real Inception features for the 10,000-token collection only, so its demo-pixel
rows have no KID column. This scores the kept samples of the screen's runs (``bench/quality.py --stage screen
--collections demo-pixel``) against the collection's 200 items, through the benchmark's own
``TraitView.inception_snapped`` (features cached in ``--out``, recomputed when the snap or the samples
change). docs/quality.md (thirteenth session) has its results::

    .venv/bin/python bench/demo_kid.py --recipes demo-w16-b16-cond-ac3-native,demo-w16-b16-cond-ac5-native-both-snap-cin,demo-w16-b16-cond-ac5-native-both-snap
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.quality import GRIDS, TraitView, features_done, inception_job  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402

WHICH, REAL_ITEMS = "demo-pixel", 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", required=True, help="comma-separated rows of the demo-pixel screen")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rows", type=int, default=400, help="snapped samples per run")
    parser.add_argument("--home", default=str(Path.home() / ".cache/nftgan-bench-quality2/home"))
    parser.add_argument("--out", default=str(Path.home() / ".cache/nftgan-bench-quality2/demo-kid"))
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    real = str(out / "real.npy")
    if not features_done(real, REAL_ITEMS):
        inception_job(args.home, WHICH, "real", REAL_ITEMS, real)
    runs = json.loads((GRIDS / "results.json").read_text())["runs"]
    view = TraitView(Workspace(Path(args.home)), WHICH)
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        kids = []
        for seed in (int(s) for s in args.seeds.split(",")):
            rec = dict(runs[f"{WHICH}/demo/{recipe}/s{seed}"])  # a copy: results.json is the benchmark's to write
            view.inception_snapped(rec, args.rows, out, args.home, {"path": real})
            k = rec["inception_snapped"]
            kids.append(k["kid"] * 1e3)
            print(f"{recipe} s{seed}: KID×10³ {kids[-1]:.1f}  FID {k['fid']:.1f}  P {k['precision']:.3f}  "
                  f"R {k['recall']:.3f}", flush=True)
        spread = np.std(kids, ddof=1) if len(kids) > 1 else 0.0
        print(f"{recipe}: KID×10³ {np.mean(kids):.1f} ± {spread:.1f} over {len(kids)} seeds", flush=True)


if __name__ == "__main__":
    main()
