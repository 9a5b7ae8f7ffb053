"""The demo collection: procedurally drawn, trait-layered avatars, the way 10k PFP collections are made.

Each item is a stack of layers (background, body, head, eyes, mouth, headwear, accessory) whose kinds and
colors are drawn from named trait tables, plus continuous placement (head position and size, gradient
angle) so that every item looks different under a perceptual hash, not only to a person. Everything is a
pure function of ``(seed, index)``: the marketplace fixture serves these images and ``nftgan demo`` trains
on them.

Random traits alone leave a few pairs in every few thousand that a 64-bit perceptual hash cannot tell
apart. The cleaning stage decides duplicates on pixels and keeps those, but evaluation's pHash
memorization count (4 bits) would read them as copies of each other. So item ``i`` is the ``i``-th
*candidate* drawing whose perceptual hash (at 128 px) differs from every earlier item's by more than
:data:`MIN_HASH_DISTANCE_BITS` bits. For a collection whose tokens *are* this close, as real 24x24 PFP
collections are, see :mod:`marketplace.pixelcollection`. Finding item ``i`` therefore costs hashing all items
before it once per process (about 0.6 ms each).

The drawing happens on a canvas twice the requested size in unit coordinates (0..1), then is reduced
2x (box filter) for smooth edges; a 256 px item takes about a millisecond.
"""

from __future__ import annotations

import colorsys
import functools
import io
import random
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

#: accepted items' perceptual hashes (at :data:`_HASH_SIZE_PX`) differ by more than this many bits
MIN_HASH_DISTANCE_BITS = 7
_HASH_SIZE_PX = 128

#: the trait tables: name -> RGB (colors) or just names (shapes); order is part of the format
BACKGROUNDS = {
    "Midnight": (24, 28, 64), "Sky": (120, 190, 240), "Mint": (150, 230, 190), "Sand": (236, 214, 160),
    "Coral": (246, 128, 112), "Lilac": (196, 160, 232), "Slate": (92, 104, 120), "Lemon": (250, 236, 90),
    "Forest": (34, 96, 60), "Blush": (250, 200, 210), "Ink": (10, 10, 14), "Paper": (244, 242, 236),
}
BACKGROUND_PATTERNS = ("Solid", "Gradient", "Stripes", "Spotlight", "Split", "Dots")
SKINS = {
    "Peach": (244, 200, 168), "Tan": (206, 150, 110), "Brown": (140, 90, 60), "Dark": (84, 56, 40),
    "Zombie": (130, 170, 110), "Alien": (150, 200, 220), "Robot": (170, 176, 184), "Gold": (230, 190, 60),
    "Ape": (110, 80, 60), "Ghost": (236, 240, 250),
}
HEAD_SHAPES = ("Round", "Square", "Tall", "Wide")
SHIRTS = {
    "Red": (200, 40, 50), "Navy": (30, 40, 100), "White": (240, 240, 240), "Black": (20, 20, 24),
    "Green": (40, 150, 80), "Orange": (240, 140, 30), "Purple": (110, 50, 160), "Teal": (20, 140, 150),
}
EYES = ("Dots", "Wide", "Sleepy", "Laser", "Shades", "3D Glasses", "Cyclops", "Visor", "Angry")
MOUTHS = ("Smile", "Frown", "Flat", "Open", "Cigarette", "Tongue", "Teeth")
HEADWEAR = (
    "None", "Beanie", "Cap", "Crown", "Halo", "Mohawk", "Top Hat", "Bandana", "Horns", "Headphones",
    "Afro", "Antenna",
)
ACCESSORIES = ("None", "Earring", "Necklace", "Bow Tie", "Scar", "Mask", "Pipe", "Blush")
HAT_COLORS = {
    "Crimson": (180, 20, 40), "Cobalt": (30, 70, 200), "Sun": (250, 200, 20), "Jet": (16, 16, 16),
    "Snow": (250, 250, 250), "Moss": (90, 130, 40), "Pink": (240, 90, 170), "Copper": (190, 110, 50),
}


