"""The review sheet of the cleaning stage: every merged pair side by side, so a person can *see* it.

Each tile shows the duplicate (left) and the item it was merged into (right), with their ids, the kind
and the measured difference. Near-duplicates come first, largest difference first (those are the pairs
worth a look); same-pixel and exact duplicates follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline import atomic
from cleaning.dedup import Merge

#: pairs drawn at most (the sheet says how many more there were)
MAX_PAIRS = 240
TILE_PX = 64
COLUMNS = 4
_LABEL_PX = 14
_GAP_PX = 6
_KIND_ORDER = {"near-duplicate": 0, "same-pixels": 1, "exact-duplicate": 2}


def order(merges: Sequence[Merge]) -> list[Merge]:
    """Worst first: near-duplicates by falling difference, then same-pixels, then exact duplicates."""
    return sorted(merges, key=lambda m: (_KIND_ORDER.get(m.kind, 3), -m.difference, m.id))


def order_recorded(rows: Sequence[dict]) -> list[dict]:
    """The same order for merges as the catalog records them (``id``, ``reason`` = the kind, ``detail``)."""
    import re

    def difference(detail: str | None) -> float:
        found = re.search(r"worst local difference ([\d.]+) levels", detail or "")
        return float(found.group(1)) if found else 0.0

    return sorted(rows, key=lambda r: (_KIND_ORDER.get(r["reason"], 3), -difference(r.get("detail")), r["id"]))


def _tile(thumb: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(thumb), "RGB")
    h, w = thumb.shape[:2]
    scale = TILE_PX / max(h, w)
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), method)
    canvas = Image.new("RGB", (TILE_PX, TILE_PX), (255, 255, 255))
    canvas.paste(image, ((TILE_PX - image.width) // 2, (TILE_PX - image.height) // 2))
    return canvas


def write_sheet(
    path: Path,
    merges: Sequence[Merge],
    thumb_of: Callable[[int], np.ndarray],
    max_difference: float | None = None,
) -> Path:
    """Draw the pairs (see the module docstring) into ``path`` (PNG, written atomically)."""
    shown = order(merges)[:MAX_PAIRS]
    more = len(merges) - len(shown)
    cell_w = 2 * TILE_PX + 2 + _GAP_PX
    cell_h = TILE_PX + _LABEL_PX + _GAP_PX
    rows = max(1, -(-len(shown) // COLUMNS))
    footer = _LABEL_PX + 4
    sheet = Image.new("RGB", (COLUMNS * cell_w + _GAP_PX, rows * cell_h + _GAP_PX + footer), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n, m in enumerate(shown):
        x = _GAP_PX + (n % COLUMNS) * cell_w
        y = _GAP_PX + (n // COLUMNS) * cell_h
        sheet.paste(_tile(thumb_of(m.id)), (x, y))
        sheet.paste(_tile(thumb_of(m.of)), (x + TILE_PX + 2, y))
        if m.kind == "near-duplicate":
            label = f"#{m.id}~#{m.of} d={m.difference:.1f}"
        elif m.kind == "same-pixels":
            label = f"#{m.id}=#{m.of} pixels"
        else:
            label = f"#{m.id}=#{m.of} bytes"
        draw.text((x, y + TILE_PX + 1), label, fill=(0, 0, 0))
    note = f"{len(merges)} merged pairs (left: merged, right: kept)"
    if max_difference is not None:
        note += f"; near-duplicate limit {max_difference:g} levels"
    if more:
        note += f"; {more} more not drawn"
    draw.text((_GAP_PX, sheet.height - footer), note, fill=(0, 0, 0))
    with atomic.atomic_path(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return path
