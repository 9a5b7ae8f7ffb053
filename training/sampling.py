"""Images from a trained generator: uint8 batches, sample grids, single PNGs and latent interpolations.

``generate_uint8`` is what evaluation calls; ``sample`` and ``interpolate`` are the ``nftgan sample`` and
``nftgan interpolate`` stages. With no run named they use the collection's champion (``champion.json``:
its run and step); a named run without ``--checkpoint`` uses the champion's step when it is the champion,
else its latest checkpoint. For a pixel-art collection (``cache/<size>/pixel-art.json``) ``sample`` snaps
the images to the collection's grid and palette (:mod:`training.pixelart`) unless told not to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.atomic import atomic_path
from pipeline.champion import read_champion
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.config import InterpolateConfig, SampleConfig  # noqa: F401 (their home is the config)
from training.checkpoints import LoadedGenerator, best_step, load_generator, require_run
from training.devices import resolve_device
from training.pixelart import PixelArt, read_pixel_art


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
class SampleOutput:
    """What ``sample`` wrote."""

    paths: list[Path]  # the grid, or one PNG per image
    run: str
    step: int
    pixel_art: PixelArt | None = None  # the grid and palette the images were snapped to
    before_after: Path | None = None


def no_champion(slug: str) -> NftganError:
    return NftganError(f"no champion yet: name a run, or run nftgan champion {slug} --challenge RUN")


def resolve_source(
    ws: Workspace, slug: str, run_name: str | None, checkpoint: str | None, *, prefer_best: bool = False
) -> tuple[str, str]:
    """(run, checkpoint) to generate from. No run: the champion's (its step unless ``checkpoint`` says
    otherwise; a clear error when there is none). A run and no checkpoint: the champion's step when the run
    is the champion, else its best checkpoint (``prefer_best``, when one is marked), else its latest."""
    if run_name is None:
        champion = read_champion(ws, slug)
        if champion.run is None:
            raise no_champion(slug)
        return champion.run, checkpoint if checkpoint is not None else str(champion.step)
    if checkpoint is not None:
        return run_name, checkpoint
    champion = read_champion(ws, slug)
    if champion.run == run_name:
        return run_name, str(champion.step)
    if prefer_best:
        run = ws.run(slug, run_name)
        require_run(run)
        if best_step(run) is not None:
            return run_name, "best"
    return run_name, "latest"


def open_generator(
    ws: Workspace, slug: str, run_name: str | None, checkpoint: str | None, device: str, ema: bool,
    *, prefer_best: bool = False,
) -> tuple[str, LoadedGenerator]:
    """The run's name and the generator :func:`resolve_source` picks, on ``device``."""
    name, which = resolve_source(ws, slug, run_name, checkpoint, prefer_best=prefer_best)
    run = ws.run(slug, name)
    require_run(run)
    return name, load_generator(run, which, device=str(resolve_device(device)), ema=ema)


def pixel_art_for(ws: Workspace, slug: str, size_px: int, wanted: bool | None) -> PixelArt | None:
    """The grid and palette to snap to: auto (None) when the collection is pixel art at this size, on
    (True: an error when it is not), or off (False)."""
    if wanted is False:
        return None
    art = read_pixel_art(ws, slug, size_px)
    if art is None and wanted:
        raise NftganError(
            f"--pixel-art: collection {slug!r} has no pixel grid and palette at {size_px}px "
            f"(`nftgan prepare {slug} --size {size_px}` writes one when the collection is drawn as pixel art)"
        )
    return art


