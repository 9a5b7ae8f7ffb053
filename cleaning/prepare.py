"""The cleaning stage: originals in the catalog → a de-duplicated uint8 tensor cache.

Three steps, each safe to kill at any moment:

1. **Decode** what is not known yet: an item's facts (perceptual hash, pixel hash, native size, lossy or
   not, a reject's reason) are tagged in the catalog with its content and the decode settings
   (``prep_key``), so only new or changed images need them; they come from the decode store
   (``cache/<size>/decoded-<settings>/``, one entry per image content) or from a decode in a process pool,
   committed in batches. Every pass fills a fresh staging array ``cache/<size>/.staging-<key>.npy``:
   rows the last cache holds with the same content and settings are copied from it in one gather; the
   others come from the store or the decode. Verification thumbnails are read only for the pairs the
   hashes propose. A killed pass loses nothing but its staging: the store and the committed facts stay.
2. **Decide** in one transaction, recorded for this size in the catalog's ``prepared`` table (a cache of
   another size keeps its own decisions; the items' download outcome is not touched): decode rejects →
   ``rejected``; then :func:`cleaning.dedup.find_duplicates` → ``duplicate`` with reason ``exact-duplicate`` (same bytes), ``same-pixels`` (same decoded pixels on
   the native grid) or ``near-duplicate`` (a lossy or resampled copy, verified on pixels; the measured
   difference is in the detail); the rest → ``ok``. Every merged pair is drawn on the review sheet
   ``cache/<size>/duplicates.png``, worst first.
3. **Write** ``images.npy`` (uint8, (N, 3, size, size)) and then ``manifest.json``, both atomically.
   The manifest is written last: a cache is complete exactly when its manifest names its inputs.

The pass's key hashes the config fields that change pixels and the (id, sha256) of every input, so a
re-run with the same inputs reuses the cache as it is, and a changed catalog or config builds a new one
(decoding only what is new). Items that an earlier rule merged are candidates again on every pass, so a
changed rule heals a workspace.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic
from cleaning import review
from pipeline.cache import DEFAULT_SIZE_PX, hash_strings, read_manifest
from pipeline.catalog import Catalog, Item
from cleaning.decode import Decoded, DecodeOptions, Rejected, decode_file, parse_color
from cleaning import dedup, palette
from pipeline.errors import NftganError
from pipeline.progress import Progress, report
from pipeline.traits_table import table_text
from pipeline.workspace import CollectionPaths, Workspace

CACHE_FORMAT_VERSION = 2  # 2: pixel-verified duplicates, verification thumbnails
#: items whose facts are committed together (and the staging array flushed before)
COMMIT_EVERY = 256
#: the download outcome whose items have a stored original and take part in ``prepare``
CANDIDATE_STATUSES = ("downloaded",)


@dataclass(frozen=True)
class PrepareConfig:
    """Options of ``nftgan prepare``; saved in the cache's manifest."""

    size_px: int = DEFAULT_SIZE_PX
    fit: str = "crop"  # crop | pad
    background: str = "#808080"  # neutral mid-gray: maps to 0 in [-1, 1]
    #: largest local difference (levels of 0..255, worst cell of ~1/16 of the side) a lossy or resampled
    #: copy may show and still be a near-duplicate; lossless images on one grid must match exactly
    near_dup_threshold: float = dedup.DEFAULT_MAX_DIFFERENCE
    near_dups: bool = True  # False: only exact and same-pixel duplicates are merged
    resample: str = "auto"  # auto | pixel | smooth
    min_size_px: int = 16
    max_pixels: int = 64_000_000
    max_bytes: int = 200 * 2**20
    workers: int = 0  # 0 = one per core; does not change the output

    def validate(self) -> None:
        if not 8 <= self.size_px <= 2048:
            raise NftganError(f"--size must be between 8 and 2048 pixels, got {self.size_px}")
        if self.fit not in ("crop", "pad"):
            raise NftganError(f"--fit must be 'crop' or 'pad', got {self.fit!r}")
        if self.resample not in ("auto", "pixel", "smooth"):
            raise NftganError(f"--resample must be 'auto', 'pixel' or 'smooth', got {self.resample!r}")
        try:
            parse_color(self.background)
        except ValueError:
            raise NftganError(f"--background must be a color like #808080, got {self.background!r}")
        if not (self.near_dup_threshold == -1 or 0 <= self.near_dup_threshold <= 255):
            raise NftganError(
                "--near-dup-threshold must be between 0 and 255 levels (-1 or --no-near-dups: off), "
                f"got {self.near_dup_threshold:g}"
            )
        if self.min_size_px < 1 or self.max_pixels < 1 or self.max_bytes < 1:
            raise NftganError("--min-size, --max-pixels and --max-bytes must be positive")
        if self.workers < 0:
            raise NftganError("--workers must be 0 (one per core) or more")

    def output_settings(self) -> dict[str, Any]:
        """The fields that change the cache's content (everything but ``workers``)."""
        d = dataclasses.asdict(self)
        d.pop("workers")
        return d

    def max_difference(self) -> float | None:
        """The near-duplicate tolerance, or None when near-duplicate search is off."""
        if not self.near_dups or self.near_dup_threshold < 0:
            return None
        return float(self.near_dup_threshold)

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions(
            size_px=self.size_px, fit=self.fit, background=parse_color(self.background),  # type: ignore[arg-type]
            resample=self.resample, min_size_px=self.min_size_px,  # type: ignore[arg-type]
            max_pixels=self.max_pixels, max_bytes=self.max_bytes,
        )


