"""Tell what a file is from its first bytes, never from its name or a server's Content-Type.

Shared by the downloader (to name stored files and refuse HTML error pages) and the cleaning stage.
"""

from __future__ import annotations

import re

#: raster formats the cleaning stage decodes, mapped to the file extension we store them under
RASTER_KINDS = {"png": "png", "jpeg": "jpg", "gif": "gif", "webp": "webp", "bmp": "bmp", "tiff": "tif"}
IMAGE_KINDS = frozenset(RASTER_KINDS) | {"svg"}
VIDEO_KINDS = frozenset({"mp4", "webm", "quicktime"})
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".svg", ".svgz"}
)

_SVG_RE = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_HTML_RE = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)

#: how many leading bytes :func:`sniff` needs
SNIFF_BYTES = 4096


def sniff(head: bytes) -> str:
    """Return the kind of a file from its first bytes.

    One of: ``png jpeg gif webp bmp tiff svg`` (images), ``mp4 webm quicktime`` (video), ``html json
    text`` (not images, typically error pages), ``empty`` or ``unknown``.
    """
    if not head:
        return "empty"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        return "quicktime" if head[8:10] == b"qt" else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if _HTML_RE.match(text):
        # an SVG may start with a comment; only call it HTML if no <svg follows
        return "svg" if _SVG_RE.search(head) and not re.search(rb"<html", head, re.I) else "html"
    if text.startswith(b"<?xml") or text.startswith(b"<svg") or text.startswith(b"<!DOCTYPE svg"):
        return "svg" if _SVG_RE.search(head) or text.startswith(b"<!DOCTYPE svg") else "text"
    if text[:1] in (b"{", b"["):
        return "json"
    if _looks_textual(head):
        return "text"
    return "unknown"


def _looks_textual(head: bytes) -> bool:
    try:
        head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head[:512]


def extension_for(kind: str) -> str:
    """The extension originals of this kind are stored under (``bin`` when unknown)."""
    if kind in RASTER_KINDS:
        return RASTER_KINDS[kind]
    return {"svg": "svg", "mp4": "mp4", "webm": "webm", "quicktime": "mov"}.get(kind, "bin")
