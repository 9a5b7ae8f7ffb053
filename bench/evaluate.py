"""Benchmark evaluation: the real-features cache and feature throughput.

1. First vs second evaluation of one collection. The first computes the real side (features, FID
   statistics, pHashes) and one checkpoint; the second scores the run's next checkpoint and reads the real
   side from the cache, as it would after more training. Both with the standard Inception (few images:
   it runs ~0.2-0.7 s per image on a CPU) and with the tiny extractor (a bigger collection).
2. Feature throughput (images/s) of the Inception and the tiny extractor on ``--device``.

The collection is the demo collection (``marketplace.democollection``) at 64 px; the run's checkpoints are
untrained 64 px DCGAN generators written with training's own checkpoint writer (the timings do not depend
on how good the generator is).

Run: ``.venv/bin/python bench/evaluate.py`` (CPU, about 2-3 minutes on 2 cores); on a GPU:
``.venv/bin/python bench/evaluate.py --device cuda --real 2048 --samples 2048 --throughput-images 2048``.
Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._report import write_section  # noqa: E402
from evaluation import EvalConfig, evaluate  # noqa: E402
from evaluation.extractors import create_extractor, extract_features  # noqa: E402
from pipeline.atomic import write_json  # noqa: E402
from pipeline.cache import hash_strings  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402

SIZE_PX = 64


def demo_images(n: int) -> np.ndarray:
    from marketplace.democollection import render_item

    return np.stack([np.asarray(render_item(i, size_px=SIZE_PX)).transpose(2, 0, 1) for i in range(n)])


def make_collection(ws: Workspace, slug: str, images: np.ndarray) -> None:
    """A 64 px tensor cache as ``prepare`` leaves it, and a run with checkpoints at steps 1000 and 2000."""
    import torch

    from training.checkpoints import save_checkpoint
    from training.config import TrainConfig
    from training.models import make_generator

    col = ws.collection(slug)
    col.cache_dir(SIZE_PX).mkdir(parents=True, exist_ok=True)
    np.save(col.cache_array(SIZE_PX), images)
    write_json(col.cache_manifest(SIZE_PX), {
        "count": len(images), "size_px": SIZE_PX, "item_ids": list(range(len(images))),
        "content_hash": hash_strings(["bench", str(len(images)), str(images.sum())]),
    })
    config = TrainConfig(size_px=SIZE_PX, base_width=16, z_dim=64)
    run = ws.run(slug, "bench")
    for step in (1000, 2000):
        torch.manual_seed(step)
        g = make_generator(config.arch, config.size_px, config.z_dim, config.resolved_widths())
        save_checkpoint(run, {"step": step, "config": config.to_dict(), "generator": g.state_dict(),
                              "ema": g.state_dict()})


def first_and_second(ws: Workspace, slug: str, config: EvalConfig) -> dict[str, float]:
    """Wall time of evaluating step 1000 (cold real side), then step 2000 (real side from the cache)."""
    timings = {}
    for label, step in (("first", 1000), ("second", 2000)):
        start = time.perf_counter()
        summary = evaluate(ws, slug, "bench", EvalConfig(**{**config.__dict__, "checkpoints": str(step)}))
        timings[label] = time.perf_counter() - start
        timings[f"{label}_real_s"] = summary.real_seconds
        timings[f"{label}_hit"] = summary.real_cache_hit
        record = next(r for r in summary.records if r["step"] == step)
        timings[f"{label}_checkpoint_s"] = record["seconds"]["total"]
    assert not timings["first_hit"] and timings["second_hit"]
    return timings


def throughput(name: str, images: np.ndarray, device: str, batch_size: int) -> float:
    extractor = create_extractor(name, device=device)
    extract_features(extractor, images[:batch_size], batch_size=batch_size)  # warm-up (allocations, cuDNN)
    start = time.perf_counter()
    extract_features(extractor, images, batch_size=batch_size)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--real", type=int, default=48, help="real images for the Inception first/second run")
    parser.add_argument("--samples", type=int, default=16, help="generated images per checkpoint (Inception)")
    parser.add_argument("--tiny-real", type=int, default=2000)
    parser.add_argument("--tiny-samples", type=int, default=256)
    parser.add_argument("--throughput-images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    images = demo_images(max(args.real, args.tiny_real, args.throughput_images))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        for extractor, n_real, samples in (("inception", args.real, args.samples),
                                           ("tiny", args.tiny_real, args.tiny_samples)):
            slug = f"bench-{extractor}"
            make_collection(ws, slug, images[:n_real])
            config = EvalConfig(samples=samples, extractor=extractor, device=args.device,
                                batch_size=args.batch_size)
            t = first_and_second(ws, slug, config)
            print(f"{extractor}: first {t['first']:.1f} s (real side {t['first_real_s']:.1f} s), "
                  f"second {t['second']:.1f} s (real side {t['second_real_s']:.2f} s)")
            rows.append((extractor, n_real, samples, t))
    inception_ips = throughput("inception", images[: args.throughput_images], args.device, args.batch_size)
    tiny_ips = throughput("tiny", images, args.device, 256)
    print(f"throughput on {args.device}: inception {inception_ips:.2f} images/s, tiny {tiny_ips:.0f} images/s")
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"

    table = "\n".join(
        f"| {ex} | {n_real} | {samples} | {t['first']:.1f} s (real side {t['first_real_s']:.1f} s) "
        f"| {t['second']:.1f} s (real side {t['second_real_s']:.2f} s, cache hit) "
        f"| {t['first'] / t['second']:.2f}× |"
        for ex, n_real, samples, t in rows
    )
    gpu_note = (
        "No GPU was lent to this session, so GPU figures were not measured. On a GPU machine run\n"
        "`.venv/bin/python bench/evaluate.py --device cuda --real 2048 --samples 2048 --throughput-images 2048`."
        if not args.device.startswith("cuda") else f"Measured with `--device {args.device}`."
    )
    write_section(
        "evaluate",
        f"""## Evaluation (`bench/evaluate.py`)

First vs second evaluation of one collection ({SIZE_PX} px demo tokens, metrics fid, kid, pr, memorization,
device `{args.device}`): the first scores checkpoint 1000 and computes the real side (features, FID
statistics, pHashes); the second scores checkpoint 2000 and reads the real side from
`collections/<slug>/features/`.

| extractor | real images | generated | first evaluation | second evaluation | ratio |
| --- | ---: | ---: | --- | --- | ---: |
{table}

The Inception row is small because the network runs slowly on a CPU; its per-evaluation time also holds
torch-fidelity's FID eigenvalue problem on 2048×2048 matrices (several seconds on a CPU, whatever the
sample count), which a cache of the real side cannot remove. With a real collection (thousands of images)
the real side dominates the first evaluation, and the ratio grows with it.

| feature throughput on `{args.device}` | images/s |
| --- | ---: |
| Inception-v3 (64 px input resized to 299 px), batch {args.batch_size}, {args.throughput_images} images | {inception_ips:.2f} |
| tiny extractor (NOT comparable to published FID), batch 256, {len(images)} images | {tiny_ips:.0f} |

CPU load average during the run (other jobs share the cores): {load}.

{gpu_note}""",
    )


if __name__ == "__main__":
    main()
