"""``EvalConfig``: the options of ``nftgan evaluate``, validated when constructed, saved beside the results.

No torch import here: the CLI builds a config (and fails on a bad option) before loading torch.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from pipeline.errors import NftganError

from evaluation.registry import METRIC_NAMES, SELECT_BY, TRAIT_METRIC_NAMES, min_samples  # noqa: F401 (re-exported)

EXTRACTOR_NAMES = ("inception", "tiny")  # the registry in evaluation.extractors (a test checks)
#: --select-by auto: FID, else KID (else trait_fd, else trait_match), whichever was computed (SELECT_BY, in the
#: registry, names the record field each ranks by; lower is better)
SELECT_AUTO = ("fid", "kid", "trait_fd", "trait_match")
_STEPS_RE = re.compile(r"^\d+(,\d+)*$")


@dataclass(frozen=True)
class EvalConfig:
    """How to score a run's checkpoints. Field names are the ``nftgan evaluate`` options."""

    checkpoints: str = "all"  # all | latest | STEP,STEP,...
    samples: int = 2048  # generated images per checkpoint (FID is biased below 2,048)
    metrics: tuple[str, ...] = METRIC_NAMES
    extractor: str = "inception"  # inception (standard, comparable) | tiny (tests; NOT comparable)
    weights: str | None = None  # Inception weights file; default: $NFTGAN_FID_WEIGHTS, torch hub, fid-helper
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = 64
    seed: int = 0  # latents of the generated images
    #: score checkpoints trained on another tensor cache than the current one (e.g. after a re-prepare)
    allow_other_cache: bool = False
    select_by: str = "auto"  # auto (FID, else KID) | fid | kid | trait_fd | trait_match: picks the best checkpoint
    #: score the images snapped to the collection's pixel grid and palette, as `sample` and `export` draw them:
    #: None (auto) when the cache has one (pixel-art.json), True (an error without one), False: the raw output
    pixel_art: bool | None = None

    def __post_init__(self) -> None:
        metrics = self.metrics.split(",") if isinstance(self.metrics, str) else self.metrics
        metrics = tuple(dict.fromkeys(m.strip().lower() for m in metrics if m.strip()))
        object.__setattr__(self, "metrics", metrics)
        if self.weights is not None:
            object.__setattr__(self, "weights", os.fspath(self.weights))
        _check(
            self.checkpoints in ("all", "latest") or bool(_STEPS_RE.fullmatch(self.checkpoints)),
            f"--checkpoints must be 'all', 'latest' or steps like 1000,2000, got {self.checkpoints!r}",
        )
        unknown = [m for m in metrics if m not in METRIC_NAMES]
        _check(not unknown and bool(metrics),
               f"--metrics takes a comma list of {', '.join(METRIC_NAMES)}, got {','.join(metrics) or 'nothing'}")
        need = min_samples(metrics)
        _check(isinstance(self.samples, int) and self.samples >= need,
               f"--samples must be at least {need} for {', '.join(metrics)}, got {self.samples}")
        _check(self.extractor in EXTRACTOR_NAMES,
               f"--extractor must be one of {', '.join(EXTRACTOR_NAMES)}, got {self.extractor!r}")
        _check(self.weights is None or self.extractor == "inception",
               "--weights is for the inception extractor; the tiny extractor has none")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:") and self.device[5:].isdigit(),
            f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )
        _check(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        _check(0 <= self.seed < 2**31, f"--seed must be in [0, 2**31), got {self.seed}")
        object.__setattr__(self, "select_by", str(self.select_by).strip().lower())
        _check(self.select_by == "auto" or self.select_by in SELECT_BY,
               f"--select-by must be auto or one of {', '.join(SELECT_BY)}, got {self.select_by!r}")
        _check(self.select_by == "auto" or self.select_by in metrics,
               f"--select-by {self.select_by} needs {self.select_by} among --metrics ({','.join(metrics)})")

    def steps(self) -> str | tuple[int, ...]:
        """"all", "latest" or the explicit steps, ascending."""
        if self.checkpoints in ("all", "latest"):
            return self.checkpoints
        return tuple(sorted({int(s) for s in self.checkpoints.split(",")}))

    def selection_order(self) -> tuple[str, ...]:
        """The record fields the best checkpoint is chosen by, first computed one wins (lower is better)."""
        names = SELECT_AUTO if self.select_by == "auto" else (self.select_by,)
        return tuple(SELECT_BY[n] for n in names)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["metrics"] = list(self.metrics)
        return d


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NftganError(message)
