"""Benchmark an incremental prepare: a collection of 10,000 prepared, then 30 new tokens, prepared again
(what a nightly refresh does). Target: the second prepare takes at most 10% of the first.

Run: ``.venv/bin/python bench/prepare_incremental.py [--tokens 10000] [--new 30]``; writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_section  # noqa: E402
from cleaning.importer import import_directory  # noqa: E402
from cleaning.prepare import PrepareConfig, prepare  # noqa: E402
from marketplace import pixelcollection as pc  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=30)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, ws = Path(tmp) / "png", Workspace(Path(tmp) / "home")
        folder.mkdir()
        for i in range(args.tokens):
            (folder / f"t{i:06d}.png").write_bytes(pc.render_png(i))
        import_directory(ws, "bench", folder)
        config = PrepareConfig(size_px=args.size, workers=args.workers)
        t0 = time.perf_counter()
        first = prepare(ws, "bench", config)
        first_s = time.perf_counter() - t0
        for i in range(args.tokens, args.tokens + args.new):
            (folder / f"t{i:06d}.png").write_bytes(pc.render_png(i))
        import_directory(ws, "bench", folder)
        t0 = time.perf_counter()
        second = prepare(ws, "bench", config)
        second_s = time.perf_counter() - t0
    share = second_s / first_s
    print(f"first: {first.count} images, {first.decoded_now} decoded, {first_s:.1f} s; then +{args.new}: "
          f"{second.count} images, {second.decoded_now} decoded, {second_s:.1f} s ({share:.1%})")
    verdict = ("**Target met.**" if share <= 0.10 else
               f"**Target not met** ({share:.1%} > 10%).")
    body = f"""## Incremental prepare (`bench/prepare_incremental.py`)

{args.tokens:,} tokens of `marketplace.pixelcollection` prepared at {args.size} px, then {args.new} new tokens
imported and the collection prepared again (a nightly refresh). The second pass decodes only the new
images: an item's facts are tagged with its content and the decode settings, the rows of unchanged items
are copied from the last cache in one gather, and the decode store (one entry per image content) serves
the rest; thumbnails are read only for the pairs the hashes propose. The duplicate decision and the cache
write still run over every item. Target: the second pass takes at most 10% of the first.

| pass | images in the cache | decoded | time |
| --- | ---: | ---: | ---: |
| first | {first.count:,} | {first.decoded_now:,} | {first_s:.1f} s |
| +{args.new} new | {second.count:,} | {second.decoded_now:,} | {second_s:.1f} s ({share:.1%} of the first) |

{verdict} Command: `.venv/bin/python bench/prepare_incremental.py --tokens {args.tokens} --new {args.new}`.
"""
    write_section("prepare-incremental", body)


if __name__ == "__main__":
    main()
