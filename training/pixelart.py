"""Generated images snapped to a pixel-art collection's grid and palette.

``prepare`` writes ``cache/<size>/pixel-art.json`` when a collection is drawn as pixel art (see
``cleaning.palette``: the rule, the grid geometry in the cache, the palette). :func:`snap_to_pixel_art`
makes a generated image look drawn on that grid:

1. **Downsample** to the grid: the mean of each cell (an area/box average). The drawing is centered with
   ``cell = min(H // grid_h, W // grid_w)`` pixels per cell, exactly as the cleaning stage placed the
   tokens; cells continue outward over the padding, the outermost ones cut by the image border.
2. **Nearest palette colour** of each cell's mean, by Euclidean distance in **CIELAB** (LittleCMS through
   PIL's ``ImageCms``: sRGB -> Lab, D50 white point, 8 bits per channel), a perceptual-ish space where a
   step of the same size looks about as different everywhere.
   **Colours the collection draws at that cell** (``cell_palettes`` in pixel-art.json: per cell of the
   drawn grid, the palette colours its items have there). When a drawn cell's nearest palette colour is
   one the collection never draws at that cell, and one it does draw there is at most ``CELL_MARGIN``
   (CIELAB ΔE) farther, the cell takes that one. A faint shadow on a cheek is then the skin, not the darker
   skin that only a mole elsewhere has, nor another layer's colour: the speckles a generator's in-between
   colours became. A cell that already holds a palette colour keeps it, and a colour clearly unlike every
   one the collection draws there stays the nearest of the whole palette (a new drawing is not forced into
   old ones). Measured on the 10,000-token pixel collection at the 10-minute budget (docs/quality.md).
3. **Flat backgrounds.** A generated background is a plain colour plus a little noise, and the noise
   of a cell can land nearer another palette colour (a collection's palette has many near the
   background): speckles. So each image's background is found first, per region (the drawn grid's outer
   ring of cells, and the padding around the grid): its colour as drawn, the median of the region's cells,
   and the colour it stands for, the nearest of the collection's backgrounds (``backgrounds`` in
   pixel-art.json; the padding's colour for the padding; the whole palette for a file without them). A
   cell takes that background when it is within ``BACKGROUND_TOLERANCE`` (CIELAB ΔE) of the drawn colour
   and not more than ``BACKGROUND_SLACK`` farther from it than from its own nearest palette colour (a
   cell that already holds a palette colour keeps it), or when its nearest palette colour is within
   ``BACKGROUND_SLACK`` of the background (a speckle no eye tells from it). So a plain background stays flat, a generator's
   slightly-off gray is the collection's gray, and a face next to a background of a similar colour
   (light skin on gold, 12 ΔE apart) is kept: snapping a real token changes nothing.
4. **Upscale** with nearest neighbour: every pixel of a cell takes its colour.

The result holds only palette colours and is constant on every cell. Vectorized numpy throughout.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms

from pipeline.cache import read_manifest
from pipeline.errors import NftganError
from pipeline.workspace import Workspace

#: CIELAB ΔE (CIE76) within which a cell is taken for the image's background (step 3 of the module docstring)
BACKGROUND_TOLERANCE = 12.0
#: CIELAB ΔE a cell may be farther from its image's drawn background than from its own nearest palette
#: colour and still be taken for the background (a speckle of noise; step 3)
BACKGROUND_SLACK = 3.0
#: CIELAB ΔE a drawn cell's colour may be farther from a colour the collection draws at that cell than from
#: its nearest palette colour and still take it (step 2 of the module docstring; docs/quality.md measured 3 to 20)
CELL_MARGIN = 10.0
FORMAT = "nftgan-pixel-art-1"  # cleaning.palette.FORMAT (training never imports cleaning; a test checks)
_CELLS_PER_CHUNK = 1 << 16


@dataclass(frozen=True)
class PixelArt:
    """A collection's pixel grid and palette at one cache size (``cache/<size>/pixel-art.json``)."""

    grid_wh: tuple[int, int]  # the drawn grid in the cache (a cropped square with --fit crop)
    palette: np.ndarray  # uint8 (K, 3)
    cell_px: int
    origin_xy: tuple[int, int]
    native_grid_wh: tuple[int, int]
    share: float  # of the kept items that are pixel art on that grid
    path: Path
    doc: dict[str, Any]
    backgrounds: np.ndarray | None = None  # uint8 (B, 3): the collection's background colours (None: not listed)
    padding: tuple[int, int, int] | None = None  # the cache's padding colour around the grid (None: not padded)
    #: bool (grid_h, grid_w, K): the palette colours the collection draws at each cell (None: not listed)
    cell_palettes: np.ndarray | None = None

    def snap(self, images_uint8: np.ndarray) -> np.ndarray:
        return snap_to_pixel_art(images_uint8, self.grid_wh, self.palette, backgrounds=self.backgrounds,
                                 padding=self.padding, cell_palettes=self.cell_palettes)

    def settings(self) -> dict[str, Any]:
        """What an output records about the snapping it went through."""
        return {
            "grid": list(self.grid_wh), "native_grid": list(self.native_grid_wh), "cell_px": self.cell_px,
            "origin": list(self.origin_xy), "palette_size": len(self.palette),
            "palette_method": self.doc.get("palette_method"), "share": self.share, "source": str(self.path),
            "content_hash": self.doc.get("content_hash"), "color_space": "CIELAB (D50, LittleCMS via PIL)",
            "backgrounds": (None if self.backgrounds is None else
                            ["#{:02x}{:02x}{:02x}".format(*c) for c in self.backgrounds.tolist()]),
            "cell_palettes": (None if self.cell_palettes is None else
                              {"mean_colours_per_cell": round(float(self.cell_palettes.sum(-1).mean()), 2),
                               "cell_margin": CELL_MARGIN}),
        }


