"""The collection's native pixel grid and palette, when it is drawn as pixel art (``cache/<size>/pixel-art.json``).

**Rule.** A collection is pixel art at a cache size when at least :data:`MIN_SHARE` of the kept items were
drawn as pixel art (``catalog.pixel_art``: small and few colours on the native grid) on *one* native grid
(``native_w`` x ``native_h``), the cache was normalized with nearest-neighbour (``--resample`` auto or
pixel) and that grid fits the cache (an integer scale factor of at least 1). Then ``prepare`` writes the
file; otherwise it removes a stale one.

**Geometry in the cache.** ``normalize`` (cleaning.decode) crops a pixel-art token to a square (``--fit
crop``), scales it by ``cell_px = size // max(grid)`` with nearest-neighbour and centers it on the
background, so the drawn grid starts at ``origin`` and every cell is ``cell_px`` pixels. The file records
both; ``training.pixelart.snap_to_pixel_art`` derives the same geometry from ``grid`` and the image size.

**Palette.** The colours of the cells of the pixel-art items on the modal grid (one pixel per cell, read
from the tensor cache), plus the background when the drawing is padded. All distinct colours when there
are at most :data:`MAX_PALETTE`; else a median-cut palette of :data:`MAX_PALETTE` colours (PIL's
``quantize``) of an evenly strided sample of at most :data:`QUANTIZE_SAMPLE` cells.

**Backgrounds.** The colours the collection draws its backgrounds in: per item, the most common colour of
the drawn grid's outer ring of cells (a palette colour), kept when at least :data:`MIN_BACKGROUND_ITEMS`
items have it, with their counts. ``training.pixelart`` snaps a generated image's background to the nearest
of them, so a background the generator drew a little off is one of the collection's, not a palette colour
that only hair or skin ever had.

**Cell palettes.** Per cell of the drawn grid, the palette colours the collection's pixel-art items draw
there (``cell_palettes``: palette indices, row-major). A trait-layered collection draws few colours at a
cell (about five of 75 on the 10,000-token pixel collection): skins, a mouth's brown, a mask. ``training.pixelart``
snaps a generated cell to one of those when it is nearly as near as the nearest colour of the whole
palette, so a faint shadow on a cheek is skin, not the darker skin that only a mole elsewhere has.

The file names the cache's ``content_hash``: a re-run of ``prepare`` that reuses the cache keeps it when
it matches and recomputes it otherwise (a pass killed between the manifest and this file heals).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline import atomic
from pipeline.catalog import Item
from pipeline.workspace import CollectionPaths

FORMAT = "nftgan-pixel-art-1"
#: share of the kept items that must be pixel art on one native grid
MIN_SHARE = 0.8
#: largest palette kept as it is; more distinct colours are reduced by median cut to this many
MAX_PALETTE = 256
#: cells fed to median cut at most (an even stride over all cells)
QUANTIZE_SAMPLE = 1_000_000
#: items a ring colour must be the background of to be listed among the collection's backgrounds
MIN_BACKGROUND_ITEMS = 2
#: backgrounds listed at most (the most common)
MAX_BACKGROUNDS = 64
_CHUNK = 1024


def cache_geometry(native_wh: tuple[int, int], size_px: int, fit: str) -> tuple[tuple[int, int], int, tuple[int, int]] | None:
    """(grid (w, h) in the cache, cell size in pixels, origin (x, y)) of a pixel-art token normalized to
    ``size_px`` the way ``cleaning.decode.normalize`` does it; None when the grid does not fit."""
    w, h = native_wh
    if fit == "crop":
        w = h = min(w, h)
    cell = size_px // max(w, h)
    if cell < 1:
        return None
    return (w, h), cell, ((size_px - w * cell) // 2, (size_px - h * cell) // 2)


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def decide(items: Sequence[Item], size_px: int, fit: str, resample: str) -> dict[str, Any]:
    """Is the collection pixel art at this size? {"pixel_art", "reason", "share", "native_grid", ...}."""
    n = len(items)
    grids = Counter((it.native_w, it.native_h) for it in items if it.pixel_art and it.native_w and it.native_h)
    ranked = sorted(grids.items(), key=lambda kv: (-kv[1], kv[0]))
    grid, count = ranked[0] if ranked else ((0, 0), 0)
    share = count / n if n else 0.0
    out: dict[str, Any] = {
        "pixel_art": False, "share": round(share, 6), "items": n, "pixel_art_items": count,
        "native_grid": list(grid) if count else None, "min_share": MIN_SHARE,
    }
    if resample == "smooth":
        return {**out, "reason": "the cache was resampled smoothly (--resample smooth)"}
    if share < MIN_SHARE:
        return {**out, "reason": f"{share:.0%} of the kept items are pixel art on one native grid (< {MIN_SHARE:.0%})"}
    geometry = cache_geometry(grid, size_px, fit)
    if geometry is None:
        return {**out, "reason": f"the native grid {grid[0]}x{grid[1]} is larger than the {size_px}px cache"}
    return {**out, "pixel_art": True, "reason": None}


def palette_of(images: np.ndarray, rows: Sequence[int], grid: tuple[int, int], cell: int,
               origin: tuple[int, int]) -> tuple[np.ndarray, int, str]:
    """(palette uint8 (K, 3), distinct colours seen, method) of the cells of ``images[rows]``."""
    values, counts = [], []
    n_cells = len(rows) * grid[0] * grid[1]
    stride = max(1, math.ceil(n_cells / QUANTIZE_SAMPLE))
    sample, seen = [], 0
    for cells in _grid_cells(images, rows, grid, cell, origin):
        rgb = cells.reshape(-1, 3)
        v, c = np.unique(_pack(rgb), return_counts=True)
        values.append(v)
        counts.append(c)
        first = (-seen) % stride  # the same stride across chunk borders
        sample.append(rgb[first::stride])
        seen += len(rgb)
    all_values = np.concatenate(values) if values else np.zeros(0, np.int64)
    distinct = np.unique(all_values)
    if len(distinct) <= MAX_PALETTE:
        return _unpack(distinct).astype(np.uint8), len(distinct), "distinct"
    pixels = np.concatenate(sample).reshape(-1, 1, 3)
    quantized = Image.fromarray(np.ascontiguousarray(pixels), "RGB").quantize(
        colors=MAX_PALETTE, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    used = sorted(index for _, index in quantized.getcolors(MAX_PALETTE) or [])
    flat = quantized.getpalette() or []
    palette = np.array(sorted({tuple(flat[3 * i : 3 * i + 3]) for i in used}), dtype=np.uint8)
    return palette, len(distinct), "median-cut"


def backgrounds_of(images: np.ndarray, rows: Sequence[int], grid: tuple[int, int], cell: int,
                   origin: tuple[int, int], palette: np.ndarray) -> list[tuple[tuple[int, int, int], int]]:
    """The collection's background colours, most common first, with the items drawn on each: per item the
    most common colour of the drawn grid's outer ring of cells, as its nearest palette colour (the palette
    itself when it holds every distinct colour), kept when :data:`MIN_BACKGROUND_ITEMS` items share it."""
    gw, gh = grid
    ring = np.ones((gh, gw), bool)
    if gh > 2 and gw > 2:
        ring[1:-1, 1:-1] = False
    modes: Counter[int] = Counter()  # packed ring colour -> items
    for cells in _grid_cells(images, rows, grid, cell, origin):
        for row in _pack(cells[:, ring]):  # (n, ring cells)
            values, n = np.unique(row, return_counts=True)
            modes[int(values[n.argmax()])] += 1
    counts: Counter[tuple[int, int, int]] = Counter()
    # each distinct ring colour as its nearest palette colour, once
    nearest = _nearest_rgb(np.array(list(modes), np.int64), palette)
    for (mode, n), i in zip(modes.items(), nearest):
        counts[(int(palette[i][0]), int(palette[i][1]), int(palette[i][2]))] += n
    kept = [(c, n) for c, n in counts.most_common() if n >= MIN_BACKGROUND_ITEMS]
    return kept[:MAX_BACKGROUNDS]


def cell_palettes_of(images: np.ndarray, rows: Sequence[int], grid: tuple[int, int], cell: int,
                     origin: tuple[int, int], palette: np.ndarray) -> list[list[int]]:
    """Per cell of the drawn grid (row-major), the sorted palette indices of the colours ``images[rows]``
    draw there (each colour as its nearest palette colour, RGB, for a median-cut palette)."""
    gw, gh = grid
    packed_palette = _pack(palette)
    order = np.argsort(packed_palette, kind="stable")
    seen = np.zeros((gh * gw, len(palette)), bool)
    positions = np.arange(gh * gw)
    for cells in _grid_cells(images, rows, grid, cell, origin):
        packed = _pack(cells.reshape(len(cells), gh * gw, 3))
        colours, inverse = np.unique(packed, return_inverse=True)
        known = np.isin(colours, packed_palette)
        index = np.empty(len(colours), np.int64)  # each distinct colour's palette index
        index[known] = order[np.searchsorted(packed_palette[order], colours[known])]
        index[~known] = _nearest_rgb(colours[~known], palette)  # median cut: the nearest palette colour
        seen[np.broadcast_to(positions, packed.shape), index[inverse.reshape(packed.shape)]] = True
    return [np.flatnonzero(row).tolist() for row in seen]


def _grid_cells(images: np.ndarray, rows: Sequence[int], grid: tuple[int, int], cell: int,
                origin: tuple[int, int]) -> Iterator[np.ndarray]:
    """``images[rows]`` a chunk at a time, one pixel per cell of the drawn grid: uint8 (n, grid_h, grid_w, 3)."""
    (gw, gh), (ox, oy) = grid, origin
    for start in range(0, len(rows), _CHUNK):
        chunk = np.asarray(images[list(rows[start : start + _CHUNK])])
        yield chunk[:, :, oy : oy + gh * cell : cell, ox : ox + gw * cell : cell].transpose(0, 2, 3, 1)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) colours -> (...) int64 0xRRGGBB."""
    rgb = np.asarray(rgb).astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    """(...) 0xRRGGBB -> (..., 3) int64 colours."""
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)