@dataclass(frozen=True)
class _Layout:
    """Continuous placement of one item (unit coordinates), drawn from the same random stream."""

    head_cx: float
    head_cy: float
    head_rx: float
    head_ry: float
    shoulders_w: float
    gradient_turn: float  # 0..1, direction or phase of the background pattern
    hue_shift: float  # small per-item tint of the background, -1..1
    tilt: float  # -1..1, asymmetric details (cap brim side, eye offset)


def _rng(candidate: int, seed: int) -> random.Random:
    return random.Random(f"nftgan-demo:{seed}:{candidate}")  # str seeds are hashed: stable across runs


def _draw_traits(rng: random.Random) -> dict[str, str]:
    def pick(options) -> str:
        return rng.choice(list(options))

    traits = {
        "Background": pick(BACKGROUNDS),
        "Pattern": pick(BACKGROUND_PATTERNS),
        "Skin": pick(SKINS),
        "Head": pick(HEAD_SHAPES),
        "Shirt": pick(SHIRTS),
        "Eyes": pick(EYES),
        "Mouth": pick(MOUTHS),
        "Headwear": pick(HEADWEAR),
        "Hat Color": pick(HAT_COLORS),
        "Accessory": pick(ACCESSORIES),
    }
    if traits["Headwear"] in ("None", "Halo", "Horns", "Antenna", "Mohawk", "Afro"):
        traits.pop("Hat Color")
    return traits


def _draw_layout(rng: random.Random, head_shape: str) -> _Layout:
    rx, ry = 0.20, 0.23
    if head_shape == "Tall":
        rx, ry = 0.17, 0.27
    elif head_shape == "Wide":
        rx, ry = 0.25, 0.20
    scale = rng.uniform(0.75, 1.25)
    return _Layout(
        head_cx=rng.uniform(0.30, 0.70),
        head_cy=rng.uniform(0.40, 0.58),
        head_rx=rx * scale,
        head_ry=ry * scale,
        shoulders_w=rng.uniform(0.30, 0.48),
        gradient_turn=rng.random(),
        hue_shift=rng.uniform(-1.0, 1.0),
        tilt=rng.uniform(-1.0, 1.0),
    )


