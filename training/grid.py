"""Training pixel art on its own grid, and drawing its samples back onto the cache's canvas.

A pixel-art collection's tokens sit in the tensor cache as ``grid x grid`` cells of ``cell_px`` pixels at
``origin`` (``cache/<size>/pixel-art.json``), e.g. a 24x24 punk padded into 32x32, 44% of the pixels
border. With ``--grid native`` the generator draws the grid itself (24x24 from a 3x3 start) and D judges
the grid: :func:`native_images` reads one pixel per cell out of the cache (cells are constant: prepare
scaled with nearest). :class:`OnCanvas` puts a native generator's output back where the cache has it:
upscaled with nearest by ``cell_px``, at ``origin``, on the cache's own padding colour, so samples,
metrics, exports and grids compare like with like with the cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import NftganError
from training.geometry import start_and_stages
from training.pixelart import CELL_MARGIN, PixelArt, hex_rgb

def canvas_of(art: PixelArt | None, images: np.ndarray, *, required: bool) -> dict[str, Any] | None:
    """The native-grid record of a cache (``TrainConfig.canvas``), or None when training stays on the cache.

    ``required`` (``--grid native``) turns "no square pixel grid that a generator can draw" into a one-line
    error; otherwise (``--grid auto``) such a cache trains as it is.
    """
    size = int(images.shape[-1])
    why = None
    if art is None:
        why = "the cache has no pixel grid (prepare writes cache/<size>/pixel-art.json for pixel-art collections)"
    elif art.grid_wh[0] != art.grid_wh[1]:
        why = f"its pixel grid {art.grid_wh[0]}x{art.grid_wh[1]} is not square"
    else:
        try:
            start_and_stages(int(art.grid_wh[0]))
        except ValueError as e:
            why = f"no generator draws its {art.grid_wh[0]}x{art.grid_wh[1]} grid ({e})"
    if why is not None:
        if required:
            raise NftganError(f"--grid native: {why}; use --grid cache")
        return None
    assert art is not None
    g, cell, (ox, oy) = int(art.grid_wh[0]), int(art.cell_px), (int(art.origin_xy[0]), int(art.origin_xy[1]))
    if ox < 0 or oy < 0 or ox + g * cell > size or oy + g * cell > size:
        raise NftganError(f"{art.path}: the grid does not fit the {size}px cache: re-run `nftgan prepare`")
    return {"grid": g, "cell_px": cell, "origin": [ox, oy], "canvas_px": size,
            "background": art.doc.get("background")}  # prepare's padding colour (OnCanvas: black without it)


def native_images(images: np.ndarray, canvas: dict[str, Any]) -> np.ndarray:
    """uint8 (N, 3, grid, grid): the centre pixel of every cell of the drawn grid (cells are constant)."""
    g, cell, (ox, oy) = int(canvas["grid"]), int(canvas["cell_px"]), canvas["origin"]
    mid = cell // 2
    ys = oy + mid + cell * np.arange(g)
    xs = ox + mid + cell * np.arange(g)
    out = np.empty((len(images), 3, g, g), np.uint8)
    for start in range(0, len(images), 4096):
        block = np.asarray(images[start : start + 4096])
        out[start : start + len(block)] = block[:, :, ys][:, :, :, xs]
    return out


class OnCanvas(nn.Module):
    """A native-grid generator whose output is drawn onto the cache's canvas (values in [-1, 1])."""

    def __init__(self, native: nn.Module, canvas: dict[str, Any]) -> None:
        super().__init__()
        self.native = native
        self.canvas = dict(canvas)
        self.z_dim = getattr(native, "z_dim", None)
        self.size_px = int(canvas["canvas_px"])
        rgb = hex_rgb(canvas.get("background") or "#000000")
        self.register_buffer("background", torch.tensor(rgb, dtype=torch.float32).div(127.5).sub(1).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, z: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        x = self.native(z, *conditions)  # a trait-conditioned generator takes its conditions through
        cell, (ox, oy), size = int(self.canvas["cell_px"]), self.canvas["origin"], self.size_px
        if cell > 1:
            x = x.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)
        out = self.background.to(x.dtype).expand(x.shape[0], 3, size, size).clone()
        out[:, :, oy : oy + x.shape[2], ox : ox + x.shape[3]] = x
        return out