@dataclass(frozen=True)
class PrepareSummary:
    slug: str
    size_px: int
    count: int
    candidates: int
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    decoded_now: int = 0
    reused: bool = False
    cache_path: str = ""
    content_hash: str = ""
    seconds: float = 0.0
    review_sheet: str | None = None  # duplicates.png, when anything was merged
    decide_seconds: float = 0.0  # of ``seconds``: duplicate search and pixel verification
    pixel_art: str | None = None  # grid and palette line, or why not (cleaning.palette)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def warnings(self) -> list[str]:
        near = self.duplicates.get("near-duplicate", 0)
        if self.candidates and near / self.candidates > NEAR_DUP_WARN_FRACTION:
            return [
                f"{near} of {self.candidates} items ({near / self.candidates:.0%}) were merged as near-duplicates: "
                f"look at the review sheet, and if distinct tokens were merged re-run with a lower "
                f"--near-dup-threshold or --no-near-dups"
            ]
        return []

    def kept_line(self) -> str:
        """One line: kept N of M, and how many of each duplicate kind (and rejects)."""
        parts = [f"{self.duplicates.get(kind, 0)} {kind}" for kind in DUPLICATE_KINDS]
        parts += [f"{n} {kind}" for kind, n in sorted(self.duplicates.items()) if kind not in DUPLICATE_KINDS]
        parts.append(f"{sum(self.rejected.values())} rejected")
        return f"{self.slug}: kept {self.count} of {self.candidates} ({', '.join(parts)})"

    def describe(self) -> str:
        if self.reused:
            head = f"{self.slug}: cache {self.size_px}px is up to date ({self.count} images), reused"
        else:
            head = (
                f"{self.slug}: {self.count} images of {self.candidates} in the {self.size_px}px cache "
                f"({self.decoded_now} decoded now, {self.seconds:.1f} s)"
            )
        lines = [head]
        for label, counts in (("rejected", self.rejected), ("duplicate", self.duplicates)):
            for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {label}: {reason}: {n}")
        lines.append(f"  cache: {self.cache_path}")
        if self.review_sheet:
            lines.append(f"  merged pairs, worst first: {self.review_sheet}")
        if self.pixel_art:
            lines.append(f"  {self.pixel_art}")
        lines += [f"warning: {w}" for w in self.warnings()]
        lines.append(self.kept_line())
        return "\n".join(lines)


#: the duplicate reasons, from the surest to the least sure
DUPLICATE_KINDS = ("exact-duplicate", "same-pixels", "near-duplicate")
#: warn when more than this fraction of the candidates were merged as near-duplicates
NEAR_DUP_WARN_FRACTION = 0.05


