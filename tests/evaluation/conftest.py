"""Small real parts for evaluation tests: synthetic token-like images, a tensor cache, a run with checkpoints."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.workspace import RunPaths, Workspace


def tokens(n: int, *, size_px: int = 32, seed: int = 0, palette_shift: int = 0) -> np.ndarray:
    """``n`` NFT-like images, uint8 (n, 3, S, S): a flat background, a body, two eyes, an accessory.

    ``palette_shift`` moves every colour towards red and brighter: a shifted distribution.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size_px, size_px), np.uint8)
    s = size_px
    for i in range(n):
        colours = np.clip(rng.integers(0, 200, (4, 3)) + [palette_shift, palette_shift // 2, 0], 0, 255)
        img = Image.new("RGB", (s, s), tuple(int(c) for c in colours[0]))
        d = ImageDraw.Draw(img)
        x0, y0 = rng.integers(0, s // 3, 2)
        x1, y1 = x0 + rng.integers(s // 3, s // 2), y0 + rng.integers(s // 2, s - s // 8)
        d.ellipse([int(x0), int(y0), int(x1) + s // 4, int(y1)], fill=tuple(int(c) for c in colours[1]))
        for ex in (x0 + s // 6, x0 + s // 3):
            d.rectangle([int(ex), int(y0) + s // 5, int(ex) + s // 12, int(y0) + s // 4], fill=(0, 0, 0))
        ax, ay = rng.integers(0, s - s // 4, 2)
        d.rectangle([int(ax), int(ay), int(ax) + s // 4, int(ay) + s // 8], fill=tuple(int(c) for c in colours[2]))
        out[i] = np.asarray(img).transpose(2, 0, 1)
    return out


def write_cache(ws: Workspace, slug: str, images: np.ndarray) -> str:
    """A tensor cache as ``prepare`` would leave it; returns its content hash."""
    col = ws.collection(slug)
    size_px = images.shape[-1]
    col.cache_dir(size_px).mkdir(parents=True, exist_ok=True)
    np.save(col.cache_array(size_px), images)
    content_hash = hashlib.sha256(images.tobytes()).hexdigest()
    manifest = {
        "count": len(images), "size_px": size_px, "content_hash": content_hash,
        "item_ids": list(range(101, 101 + len(images))), "fit": "crop", "background": "#808080",
    }
    col.cache_manifest(size_px).write_text(json.dumps(manifest))
    return content_hash


def save_generator_checkpoint(run: RunPaths, step: int, *, seed: int) -> None:
    """A checkpoint through training's own writer: a tiny 32 px DCGAN generator, weights from ``seed``."""
    import torch

    from training.checkpoints import save_checkpoint
    from training.config import TrainConfig
    from training.models import make_generator

    config = TrainConfig(size_px=32, base_width=4, z_dim=8)
    torch.manual_seed(seed)
    g = make_generator(config.arch, config.size_px, config.z_dim, config.resolved_widths())
    save_checkpoint(run, {"step": step, "config": config.to_dict(), "generator": g.state_dict(),
                          "ema": g.state_dict()})


@pytest.fixture
def collection(ws: Workspace) -> str:
    """Collection 'punks' with a 32 px cache of 48 token images."""
    write_cache(ws, "punks", tokens(48, seed=1))
    return "punks"


@pytest.fixture
def run(ws: Workspace, collection: str) -> RunPaths:
    """Run 'r1' of 'punks' with checkpoints at steps 100, 200 and 300."""
    paths = ws.run(collection, "r1")
    for step in (100, 200, 300):
        save_generator_checkpoint(paths, step, seed=step)
    return paths
