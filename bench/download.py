"""Downloader throughput vs a sequential httpx loop, against the fixture with added latency per image.

The fixture runs in its own process (``nftgan fixture serve --latency-ms 50``), so server work does not
share this process's interpreter lock. The sequential loop GETs each image and writes it to a file; the
downloader (:func:`scraper.stage.download_items`) does its whole job per image: stream, sniff, hash, write
a temp file and rename it into content-addressed storage, fsync (once per catalog batch), commit the
catalog row. Items are put in the catalog directly, so listing is not timed. Results go to the ``download`` section of docs/benchmarks.md.

    python bench/download.py [--images 1000] [--sequential-images 60] [--latency-ms 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import write_section  # noqa: E402
from pipeline.catalog import Catalog  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from scraper.config import ScrapeConfig  # noqa: E402
from scraper.stage import download_items  # noqa: E402

SLUG = "bench"


def start_fixture(n_items: int, latency_ms: float, width_px: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands", "fixture", "serve", "--port", "0", "--items", str(n_items),
         "--slug", SLUG, "--latency-ms", str(latency_ms), "--prerender", str(width_px)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"fixture did not start: {line!r} {proc.communicate()[1]!r}")
    return proc, match.group(0)


def sequential(urls: list[str], folder: Path) -> float:
    """Seconds for a plain loop: GET, write the bytes to a file, next."""
    folder.mkdir(parents=True, exist_ok=True)
    with httpx.Client(timeout=30) as client:
        client.get(urls[0]).raise_for_status()  # connection warm-up, not timed
        started = time.perf_counter()
        for i, url in enumerate(urls):
            response = client.get(url)
            response.raise_for_status()
            (folder / f"{i}.png").write_bytes(response.content)
        return time.perf_counter() - started


def downloader(urls: list[str], home: Path, concurrency: int, per_host_limit: int) -> tuple[float, int]:
    """Seconds for ``download_items`` on a fresh workspace holding ``urls`` as pending items."""
    ws = Workspace(home)
    with Catalog(ws.collection(SLUG).catalog) as cat:
        cat.add_items(
            {"item_key": f"ethereum/0xbench/{i}", "source": "api", "token_id": str(i), "image_url": url}
            for i, url in enumerate(urls)
        )
    config = ScrapeConfig(
        source="api", allow_private_hosts=True, concurrency=concurrency, per_host_limit=per_host_limit,
        image_width=int(re.search(r"w=(\d+)", urls[0]).group(1)),  # type: ignore[union-attr]
    )
    started = time.perf_counter()
    summary = download_items(ws, SLUG, config)
    seconds = time.perf_counter() - started
    if summary.downloaded != len(urls):
        raise SystemExit(f"downloader fetched {summary.downloaded} of {len(urls)}: {summary.describe()}")
    return seconds, summary.downloaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images per downloader run")
    parser.add_argument("--sequential-images", type=int, default=60, help="images for the sequential loop")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--width", type=int, default=64, help="image width asked of the fixture (px)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method; the median is reported")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    proc, base = start_fixture(args.images, args.latency_ms, args.width)
    settings = [(16, 8), (32, 32), (64, 64)]  # the defaults first
    rates: dict[str, list[float]] = {"sequential": []}
    try:
        urls = [f"{base}/cdn/{SLUG}/{i}.png?w={args.width}" for i in range(args.images)]
        with tempfile.TemporaryDirectory(prefix="nftgan-bench-") as tmp:
            for r in range(args.repeats):  # interleaved, so that a burst of load hits every method alike
                seq_s = sequential(urls[: args.sequential_images], Path(tmp) / f"seq-{r}")
                rates["sequential"].append(args.sequential_images / seq_s)
                for concurrency, per_host in settings:
                    seconds, n = downloader(urls, Path(tmp) / f"ws-{concurrency}-{r}", concurrency, per_host)
                    rates.setdefault(f"{concurrency}/{per_host}", []).append(n / seconds)
                print("  ".join(f"{k}: {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    seq_rate = statistics.median(rates["sequential"])
    lines = [
        f"Images/s fetching {args.width} px PNGs from the fixture with {args.latency_ms:g} ms added latency per image "
        "(fixture in its own process on the same machine; `python bench/download.py`). Each method ran "
        f"{args.repeats} times, interleaved; the table gives the median and the range. Load average when it "
        f"started: {load_before:.1f}.",
        "",
        "| method | images per run | images/s (median) | range | vs sequential |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| sequential httpx loop (GET, write file) | {args.sequential_images} | {seq_rate:.1f} | "
        f"{min(rates['sequential']):.1f}-{max(rates['sequential']):.1f} | 1.0x |",
    ]
    for concurrency, per_host in settings:
        values = rates[f"{concurrency}/{per_host}"]
        name = f"`--concurrency {concurrency} --per-host-limit {per_host}`" + (" (defaults)" if concurrency == 16 else "")
        lines.append(f"| downloader {name} | {args.images} | {statistics.median(values):.0f} | "
                     f"{min(values):.0f}-{max(values):.0f} | {statistics.median(values) / seq_rate:.1f}x |")
    best = max(statistics.median(rates[f"{c}/{p}"]) for c, p in settings) / seq_rate
    ceiling = 8 / (args.latency_ms / 1000)
    lines += [
        "",
        f"Target >= 20x the sequential loop: best {best:.1f}x ({'meets' if best >= 20 else 'misses'} it). The "
        f"sequential loop spends {1000 / seq_rate:.0f} ms per image, {args.latency_ms:g} ms of it the added "
        "latency. The downloader does its whole job per image: stream, sniff, hash, store by content, fsync "
        "(once per catalog batch), commit the catalog row. At the defaults it is bounded by the per-host limit: "
        f"all images come from one host, so at most 8 are in flight, at most {ceiling:.0f} images/s at this "
        "latency. The 20x needs `--concurrency` and `--per-host-limit` raised (polite only against a CDN or your "
        "own server); there the event loop's CPU (httpx, about 1 ms per request) is the limit. No GPU figures: "
        "the downloader uses none.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("download", body)


if __name__ == "__main__":
    main()
