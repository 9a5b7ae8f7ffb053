"""Safe decoding and normalization of one original into a square uint8 RGB array.

Pure functions, run in worker processes by :mod:`cleaning.prepare`. Every failure becomes a
:class:`Rejected` with a reason code; nothing here raises for bad input.

Reason codes: ``empty-file``, ``file-too-large``, ``not-an-image:<kind>`` (html, json, text, unknown),
``video``, ``decompression-bomb``, ``truncated``, ``corrupt``, ``svg-error``, ``too-small``.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps

from cleaning import dedup
from pipeline.sniff import RASTER_KINDS, SNIFF_BYTES, VIDEO_KINDS, sniff

# Never decode a partial image as if it were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False

Fit = Literal["crop", "pad"]
Resample = Literal["auto", "pixel", "smooth"]

#: an image counts as pixel art (for resample="auto") when it is this small …
PIXEL_ART_MAX_SIDE_PX = 256
#: … and has at most this many distinct colors
PIXEL_ART_MAX_COLORS = 256
#: SVGs are rendered at this size (or the output size, if larger) before normalization
SVG_RENDER_PX = 512


@dataclass(frozen=True)
class DecodeOptions:
    size_px: int
    fit: Fit = "crop"
    background: tuple[int, int, int] = (128, 128, 128)
    resample: Resample = "auto"
    min_size_px: int = 16
    max_pixels: int = 64_000_000
    max_bytes: int = 200 * 2**20


@dataclass(frozen=True)
class Decoded:
    array: np.ndarray  # uint8 (3, size, size)
    phash: str  # 16 hex digits
    width: int
    height: int
    format: str  # e.g. "PNG/RGBA"
    pixel_art: bool  # normalized as pixel art (nearest-neighbour)
    # what de-duplication needs (see cleaning.dedup)
    drawn_as_pixel_art: bool = False  # small and few colors on its native grid, whatever --resample says
    pixel_hash: str = ""  # the decoded pixels on their native grid
    lossy: bool = False  # stored with a lossy encoder: JPEG, lossy WebP, a full 256-color GIF
    native_w: int = 0
    native_h: int = 0
    thumb: np.ndarray | None = None  # uint8 (h, w, 3), at most dedup.THUMB_MAX_PX a side


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
    width: int | None = None
    height: int | None = None
    format: str | None = None


def parse_color(text: str) -> tuple[int, int, int]:
    """``#RRGGBB`` (or ``RRGGBB``) to an RGB tuple; ValueError otherwise."""
    m = re.fullmatch(r"#?([0-9a-fA-F]{6})", text.strip())
    if not m:
        raise ValueError(f"not a #RRGGBB color: {text!r}")
    v = int(m.group(1), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def decode_file(path: str | os.PathLike[str], opts: DecodeOptions) -> Decoded | Rejected:
    """Decode and normalize the file at ``path`` (see :func:`decode_bytes`)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return Rejected("missing-file", str(e))
    if size > opts.max_bytes:
        return Rejected("file-too-large", f"{size} bytes > {opts.max_bytes}")
    with open(path, "rb") as f:
        data = f.read()
    return decode_bytes(data, opts)


def decode_bytes(data: bytes, opts: DecodeOptions) -> Decoded | Rejected:
    """Sniff, decode safely, composite transparency onto the background, and resize to a square.

    The format comes from the bytes, never from a file name or a server's Content-Type.
    """
    if not data:
        return Rejected("empty-file", "0 bytes")
    if len(data) > opts.max_bytes:
        return Rejected("file-too-large", f"{len(data)} bytes > {opts.max_bytes}")
    kind = sniff(data[:SNIFF_BYTES])
    if kind in VIDEO_KINDS:
        return Rejected("video", f"{kind} video, not an image")
    if kind == "svg":
        rendered = _render_svg(data, opts)
        if isinstance(rendered, Rejected):
            return rendered
        data, kind = rendered, "png"
    if kind not in RASTER_KINDS:
        return Rejected(f"not-an-image:{kind}", f"bytes look like {kind}, not an image")
    image = _open_checked(data, opts)
    if isinstance(image, Rejected):
        return image
    fmt = f"{image.format or kind.upper()}/{image.mode}"
    width, height = image.size
    try:
        rgb = to_rgb(image, opts.background)
    except (OSError, ValueError, SyntaxError) as e:
        return _classify_decode_error(e, width, height, fmt)
    if min(width, height) < opts.min_size_px:
        return Rejected("too-small", f"{width}x{height} < {opts.min_size_px}px", width, height, fmt)
    # An integer nearest-neighbour upscale is reduced to the grid it was drawn on, so that every copy of
    # a token at x2..x8 normalizes (and hashes) exactly like the token itself.
    native_px = dedup.native_grid(np.asarray(rgb, dtype=np.uint8))
    native = rgb if native_px.shape[:2] == (height, width) else Image.fromarray(native_px, "RGB")
    drawn_as_pixel_art = is_pixel_art(native)
    pixel_art = opts.resample == "pixel" or (opts.resample == "auto" and drawn_as_pixel_art)
    out = normalize(native if pixel_art else rgb, opts, pixel_art=pixel_art)
    import imagehash  # imported here: heavy (scipy), and only workers need it

    return Decoded(
        array=np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)),
        phash=str(imagehash.phash(native)),
        width=width,
        height=height,
        format=fmt,
        pixel_art=pixel_art,
        drawn_as_pixel_art=drawn_as_pixel_art,
        pixel_hash=dedup.pixel_digest(native_px),
        lossy=is_lossy(kind, data, image),
        native_w=native_px.shape[1],
        native_h=native_px.shape[0],
        thumb=dedup.thumbnail(native_px),
    )


def is_lossy(kind: str, data: bytes, image: Image.Image) -> bool:
    """Whether the stored bytes went through a lossy encoder (then a copy may differ by its noise)."""
    if kind == "jpeg":
        return True
    if kind == "webp":  # the first image chunk says: 'VP8 ' lossy, 'VP8L' lossless
        lossy_at, lossless_at = data.find(b"VP8 ", 12), data.find(b"VP8L", 12)
        return lossy_at >= 0 and (lossless_at < 0 or lossy_at < lossless_at)
    if kind == "tiff":
        return str(image.info.get("compression", "")).lower() in ("jpeg", "tiff_jpeg", "webp")
    if kind == "gif":  # a full 256-color palette: most likely quantized from a richer picture
        colors = image.convert("RGB").getcolors(maxcolors=256)
        return colors is not None and len(colors) >= 256
    return False


def _open_checked(data: bytes, opts: DecodeOptions) -> Image.Image | Rejected:
    """Open (header only), check the pixel count *before* decoding, then decode frame 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            fmt = f"{image.format}/{image.mode}"
            if width * height > opts.max_pixels:
                return Rejected(
                    "decompression-bomb",
                    f"{width}x{height} = {width * height} pixels > {opts.max_pixels}",
                    width, height, fmt,
                )
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
            image.load()
            image = ImageOps.exif_transpose(image) or image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            return Rejected("decompression-bomb", str(e))
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError) as e:
            return _classify_decode_error(e, None, None, None)
    return image