def read_pixel_art(ws: Workspace, slug: str, size_px: int) -> PixelArt | None:
    """The collection's pixel-art grid and palette at ``size_px``; None when it is not pixel art (or the file
    belongs to an older cache than the current one)."""
    path = ws.collection(slug).cache_pixel_art(size_px)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        palette = np.array([hex_rgb(c) for c in doc["palette"]], dtype=np.uint8).reshape(-1, 3)
        art = PixelArt(
            grid_wh=(int(doc["grid"][0]), int(doc["grid"][1])), palette=palette, cell_px=int(doc["cell_px"]),
            origin_xy=(int(doc["origin"][0]), int(doc["origin"][1])),
            native_grid_wh=(int(doc["native_grid"][0]), int(doc["native_grid"][1])), share=float(doc["share"]),
            path=path, doc=doc,
            backgrounds=(np.array([hex_rgb(c) for c in doc["backgrounds"]], dtype=np.uint8).reshape(-1, 3)
                         if doc.get("backgrounds") else None),
            padding=hex_rgb(doc["background"]) if doc.get("padded") and doc.get("background") else None,
            cell_palettes=_cell_palettes(doc.get("cell_palettes"), (int(doc["grid"][0]), int(doc["grid"][1])),
                                         len(palette)),
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise NftganError(f"{path} is malformed ({e}): re-run `nftgan prepare {slug} --size {size_px}`") from e
    if len(art.palette) == 0:
        raise NftganError(f"{path} has an empty palette: re-run `nftgan prepare {slug} --size {size_px}`")
    manifest = read_manifest(ws, slug, size_px)
    if manifest is None or manifest.get("content_hash") != doc.get("content_hash"):
        return None  # stale: prepare rewrites or removes it on its next pass
    return art


def _cell_palettes(listed: Any, grid_wh: tuple[int, int], k: int) -> np.ndarray | None:
    """pixel-art.json's ``cell_palettes`` (per cell, row-major, palette indices) as bool (grid_h, grid_w, k);
    None for a file without them (written before they were listed: the snap uses the whole palette)."""
    if listed is None:
        return None
    gw, gh = grid_wh
    if len(listed) != gw * gh:
        raise ValueError(f"cell_palettes lists {len(listed)} cells, the grid has {gw * gh}")
    out = np.zeros((gh * gw, k), bool)
    for cell, indices in enumerate(listed):
        out[cell, [int(i) for i in indices]] = True  # an index >= k raises IndexError: malformed
    return out.reshape(gh, gw, k)


def hex_rgb(text: str) -> tuple[int, int, int]:
    """"#rrggbb" (as pixel-art.json and a run's canvas write colours) -> (r, g, b)."""
    v = int(str(text).lstrip("#"), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def snap_to_pixel_art(images_uint8: np.ndarray, grid_wh: tuple[int, int], palette: np.ndarray, *,
                      backgrounds: np.ndarray | None = None, padding: tuple[int, int, int] | None = None,
                      cell_palettes: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, H, W): box-averaged to the grid, each cell the nearest palette colour
    (CIELAB), or a colour the collection draws at that cell when nearly as near, backgrounds flat, upscaled
    with nearest neighbour (see the module docstring). ``backgrounds`` (palette colours) are the
    collection's background colours and ``padding`` the colour around the grid; without them any palette
    colour may be a background. ``cell_palettes``: bool (grid_h, grid_w, K), the colours drawn at each cell
    of the grid (None: any)."""
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, 3, H, W) images, got {images.dtype} {images.shape}")
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if len(palette) == 0:
        raise ValueError("the palette is empty")
    n, _, h, w = images.shape
    if n == 0:
        return images.copy()
    gw, gh = int(grid_wh[0]), int(grid_wh[1])
    cell = min(h // gh, w // gw)
    if cell < 1:
        raise ValueError(f"a {gw}x{gh} grid does not fit {w}x{h} images")
    ys = _edges(h, gh, cell)
    xs = _edges(w, gw, cell)
    # 1. box average per cell
    summed = np.add.reduceat(np.add.reduceat(images.astype(np.float32), ys[:-1], axis=2), xs[:-1], axis=3)
    area = np.outer(np.diff(ys), np.diff(xs)).astype(np.float32)
    means = np.rint(summed / area).clip(0, 255).astype(np.uint8)  # (N, 3, cy, cx)
    # 2. nearest palette colour in Lab
    cells = means.transpose(0, 2, 3, 1).reshape(-1, 3)
    cells_lab, palette_lab = to_lab(cells), to_lab(palette)
    shape = (n, len(ys) - 1, len(xs) - 1)
    index, exact = _nearest(cells, palette, cells_lab, palette_lab)
    index, exact = index.reshape(shape), exact.reshape(shape)
    rows, cols = _drawn_cells(ys, h, gh, cell), _drawn_cells(xs, w, gw, cell)
    if cell_palettes is not None:
        if cell_palettes.shape != (gh, gw, len(palette)):
            raise ValueError(f"cell palettes of shape {cell_palettes.shape} for a {gw}x{gh} grid and "
                             f"{len(palette)} colours")
        lab_cells = cells_lab.reshape(*shape, 3)[:, rows, cols]
        index[:, rows, cols] = _prefer_cell_colours(index[:, rows, cols], exact[:, rows, cols], lab_cells,
                                                    palette_lab, cell_palettes)
    # 3. flat backgrounds
    everything = np.arange(len(palette))
    ring_candidates = _indices_of(backgrounds, palette) if backgrounds is not None else everything
    pad_candidates = (np.union1d(_indices_of(np.array([padding], np.uint8), palette), ring_candidates)
                      if padding is not None else ring_candidates)
    index = _flatten_backgrounds(index, exact, cells_lab.reshape(*shape, 3), palette_lab,
                                 rows, cols, ring_candidates if len(ring_candidates) else everything,
                                 pad_candidates if len(pad_candidates) else everything)
    snapped_cells = palette[index]
    # 4. nearest-neighbour upscale
    out = np.repeat(np.repeat(snapped_cells, np.diff(ys), axis=1), np.diff(xs), axis=2)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _prefer_cell_colours(index: np.ndarray, exact: np.ndarray, cell_lab: np.ndarray, palette_lab: np.ndarray,
                         allowed: np.ndarray) -> np.ndarray:
    """(N, gh, gw) palette indices of the drawn grid's cells, each whose nearest colour the collection never
    draws at that cell taking the nearest one it does draw there when at most ``CELL_MARGIN`` farther (step
    2 of the module docstring). ``allowed``: bool (gh, gw, K)."""
    out = index.copy()
    gh, gw = index.shape[1:]
    where = np.nonzero(~exact & ~allowed[np.arange(gh)[:, None], np.arange(gw), index])
    for start in range(0, len(where[0]), _CELLS_PER_CHUNK):
        at = tuple(w[start : start + _CELLS_PER_CHUNK] for w in where)
        d = np.sqrt(np.square(cell_lab[at][:, None, :] - palette_lab[None]).sum(-1))  # (M, K)
        rows = np.arange(len(d))
        own = d[rows, index[at]]
        d = np.where(allowed[at[1], at[2]], d, np.inf)
        best = d.argmin(axis=1)
        take = d[rows, best] <= own + CELL_MARGIN
        out[tuple(w[take] for w in at)] = best[take]
    return out


def _edges(size: int, grid: int, cell: int) -> np.ndarray:
    """Cell boundaries along one axis of ``size`` pixels holding a centered grid of ``grid`` cells of
    ``cell`` pixels, continued outward over the padding: [0, ..., size]."""
    origin = (size - grid * cell) // 2
    inner = np.arange(origin % cell, size + 1, cell)
    return np.unique(np.concatenate([[0], inner[(inner > 0) & (inner < size)], [size]]))


def _drawn_cells(edges: np.ndarray, size: int, grid: int, cell: int) -> slice:
    """The cells along one axis that belong to the drawn grid (the rest lie over the padding)."""
    origin = (size - grid * cell) // 2
    first = int(np.searchsorted(edges, origin))
    return slice(first, first + grid)


def _flatten_backgrounds(index: np.ndarray, exact: np.ndarray, cell_lab: np.ndarray, palette_lab: np.ndarray,
                         rows: slice, cols: slice, ring_candidates: np.ndarray, pad_candidates: np.ndarray
                         ) -> np.ndarray:
    """(N, cy, cx) palette indices with every cell near one of its image's drawn backgrounds set to the
    background colour it stands for (step 3 of the module docstring). ``exact``: the cells that already hold
    a palette colour; the candidates: the palette indices a region's background may be."""
    n, cy, cx = index.shape
    inner = np.zeros((cy, cx), bool)
    inner[rows, cols] = True
    ring = inner.copy()
    ring[rows.start + 1 : rows.stop - 1, cols.start + 1 : cols.stop - 1] = False
    out = index.copy()
    own = np.sqrt(np.square(cell_lab - palette_lab[index]).sum(-1))  # each cell to its nearest palette colour
    best = np.full((n, cy, cx), np.inf)
    for region, candidates in ((ring, ring_candidates), (~inner, pad_candidates)):
        if not region.any():
            continue
        # each image's background there as drawn: the median (per Lab channel) of the region's cells, robust
        # to the few cells a drawing puts on the border and to the noise of the rest; and the colour it
        # stands for, the nearest candidate
        drawn = np.median(cell_lab[:, region], axis=1)  # (N, 3)
        bg = candidates[np.square(drawn[:, None, :] - palette_lab[candidates][None]).sum(-1).argmin(axis=1)]  # (N,)
        d = np.sqrt(np.square(cell_lab - drawn[:, None, None, :]).sum(-1))
        near_bg = np.sqrt(np.square(palette_lab[index] - palette_lab[bg][:, None, None, :]).sum(-1)) <= BACKGROUND_SLACK
        taken = (d <= best) & ((~exact & (d <= BACKGROUND_TOLERANCE) & (d <= own + BACKGROUND_SLACK)) | near_bg)
        out = np.where(taken, bg[:, None, None], out)
        best = np.where(taken, d, best)
    return out


def _indices_of(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The palette indices of ``colours`` (uint8 (B, 3)) that the palette holds."""
    packed_palette = _pack(palette)
    return np.flatnonzero(np.isin(packed_palette, _pack(colours)))


@functools.lru_cache(maxsize=1)
def _lab_transform() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")


def to_lab(rgb_uint8: np.ndarray) -> np.ndarray:
    """uint8 (M, 3) sRGB -> float32 (M, 3) CIELAB (L in 0..100, a and b signed)."""
    rgb = np.ascontiguousarray(np.asarray(rgb_uint8, dtype=np.uint8).reshape(1, -1, 3))
    lab = np.asarray(ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), _lab_transform())).reshape(-1, 3)
    out = np.empty(lab.shape, np.float32)
    out[:, 0] = lab[:, 0].astype(np.float32) * (100.0 / 255.0)
    out[:, 1:] = lab[:, 1:].view(np.int8)  # PIL's 8-bit LAB stores a and b as signed bytes
    return out


def _nearest(rgb_uint8: np.ndarray, palette: np.ndarray, lab: np.ndarray, pal: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest palette colour of each row: itself when it is one, else by CIELAB distance
    (ties to the lower index; 8-bit Lab may not tell two near palette colours apart), and whether the row is
    one exactly. ``lab`` and ``pal`` are the rows and the palette in CIELAB (:func:`to_lab`)."""
    out = np.empty(len(rgb_uint8), np.int64)
    for start in range(0, len(rgb_uint8), _CELLS_PER_CHUNK):
        chunk = lab[start : start + _CELLS_PER_CHUNK]
        d = np.square(chunk[:, None, :] - pal[None, :, :]).sum(-1)
        out[start : start + len(chunk)] = d.argmin(axis=1)
    packed_palette = _pack(palette)
    order = np.argsort(packed_palette, kind="stable")
    packed = _pack(rgb_uint8)
    at = np.searchsorted(packed_palette[order], packed).clip(0, len(order) - 1)
    exact = packed_palette[order][at] == packed
    out[exact] = order[at[exact]]
    return out, exact


def _pack(rgb_uint8: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb_uint8, dtype=np.uint32).reshape(-1, 3)
    return (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