class _DistinctItems:
    """Which candidate drawing is item ``i`` of one collection (grown on demand, thread-safe)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.candidates: list[int] = []
        self.hashes = np.empty(0, dtype=np.uint64)
        self.next_candidate = 0
        self.lock = threading.Lock()

    def candidate(self, index: int) -> int:
        with self.lock:
            while len(self.candidates) <= index:
                c = self.next_candidate
                self.next_candidate += 1
                h = np.uint64(_phash64(_render_candidate(c, self.seed, _HASH_SIZE_PX)))
                if self.hashes.size and np.bitwise_count(self.hashes ^ h).min() <= MIN_HASH_DISTANCE_BITS:
                    continue
                self.candidates.append(c)
                self.hashes = np.append(self.hashes, h)
            return self.candidates[index]


@functools.lru_cache(maxsize=16)
def _distinct_items(seed: int) -> _DistinctItems:
    return _DistinctItems(seed)


def _phash64(image: Image.Image) -> int:
    import imagehash  # heavy (scipy): only when items are drawn

    return int(str(imagehash.phash(image)), 16)


def _candidate(index: int, seed: int) -> int:
    if not isinstance(index, int) or index < 0:
        raise ValueError(f"item index must be an int >= 0, got {index!r}")
    return _distinct_items(int(seed)).candidate(index)


def item_traits(index: int, *, seed: int = 0) -> dict[str, str]:
    """The trait metadata of item ``index`` (what a marketplace shows under "Properties")."""
    return _draw_traits(_rng(_candidate(index, seed), seed))


def item_name(index: int) -> str:
    return f"Demo #{index}"


def render_item(index: int, *, seed: int = 0, size_px: int = 256) -> Image.Image:
    """Draw item ``index`` of the collection ``seed`` as an RGB image of ``size_px`` square."""
    if not 8 <= size_px <= 4096:
        raise ValueError(f"size_px must be within 8..4096, got {size_px}")
    return _render_candidate(_candidate(index, seed), seed, size_px)


def _render_candidate(candidate: int, seed: int, size_px: int) -> Image.Image:
    rng = _rng(candidate, seed)
    traits = _draw_traits(rng)
    layout = _draw_layout(rng, traits["Head"])
    canvas = 2 * size_px
    img = Image.new("RGB", (canvas, canvas))
    pen = _Pen(ImageDraw.Draw(img), canvas)
    _background(pen, traits, layout)
    _body(pen, traits, layout)
    _head(pen, traits, layout)
    _eyes(pen, traits, layout)
    _mouth(pen, traits, layout)
    _headwear(pen, traits, layout)
    _accessory(pen, traits, layout)
    return img.reduce(2)


def render_png(index: int, *, seed: int = 0, size_px: int = 256) -> bytes:
    """:func:`render_item` encoded as PNG (fast compression: the fixture serves these)."""
    buf = io.BytesIO()
    render_item(index, seed=seed, size_px=size_px).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# -- drawing --------------------------------------------------------------------------------------
class _Pen:
    """ImageDraw in unit coordinates."""

    def __init__(self, draw: ImageDraw.ImageDraw, canvas_px: int) -> None:
        self.draw = draw
        self.s = canvas_px

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [min(x0, x1) * self.s, min(y0, y1) * self.s, max(x0, x1) * self.s, max(y0, y1) * self.s]

    def rect(self, x0, y0, x1, y1, fill) -> None:
        self.draw.rectangle(self._box(x0, y0, x1, y1), fill=fill)

    def rounded(self, x0, y0, x1, y1, radius, fill) -> None:
        self.draw.rounded_rectangle(self._box(x0, y0, x1, y1), radius=radius * self.s, fill=fill)

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width=0.0) -> None:
        self.draw.ellipse(
            self._box(cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=outline,
            width=max(1, round(width * self.s)) if outline else 0,
        )

    def polygon(self, points, fill) -> None:
        self.draw.polygon([(x * self.s, y * self.s) for x, y in points], fill=fill)

    def line(self, points, fill, width) -> None:
        self.draw.line([(x * self.s, y * self.s) for x, y in points], fill=fill, width=max(1, round(width * self.s)))

    def arc(self, cx, cy, rx, ry, start, end, fill, width) -> None:
        self.draw.arc(
            self._box(cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=fill,
            width=max(1, round(width * self.s)),
        )


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * factor))) for c in rgb)  # type: ignore[return-value]


def _tint(rgb: tuple[int, int, int], hue_shift: float) -> tuple[int, int, int]:
    h, l, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    r, g, b = colorsys.hls_to_rgb((h + 0.06 * hue_shift) % 1.0, min(1.0, max(0.0, l + 0.15 * hue_shift)), s)
    return round(r * 255), round(g * 255), round(b * 255)


def _background(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    base = _tint(BACKGROUNDS[traits["Background"]], lay.hue_shift)
    light = base[0] + base[1] + base[2] > 360
    other = _shade(base, 0.55) if light else _shade(base, 1.9)
    pen.rect(0, 0, 1, 1, base)
    pattern, t = traits["Pattern"], lay.gradient_turn
    if pattern == "Gradient":  # a diagonal ramp whose direction depends on the item
        steps = 16
        for k in range(steps):
            mix = k / (steps - 1)
            color = tuple(round(a + (b - a) * mix) for a, b in zip(base, other))
            y0 = k / steps
            if t < 0.5:
                pen.rect(0, y0, 1, y0 + 1 / steps + 0.002, color)
            else:
                pen.rect(y0, 0, y0 + 1 / steps + 0.002, 1, color)
    elif pattern == "Stripes":
        width = 0.06 + 0.06 * t
        x = -1.0
        while x < 1.0:
            pen.polygon([(x, 1), (x + width, 1), (x + width + 1, 0), (x + 1, 0)], other)
            x += 2 * width
    elif pattern == "Spotlight":
        pen.ellipse(0.2 + 0.6 * t, 0.3, 0.45, 0.45, other)
    elif pattern == "Split":
        pen.polygon([(0, 0), (0.3 + 0.4 * t, 0), (0.7 - 0.4 * t, 1), (0, 1)], other)
    elif pattern == "Dots":
        step = 0.16 + 0.08 * t
        y = step / 2
        while y < 1:
            x = step / 2
            while x < 1:
                pen.ellipse(x, y, step * 0.28, step * 0.28, other)
                x += step
            y += step


def _body(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    shirt = SHIRTS[traits["Shirt"]]
    cx, w = lay.head_cx, lay.shoulders_w
    top = lay.head_cy + lay.head_ry * 0.85
    pen.rounded(cx - w, top + 0.08, cx + w, 1.25, 0.12, shirt)
    neck = _shade(SKINS[traits["Skin"]], 0.85)
    pen.rect(cx - lay.head_rx * 0.35, top - 0.02, cx + lay.head_rx * 0.35, top + 0.12, neck)


def _head(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    skin = SKINS[traits["Skin"]]
    cx, cy, rx, ry = lay.head_cx, lay.head_cy, lay.head_rx, lay.head_ry
    # ears first, so the head covers their inner half
    pen.ellipse(cx - rx, cy + 0.01, rx * 0.22, ry * 0.22, _shade(skin, 0.9))
    pen.ellipse(cx + rx, cy + 0.01, rx * 0.22, ry * 0.22, _shade(skin, 0.9))
    if traits["Head"] == "Square":
        pen.rounded(cx - rx, cy - ry, cx + rx, cy + ry, 0.05, skin)
    else:
        pen.ellipse(cx, cy, rx, ry, skin)
    if traits["Skin"] == "Robot":
        pen.rect(cx - rx * 0.9, cy + ry * 0.15, cx + rx * 0.9, cy + ry * 0.22, _shade(skin, 0.7))


def _eyes(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    cx, cy, rx, ry = lay.head_cx, lay.head_cy, lay.head_rx, lay.head_ry
    ey = cy - ry * 0.15
    dx = rx * 0.42
    look = 0.012 * lay.tilt
    white, black = (250, 250, 250), (15, 15, 20)
    kind = traits["Eyes"]
    if kind == "Dots":
        for sx in (-1, 1):
            pen.ellipse(cx + sx * dx, ey, rx * 0.1, rx * 0.1, black)
    elif kind in ("Wide", "Angry", "Sleepy", "Laser"):
        for sx in (-1, 1):
            pen.ellipse(cx + sx * dx, ey, rx * 0.22, ry * 0.16, white)
            pen.ellipse(cx + sx * dx + look, ey, rx * 0.1, rx * 0.1, black)
        if kind == "Sleepy":
            for sx in (-1, 1):
                pen.rect(cx + sx * dx - rx * 0.24, ey - ry * 0.18, cx + sx * dx + rx * 0.24, ey, SKINS[traits["Skin"]])
        if kind == "Angry":
            for sx in (-1, 1):
                brow = [(cx + sx * dx - sx * rx * 0.25, ey - ry * 0.28), (cx + sx * dx + sx * rx * 0.2, ey - ry * 0.14)]
                pen.line(brow, black, 0.018)
        if kind == "Laser":
            for sx in (-1, 1):
                pen.line([(cx + sx * dx, ey), (cx + sx * dx + sx * 0.6, ey + 0.12 * lay.tilt)], (255, 30, 30), 0.02)
    elif kind == "Shades":
        pen.rounded(cx - dx - rx * 0.3, ey - ry * 0.14, cx + dx + rx * 0.3, ey + ry * 0.16, 0.02, black)
    elif kind == "3D Glasses":
        pen.rect(cx - dx - rx * 0.3, ey - ry * 0.14, cx + dx + rx * 0.3, ey + ry * 0.16, white)
        pen.rect(cx - dx - rx * 0.24, ey - ry * 0.1, cx - rx * 0.08, ey + ry * 0.12, (230, 30, 40))
        pen.rect(cx + rx * 0.08, ey - ry * 0.1, cx + dx + rx * 0.24, ey + ry * 0.12, (30, 120, 230))
    elif kind == "Cyclops":
        pen.ellipse(cx, ey, rx * 0.34, ry * 0.26, white)
        pen.ellipse(cx + look, ey, rx * 0.16, rx * 0.16, black)
    elif kind == "Visor":
        pen.rect(cx - rx * 0.95, ey - ry * 0.12, cx + rx * 0.95, ey + ry * 0.12, (60, 220, 240))


def _mouth(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    cx, cy, rx, ry = lay.head_cx, lay.head_cy, lay.head_rx, lay.head_ry
    my = cy + ry * 0.45
    w = rx * 0.4
    dark = (60, 20, 20)
    kind = traits["Mouth"]
    if kind == "Smile":
        pen.arc(cx, my - ry * 0.12, w, ry * 0.15, 20, 160, dark, 0.014)
    elif kind == "Frown":
        pen.arc(cx, my + ry * 0.1, w, ry * 0.12, 200, 340, dark, 0.014)
    elif kind == "Flat":
        pen.line([(cx - w, my), (cx + w, my)], dark, 0.014)
    elif kind == "Open":
        pen.ellipse(cx, my, w * 0.6, ry * 0.12, dark)
    elif kind == "Cigarette":
        pen.line([(cx - w * 0.5, my), (cx + w * 0.5, my)], dark, 0.012)
        pen.line([(cx + w * 0.5, my), (cx + w * 1.6, my + 0.02)], (240, 240, 240), 0.02)
        pen.ellipse(cx + w * 1.6, my + 0.02, 0.012, 0.012, (250, 110, 20))
    elif kind == "Tongue":
        pen.arc(cx, my - ry * 0.1, w, ry * 0.14, 20, 160, dark, 0.014)
        pen.ellipse(cx + w * 0.3, my + ry * 0.06, w * 0.3, ry * 0.1, (240, 90, 120))
    elif kind == "Teeth":
        pen.rect(cx - w, my - ry * 0.06, cx + w, my + ry * 0.08, (250, 250, 240))
        pen.line([(cx, my - ry * 0.06), (cx, my + ry * 0.08)], dark, 0.006)


def _headwear(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    cx, cy, rx, ry = lay.head_cx, lay.head_cy, lay.head_rx, lay.head_ry
    top = cy - ry
    color = HAT_COLORS.get(traits.get("Hat Color", ""), (30, 30, 30))
    kind = traits["Headwear"]
    if kind == "Beanie":
        pen.ellipse(cx, top + ry * 0.35, rx * 1.02, ry * 0.55, color)
        pen.rect(cx - rx * 1.02, top + ry * 0.3, cx + rx * 1.02, top + ry * 0.5, _shade(color, 0.7))
        pen.ellipse(cx, top - ry * 0.22, rx * 0.14, rx * 0.14, _shade(color, 1.3))
    elif kind == "Cap":
        pen.ellipse(cx, top + ry * 0.3, rx * 1.0, ry * 0.45, color)
        side = 1 if lay.tilt >= 0 else -1
        pen.rect(cx, top + ry * 0.38, cx + side * rx * 1.7, top + ry * 0.52, _shade(color, 0.75))
    elif kind == "Crown":
        gold = (240, 200, 40)
        pen.polygon(
            [(cx - rx * 0.8, top + ry * 0.2), (cx - rx * 0.8, top - ry * 0.4), (cx - rx * 0.4, top - ry * 0.05),
             (cx, top - ry * 0.5), (cx + rx * 0.4, top - ry * 0.05), (cx + rx * 0.8, top - ry * 0.4),
             (cx + rx * 0.8, top + ry * 0.2)], gold)
    elif kind == "Halo":
        pen.ellipse(cx, top - ry * 0.25, rx * 0.8, ry * 0.14, None, outline=(255, 230, 90), width=0.018)
    elif kind == "Mohawk":
        for k in range(5):
            x = cx - rx * 0.3 + k * rx * 0.15
            spike = [(x - rx * 0.08, top + ry * 0.1), (x + rx * 0.08, top + ry * 0.1),
                     (x + rx * 0.02 * lay.tilt, top - ry * 0.55)]
            pen.polygon(spike, (230, 40, 160))
    elif kind == "Top Hat":
        pen.rect(cx - rx * 1.15, top + ry * 0.05, cx + rx * 1.15, top + ry * 0.2, color)
        pen.rect(cx - rx * 0.7, top - ry * 0.9, cx + rx * 0.7, top + ry * 0.1, color)
        pen.rect(cx - rx * 0.7, top - ry * 0.15, cx + rx * 0.7, top - ry * 0.02, _shade(color, 0.5))
    elif kind == "Bandana":
        pen.polygon([(cx - rx * 1.0, top + ry * 0.5), (cx + rx * 1.0, top + ry * 0.5),
                     (cx + rx * 0.6, top + ry * 0.05), (cx - rx * 0.6, top + ry * 0.05)], color)
        pen.polygon([(cx + rx * 0.95, top + ry * 0.4), (cx + rx * 1.4, top + ry * 0.6),
                     (cx + rx * 1.3, top + ry * 0.2)], color)
    elif kind == "Horns":
        for sx in (-1, 1):
            horn = [(cx + sx * rx * 0.45, top + ry * 0.25), (cx + sx * rx * 0.8, top + ry * 0.3),
                    (cx + sx * rx * 0.9, top - ry * 0.45)]
            pen.polygon(horn, (200, 30, 30))
    elif kind == "Headphones":
        pen.arc(cx, cy - ry * 0.05, rx * 1.1, ry * 1.05, 180, 360, color, 0.025)
        for sx in (-1, 1):
            ear_x = cx + sx * rx * 1.1
            pen.rounded(ear_x - rx * 0.18, cy - ry * 0.2, ear_x + rx * 0.18, cy + ry * 0.25, 0.02, color)
    elif kind == "Afro":
        hair = (40, 26, 20)
        pen.ellipse(cx, top + ry * 0.15, rx * 1.35, ry * 0.7, hair)
        pen.ellipse(cx, cy + ry * 0.1, rx * 0.98, ry * 0.85, SKINS[traits["Skin"]])
        _eyes(pen, traits, lay)
        _mouth(pen, traits, lay)
    elif kind == "Antenna":
        pen.line([(cx, top + ry * 0.05), (cx + rx * 0.3 * lay.tilt, top - ry * 0.6)], (60, 60, 60), 0.012)
        pen.ellipse(cx + rx * 0.3 * lay.tilt, top - ry * 0.6, rx * 0.12, rx * 0.12, (250, 60, 60))


def _accessory(pen: _Pen, traits: dict[str, str], lay: _Layout) -> None:
    cx, cy, rx, ry = lay.head_cx, lay.head_cy, lay.head_rx, lay.head_ry
    kind = traits["Accessory"]
    if kind == "Earring":
        pen.ellipse(cx + rx * 1.0, cy + ry * 0.25, rx * 0.07, rx * 0.07, (250, 210, 60))
    elif kind == "Necklace":
        pen.arc(cx, cy + ry * 1.05, rx * 0.6, ry * 0.3, 20, 160, (250, 210, 60), 0.012)
    elif kind == "Bow Tie":
        y = cy + ry * 1.2
        pen.polygon([(cx, y), (cx - rx * 0.35, y - ry * 0.14), (cx - rx * 0.35, y + ry * 0.14)], (200, 20, 40))
        pen.polygon([(cx, y), (cx + rx * 0.35, y - ry * 0.14), (cx + rx * 0.35, y + ry * 0.14)], (200, 20, 40))
    elif kind == "Scar":
        pen.line([(cx - rx * 0.6, cy - ry * 0.05), (cx - rx * 0.25, cy + ry * 0.3)], (150, 40, 40), 0.01)
    elif kind == "Mask":
        pen.rounded(cx - rx * 0.6, cy + ry * 0.25, cx + rx * 0.6, cy + ry * 0.7, 0.03, (230, 236, 240))
    elif kind == "Pipe":
        pen.line([(cx + rx * 0.2, cy + ry * 0.48), (cx + rx * 0.8, cy + ry * 0.6)], (90, 50, 20), 0.014)
        pen.rect(cx + rx * 0.75, cy + ry * 0.4, cx + rx * 0.95, cy + ry * 0.65, (90, 50, 20))
    elif kind == "Blush":
        for sx in (-1, 1):
            pen.ellipse(cx + sx * rx * 0.55, cy + ry * 0.25, rx * 0.14, ry * 0.08, (250, 130, 150))
