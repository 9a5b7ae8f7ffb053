"""Duplicate detection that is safe for trait-layered collections.

A perceptual hash *proposes* candidate pairs; the pixels *decide*. Three kinds of duplicate:

- ``exact-duplicate``: the same bytes (sha256).
- ``same-pixels``: the same decoded pixels on the image's native grid (lossless re-encodes: PNG saved
  again with other chunks, lossless WebP, GIF; integer nearest-neighbour upscales, which
  :func:`native_grid` reduces back to the grid they were drawn on).
- ``near-duplicate``: a copy whose pixels differ only by what a lossy encoder (JPEG, lossy WebP) or a
  resampling step can explain. Tolerance exists only then: two losslessly stored images on the same
  native grid are duplicates only when their pixels are identical, however small the difference (on a
  24x24 token a distinct trait may change 4 pixels by 5 levels).

The difference of a tolerated pair is the **largest local difference**: both images are brought to the
copy's geometry (the original is resampled the way a CDN would, trying the common filters, and the best
explanation wins), then the signed difference is averaged per channel over a grid of cells (about 1/16 of
the side) and the worst cell counts, in levels of 0..255. A changed trait is a large difference in a
small region; re-encoding and resampling are small differences spread everywhere.

Only pairs whose tolerance applies are ever compared, so a collection of lossless tokens on one grid
costs no comparison at all; the candidates of a lossy or resampled item are the kept items within
:data:`CANDIDATE_BITS` of its 64-bit perceptual hash.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: verification thumbnails are at most this many pixels on their longer side
THUMB_MAX_PX = 64
#: pHash distance (bits of 64) within which a pair becomes a candidate for pixel verification
CANDIDATE_BITS = 10
#: default largest local difference (levels of 0..255) a lossy or resampled copy may show
DEFAULT_MAX_DIFFERENCE = 24.0
#: the resampling filters a copy's maker may have used
_FILTERS = (Image.Resampling.NEAREST, Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
#: simulated copies are made at most this large (then reduced like the copy's thumbnail)
_SIMULATE_MAX_PX = 256
#: aspect ratios further apart than this are never the same picture
_ASPECT_TOLERANCE = 0.02


# -- per-image facts (computed once per item, in the decode workers) --------------------------------
def native_grid(rgb: np.ndarray) -> np.ndarray:
    """Undo an integer nearest-neighbour upscale: the image on the grid it was drawn on.

    An image is a ``f``-times nearest-neighbour upscale exactly when every run of equal neighbouring
    columns (and rows) starts at a multiple of ``f``; ``f`` is the gcd of the size and of the positions
    where a column (row) differs from the one before. Two passes over the pixels, no search.
    """
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        return rgb
    col_change = np.flatnonzero(np.any(rgb[:, 1:] != rgb[:, :-1], axis=(0, 2))) + 1
    row_change = np.flatnonzero(np.any(rgb[1:] != rgb[:-1], axis=(1, 2))) + 1
    f = math.gcd(w, h, *col_change.tolist(), *row_change.tolist())
    if f <= 1:
        return rgb
    return np.ascontiguousarray(rgb[::f, ::f])


def pixel_digest(native: np.ndarray) -> str:
    """Hash of the native-grid pixels and their shape (the ``same-pixels`` key)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(native.shape).encode())
    h.update(np.ascontiguousarray(native, dtype=np.uint8).tobytes())
    return h.hexdigest()


def thumb_shape(width: int, height: int) -> tuple[int, int]:
    """(height, width) of the verification thumbnail of a native ``width`` x ``height`` image."""
    longest = max(width, height)
    if longest <= THUMB_MAX_PX:
        return height, width
    scale = THUMB_MAX_PX / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def thumbnail(native: np.ndarray) -> np.ndarray:
    """The native image if small, else an area-averaged reduction to :data:`THUMB_MAX_PX`."""
    h, w = native.shape[:2]
    th, tw = thumb_shape(w, h)
    if (th, tw) == (h, w):
        return native
    return np.asarray(Image.fromarray(native, "RGB").resize((tw, th), Image.Resampling.BOX))


# -- comparing two images ---------------------------------------------------------------------------
def cell_size(height: int, width: int) -> int:
    return max(1, round(max(height, width) / 16))


