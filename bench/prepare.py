"""Benchmark the cleaning stage.

1. ``prepare`` on a trait-layered pixel-art collection (default 50,000 distinct tokens from
   ``marketplace.pixelcollection`` plus 1% marketplace copies of every kind): the whole stage with pixel
   verification (the default) and with near-duplicate search off (``--no-near-dups``), in fresh
   workspaces, same corpus, same run. Target: verification adds under 20%.
2. The near-duplicate search itself (candidate search + pixel verification, the ``decide`` step), and
   the per-image facts verification needs (native grid, pixel hash, thumbnail) as a share of decoding.
3. Candidate search alone over 90,000 random 64-bit hashes at the radius ``prepare`` uses.

Run: ``.venv/bin/python bench/prepare.py [--tokens 50000]``; writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import io
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench._report import write_section  # noqa: E402
from cleaning import dedup  # noqa: E402
from cleaning.decode import DecodeOptions, decode_bytes  # noqa: E402
from cleaning.importer import import_directory  # noqa: E402
from cleaning.prepare import PrepareConfig, prepare  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402

print = functools.partial(print, flush=True)  # noqa: A001  (progress shows while it runs)
from marketplace import pixelcollection as pc  # noqa: E402

R = Image.Resampling


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def copy_of(token: Image.Image, kind: int) -> tuple[str, bytes]:
    """One marketplace copy of ``token``: the kinds the cleaning stage must merge, in turn."""
    kinds = [
        ("png", lambda: _encode(token, "PNG")),
        ("png", lambda: _encode(token.resize((72, 72), R.NEAREST), "PNG")),
        ("png", lambda: _encode(token.resize((48, 48), R.BICUBIC), "PNG")),
        ("jpg", lambda: _encode(token.resize((96, 96), R.NEAREST), "JPEG", quality=85)),
        ("webp", lambda: _encode(token.resize((192, 192), R.NEAREST), "WEBP", quality=80)),
        ("png", lambda: _encode(token.resize((500, 500), R.LANCZOS), "PNG")),
    ]
    ext, make = kinds[kind % len(kinds)]
    return ext, make()


def make_corpus(folder: Path, tokens: int, copy_share: float) -> int:
    folder.mkdir(parents=True)
    for i in range(tokens):
        (folder / f"t{i:06d}.png").write_bytes(pc.render_png(i))
    rng = random.Random(0)
    n_copies = int(tokens * copy_share)
    for k in range(n_copies):
        ext, data = copy_of(pc.render_item(rng.randrange(tokens)), k)
        (folder / f"z{k:06d}.{ext}").write_bytes(data)
    return n_copies


def run_prepare(ws: Workspace, config: PrepareConfig):
    """One whole pass (the two configs differ, so each pass decodes everything again)."""
    start = time.perf_counter()
    summary = prepare(ws, "bench", config)
    return time.perf_counter() - start, summary


def facts_share(samples: int) -> tuple[float, float]:
    """Seconds per image: whole decode, and the verification facts alone (native grid, hash, thumb)."""
    blobs = [pc.render_png(i) for i in range(samples)]
    opts = DecodeOptions(size_px=32)
    start = time.perf_counter()
    for data in blobs:
        decode_bytes(data, opts)
    decode_s = (time.perf_counter() - start) / samples
    arrays = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]
    start = time.perf_counter()
    for a in arrays:
        native = dedup.native_grid(a)
        dedup.pixel_digest(native)
        dedup.thumbnail(native)
    return decode_s, (time.perf_counter() - start) / samples


def bench_candidates(n: int, queries: int, bits: int) -> tuple[float, int]:
    """Index ``n`` random hashes, then search ``queries`` near copies (what a lossy copy costs)."""
    rng = random.Random(0)
    hashes = [rng.getrandbits(64) for _ in range(n)]
    start = time.perf_counter()
    index = dedup.NearDuplicateIndex(bits)
    for i, h in enumerate(hashes):
        index.add(h, i)
    found = 0
    for _ in range(queries):
        h = rng.choice(hashes)
        for bit in rng.sample(range(64), rng.randint(0, bits)):
            h ^= 1 << bit
        found += bool(index.within(h))
    return time.perf_counter() - start, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--copies", type=float, default=0.01, help="share of copies added")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hashes", type=int, default=90_000)
    parser.add_argument("--queries", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        n_copies = make_corpus(root / "corpus", args.tokens, args.copies)
        print(f"corpus: {args.tokens} tokens + {n_copies} copies in {time.perf_counter() - t0:.0f} s")
        ws = Workspace(root / "home")
        import_directory(ws, "bench", root / "corpus")
        base = PrepareConfig(size_px=args.size, workers=args.workers)
        off_config = PrepareConfig(**{**base.__dict__, "near_dups": False})
        offs, ons = [], []
        for round_ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
            off_s, off = run_prepare(ws, off_config)
            print(f"round {round_ + 1}: prepare, near-dup search off: {off_s:.1f} s ({off.kept_line()})")
            on_s, on = run_prepare(ws, base)
            print(f"round {round_ + 1}: prepare, pixel-verified: {on_s:.1f} s ({on.kept_line()}); "
                  f"decide {on.decide_seconds:.2f} s")
            offs.append(off_s)
            ons.append((on_s, on.decide_seconds))
        off_s = statistics.median(offs)
        on_s = statistics.median(s for s, _ in ons)
        decide_s = statistics.median(d for _, d in ons)
    decode_s, facts_s = facts_share(500)
    search_s, found = bench_candidates(args.hashes, args.queries, dedup.CANDIDATE_BITS)
    added = on_s / off_s - 1
    print(f"verification adds {added:.1%}; facts {facts_s * 1e3:.3f} ms of {decode_s * 1e3:.3f} ms decode")
    total = args.tokens + n_copies
    write_section(
        "prepare",
        f"""## Cleaning stage (`bench/prepare.py`)

