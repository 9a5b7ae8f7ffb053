"""A 24x24 pixel-art PFP collection, trait-layered the way real 10k collections are.

Every token is a stack of layers (background, skin, hair or hat, eyes, mouth) plus small independent
traits (earring, mole, rosy cheeks, chain), each drawn from a weighted trait table (rare traits stay
rare). Distinct tokens are near-duplicates by construction: two tokens often differ by one small trait,
some of which are almost invisible (rosy cheeks change 4 pixels by 5 levels; a chain changes 3 pixels by
11). That is exactly what a cleaning stage must not merge, so tests and benchmarks use this collection.

Token ``i`` is the ``i``-th drawing of a seeded stream whose pixels differ from every earlier token's;
everything is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import threading

import numpy as np
from PIL import Image

#: the native grid of every token
NATIVE_PX = 24

BACKGROUNDS = {
    "Blue": (99, 133, 150), "Purple": (142, 111, 187), "Gold": (200, 170, 100), "Green": (120, 160, 110),
    "Red": (180, 100, 100), "Gray": (90, 90, 100),
}
SKINS = {  # name -> (rgb, weight)
    "Light": ((219, 177, 128), 30), "Medium": ((174, 139, 97), 30), "Dark": ((113, 63, 29), 25),
    "Deep": ((80, 50, 35), 10), "Albino": ((234, 217, 217), 6), "Zombie": ((125, 162, 105), 3),
    "Ape": ((133, 111, 86), 2), "Alien": ((200, 251, 251), 1),
}
HAIR = {  # name -> weight
    "None": 18, "Cap": 12, "Beanie": 10, "Mohawk": 10, "Wild Hair": 12, "Bandana": 8, "Headband": 10,
    "Top Hat": 4, "Tiara": 1,
}
HAIR_COLORS = {"Black": (26, 26, 26), "Brown": (110, 70, 40), "Blonde": (230, 200, 90), "Red": (190, 50, 40)}
EYES = {"Normal": 50, "Shades": 15, "3D Glasses": 8, "VR": 5, "Eye Patch": 6, "Clown Eyes": 6}
MOUTHS = {"Normal": 45, "Smile": 20, "Frown": 15, "Cigarette": 12, "Pipe": 5, "Medical Mask": 3}
#: small independent traits and how often each appears
SMALL_TRAITS = {"Earring": 0.25, "Mole": 0.15, "Rosy Cheeks": 0.15, "Chain": 0.12}

OUTLINE = (0, 0, 0)


def _pick(rng: random.Random, table: dict) -> str:
    names = list(table)
    weights = [w[1] if isinstance(w, tuple) else w for w in table.values()]
    return rng.choices(names, weights=weights)[0]


def _draw_traits(rng: random.Random) -> dict[str, str]:
    traits = {
        "Background": rng.choice(list(BACKGROUNDS)),
        "Skin": _pick(rng, SKINS),
        "Hair": _pick(rng, HAIR),
        "Eyes": _pick(rng, EYES),
        "Mouth": _pick(rng, MOUTHS),
    }
    if traits["Hair"] in ("Mohawk", "Wild Hair", "Cap", "Beanie", "Bandana"):
        traits["Hair Color"] = rng.choice(list(HAIR_COLORS))
    for name, p in SMALL_TRAITS.items():
        if rng.random() < p:
            traits[name] = "Yes"
    return traits


def _clip(rgb) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, v))) for v in rgb)  # type: ignore[return-value]


def render_traits(traits: dict[str, str]) -> np.ndarray:
    """The token's pixels: uint8 (24, 24, 3)."""
    a = np.empty((NATIVE_PX, NATIVE_PX, 3), np.uint8)
    a[:] = BACKGROUNDS[traits["Background"]]
    skin = np.array(SKINS[traits["Skin"]][0])
    shade = _clip(skin * 0.8)

    def fill(y0: int, y1: int, x0: int, x1: int, rgb) -> None:  # rows y0..y1-1, columns x0..x1-1
        a[y0:y1, x0:x1] = rgb

    # head and neck, with a dark outline
    fill(4, 21, 6, 18, OUTLINE)
    fill(5, 20, 7, 17, _clip(skin))
    fill(20, 24, 8, 14, OUTLINE)
    fill(20, 24, 9, 13, _clip(skin))
    fill(12, 15, 17, 18, _clip(skin))  # nose bump
    fill(17, 20, 7, 9, shade)  # jaw shadow

    hair = traits["Hair"]
    hc = HAIR_COLORS.get(traits.get("Hair Color", "Black"), (26, 26, 26))
    if hair == "Cap":
        fill(3, 7, 6, 18, hc)
        fill(6, 7, 16, 21, hc)  # brim
    elif hair == "Beanie":
        fill(2, 7, 6, 18, hc)
        fill(1, 2, 11, 13, _clip(np.array(hc) + 60))
    elif hair == "Mohawk":
        fill(0, 6, 10, 14, hc)
    elif hair == "Wild Hair":
        fill(2, 7, 4, 19, hc)
        fill(7, 13, 4, 7, hc)
    elif hair == "Bandana":
        fill(4, 7, 6, 18, hc)
        fill(6, 9, 4, 6, hc)
    elif hair == "Headband":
        fill(6, 7, 6, 18, (255, 255, 255))
    elif hair == "Top Hat":
        fill(0, 5, 8, 16, (20, 20, 20))
        fill(5, 6, 5, 19, (20, 20, 20))
    elif hair == "Tiara":
        fill(3, 4, 9, 15, (240, 210, 60))
        fill(2, 3, 11, 13, (60, 200, 240))

    eyes = traits["Eyes"]
    if eyes == "Normal":
        fill(11, 12, 9, 11, (255, 255, 255))
        fill(11, 12, 10, 11, (0, 0, 0))
        fill(11, 12, 13, 15, (255, 255, 255))
        fill(11, 12, 14, 15, (0, 0, 0))
    elif eyes == "Shades":
        fill(10, 13, 8, 16, (10, 10, 10))
    elif eyes == "3D Glasses":
        fill(10, 13, 8, 16, (240, 240, 240))
        fill(11, 12, 9, 11, (220, 40, 40))
        fill(11, 12, 13, 15, (40, 80, 220))
    elif eyes == "VR":
        fill(9, 13, 7, 17, (120, 120, 120))
        fill(10, 12, 8, 16, (40, 40, 40))
    elif eyes == "Eye Patch":
        fill(11, 12, 9, 11, (255, 255, 255))
        fill(11, 12, 10, 11, (0, 0, 0))
        fill(10, 13, 13, 16, (0, 0, 0))
        fill(8, 9, 7, 17, (0, 0, 0))
    elif eyes == "Clown Eyes":
        fill(10, 13, 9, 11, (60, 120, 220))
        fill(10, 13, 13, 15, (60, 120, 220))
        fill(11, 12, 10, 11, (0, 0, 0))
        fill(11, 12, 14, 15, (0, 0, 0))

    mouth = traits["Mouth"]
    if mouth == "Normal":
        fill(16, 17, 11, 15, (90, 40, 30))
    elif mouth == "Smile":
        fill(16, 17, 11, 15, (90, 40, 30))
        fill(15, 16, 15, 16, (90, 40, 30))
    elif mouth == "Frown":
        fill(16, 17, 11, 15, (90, 40, 30))
        fill(17, 18, 10, 11, (90, 40, 30))
    elif mouth == "Cigarette":
        fill(16, 17, 11, 14, (90, 40, 30))
        fill(16, 17, 14, 21, (230, 230, 230))
        fill(16, 17, 21, 22, (240, 120, 30))
        fill(13, 15, 20, 21, (180, 180, 190))
    elif mouth == "Pipe":
        fill(16, 17, 11, 14, (90, 40, 30))
        fill(17, 18, 14, 19, (100, 60, 30))
        fill(15, 18, 19, 21, (100, 60, 30))
    elif mouth == "Medical Mask":
        fill(14, 19, 8, 17, (210, 220, 235))

    if traits.get("Earring"):
        fill(14, 16, 6, 7, (240, 200, 40))
    if traits.get("Mole"):
        fill(14, 15, 15, 16, _clip(skin * 0.6))
    if traits.get("Rosy Cheeks"):  # almost invisible on dark skin: +5 levels of red on 4 pixels
        for y, x in ((14, 9), (14, 10), (14, 13), (14, 14)):
            a[y, x] = _clip(a[y, x].astype(int) + (5, 0, 0))
    if traits.get("Chain"):  # 3 pixels, ~11 levels lighter than the neck
        for x in (9, 10, 11):
            a[22, x] = _clip(a[22, x].astype(int) + 11)
    return a