def local_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(worst cell's mean signed difference, mean squared difference) of two same-shape images.

    The first decides (is every region the same picture?); the second ranks the originals a copy passes
    against (the nearest one is the one the copy was made from)."""
    d = a.astype(np.float32) - b.astype(np.float32)
    h, w = d.shape[:2]
    c = cell_size(h, w)
    rows, cols = np.arange(0, h, c), np.arange(0, w, c)
    sums = np.add.reduceat(np.add.reduceat(d, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))[..., None]
    worst = float(np.abs(sums / counts).max())
    return worst, float(np.square(d).mean())


#: side of the coarse summary (area averages) that rules out most candidates before any resampling
GIST_PX = 8


def gist(thumb: np.ndarray) -> np.ndarray:
    """Area averages of a thumbnail on a :data:`GIST_PX` grid (float32 (8, 8, 3)).

    Resampling and lossy encoding keep area averages, so a copy's gist is within a few levels of its
    original's; a gist further apart than the tolerance rules a pair out without resampling anything.
    """
    image = Image.fromarray(np.ascontiguousarray(thumb), "RGB").resize((GIST_PX, GIST_PX), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32)


def _simulate(original_thumb: np.ndarray, native_wh: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """The original resampled to a copy's native size, then reduced like the copy's thumbnail."""
    w, h = native_wh
    scale = min(1.0, _SIMULATE_MAX_PX / max(w, h))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = Image.fromarray(original_thumb, "RGB").resize((sw, sh), method)
    th, tw = thumb_shape(w, h)
    if (sh, sw) != (th, tw):
        resized = resized.resize((tw, th), Image.Resampling.BOX)
    return np.asarray(resized)


def compare(
    original: np.ndarray, original_wh: tuple[int, int], copy: np.ndarray, copy_wh: tuple[int, int]
) -> tuple[float, float] | None:
    """How far ``copy`` is from being ``original`` passed through a resampling step (thumbnails and
    native sizes of both); None when their shapes cannot be the same picture."""
    (ow, oh), (cw, ch) = original_wh, copy_wh
    if abs(ow / oh - cw / ch) > _ASPECT_TOLERANCE * (cw / ch):
        return None
    if original.shape == copy.shape:
        return local_difference(original, copy)
    best: tuple[float, float] | None = None
    upscale = max(cw, ch) > max(ow, oh)
    for method in _FILTERS:
        if upscale and method == Image.Resampling.BOX:
            continue  # upscaling, a box filter is nearest-neighbour
        d = local_difference(_simulate(original, copy_wh, method), copy)
        if best is None or d < best:  # the filter that explains the copy best
            best = d
    return best


# -- the index of candidates ------------------------------------------------------------------------
class NearDuplicateIndex:
    """Hashes added so far (with integer keys), searchable for those within ``max_distance`` bits.

    A linear scan in numpy (one XOR and popcount per stored hash, ~1 ns each): only tolerated pairs are
    ever searched, so a search runs once per lossy or resampled item, against the items kept so far.
    """

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance <= 64:
            raise ValueError("max_distance must be between 0 and 64 bits")
        self.max_distance = max_distance
        self._hashes = np.zeros(64, np.uint64)
        self._keys = np.zeros(64, np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, value: int, key: int) -> None:
        if self._n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys)])
        self._hashes[self._n] = np.uint64(value)
        self._keys[self._n] = key
        self._n += 1

    def search(self, value: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, distances) of every added hash within ``max_distance``, in the order added."""
        distances = np.bitwise_count(self._hashes[: self._n] ^ np.uint64(value))
        hits = np.flatnonzero(distances <= self.max_distance)
        return self._keys[hits], distances[hits]

    def within(self, value: int) -> list[tuple[int, int]]:
        keys, distances = self.search(value)
        return list(zip(keys.tolist(), distances.tolist()))

    def nearest(self, value: int) -> tuple[int, int] | None:
        """The closest added hash within ``max_distance`` (first added wins ties), or None."""
        hits = self.within(value)
        if not hits:
            return None
        return min(hits, key=lambda kd: kd[1])


def gists(thumbs: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`gist` of many thumbnails (float32 (n, 8, 8, 3)); thumbnails of one shape whose sides are
    multiples of 8 are averaged in one numpy step."""
    out = np.zeros((len(thumbs), GIST_PX, GIST_PX, 3), np.float32)
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, t in enumerate(thumbs):
        by_shape[t.shape].append(i)
    for (h, w, _), rows in by_shape.items():
        if h % GIST_PX or w % GIST_PX:
            for i in rows:
                out[i] = gist(thumbs[i])
            continue
        fh, fw = h // GIST_PX, w // GIST_PX
        for start in range(0, len(rows), 2048):  # bounded memory
            part = rows[start : start + 2048]
            block = np.stack([thumbs[i] for i in part]).astype(np.float32)
            out[part] = block.reshape(len(part), GIST_PX, fh, GIST_PX, fw, 3).mean(axis=(2, 4))
    return out


# -- deciding ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """What de-duplication knows of one decoded item."""

    id: int
    sha256: str
    pixel_hash: str
    phash: int
    lossy: bool
    native_wh: tuple[int, int]
    pixel_art: bool

    def originality(self) -> tuple:
        """Sort key: the likeliest original of a group first (lossless; drawn on its grid; largest)."""
        area = 0 if self.pixel_art else -(self.native_wh[0] * self.native_wh[1])
        return (self.lossy, not self.pixel_art, area, self.id)

    def strict_class(self) -> tuple:
        """Two items of one strict class are duplicates only when their pixels are identical."""
        return ("lossy",) if self.lossy else ("lossless", *self.native_wh)


@dataclass(frozen=True)
class Merge:
    id: int
    kind: str  # exact-duplicate | same-pixels | near-duplicate
    of: int
    difference: float = 0.0  # worst local difference, levels of 0..255
    hash_bits: int | None = None

    def detail(self, max_difference: float | None = None) -> str:
        if self.kind == "exact-duplicate":
            return f"same bytes as item {self.of}"
        if self.kind == "same-pixels":
            return f"same pixels as item {self.of}"
        limit = f" (limit {max_difference:g})" if max_difference is not None else ""
        return (
            f"copy of item {self.of}: worst local difference {self.difference:.1f} levels{limit}, "
            f"perceptual hash {self.hash_bits} bits"
        )


def find_duplicates(
    entries: Iterable[Entry],
    thumb_of: Callable[[int], np.ndarray],
    max_difference: float | None = DEFAULT_MAX_DIFFERENCE,
    *,
    candidate_bits: int = CANDIDATE_BITS,
) -> dict[int, Merge]:
    """Decide which entries are duplicates of which (see the module docstring).

    ``thumb_of(id)`` returns an item's verification thumbnail; ``max_difference=None`` turns the
    near-duplicate search off (exact and same-pixel duplicates are still found). The first item (lowest
    id) of an exact or same-pixel group is kept; a near-duplicate is matched to the kept item it is
    nearest to, and the likeliest originals are kept first (:meth:`Entry.originality`).
    """
    merges: dict[int, Merge] = {}
    by_sha: dict[str, int] = {}
    by_pixels: dict[str, int] = {}
    rest: list[Entry] = []
    for e in sorted(entries, key=lambda e: e.id):
        if e.sha256 in by_sha:
            merges[e.id] = Merge(e.id, "exact-duplicate", by_sha[e.sha256])
            continue
        by_sha[e.sha256] = e.id
        if e.pixel_hash in by_pixels:
            merges[e.id] = Merge(e.id, "same-pixels", by_pixels[e.pixel_hash])
            continue
        by_pixels[e.pixel_hash] = e.id
        rest.append(e)
    if max_difference is None:
        return merges

    order = sorted(rest, key=Entry.originality)
    classes = [e.strict_class() for e in order]
    if not any(c[0] == "lossy" for c in classes) and len(set(classes)) <= 1:
        return merges  # one lossless grid: nothing is ever compared
    thumbs = [thumb_of(e.id) for e in order]
    coarse = gists(thumbs)
    indexes: dict[tuple, NearDuplicateIndex] = {}
    for pos, e in enumerate(order):
        cls = classes[pos]
        found = [
            index.search(e.phash)
            for other_cls, index in indexes.items()
            if not (other_cls == cls and cls[0] == "lossless")  # same lossless grid: identical pixels only
        ]
        best: tuple[tuple[float, float], int, int] | None = None  # ((worst, mse), position, bits)
        if found:
            keys = np.concatenate([k for k, _ in found])
            bits = np.concatenate([d for _, d in found])
            # area averages rule out most candidates before anything is resampled
            close = np.abs(coarse[keys] - coarse[pos]).max(axis=(1, 2, 3)) <= max_difference
            for k, b in zip(keys[close].tolist(), bits[close].tolist()):
                d = compare(thumbs[k], order[k].native_wh, thumbs[pos], e.native_wh)
                if d is not None and d[0] <= max_difference and (best is None or d[1] < best[0][1]):
                    best = (d, k, b)
        if best is not None:
            merges[e.id] = Merge(e.id, "near-duplicate", order[best[1]].id, round(best[0][0], 2), best[2])
        else:
            if cls not in indexes:
                indexes[cls] = NearDuplicateIndex(candidate_bits)
            indexes[cls].add(e.phash, pos)
    return merges


def phash_pairs_within(hashes: Sequence[int], bits: int) -> int:
    """How many pairs of ``hashes`` are within ``bits`` of each other (for tests and the benchmark)."""
    index = NearDuplicateIndex(bits)
    n = 0
    for i, h in enumerate(hashes):
        n += len(index.within(h))
        index.add(h, i)
    return n
