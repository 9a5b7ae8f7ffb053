"""The collapse alarm: a cheap diversity probe of the EMA generator, every ``probe_every`` steps.

**What it measures.** Features are the images area-pooled to 8x8 (RGB in [-1, 1], 192 numbers): cheap,
fixed, and enough to tell one face from another. On ``n_probe`` samples from fixed latents:

- ``probe_diversity`` (the alarm's signal): the median distance from each sample to its nearest *other*
  sample, over the same median for as many held-out real images. A generator that draws a handful of faces
  again and again gives every sample a near-copy: the ratio falls towards 0. One that draws the collection,
  even badly, keeps it near 1 (a blurry young generator sits around 0.4-0.7). Unlike coverage it does not
  fall merely because the samples are still poor.
- ``probe_coverage`` (shown, not alarmed on): coverage (Naeem et al. 2020) of a fixed reference set of real
  images, the share whose k-NN ball holds a sample; it sees fidelity and diversity together.

**Calibrated on real data.** At the start of a run, ``n_probe`` held-out real images take the generator's
place: their nearest-other distance is the ratio's 1, and their coverage is ``probe_real_coverage``. A
probe whose diversity falls below ``COLLAPSE_SHARE``, past the warm-up (:func:`warmed_up`: two probes,
20,000 images and a fifth of the budget), is flagged ``collapse_suspected``.

The reference and probe rows are a fixed random split of the training images (seeded), so a resumed run
probes exactly as a straight one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

POOL_PX = 8
K = 5
N_REFERENCE = 1024
N_PROBE = 256
COLLAPSE_SHARE = 0.3  # of the real images' nearest-other distance
WARMUP_PROBES = 2
WARMUP_SHARE = 0.2
WARMUP_IMAGES = 20_000  # GANs commonly pass through an early collapse that training itself undoes
_SEED = 20240613


def features(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) float in [-1, 1] (or uint8) -> (N, 3 * 8 * 8) float32: area-pooled pixels."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1
    return F.adaptive_avg_pool2d(x, min(POOL_PX, x.shape[-1])).flatten(1)


def nearest_other(x: torch.Tensor) -> float:
    """Median over rows of the distance to the nearest other row."""
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(dim=1).values.median())


def coverage(reference: torch.Tensor, radii: torch.Tensor, fake: torch.Tensor) -> float:
    """Share of reference rows whose k-NN ball holds at least one ``fake`` row."""
    d = torch.cdist(reference, fake)  # (R, F)
    return float((d.min(dim=1).values <= radii).float().mean())


@dataclass
class CollapseProbe:
    reference: torch.Tensor  # features of the reference real images
    radii: torch.Tensor  # their k-NN radii within the reference set
    real_coverage: float  # coverage reached by n_probe held-out real images
    real_nearest: float  # their median nearest-other distance
    n_probe: int
    z_dim: int
    threshold: float = COLLAPSE_SHARE

    @classmethod
    def calibrate(cls, images_uint8: np.ndarray, z_dim: int) -> "CollapseProbe | None":
        """Reference set, radii and the real-data calibration from the training images (None: too few)."""
        n = len(images_uint8)
        n_probe = min(N_PROBE, n // 3)
        n_ref = min(N_REFERENCE, n - n_probe)
        if n_probe < 16 or n_ref <= K:
            return None
        rows = np.random.default_rng(_SEED).permutation(n)
        ref = features(torch.from_numpy(np.asarray(images_uint8[np.sort(rows[:n_ref])])))
        held = features(torch.from_numpy(np.asarray(images_uint8[np.sort(rows[n_ref : n_ref + n_probe])])))
        d = torch.cdist(ref, ref)
        radii = d.kthvalue(K + 1, dim=1).values  # the 0th neighbour is the row itself
        real = coverage(ref, radii, held)
        return cls(ref, radii, real, max(nearest_other(held), 1e-6), n_probe, z_dim)

    @torch.no_grad()
    def measure(self, generator: torch.nn.Module, step: int, *, warm: bool) -> dict[str, Any]:
        """One probe of ``generator`` (eval mode for the call): the row that goes into metrics.jsonl."""
        device = next(generator.parameters()).device
        was_training = generator.training
        generator.eval()
        try:
            z = torch.randn(self.n_probe, self.z_dim, generator=torch.Generator().manual_seed(_SEED + 1))
            fake = torch.cat([features(generator(z[i : i + 128].to(device)).float().cpu())
                              for i in range(0, len(z), 128)])
        finally:
            generator.train(was_training)
        diversity = nearest_other(fake) / self.real_nearest
        suspected = bool(warm and diversity < self.threshold)
        return {"probe_diversity": round(diversity, 4), "probe_coverage": round(coverage(self.reference, self.radii, fake), 4),
                "probe_real_coverage": round(self.real_coverage, 4), "probe_threshold": self.threshold,
                "collapse_suspected": suspected}

    def describe(self, row: dict[str, Any]) -> str:
        return (f"collapse suspected at step {row['step']} (sample diversity {row['probe_diversity']:.2f} of "
                f"held-out real images', below {self.threshold:.2f}: samples have near-copies among themselves; "
                f"coverage {row['probe_coverage']:.3f} vs {self.real_coverage:.3f} for real images)")


def warmed_up(step: int, probe_every: int, images_seen: int, fraction: float | None) -> bool:
    """Past the warm-up: a young generator draws alike blobs, and GANs commonly pass through an early
    collapse that training undoes by itself; neither is what the alarm is for. The warm-up ends after
    ``WARMUP_PROBES`` probes, ``WARMUP_IMAGES`` images and ``WARMUP_SHARE`` of the budget (steps or minutes)."""
    return (step >= WARMUP_PROBES * probe_every and images_seen >= WARMUP_IMAGES
            and (fraction is None or fraction >= WARMUP_SHARE))


def collapsed_steps(rows: list[dict[str, Any]]) -> list[int]:
    """Steps of metrics.jsonl rows whose probe was flagged."""
    return [int(r["step"]) for r in rows if r.get("collapse_suspected")]


def flagged(step: int, rows: list[dict[str, Any]]) -> bool:
    """Whether the checkpoint at ``step`` is flagged: the last probe at or before it suspected collapse."""
    probes = [r for r in rows if "probe_coverage" in r and int(r["step"]) <= step]
    return bool(probes and probes[-1].get("collapse_suspected"))
