"""Tiny tensor caches written the way ``nftgan prepare`` writes them, and tiny training configs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from pipeline.atomic import atomic_path, write_json
from pipeline.workspace import Workspace
from training.config import TrainConfig

MakeCache = Callable[..., np.ndarray]


def write_cache(ws: Workspace, slug: str, images: np.ndarray) -> None:
    """Write ``images`` (uint8 N x 3 x S x S) as the collection's S px tensor cache with its manifest."""
    size_px = images.shape[-1]
    col = ws.collection(slug)
    with atomic_path(col.cache_array(size_px), suffix=".npy") as tmp:
        np.save(tmp, images)
    write_json(
        col.cache_manifest(size_px),
        {
            "count": len(images),
            "size_px": size_px,
            "content_hash": hashlib.sha256(images.tobytes()).hexdigest(),
            "item_ids": list(range(1, len(images) + 1)),
            "fit": "crop",
            "background": "#808080",
        },
    )


def noise_images(n: int, size_px: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size_px, size_px), dtype=np.uint8)


def solid_images(colors: list[tuple[int, int, int]], size_px: int) -> np.ndarray:
    """One image per RGB color, every pixel that color."""
    return np.stack([np.broadcast_to(np.array(c, np.uint8)[:, None, None], (3, size_px, size_px)) for c in colors])


@pytest.fixture
def make_cache(ws: Workspace) -> MakeCache:
    """``make_cache(slug, size_px, n=16)`` writes a random-noise cache (or ``images=...``) and returns it."""

    def make(slug: str = "tiny", size_px: int = 32, n: int = 16, *, images: np.ndarray | None = None) -> np.ndarray:
        images = noise_images(n, size_px) if images is None else images
        write_cache(ws, slug, images)
        return images

    return make


def tiny_config(**overrides) -> TrainConfig:
    """A DCGAN small enough to take a step in milliseconds on a CPU (float32 on every machine)."""
    base = dict(
        size_px=32, base_width=8, z_dim=16, batch_size=8, steps=4, device="cpu", run="t",
        log_every=2, checkpoint_every=2, sample_every=2, sample_count=4, keep_last=3, amp="off",
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core box OpenMP spin-waits make them crawl."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
