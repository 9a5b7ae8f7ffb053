"""GAN objectives on discriminator logits: ``bce`` (non-saturating, with logits) and ``hinge``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(
    kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """D's loss; ``label_smoothing`` is one-sided (real targets 1 - s, fake targets stay 0; bce only)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real_target = torch.full_like(real_logits, 1.0 - label_smoothing)
    return F.binary_cross_entropy_with_logits(real_logits, real_target) + F.binary_cross_entropy_with_logits(
        fake_logits, torch.zeros_like(fake_logits)
    )


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