def before_after_image(raw: np.ndarray, snapped: np.ndarray, *, gap_px: int = 8) -> np.ndarray:
    """HxWx3: the grid of ``raw`` and the grid of ``snapped`` side by side, a white gap between."""
    left, right = grid(raw), grid(snapped)
    gap = np.full((left.shape[0], gap_px, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def default_before_after(grid_path: Path) -> Path:
    return grid_path.with_name(f"{grid_path.stem}-before-after.png")


def sample(ws: Workspace, slug: str, run_name: str | None, config: SampleConfig) -> SampleOutput:
    """Write ``config.n`` generated images at full size: one grid PNG or one PNG each (snapped to the
    collection's pixel grid and palette when it is pixel art), and the before/after comparison."""
    name, loaded = open_generator(ws, slug, run_name, config.checkpoint, config.device, config.ema)
    if config.traits:
        raw = _asked(loaded, name, config)
    else:
        raw = generate_from(loaded.generator, latents(config.n, loaded.z_dim, config.seed))
    art = pixel_art_for(ws, slug, loaded.size_px, config.pixel_art)
    images = raw if art is None else art.snap(raw)
    if config.out_dir is not None:
        out_dir = Path(config.out_dir)
        paths = [out_dir / f"step{loaded.step:07d}-seed{config.seed}-{i:05d}.png" for i in range(config.n)]
        for img, path in zip(images, paths):
            save_png(np.ascontiguousarray(img.transpose(1, 2, 0)), path)
        comparison = Path(config.before_after) if config.before_after is not None and art is not None else None
    else:
        out = Path(config.out) if config.out is not None else (
            ws.run(slug, name).sample_output(loaded.step, config.seed, config.n)
        )
        save_png(grid(images, nrow=config.n if config.traits else None), out)
        paths = [out]
        comparison = None
        if art is not None:
            comparison = Path(config.before_after) if config.before_after is not None else default_before_after(out)
    if comparison is not None:
        save_png(before_after_image(raw, images), comparison)
    return SampleOutput(paths, name, loaded.step, art, comparison)


def conditioned_core(generator: torch.nn.Module) -> torch.nn.Module | None:
    """The network that holds a trait-conditioned generator's pool and vocabulary (a native-grid run's
    generator sits inside OnCanvas), or None for an unconditioned generator."""
    inner = getattr(generator, "native", generator)
    return inner if hasattr(inner, "pool") and getattr(inner, "vocabulary", None) is not None else None


def asked_labels(generator: torch.nn.Module, z: torch.Tensor) -> list[dict[str, object]] | None:
    """The trait sets a trait-conditioned generator draws for latents ``z`` when called on ``z`` alone (from
    its pool, as every latent-only call does), decoded; None for an unconditioned generator."""
    from training.conditioning import Vocabulary, decode

    inner = conditioned_core(generator)
    if inner is None:
        return None
    vocab = Vocabulary.from_dict(inner.vocabulary)
    with torch.no_grad():
        vectors = inner.draw_conditions(z.to(inner.pool.device)).cpu().numpy()
    return [decode(vocab, v) for v in vectors]


def condition_pool(generator: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A trait-conditioned generator's pool: the collection's distinct condition vectors and their shares."""
    inner = conditioned_core(generator)
    if inner is None:
        raise NftganError("this generator is not trait-conditioned")
    cdf = inner.pool_cdf.detach().cpu().double().numpy()
    return inner.pool.detach().cpu().numpy(), np.diff(np.concatenate([[0.0], cdf]))


def _asked(loaded: LoadedGenerator, name: str, config: SampleConfig) -> np.ndarray:
    """``config.n`` images per ``--traits`` request (rows of the grid), the same latents in every row."""
    from training.conditioning import Vocabulary, request_conditions

    cond = loaded.config.get("conditioning")
    if not cond:
        raise NftganError(f"run {name!r} is not trait-conditioned: --traits needs a run trained with --condition traits")
    vocab = Vocabulary.from_dict(cond["vocabulary"])
    g = loaded.generator
    pool, weights = condition_pool(g)
    z = latents(config.n, loaded.z_dim, config.seed)
    u = np.random.default_rng(config.seed).random(config.n)
    device = next(g.parameters()).device
    rows = []
    with torch.no_grad():
        for text in config.traits:
            c, _ = request_conditions(vocab, vocab.parse_request(text), pool, weights, u)
            rows.append(generate_with(g, z, torch.from_numpy(c).to(device)))
    return np.concatenate(rows)


@torch.no_grad()
def generate_with(generator: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """uint8 images of a trait-conditioned generator for latents ``z`` and conditions ``c``."""
    device = next(generator.parameters()).device
    out = [to_uint8(generator(z[i : i + batch_size].to(device), c[i : i + batch_size])).cpu()
           for i in range(0, len(z), batch_size)]
    return torch.cat(out).numpy()


# -- nftgan interpolate ----------------------------------------------------------------------------------
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


def interpolate(ws: Workspace, slug: str, run_name: str | None, config: InterpolateConfig) -> Path:
    """Write a looping GIF that walks the generator's latent space (the champion's when no run is named);
    returns its path."""
    name, loaded = open_generator(ws, slug, run_name, config.checkpoint, config.device, config.ema)
    z = interpolation_latents(loaded.z_dim, config)
    cond = loaded.config.get("conditioning")
    if config.traits and not cond:
        raise NftganError(f"run {name!r} is not trait-conditioned: --traits needs a run trained with --condition traits")
    if cond:  # the traits stay fixed while z moves: asked for, or those of each interpolation's first keyframe
        from training.conditioning import Vocabulary, request_conditions

        g = loaded.generator
        inner = conditioned_core(g)
        if config.traits:
            vocab = Vocabulary.from_dict(cond["vocabulary"])
            pool, weights = condition_pool(g)
            held, _ = request_conditions(vocab, vocab.parse_request(config.traits), pool, weights,
                                         np.random.default_rng(config.seed).random(config.n))
            c = torch.from_numpy(held)
        else:
            with torch.no_grad():
                c = inner.draw_conditions(z[0].to(inner.pool.device)).cpu()
        images = generate_with(g, z.view(-1, loaded.z_dim), c.repeat(len(z), 1).to(next(g.parameters()).device))
    else:
        images = generate_from(loaded.generator, z.view(-1, loaded.z_dim))
    per_frame = images.reshape(len(z), config.n, *images.shape[1:])
    frames = [grid(f) if config.n > 1 else np.ascontiguousarray(f[0].transpose(1, 2, 0)) for f in per_frame]
    save_gif(frames, Path(config.out), frame_ms=config.frame_ms)
    return Path(config.out)
