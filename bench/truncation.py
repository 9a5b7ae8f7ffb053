"""Does the truncation trick (BigGAN) help a trait-conditioned checkpoint? Scores with z scaled by psi.

The conditions are drawn from the unscaled latents (as every latent-only call draws them), so each psi asks
for the same 2,000 trait sets and only the style latents shrink towards their mean. Scores through the
benchmark's trait view (bench/quality.py's TraitView), as drawn and snapped to the palette; a run of the
benchmark's workspace (``--work``), e.g.

    .venv/bin/python bench/truncation.py q-10min-demo-w16-b16-cond-ac3-native-both-s0 --psi 1,0.7,0.5,0.3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import bench.quality as quality  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from training.checkpoints import load_generator  # noqa: E402
from training.sampling import asked_labels, conditioned_core, latents, to_uint8  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--psi", default="1,0.7,0.5,0.3")
    parser.add_argument("--collection", default="pixel")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "nftgan-bench-quality2")
    parser.add_argument("--out", type=Path, help="the scores as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ws = Workspace(args.work / "home")
    view = quality.TraitView(ws, args.collection)
    loaded = load_generator(ws.run(args.collection, args.run), "latest", ema=True)
    g = loaded.generator.eval()
    inner = conditioned_core(g)
    if inner is None:
        raise SystemExit(f"{args.run} is not trait-conditioned")
    z = latents(2000, loaded.z_dim, quality.SAMPLE_SEED)
    asked = asked_labels(g, z)
    with torch.no_grad():
        c = inner.draw_conditions(z)
    out = {}
    for psi in (float(p) for p in args.psi.split(",")):
        with torch.no_grad():
            images = torch.cat([to_uint8(g(psi * z[i : i + 250], c[i : i + 250])) for i in range(0, len(z), 250)])
        images = images.numpy()
        for name, x in (("drawn", images), ("snapped", view.art.snap(images) if view.art is not None else images)):
            s = out[f"{psi:g}/{name}"] = view.scores(x, asked)
            per_type = ", ".join(f"{k} {v:.3f}" for k, v in s["trait_cond_per_type"].items())
            print(f"psi {psi:g} {name}: trait_fd {s['trait_fd']:.0f}  trait_match {s['trait_match']:.3f}  sets "
                  f"{s['sets_fake']}  coverage {s['coverage']:.3f}  cond {s['trait_cond']:.3f} ({per_type})", flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