def prepare(
    ws: Workspace,
    slug: str,
    config: PrepareConfig,
    *,
    progress: Progress | None = None,
) -> PrepareSummary:
    """Run the cleaning stage for one collection and size (see the module docstring)."""
    config.validate()
    started = time.monotonic()
    col = ws.collection(slug)
    if not col.catalog.is_file():
        raise NftganError(
            f"no collection {slug!r} in {ws.root}: run `nftgan import {slug} DIR` or `nftgan scrape {slug}` first"
        )
    cache_dir = col.cache_dir(config.size_px)
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temps(cache_dir)
    with Catalog(col.catalog) as cat:
        candidates = [it for it in cat.items(CANDIDATE_STATUSES) if it.stored_path and it.sha256]
        if not candidates:
            counts = cat.counts()
            raise NftganError(
                f"nothing to prepare in {slug!r}: {sum(counts.values())} items, none downloaded yet"
            )
        settings = config.output_settings()
        key = hash_strings(
            [f"v{CACHE_FORMAT_VERSION}", json.dumps(settings, sort_keys=True)]
            + [f"{it.id}:{it.sha256}" for it in candidates]
        )
        reused = _reuse(ws, col, config.size_px, key)
        if reused is not None and sum(cat.prepared_counts(config.size_px).values()) != len(candidates):
            reused = None  # the cache is there, its decisions are not (a catalog restored from a backup)
        if reused is not None:
            by_id = {it.id: it for it in candidates}
            manifest = read_manifest(ws, slug, config.size_px) or {"item_ids": []}
            # traits may have been listed since (a re-scrape adds them without changing any image)
            _write_traits(col.cache_traits(config.size_px), [by_id[i] for i in manifest["item_ids"] if i in by_id])
            art = _pixel_art(col, config, [by_id[i] for i in manifest["item_ids"] if i in by_id], manifest)
            return dataclasses.replace(reused, seconds=time.monotonic() - started, pixel_art=art)

        store = DecodeStore(col.cache_dir(config.size_px), config.decode_options())
        staging_path = col.cache_staging(config.size_px, key)
        thumbs_path = col.cache_thumbs(config.size_px, key)
        for stale in col.cache_staging_files(config.size_px):  # every row is refilled: a killed pass's are not read
            stale.unlink(missing_ok=True)
        staging = _open_staging(staging_path, (len(candidates), 3, config.size_px, config.size_px))
        row_of = {it.id: row for row, it in enumerate(candidates)}
        thumbs = _Thumbs(_open_staging(thumbs_path, (len(candidates), dedup.THUMB_MAX_PX, dedup.THUMB_MAX_PX, 3)),
                         row_of, store, col, config.decode_options())
        # facts known for this content and these decode settings: no decode; rows from the last cache
        known = [it for it in candidates if it.prep_key == store.fact_key(it.sha256)]
        gathered = _gather_from_cache(ws, col, config.size_px, store.key, [it for it in known if it.phash],
                                      row_of, staging)
        todo = [it for it in candidates if it.prep_key != store.fact_key(it.sha256)
                or (it.phash is not None and it.id not in gathered)]
        decoded_now = _decode_all(col, cat, todo, row_of, staging, thumbs, store, config, progress)

        changed = {it.id: it for it in cat.items_by_id([it.id for it in todo])}
        items = [changed.get(it.id, it) for it in candidates]
        fresh = {it.id: it for it in items}
        decide_started = time.monotonic()
        decisions, ok_ids, merges = _decide(items, config.max_difference(), thumbs)
        decide_seconds = time.monotonic() - decide_started
        cat.set_prepared(config.size_px, decisions)  # this size's decisions; other sizes keep theirs
        rejected = Counter(f["reason"] for f in decisions.values() if f["status"] == "rejected")
        duplicates = Counter(f["reason"] for f in decisions.values() if f["status"] == "duplicate")
        sheet = col.cache_review_sheet(config.size_px)
        if merges:
            review.write_sheet(sheet, merges, lambda i: thumbs.of(fresh[i]), config.max_difference())
        else:
            sheet.unlink(missing_ok=True)

        array_path = col.cache_array(config.size_px)
        shape = (len(ok_ids), 3, config.size_px, config.size_px)
        with atomic.atomic_path(array_path, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            rows = [row_of[i] for i in ok_ids]
            for start in range(0, len(rows), 1024):
                out[start : start + 1024] = staging[rows[start : start + 1024]]
            out.flush()
            del out
        traits_path = col.cache_traits(config.size_px)
        has_traits = _write_traits(traits_path, [fresh[i] for i in ok_ids])
        sha_of = {it.id: it.sha256 for it in candidates}
        content_hash = hash_strings([key] + [f"{i}:{sha_of[i]}" for i in ok_ids])
        manifest = {
            "format_version": CACHE_FORMAT_VERSION,
            "count": len(ok_ids),
            "size_px": config.size_px,
            "fit": config.fit,
            "background": config.background,
            "dtype": "uint8",
            "layout": "NCHW",
            "item_ids": ok_ids,
            "candidates": len(candidates),
            "rejected": dict(rejected),
            "duplicates": dict(duplicates),
            "review_sheet": sheet.name if merges else None,
            "traits_table": traits_path.name if has_traits else None,
            "config": dataclasses.asdict(config),
            "input_key": key,
            "decode_key": store.key,  # the decode settings of the rows (a later pass may copy them)
            "row_sha256": [sha_of[i] for i in ok_ids],  # the content of each row
            "content_hash": content_hash,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic.write_json(col.cache_manifest(config.size_px), manifest)
        art = _pixel_art(col, config, [fresh[i] for i in ok_ids], manifest)
        del staging
        thumbs.close()
        staging_path.unlink(missing_ok=True)
        thumbs_path.unlink(missing_ok=True)
    return PrepareSummary(
        slug=slug, size_px=config.size_px, count=len(ok_ids), candidates=len(candidates),
        rejected=dict(rejected), duplicates=dict(duplicates), decoded_now=decoded_now, reused=False,
        cache_path=str(array_path), content_hash=content_hash, seconds=time.monotonic() - started,
        review_sheet=str(sheet) if merges else None, decide_seconds=decide_seconds, pixel_art=art,
    )


def _pixel_art(col: CollectionPaths, config: PrepareConfig, kept: list[Item], manifest: dict[str, Any]) -> str:
    """Write or remove ``pixel-art.json`` for the finished cache (see cleaning.palette); one summary line."""
    images = np.load(col.cache_array(config.size_px), mmap_mode="r")
    decision = palette.update_pixel_art(
        col, config.size_px, kept, manifest, images, fit=config.fit, resample=config.resample,
        background=parse_color(config.background),
    )
    return palette.describe(decision)


def inputs_fingerprint(ws: Workspace, slug: str) -> str:
    """What ``prepare`` reads, as one hash: the (id, sha256) of every item with a stored original.

    An orchestrator keys its cache of the stage on this (with the options): it changes exactly when a
    re-run of ``prepare`` could produce something else."""
    col = ws.collection(slug)
    if not col.catalog.is_file():
        return "no-catalog"
    with Catalog(col.catalog) as cat:
        items = [it for it in cat.items(CANDIDATE_STATUSES) if it.stored_path and it.sha256]
    return hash_strings([f"{it.id}:{it.sha256}" for it in items])


def _reuse(ws: Workspace, col: CollectionPaths, size_px: int, key: str) -> PrepareSummary | None:
    array_path = col.cache_array(size_px)
    manifest = read_manifest(ws, col.slug, size_px)
    if manifest is None:
        return None
    try:
        shape = np.load(array_path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None
    if manifest.get("input_key") != key or tuple(shape) != (manifest["count"], 3, size_px, size_px):
        return None
    sheet = col.cache_review_sheet(size_px)
    return PrepareSummary(
        slug=col.slug, size_px=size_px, count=manifest["count"], candidates=manifest["candidates"],
        rejected=manifest["rejected"], duplicates=manifest["duplicates"], reused=True,
        cache_path=str(array_path), content_hash=manifest["content_hash"],
        review_sheet=str(sheet) if manifest.get("review_sheet") and sheet.is_file() else None,
    )


def _open_staging(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    if path.exists():
        try:
            arr = np.load(path, mmap_mode="r+")
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass
        path.unlink()
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


# -- step 1: decode -------------------------------------------------------------------------------
def _decode_task(args: tuple[int, str, DecodeOptions]) -> tuple[int, Decoded | Rejected]:
    item_id, path, opts = args
    return item_id, decode_file(path, opts)


#: fewer decodes than this run in this process (a refresh's few new images), more in a process pool
INLINE_BELOW = 128


def _iter_decoded(
    tasks: list[tuple[int, str, DecodeOptions]], workers: int
) -> Iterator[tuple[int, Decoded | Rejected]]:
    if workers <= 1 or len(tasks) < INLINE_BELOW:  # starting worker processes costs ~1 s: not for a few images
        for task in tasks:
            yield _decode_task(task)
        return
    # spawn, not fork: prepare may run inside a threaded orchestrator, where fork is unsafe. An executor,
    # not multiprocessing.Pool: when a worker dies (OOM killer, a crashing decoder) the pool is reported
    # broken instead of waiting forever for the lost task.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            yield from pool.map(_decode_task, tasks, chunksize=8)
        except BrokenProcessPool as e:
            raise NftganError(
                "a decode worker died (out of memory, or a decoder crashed); the work done so far is saved: "
                "re-run `nftgan prepare` to continue, with --workers 1 to find the file"
            ) from e


def _decode_all(
    col: CollectionPaths,
    cat: Catalog,
    todo: list[Item],
    row_of: dict[int, int],
    staging: np.ndarray,
    thumbs: _Thumbs,
    store: DecodeStore,
    config: PrepareConfig,
    progress: Progress | None,
) -> int:
    """Facts and rows of ``todo``: from the decode store, else decoded (and stored); facts committed in batches.
    Returns how many were decoded."""
    if not todo:
        return 0
    opts = config.decode_options()
    workers = config.workers or os.cpu_count() or 1
    pending: list[tuple[int, dict[str, Any]]] = []

    def commit() -> None:  # staging is refilled by every pass, so its rows need not reach the disk first
        cat.update_many(pending)
        pending.clear()

    done = 0
    report(progress, "prepare", 0, len(todo), unit="images")
    sha_of = {it.id: it.sha256 or "" for it in todo}
    tasks = []
    for it in todo:  # decoded before, with these settings: no decode
        stored = store.get(sha_of[it.id])
        if stored is None:
            tasks.append((it.id, str(col.resolve(it.stored_path or "")), opts))
            continue
        array, thumb, facts = stored
        if array.size:  # a reject keeps only its facts
            staging[row_of[it.id]] = array
            thumbs.put(it.id, thumb)
        pending.append((it.id, {**_catalog_facts(facts), "prep_key": store.fact_key(sha_of[it.id])}))
        done += 1
        if len(pending) >= COMMIT_EVERY:
            commit()
    decoded = 0
    for item_id, result in _iter_decoded(tasks, workers):
        decoded += 1
        if isinstance(result, Decoded):
            staging[row_of[item_id]] = result.array
            if result.thumb is not None:
                thumbs.put(item_id, result.thumb)
        facts = _facts_of(result)
        store.put(sha_of[item_id], result, facts)
        pending.append((item_id, {**_catalog_facts(facts), "prep_key": store.fact_key(sha_of[item_id])}))
        done += 1
        if len(pending) >= COMMIT_EVERY:
            commit()
        if done % 64 == 0 or done == len(todo):
            report(progress, "prepare", done, len(todo), unit="images")
    commit()
    return decoded


def _facts_of(result: Decoded | Rejected) -> dict[str, Any]:
    """What a decode tells the catalog (and the decode store) about an image."""
    if isinstance(result, Decoded):
        return {
            "phash": result.phash, "width": result.width, "height": result.height,
            "format": result.format, "reason": None, "detail": None,
            "pixel_hash": result.pixel_hash, "lossy": int(result.lossy),
            "native_w": result.native_w, "native_h": result.native_h,
            "pixel_art": int(result.drawn_as_pixel_art),
        }
    return {
        "phash": None, "width": result.width, "height": result.height,
        "format": result.format, "reason": result.reason, "detail": result.detail,
        "pixel_hash": None, "lossy": None, "native_w": None, "native_h": None,
        "pixel_art": None,
    }


def _gather_from_cache(
    ws: Workspace, col: CollectionPaths, size_px: int, decode_key: str, wanted: list[Item], row_of: dict[int, int],
    staging: np.ndarray,
) -> set[int]:
    """Copy the rows of ``wanted`` that the last cache of this size holds, with the same content and decode
    settings, into ``staging`` (one gather, no per-item read); returns the ids copied."""
    manifest = read_manifest(ws, col.slug, size_px)
    if manifest is None or manifest.get("decode_key") != decode_key:
        return set()
    ids, shas = manifest.get("item_ids") or [], manifest.get("row_sha256") or []
    try:
        images = np.load(col.cache_array(size_px), mmap_mode="r")
    except (OSError, ValueError):
        return set()
    if len(ids) != len(shas) or images.shape != (len(ids), *staging.shape[1:]):
        return set()
    old_row = {i: r for r, i in enumerate(ids)}
    pairs = sorted((old_row[it.id], row_of[it.id]) for it in wanted
                   if it.id in old_row and shas[old_row[it.id]] == it.sha256)
    for start in range(0, len(pairs), 4096):
        src, dst = zip(*pairs[start : start + 4096])
        staging[list(dst)] = images[list(src)]
    return {ids[src] for src, _ in pairs}


class _Thumbs:
    """Verification thumbnails by item, kept for the items decoded (or read from the store) in this pass and
    read on demand for the others (only the pairs the hashes propose are ever looked at)."""

    def __init__(self, array: np.ndarray, row_of: dict[int, int], store: DecodeStore, col: CollectionPaths,
                 opts: DecodeOptions) -> None:
        self.array, self.row_of, self.store, self.col, self.opts = array, row_of, store, col, opts
        self.filled = np.zeros(len(array), bool)

    def put(self, item_id: int, thumb: np.ndarray) -> None:
        row = self.row_of[item_id]
        self.array[row, : thumb.shape[0], : thumb.shape[1]] = thumb
        self.filled[row] = True

    def of(self, it: Item) -> np.ndarray:
        row = self.row_of[it.id]
        if not self.filled[row]:
            stored = self.store.get(it.sha256 or "")
            if stored is not None and stored[1].size:
                self.put(it.id, stored[1])
            else:  # the store lost it: decode it again for its thumbnail
                _, result = _decode_task((it.id, str(self.col.resolve(it.stored_path or "")), self.opts))
                if isinstance(result, Decoded) and result.thumb is not None:
                    self.put(it.id, result.thumb)
        th, tw = dedup.thumb_shape(it.native_w or 1, it.native_h or 1)
        return np.asarray(self.array[row, :th, :tw])

    def close(self) -> None:
        del self.array


class DecodeStore:
    """Decode results by (image content, decode settings), kept between prepares: a refresh that lists 30 new
    tokens decodes those 30, not the whole collection. One small file per sha256 (a JSON line of the catalog
    facts and shapes, then the array's and the thumbnail's bytes), written by temp + rename, under
    ``cache/<size>/decoded-<settings hash>/``; rejects are kept too (facts only), so a bad file is not decoded
    again either."""

    def __init__(self, cache_dir: Path, opts: DecodeOptions) -> None:
        settings = json.dumps([f"v{CACHE_FORMAT_VERSION}", dataclasses.asdict(opts)], sort_keys=True, default=str)
        self.key = hash_strings([settings])[:16]  # the decode settings
        self.root = cache_dir / f"decoded-{self.key}"
        for sub in self.root.glob("??"):  # temp files of a prepare killed mid-write
            atomic.remove_stale_temps(sub)

    def fact_key(self, sha256: str | None) -> str:
        """What an item's ``prep_key`` says when its catalog facts are those of this content and these settings."""
        return hash_strings([self.key, sha256 or ""])[:32]

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.bin"

    def get(self, sha256: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        path = self._path(sha256) if _SHA256.fullmatch(sha256 or "") else None
        try:
            data = path.read_bytes() if path is not None else None
        except OSError:
            return None
        if not data:
            return None
        try:  # one JSON line (facts and shapes), then the array's and the thumbnail's bytes
            head_end = data.index(b"\n")
            head = json.loads(data[:head_end])
            a_shape, t_shape = tuple(head["array"]), tuple(head["thumb"])
            a_n, t_n = int(np.prod(a_shape)), int(np.prod(t_shape))
            body = np.frombuffer(data, np.uint8, offset=head_end + 1)
            if body.size != a_n + t_n:
                return None  # a damaged entry: decode again
            return body[:a_n].reshape(a_shape), body[a_n:].reshape(t_shape), head["facts"]
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, sha256: str, result: Decoded | Rejected, facts: dict[str, Any]) -> None:
        if not _SHA256.fullmatch(sha256 or ""):
            return
        array = result.array if isinstance(result, Decoded) else np.zeros((0,), np.uint8)
        thumb = result.thumb if isinstance(result, Decoded) and result.thumb is not None else np.zeros((0, 0, 3), np.uint8)
        head = json.dumps({"facts": facts, "array": list(array.shape), "thumb": list(thumb.shape)}).encode()
        data = head + b"\n" + np.ascontiguousarray(array, np.uint8).tobytes() + np.ascontiguousarray(thumb, np.uint8).tobytes()
        # temp + rename, without fsync: an entry is a cache of a decode; one torn by a crash fails the size check
        # above and is decoded again
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _write_traits(path: Path, items: list[Item]) -> bool:
    """The per-row trait table beside ``images.npy`` (row order = cache order; format:
    :mod:`pipeline.traits_table`, a type listed several times per token kept as a set); False when no item
    has traits (the file is then removed)."""
    text = table_text([(it.id, it.token_id or "", it.trait_pairs()) for it in items])
    if text is None:
        path.unlink(missing_ok=True)
        return False
    atomic.write_text(path, text)
    return True


def _catalog_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Decode facts as catalog columns: a decode reject's reason is ``decode_reason`` (the item's own
    ``reason`` is its download outcome's)."""
    out = {k: v for k, v in facts.items() if k not in ("reason", "detail")}
    out.update(decode_reason=facts.get("reason"), decode_detail=facts.get("detail"))
    return out


# -- step 2: decide -------------------------------------------------------------------------------
def _decide(
    items: list[Item], max_difference: float | None, thumbs: _Thumbs
) -> tuple[dict[int, dict[str, Any]], list[int], list[dedup.Merge]]:
    """Final status of every candidate (items in id order); returns (updates, ids kept in order, merges)."""
    decisions: dict[int, dict[str, Any]] = {}
    entries = []
    by_id = {it.id: it for it in items}
    for it in items:
        if it.phash is None or it.pixel_hash is None:  # decode rejected it: keep its reason
            decisions[it.id] = {"status": "rejected", "reason": it.decode_reason or "corrupt",
                                "detail": it.decode_detail, "duplicate_of": None}
            continue
        entries.append(dedup.Entry(
            id=it.id, sha256=it.sha256 or "", pixel_hash=it.pixel_hash, phash=int(it.phash, 16),
            lossy=bool(it.lossy), native_wh=(it.native_w or 1, it.native_h or 1), pixel_art=bool(it.pixel_art),
        ))
    merges = dedup.find_duplicates(
        entries, lambda i: thumbs.of(by_id[i]), max_difference
    )
    ok_ids = []
    for e in entries:
        m = merges.get(e.id)
        if m is not None:
            decisions[e.id] = {"status": "duplicate", "reason": m.kind, "detail": m.detail(max_difference),
                               "duplicate_of": m.of}
        else:
            decisions[e.id] = {"status": "ok", "reason": None, "detail": None, "duplicate_of": None}
            ok_ids.append(e.id)
    return decisions, ok_ids, sorted(merges.values(), key=lambda m: m.id)
