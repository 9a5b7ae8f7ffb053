"""Images from a trained generator: uint8 batches, sample grids, single PNGs and latent interpolations.

``generate_uint8`` is what evaluation calls; ``sample`` and ``interpolate`` are the ``nftgan sample`` and
``nftgan interpolate`` stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.checkpoints import LoadedGenerator, load_generator, require_run
from training.devices import resolve_device


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 [0, 255], rounded and clamped."""
    return ((images.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard normal latents, the same for a seed whatever the device or batch size."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate_from(generator: torch.nn.Module, z: torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
    """uint8 (n, 3, S, S) images for latents ``z`` (moved to the generator's device batch by batch)."""
    device = next(generator.parameters()).device
    out = [to_uint8(generator(z[i : i + batch_size].to(device))).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out).numpy()


def generate_uint8(
    loaded: LoadedGenerator, n: int, *, seed: int = 0, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """``n`` images as uint8 (n, 3, S, S), deterministic for a seed (the generator moves to ``device``)."""
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    g = loaded.generator.to(device).eval()
    if n == 0:
        return np.zeros((0, 3, loaded.size_px, loaded.size_px), np.uint8)
    return generate_from(g, latents(n, loaded.z_dim, seed), batch_size=batch_size)


def grid(images: np.ndarray, *, nrow: int | None = None, padding_px: int = 2) -> np.ndarray:
    """uint8 (n, 3, S, S) -> one uint8 HxWx3 grid image (``nrow`` per row, default a near-square grid)."""
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(len(images)))
    g = make_grid(torch.from_numpy(np.ascontiguousarray(images)), nrow=nrow, padding=padding_px, pad_value=0)
    return g.permute(1, 2, 0).numpy()


def save_png(image_hwc: np.ndarray, target: Path) -> None:
    with atomic_path(target, suffix=".png") as tmp:
        Image.fromarray(image_hwc).save(tmp, format="PNG")


def save_gif(frames: list[np.ndarray], target: Path, *, frame_ms: int) -> None:
    """An endlessly looping GIF from HxWx3 uint8 frames, written atomically."""
    pil = [Image.fromarray(f) for f in frames]
    with atomic_path(target, suffix=".gif") as tmp:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=frame_ms, loop=0)


# -- nftgan sample ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleConfig:
    checkpoint: str = "latest"  # latest | best | STEP
    n: int = 64
    seed: int = 0
    out: Path | None = None  # one grid PNG
    out_dir: Path | None = None  # or one PNG per image
    device: str = "auto"
    ema: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise NftganError(f"--n must be at least 1, got {self.n}")
        if self.out is not None and self.out_dir is not None:
            raise NftganError("give either --out FILE.png (a grid) or --out-dir DIR (single images), not both")
        if self.out is not None and Path(self.out).suffix.lower() != ".png":
            raise NftganError(f"--out must name a .png file, got {self.out}")


def _open_run(ws: Workspace, slug: str, run_name: str, checkpoint: str, device: str, ema: bool) -> LoadedGenerator:
    run = ws.run(slug, run_name)
    require_run(run)
    return load_generator(run, checkpoint, device=str(resolve_device(device)), ema=ema)


def sample(ws: Workspace, slug: str, run_name: str, config: SampleConfig) -> list[Path]:
    """Write ``config.n`` generated images at full size: one grid PNG or one PNG each. Returns the files."""
    loaded = _open_run(ws, slug, run_name, config.checkpoint, config.device, config.ema)
    images = generate_from(loaded.generator, latents(config.n, loaded.z_dim, config.seed))
    if config.out_dir is not None:
        out_dir = Path(config.out_dir)
        paths = [out_dir / f"step{loaded.step:07d}-seed{config.seed}-{i:05d}.png" for i in range(config.n)]
        for img, path in zip(images, paths):
            save_png(np.ascontiguousarray(img.transpose(1, 2, 0)), path)
        return paths
    out = Path(config.out) if config.out is not None else (
        ws.run(slug, run_name).sample_output(loaded.step, config.seed, config.n)
    )
    save_png(grid(images), out)
    return [out]


# -- nftgan interpolate ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterpolateConfig:
    out: Path
    checkpoint: str = "latest"
    seed: int = 0
    keyframes: int = 4  # latent points visited in a loop
    frames_between: int = 16
    n: int = 1  # parallel interpolations shown side by side in a grid
    frame_ms: int = 80
    device: str = "auto"
    ema: bool = True

    def __post_init__(self) -> None:
        if Path(self.out).suffix.lower() != ".gif":
            raise NftganError(f"--out must name a .gif file, got {self.out}")
        for name, low in (("keyframes", 2), ("frames_between", 1), ("n", 1), ("frame_ms", 10)):
            if getattr(self, name) < low:
                raise NftganError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents (rows), which keeps them at a typical Gaussian norm."""
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


def interpolation_latents(z_dim: int, config: InterpolateConfig) -> torch.Tensor:
    """(frames, n, z_dim): a closed loop through ``keyframes`` random latents per interpolation."""
    keys = latents(config.keyframes * config.n, z_dim, config.seed).view(config.keyframes, config.n, z_dim)
    frames = []
    for k in range(config.keyframes):
        a, b = keys[k], keys[(k + 1) % config.keyframes]
        frames += [slerp(a, b, i / config.frames_between) for i in range(config.frames_between)]
    return torch.stack(frames)


def interpolate(ws: Workspace, slug: str, run_name: str, config: InterpolateConfig) -> Path:
    """Write a looping GIF that walks the generator's latent space; returns its path."""
    loaded = _open_run(ws, slug, run_name, config.checkpoint, config.device, config.ema)
    z = interpolation_latents(loaded.z_dim, config)
    images = generate_from(loaded.generator, z.view(-1, loaded.z_dim))
    per_frame = images.reshape(len(z), config.n, *images.shape[1:])
    frames = [grid(f) if config.n > 1 else np.ascontiguousarray(f[0].transpose(1, 2, 0)) for f in per_frame]
    save_gif(frames, Path(config.out), frame_ms=config.frame_ms)
    return Path(config.out)
