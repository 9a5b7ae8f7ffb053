"""Reading the tensor cache that ``prepare`` writes (``cache/<size>/images.npy`` + ``manifest.json``).

Training and evaluation read the cache only through :func:`open_cache`; they never decode originals.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import NftganError
from pipeline.workspace import Workspace


#: the cache size a collection is prepared and trained at unless told otherwise (written once, here)
DEFAULT_SIZE_PX = 64


@dataclass(frozen=True)
class TensorCache:
    images: np.ndarray  # uint8, (N, 3, size, size), memory-mapped read-only
    manifest: dict[str, Any]

    @property
    def size_px(self) -> int:
        return int(self.manifest["size_px"])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def content_hash(self) -> str:
        """Identifies the cache's content (what was cached, from which originals, how)."""
        return str(self.manifest["content_hash"])


def read_manifest(ws: Workspace, slug: str, size_px: int) -> dict[str, Any] | None:
    """The cache manifest of one size (None when there is no complete cache): the one reader of it."""
    col = ws.collection(slug)
    path = col.cache_manifest(size_px)
    if not path.is_file() or not col.cache_array(size_px).is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def cache_content_hash(ws: Workspace, slug: str, size_px: int) -> str | None:
    """The content hash of a collection's cache of one size, or None when there is none."""
    manifest = read_manifest(ws, slug, size_px)
    return None if manifest is None else str(manifest.get("content_hash"))


def open_cache(ws: Workspace, slug: str, size_px: int) -> TensorCache:
    """Open a collection's cache for one size, with a clear error if ``prepare`` has not made it."""
    col = ws.collection(slug)
    array_path, manifest_path = col.cache_array(size_px), col.cache_manifest(size_px)
    if not manifest_path.is_file() or not array_path.is_file():
        have = col.cache_sizes()
        hint = f" (caches exist for sizes {have})" if have else ""
        raise NftganError(
            f"no {size_px}px tensor cache for collection {slug!r}{hint}: "
            f"run `nftgan prepare {slug} --size {size_px}` first"
        )
    manifest = read_manifest(ws, slug, size_px)
    if manifest is None:
        raise NftganError(f"tensor cache manifest {manifest_path} cannot be read: re-run `nftgan prepare`")
    images = np.load(array_path, mmap_mode="r")
    expected = (int(manifest["count"]), 3, size_px, size_px)
    if images.dtype != np.uint8 or tuple(images.shape) != expected:
        raise NftganError(
            f"tensor cache {array_path} is inconsistent with its manifest "
            f"({images.dtype} {tuple(images.shape)} vs uint8 {expected}): re-run `nftgan prepare`"
        )
    return TensorCache(images=images, manifest=manifest)


def hash_strings(parts: list[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()
