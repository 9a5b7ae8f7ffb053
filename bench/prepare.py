"""Benchmark the cleaning stage.

1. Near-duplicate search over 90,000 random 64-bit perceptual hashes (target: < 10 s here).
2. ``prepare`` throughput (images/s) with 1 worker vs 2 workers on the same generated corpus.

Run: ``.venv/bin/python bench/prepare.py [--hashes 90000] [--images 600]``; writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench._report import write_section  # noqa: E402
from pipeline.dedup import find_near_duplicates  # noqa: E402
from pipeline.importer import import_directory  # noqa: E402
from pipeline.prepare import PrepareConfig, prepare  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402


def bench_dedup(n: int, k: int) -> tuple[float, int]:
    rng = random.Random(0)
    hashes = [rng.getrandbits(64) for _ in range(n)]
    start = time.perf_counter()
    dups = find_near_duplicates(hashes, k)
    return time.perf_counter() - start, len(dups)


def make_corpus(folder: Path, n: int, side_px: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side_px, side_px), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.png")


def bench_prepare(root: Path, workers: int, size_px: int) -> float:
    ws = Workspace(root / f"home-{workers}")
    import_directory(ws, "bench", root / "corpus")
    start = time.perf_counter()
    summary = prepare(ws, "bench", PrepareConfig(size_px=size_px, workers=workers))
    elapsed = time.perf_counter() - start
    return summary.candidates / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=90_000)
    parser.add_argument("--threshold", type=int, default=4)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--image-px", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    dedup_s, n_dups = bench_dedup(args.hashes, args.threshold)
    print(f"near-dup search: {args.hashes} hashes, k={args.threshold}: {dedup_s:.2f} s ({n_dups} pairs)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_corpus(root / "corpus", args.images, args.image_px)
        one = bench_prepare(root, 1, args.size)
        two = bench_prepare(root, 2, args.size)
    print(f"prepare: 1 worker {one:.1f} img/s, 2 workers {two:.1f} img/s ({two / one:.2f}x)")
    write_section(
        "prepare",
        f"""## Cleaning stage (`bench/prepare.py`)

| measurement | result | target |
| --- | --- | --- |
| near-duplicate search, {args.hashes:,} random 64-bit hashes, threshold {args.threshold} bits (multi-index hashing) | {dedup_s:.2f} s | < 10 s |
| `prepare` throughput, {args.images} PNGs of {args.image_px}×{args.image_px} → {args.size} px, 1 worker | {one:.1f} images/s | |
| same, 2 workers (process pool) | {two:.1f} images/s ({two / one:.2f}× of 1 worker) | |

Throughput covers decode, transparency compositing, resize, perceptual hash, catalog commits and the
final cache write; importing is not timed.""",
    )


if __name__ == "__main__":
    main()