def head_palette(canvas: dict[str, Any] | None) -> dict[str, Any]:
    """A palette-head run's generator options (``--palette-head``: the palette recorded in its canvas as hex
    colours, as float (K, 3) on the networks' scale, and whether training is straight-through); none for any
    other run. ``make_generator(..., **head_palette(config.canvas))``."""
    colours = (canvas or {}).get("palette")
    if not colours:
        return {}
    return {"palette": torch.tensor([hex_rgb(c) for c in colours], dtype=torch.float32).div(127.5).sub(1),
            "straight_through": canvas.get("palette_head", "straight") == "straight"}


def palette_tensor(art: PixelArt, device: torch.device) -> torch.Tensor:
    """The collection's palette as float (K, 3) on the networks' scale, [-1, 1]."""
    return torch.as_tensor(np.asarray(art.palette, np.float32) / 127.5 - 1.0, device=device)


#: linear sRGB -> CIE XYZ relative to D50 (sRGB's matrix adapted to D50 with Bradford, as ICC profiles and so
#: LittleCMS, which training.pixelart.to_lab uses, do), and D50's white point
_SRGB_TO_XYZ_D50 = ((0.4360747, 0.3850649, 0.1430804), (0.2225045, 0.7168786, 0.0606169),
                    (0.0139322, 0.0971045, 0.7141733))
_WHITE_D50 = (0.9642, 1.0, 0.8249)


def lab_of(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) colours on the networks' scale ([-1, 1], sRGB) -> (..., 3) CIELAB (D50): the space of the
    palette snap users get (training.pixelart), in torch for training's snaps."""
    c = rgb.float().add(1).mul(0.5).clamp(0, 1)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).pow(2.4))
    xyz = linear @ torch.tensor(_SRGB_TO_XYZ_D50, device=rgb.device).T / torch.tensor(_WHITE_D50, device=rgb.device)
    eps = (6 / 29) ** 3
    f = torch.where(xyz > eps, xyz.clamp_min(eps).pow(1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-1)


class PaletteSnap:
    """Training's palette snap of a native-grid run (``--condition-aux-snap``, ``--snap-fakes``): each pixel of
    an (N, 3, grid, grid) batch replaced by a palette colour in the forward pass, with the gradient passed
    straight through to the pixel (the straight-through estimator, Bengio et al. 2013): what a classifier of
    the snapped image says, and how each pixel should move to change it.

    ``rule`` (``TrainConfig.snap_rule``): "rgb", the nearest palette colour in RGB; "cells", the rule of the
    snap users get (:mod:`training.pixelart`, step 2): the nearest in CIELAB, and where the collection never
    draws that colour at the pixel's cell, the nearest one it does draw there when at most ``CELL_MARGIN``
    farther (``cell_palettes``: bool (grid, grid, K); None: the nearest in CIELAB)."""

    def __init__(self, palette: torch.Tensor, rule: str = "rgb", cell_palettes: np.ndarray | None = None) -> None:
        self.palette, self.rule = palette, rule
        self.lab = lab_of(palette) if rule == "cells" else None
        self.allowed = (None if rule != "cells" or cell_palettes is None else
                        torch.as_tensor(np.asarray(cell_palettes, bool), device=palette.device))

    @torch.no_grad()
    def indices(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W) palette indices of ``images`` (N, 3, H, W) under the rule."""
        x = images.float()
        if self.rule == "rgb":  # argmin |x - p|^2 = argmax (x . p - |p|^2 / 2): one matmul
            p = self.palette
            score = torch.einsum("nchw,kc->nkhw", x, p) - 0.5 * p.pow(2).sum(1).view(1, -1, 1, 1)
            return score.argmax(1)
        d = torch.cdist(lab_of(x.permute(0, 2, 3, 1)).flatten(0, 2), self.lab).view(*x.shape[:1], *x.shape[2:], -1)
        nearest = d.argmin(-1)  # (N, H, W)
        if self.allowed is None or self.allowed.shape[:2] != nearest.shape[1:]:
            return nearest
        allowed = self.allowed.expand(len(x), -1, -1, -1)
        own = d.gather(-1, nearest[..., None])[..., 0]
        drawn = d.masked_fill(~allowed, float("inf"))
        best = drawn.argmin(-1)
        take = ~allowed.gather(-1, nearest[..., None])[..., 0] & (drawn.gather(-1, best[..., None])[..., 0]
                                                                <= own + CELL_MARGIN)
        return torch.where(take, best, nearest)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        snapped = self.palette[self.indices(images)].permute(0, 3, 1, 2).to(images.dtype)
        return images + (snapped - images).detach()

