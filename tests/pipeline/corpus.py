"""Generate test images of every kind the cleaning stage must handle (good and bad)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kw)
    return buf.getvalue()


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth-ish random picture (blurred noise), distinct per seed under a perceptual hash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


def hidden_color_rgba(w: int = 32, h: int = 32) -> Image.Image:
    """Fully transparent pixels whose hidden RGB is pure red, with an opaque blue square in the middle."""
    arr = np.zeros((h, w, 4), np.uint8)
    arr[..., 0] = 255  # hidden red under alpha 0
    arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (0, 0, 255, 255)
    return Image.fromarray(arr, "RGBA")


def pixel_art(w: int = 24, h: int = 24, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(5, 3), dtype=np.uint8)
    idx = rng.integers(0, 5, size=(h, w))
    return Image.fromarray(palette[idx], "RGB")


def decompression_bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG file whose header claims a huge image (the IDAT is a few bytes)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, expected reason)."""
    good = png_bytes(noise(64, 64, seed=99))
    return {
        "empty.png": (b"", "empty-file"),
        "truncated.png": (good[: len(good) // 2], "truncated"),
        "corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "corrupt"),
        "error-page.png": (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "not-an-image:html"),
        "metadata.png": (b'{"name": "token #1", "image": "ipfs://x"}', "not-an-image:json"),
        "bomb.png": (decompression_bomb_png(), "decompression-bomb"),
        "tiny.png": (png_bytes(noise(8, 8, seed=5)), "too-small"),
        "video-named.png": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64, "video"),
        "garbage.webp": (bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)), "not-an-image:unknown"),
    }


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