def _classify_decode_error(e: Exception, w: int | None, h: int | None, fmt: str | None) -> Rejected:
    msg = str(e) or type(e).__name__
    reason = "truncated" if "truncated" in msg.lower() or isinstance(e, EOFError) else "corrupt"
    return Rejected(reason, msg[:300], w, h, fmt)


def _render_svg(data: bytes, opts: DecodeOptions) -> bytes | Rejected:
    """Rasterize an SVG with resvg: it runs no scripts and fetches nothing from the network.

    We do not pass a resources folder, so references to local files are not followed either.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("svg-error", "SVG is not UTF-8 text")
    import resvg_py

    px = max(SVG_RENDER_PX, opts.size_px)
    try:
        png = resvg_py.svg_to_bytes(svg_string=text, width=px, skip_system_fonts=False)
    except (ValueError, RuntimeError, OSError) as e:  # resvg raises ValueError on bad SVG
        return Rejected("svg-error", str(e)[:300])
    return bytes(png)


def to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency onto ``background``.

    Never a bare ``convert("RGB")`` on images with alpha: that exposes whatever color hides under
    transparent pixels. 16-bit and 32-bit grayscale are scaled, not clipped.
    """
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if mode == "F":
            peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        elif mode.startswith("I;16") or arr.max(initial=0) > 255:
            peak = 65535.0
        else:
            peak = 255.0
        arr = np.clip(np.rint(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV: no alpha to expose


def is_pixel_art(image: Image.Image) -> bool:
    """Small, few colors: the look of 24x24 punks. Upscale these with nearest-neighbor only."""
    if max(image.size) > PIXEL_ART_MAX_SIDE_PX:
        return False
    colors = image.getcolors(maxcolors=PIXEL_ART_MAX_COLORS)
    return colors is not None


def normalize(rgb: Image.Image, opts: DecodeOptions, *, pixel_art: bool) -> Image.Image:
    """Square the image (center crop or pad) and bring it to ``size_px``.

    Pixel art is scaled by the largest integer factor that fits (nearest-neighbor, crisp edges) and
    padded with the background; everything else is resized with an antialiasing filter.
    """
    n = opts.size_px
    w, h = rgb.size
    if pixel_art:
        if opts.fit == "crop":
            side = min(w, h)
            rgb = rgb.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
            w = h = side
        factor = n // max(w, h)
        if factor >= 1:
            scaled = rgb.resize((w * factor, h * factor), Image.Resampling.NEAREST)
            canvas = Image.new("RGB", (n, n), opts.background)
            canvas.paste(scaled, ((n - scaled.width) // 2, (n - scaled.height) // 2))
            return canvas
        # larger than the output: fall through to a smooth downscale
    if opts.fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        square = rgb.crop((left, top, left + side, top + side))
    else:
        side = max(w, h)
        square = Image.new("RGB", (side, side), opts.background)
        square.paste(rgb, ((side - w) // 2, (side - h) // 2))
    if square.size == (n, n):
        return square
    return square.resize((n, n), Image.Resampling.LANCZOS, reducing_gap=3.0 if side > 3 * n else None)
