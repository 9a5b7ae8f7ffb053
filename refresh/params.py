"""A refresh's parameters, grouped per stage (pydantic models: Prefect validates them and draws one nested
form per stage in its UI). Every default comes from the stage's own config; ``options`` takes any other
field of that config (e.g. ``{"backoff_max_s": 10}`` for the scraper, ``{"base_width": 32}`` for training)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cleaning.prepare import PrepareConfig
from evaluation.config import EvalConfig
from scraper.config import ScrapeConfig
from training.config import TrainConfig

SCRAPE, PREPARE, TRAIN, EVAL = ScrapeConfig(), PrepareConfig(), TrainConfig(), EvalConfig()

#: a warm-started run trains for this share of the refresh's budget
WARM_BUDGET = 0.25
#: the Prefect global concurrency limit training takes one slot of
GPU_LIMIT = "gpu"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScrapeParams(_Params):
    """Where and how to list the collection (an incremental listing unless ``full`` or a full one is due)."""

    source: str = SCRAPE.source
    base_url: str = SCRAPE.base_url
    api_base_url: str = SCRAPE.api_base_url
    max_items: int | None = SCRAPE.max_items
    allow_private_hosts: bool = SCRAPE.allow_private_hosts
    full: bool = SCRAPE.full
    full_every_days: float = SCRAPE.full_every_days
    options: dict[str, Any] = Field(default_factory=dict, description="other ScrapeConfig fields")

    def config_options(self) -> dict[str, Any]:
        return {**self.model_dump(exclude={"options"}), **self.options}


class PrepareParams(_Params):
    size: int = PREPARE.size_px
    fit: str = PREPARE.fit
    options: dict[str, Any] = Field(default_factory=dict, description="other PrepareConfig fields")

    def config_options(self) -> dict[str, Any]:
        return {"size_px": self.size, "fit": self.fit, **self.options}


class TrainParams(_Params):
    """The training budget (a scheduled refresh's: ``minutes``, unless ``steps``), the recipe, the warm start."""

    minutes: float | None = 60.0
    steps: int | None = None
    recipe: str | None = None
    #: "traits": a trait-conditioned generator (training.conditioning); "auto": one when the collection lists
    #: traits; "none"; None: the recipe's (or TrainConfig's)
    condition: str | None = None
    arch: str = TRAIN.arch
    batch_size: int = TRAIN.batch_size
    device: str = TRAIN.device
    run: str | None = None
    warm_start: str = "auto"  # auto (from a compatible champion), none, champion, RUN, RUN@STEP
    warm_budget: float = WARM_BUDGET
    gpu_limit: str = GPU_LIMIT
    options: dict[str, Any] = Field(default_factory=dict, description="other TrainConfig fields (over the recipe)")


class EvalParams(_Params):
    samples: int = EVAL.samples
    metrics: list[str] | None = None
    extractor: str = EVAL.extractor
    checkpoints: str = EVAL.checkpoints
    device: str = EVAL.device
    challenge_champion: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description="other EvalConfig fields")

    def config_options(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"samples": self.samples, "extractor": self.extractor, "device": self.device,
                                  "checkpoints": self.checkpoints, **self.options}
        if self.metrics:
            chosen["metrics"] = tuple(self.metrics)
        return chosen