def _nearest_rgb(packed: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of each packed colour's nearest palette colour (squared RGB distance, ties to the lower index),
    in chunks of :data:`_CHUNK` x 4 colours."""
    pal = palette.astype(np.int64)
    out = np.empty(len(packed), np.int64)
    for start in range(0, len(packed), _CHUNK * 4):
        rgb = _unpack(packed[start : start + _CHUNK * 4])
        out[start : start + len(rgb)] = np.square(rgb[:, None, :] - pal[None]).sum(-1).argmin(axis=1)
    return out


def update_pixel_art(
    col: CollectionPaths, size_px: int, items: Sequence[Item], manifest: dict[str, Any],
    images: np.ndarray, *, fit: str, resample: str, background: tuple[int, int, int],
) -> dict[str, Any]:
    """Write (or keep, or remove) ``cache/<size>/pixel-art.json`` for the cache that ``manifest`` describes.

    ``items`` are the kept items in cache row order and ``images`` the cache (uint8 (N, 3, S, S)).
    Returns the decision (the file's content when the collection is pixel art)."""
    path = col.cache_pixel_art(size_px)
    content_hash = str(manifest.get("content_hash"))
    existing = _read(path)
    if (existing is not None and existing.get("format") == FORMAT and existing.get("content_hash") == content_hash
            and "backgrounds" in existing and "cell_palettes" in existing):
        # (a file of before the backgrounds or the cell palettes were listed is recomputed)
        return existing
    decision = decide(items, size_px, fit, resample)
    if not decision["pixel_art"]:
        path.unlink(missing_ok=True)
        return decision
    native = (int(decision["native_grid"][0]), int(decision["native_grid"][1]))
    geometry = cache_geometry(native, size_px, fit)
    assert geometry is not None  # decide checked it
    grid, cell, origin = geometry
    rows = [r for r, it in enumerate(items) if it.pixel_art and (it.native_w, it.native_h) == native]
    palette, n_distinct, method = palette_of(images, rows, grid, cell, origin)
    backgrounds = backgrounds_of(images, rows, grid, cell, origin, palette)
    cell_palettes = cell_palettes_of(images, rows, grid, cell, origin, palette)
    padded = grid[0] * cell < size_px or grid[1] * cell < size_px
    if padded and not (palette == np.array(background, np.uint8)).all(axis=1).any():
        palette = np.concatenate([palette, np.array([background], np.uint8)])
    doc = {
        **decision,
        "format": FORMAT,
        "size_px": size_px,
        "content_hash": content_hash,
        "grid": list(grid),
        "cell_px": cell,
        "origin": list(origin),
        "padded": padded,
        "background": _hex(background),
        "palette": [_hex(c) for c in palette],
        "palette_size": len(palette),
        "backgrounds": [_hex(c) for c, _ in backgrounds],
        "background_items": [n for _, n in backgrounds],
        "palette_method": method,
        "distinct_colors": n_distinct,
        "cell_palettes": cell_palettes,
        "rule": (
            f"at least {MIN_SHARE:.0%} of the kept items drawn as pixel art on one native grid, normalized with "
            "nearest-neighbour, the grid fitting the cache"
        ),
        "computed_from": (
            f"one pixel per cell of the {len(rows)} pixel-art items on the {native[0]}x{native[1]} grid in the "
            f"tensor cache ({'all distinct colours' if method == 'distinct' else f'median cut to {MAX_PALETTE} colours'}"
            f"{', plus the background' if padded else ''})"
        ),
    }
    atomic.write_json(path, doc)
    return doc


def describe(decision: dict[str, Any]) -> str:
    """One line for ``prepare``'s summary."""
    if decision.get("pixel_art"):
        w, h = decision["native_grid"]
        return (f"pixel art: {w}x{h} native grid, {decision['palette_size']} colours ({decision['palette_method']}), "
                f"{decision['share']:.0%} of items")
    return f"not pixel art: {decision.get('reason')}"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
