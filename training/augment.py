"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image the discriminator sees.

Real and fake images are both augmented, in the D step and in the G step, so D cannot tell them apart by
the augmentation and G's gradients flow through it. Images are float (B, 3, H, W) in [-1, 1]; every op
draws one random setting per image from torch's global RNG (the trainer seeds it per step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from training import devices


def _per_image(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    x = x + (_per_image(x) - 0.5)
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * (_per_image(x) * 2) + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(x) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros (mid-gray)."""
    b, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (b, 1, 1), device=x.device)
    # source pixel of every output pixel, in the padded image
    ys = torch.arange(h, device=x.device).view(1, h, 1) - dy + max_dy  # (b, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) - dx + max_dx  # (b, 1, w)
    padded = torch.nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy))
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, ys, xs].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero (mid-gray) a ``ratio`` x size square per image, placed at random (it may hang over the edge)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(ch // 2), h - ch // 2 + 1, (b, 1, 1), device=x.device)
    left = torch.randint(-(cw // 2), w - cw // 2 + 1, (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (b, h, w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror half of the images left-right (off by default: NFT traits are often asymmetric)."""
    return torch.where(_per_image(x) < 0.5, x.flip(3), x)


OPS = {"color": color, "translation": translation, "cutout": cutout, "flip": flip}


def diff_augment(x: torch.Tensor, ops: Sequence[str], p: torch.Tensor | float | None = None) -> torch.Tensor:
    """Every op in turn; with ``p`` (adaptive augmentation) each op reaches each image with probability p.

    ``p`` may be a 0-d tensor on the device (the trainer's ADA state), so no value is read back per step.
    """
    for name in ops:
        if p is None:
            x = OPS[name](x)
        else:
            chosen = _per_image(x) < p
            x = torch.where(chosen, OPS[name](x), x)
    return x.contiguous(memory_format=torch.channels_last) if devices.channels_last(x.device) else x.contiguous()


class AdaptiveStrength:
    """StyleGAN2-ADA's controller: r_t = E[sign(D(x))] on real training images over ``every`` steps; p moves
    by sign(r_t - target) * (images in those steps) / (kimg * 1000), clamped to [0, 1]. State on the device
    (p, the sum of signs, their count), saved in checkpoints for an exact resume."""

    def __init__(self, target: float, kimg: float, every: int, images_per_step: int, device: torch.device) -> None:
        self.target, self.every = target, every
        self.step_size = every * images_per_step / (kimg * 1000)
        self.p = torch.zeros((), device=device)
        self.signs = torch.zeros((), device=device)
        self.count = 0
        self.last_rt = torch.zeros((), device=device)

    def accumulate(self, sign_mean: torch.Tensor) -> None:
        self.signs += sign_mean.detach().float()
        self.count += 1
        if self.count >= self.every:
            rt = self.signs / self.count
            self.p.add_(torch.sign(rt - self.target) * self.step_size).clamp_(0.0, 1.0)
            self.last_rt.copy_(rt)
            self.signs.zero_()
            self.count = 0

    def state_dict(self) -> dict[str, object]:
        return {"p": float(self.p), "signs": float(self.signs), "count": self.count, "last_rt": float(self.last_rt)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.p.fill_(float(state["p"]))  # type: ignore[arg-type]
        self.signs.fill_(float(state["signs"]))  # type: ignore[arg-type]
        self.count = int(state["count"])  # type: ignore[call-overload]
        self.last_rt.fill_(float(state.get("last_rt", 0.0)))  # type: ignore[arg-type]