class _Tokens:
    """The distinct drawings found so far for one seed (grown on demand, shared by threads)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.traits: list[dict[str, str]] = []
        self._seen: set[bytes] = set()
        self._rng = random.Random(f"nftgan-pixel:{seed}")
        self._lock = threading.Lock()

    def get(self, index: int) -> dict[str, str]:
        with self._lock:
            while len(self.traits) <= index:
                traits = _draw_traits(self._rng)
                digest = hashlib.blake2b(render_traits(traits).tobytes(), digest_size=16).digest()
                if digest in self._seen:
                    continue
                self._seen.add(digest)
                self.traits.append(traits)
            return self.traits[index]


@functools.lru_cache(maxsize=8)
def _tokens(seed: int) -> _Tokens:
    return _Tokens(seed)


def item_traits(index: int, *, seed: int = 0) -> dict[str, str]:
    """The traits of token ``index`` (a fresh dict)."""
    if index < 0:
        raise ValueError("index must be >= 0")
    return dict(_tokens(seed).get(index))


def punks_style_traits(index: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """Token ``index``'s traits listed the way CryptoPunks lists a punk: one ``type`` (its skin) and one
    ``accessory`` per thing it wears (headwear or hair, eyes and mouth other than plain, each small trait),
    0 to 7 per token. The same image as :func:`item_traits` describes, in the metadata shape of a
    collection whose trait type repeats."""
    t = item_traits(index, seed=seed)
    pairs = [("type", t["Skin"])]
    if t["Hair"] != "None":
        pairs.append(("accessory", f"{t.get('Hair Color', '')} {t['Hair']}".strip()))
    for kind, plain in (("Eyes", "Normal"), ("Mouth", "Normal")):
        if t[kind] != plain:
            pairs.append(("accessory", t[kind]))
    pairs += [("accessory", name) for name in SMALL_TRAITS if t.get(name)]
    return pairs


def item_name(index: int) -> str:
    return f"Pixel #{index}"


def render_item(index: int, *, seed: int = 0, scale: int = 1) -> Image.Image:
    """Token ``index`` as an RGB image, ``24 * scale`` pixels square (nearest-neighbour upscale)."""
    image = Image.fromarray(render_traits(_tokens(seed).get(index)), "RGB")
    if scale != 1:
        image = image.resize((NATIVE_PX * scale, NATIVE_PX * scale), Image.Resampling.NEAREST)
    return image


def render_png(index: int, *, seed: int = 0, scale: int = 1) -> bytes:
    buf = io.BytesIO()
    render_item(index, seed=seed, scale=scale).save(buf, format="PNG")
    return buf.getvalue()