Corpus: {args.tokens:,} distinct 24×24 trait-layered tokens (`marketplace.pixelcollection`) plus {n_copies}
marketplace copies (same bytes, nearest ×3, bicubic ×2, JPEG q85 of ×4, lossy WebP of ×8, Lanczos
500 px), prepared at {args.size} px with {args.workers or "one per core"} worker(s). Each pass decodes
everything again (the two configs have different cache keys); passes alternate, {args.rounds} of each,
medians shown.

| measurement | result | target |
| --- | --- | --- |
| `prepare`, near-duplicate search off (`--no-near-dups`) | {off_s:.1f} s ({total / off_s:.0f} images/s) | |
| `prepare`, pixel-verified near-duplicates (default) | {on_s:.1f} s ({total / on_s:.0f} images/s) | |
| time verification adds | {added:+.1%} | < 20% |
| the near-duplicate search itself (candidates + pixel verification) | {decide_s:.2f} s | |
| outcome (default) | {on.kept_line()} | 0 tokens lost |
| per-image facts for verification (native grid, pixel hash, thumbnail), in both runs | {facts_s * 1e3:.3f} ms of {decode_s * 1e3:.3f} ms decode ({facts_s / decode_s:.0%}) | |
| candidate search alone: index {args.hashes:,} random 64-bit hashes, then {args.queries:,} searches within {dedup.CANDIDATE_BITS} bits | {search_s:.2f} s ({found:,} found their source) | < 10 s |

Throughput covers decode, transparency compositing, resize, perceptual and pixel hashes, thumbnails,
duplicate decisions, the review sheet, catalog commits and the final cache write; importing is not
timed. Tokens of one lossless grid are never compared with each other (only identical pixels merge
them), so the search's cost grows with the number of copies, not with the collection.""",
    )


if __name__ == "__main__":
    main()
