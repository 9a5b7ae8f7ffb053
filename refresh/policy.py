"""What a refresh decides, and the order it runs the stages in (see the package docstring)."""

from __future__ import annotations

import math
from typing import Any, Protocol

from pipeline.errors import NftganError
from pipeline.progress import Progress
from pipeline.workspace import Workspace
from refresh.params import TRAIN, EvalParams, PrepareParams, ScrapeParams, TrainParams
from training.config import TrainConfig
from training.recipes import recipe_options


class Stages(Protocol):
    """How a refresh runs each stage: each takes a config's options and returns the stage's summary dict."""

    def scrape(self, slug: str, options: dict[str, Any]) -> dict[str, Any]: ...
    def prepare(self, slug: str, options: dict[str, Any]) -> dict[str, Any]: ...
    def train(self, slug: str, run: str, options: dict[str, Any], gpu_limit: str) -> dict[str, Any]: ...
    def evaluate(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]: ...
    def challenge(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...


def training_options(train: TrainParams) -> dict[str, Any]:
    """The TrainConfig options of a refresh: size and budget of the refresh, then the recipe, then the
    conditioning asked for, then ``options``.
    Options that name their own budget (steps, epochs or minutes) replace the refresh's."""
    condition = {} if train.condition is None else {"condition": train.condition}
    chosen = {**recipe_options(train.recipe), **condition, **train.options}
    budget: dict[str, Any] = {"steps": train.steps, "minutes": None if train.steps else train.minutes}
    if any(chosen.get(k) is not None for k in ("steps", "epochs", "minutes")):
        budget = {}
    base = {"arch": train.arch, **budget, "batch_size": train.batch_size, "device": train.device, **chosen}
    return {k: v for k, v in base.items() if v is not None}


def run_name(options: dict[str, Any], cache_hash: str) -> str:
    """The refresh's run: TrainConfig's one naming rule, for this dataset content and these options."""
    return TrainConfig(**{k: v for k, v in options.items() if k != "run"}).default_run_name(cache_hash=cache_hash)


def training_plan(ws: Workspace, slug: str, run: str, options: dict[str, Any], warm_start: str,
                  warm_budget: float) -> tuple[dict[str, Any], str]:
    """The training options of a refresh and why: a run that already has checkpoints resumes as it was
    started; a new run warm-starts from the champion when asked ("auto": when there is a compatible one)
    and then trains for ``warm_budget`` of the budget; otherwise it starts fresh on the full budget."""
    from training.checkpoints import list_checkpoints
    from training.warm import check_warm_start, recorded_warm_start

    if list_checkpoints(ws.run(slug, run)):
        recorded = recorded_warm_start(ws, slug, run)
        if recorded is None:
            return {**options, "warm_start": "none"}, f"resuming run {run}"
        return shortened(options, recorded, warm_budget), f"resuming warm-started run {run} on its shortened budget"
    if warm_start == "none":
        return {**options, "warm_start": "none"}, "fresh start (warm start off)"
    source = "champion" if warm_start == "auto" else warm_start
    ok, why = check_warm_start(ws, slug, TrainConfig(**{**options, "run": run, "warm_start": source}))
    if not ok:
        if warm_start != "auto":
            raise NftganError(f"cannot warm-start from {warm_start!r}: {why}")
        return {**options, "warm_start": "none"}, f"fresh start ({why})"
    return shortened(options, source, warm_budget), f"warm start from {why} for {warm_budget:.0%} of the budget"


def shortened(options: dict[str, Any], source: str, warm_budget: float) -> dict[str, Any]:
    """``options`` with ``warm_budget`` of its budget and as many checkpoints, warm-starting from ``source``."""
    shorter = dict(options)
    if shorter.get("steps"):
        shorter["steps"] = max(1, math.ceil(shorter["steps"] * warm_budget))
    elif shorter.get("minutes"):
        shorter["minutes"] = shorter["minutes"] * warm_budget
    elif shorter.get("epochs"):
        shorter["epochs"] = shorter["epochs"] * warm_budget
    # as many checkpoints (and grids) as a full run: evaluation picks the best of as many candidates
    for key in ("checkpoint_every", "sample_every"):
        every = int(shorter.get(key, getattr(TRAIN, key)))
        if every > 0:
            shorter[key] = max(1, math.ceil(every * warm_budget))
    return {**shorter, "warm_start": source}


def is_champion(ws: Workspace, slug: str, run: str) -> bool:
    """Whether ``run`` at its best step already is the collection's champion (then there is nothing to challenge)."""
    from pipeline.champion import read_champion
    from training.checkpoints import best_step

    champion = read_champion(ws, slug)
    return champion.run == run and champion.step == best_step(ws.run(slug, run))


def refresh(ws: Workspace, slug: str, stages: Stages, scrape: ScrapeParams, prepare: PrepareParams,
            train: TrainParams, evaluate: EvalParams) -> dict[str, Any]:
    """Run one refresh of ``slug`` through ``stages``; a failure is recorded in champion.json, then raised."""
    from evaluation.champion import record_failure

    stage, run = "scrape", train.run
    try:
        scraped = stages.scrape(slug, scrape.config_options())
        stage = "prepare"
        prepared = stages.prepare(slug, prepare.config_options())
        base = {"size_px": prepare.size, **training_options(train)}
        run = run or run_name(base, prepared["content_hash"])
        stage = "train"
        options, why = training_plan(ws, slug, run, base, train.warm_start, train.warm_budget)
        stages.info(f"training plan for {run}: {why}")
        trained = stages.train(slug, run, options, train.gpu_limit)
        stage = "evaluate"
        evaluated = stages.evaluate(slug, run, evaluate.config_options())
        decision = None
        if evaluate.challenge_champion and is_champion(ws, slug, run):
            stages.info(f"run {run} at its best step already is the champion of {slug}: no new challenge")
        elif evaluate.challenge_champion:
            stage = "challenge"
            decision = stages.challenge(slug, run, evaluate.config_options())
    except Exception as e:
        try:
            record_failure(ws, slug, run, stage, f"{type(e).__name__}: {e}".splitlines()[0][:500])
        except Exception as why_not:  # e.g. an invalid slug: the failure itself is what the user sees
            stages.warning(f"could not record the failure in champion.json: {why_not}")
        stages.warning(f"refresh of {slug} failed in {stage}; the champion is unchanged")
        raise
    stages.info(f"refresh of {slug} done: run {run} ({why}), report {ws.run(slug, run).eval.report}")
    return {"slug": slug, "run": run, "home": str(ws.root), "training_plan": why, "scrape": scraped,
            "prepare": prepared, "train": trained, "evaluate": evaluated, "champion": decision}


class DirectStages:
    """The stages called directly, in this process (``nftgan refresh``): each is idempotent and resumable
    on its own (an unchanged cache is reused, a run resumes from its latest checkpoint)."""

    def __init__(self, ws: Workspace, *, progress: Progress | None = None, echo: Any = print) -> None:
        self.ws, self.progress, self.echo = ws, progress, echo

    def scrape(self, slug: str, options: dict[str, Any]) -> dict[str, Any]:
        from scraper import ScrapeConfig, scrape

        result = scrape(self.ws, slug, ScrapeConfig(**options), progress=self.progress)
        self.info(f"scrape done: {result.listing.coverage_line()}")
        return result.to_dict()

    def prepare(self, slug: str, options: dict[str, Any]) -> dict[str, Any]:
        from cleaning.prepare import PrepareConfig, prepare

        summary = prepare(self.ws, slug, PrepareConfig(**options), progress=self.progress)
        self.info(summary.describe())
        return summary.to_dict()

    def train(self, slug: str, run: str, options: dict[str, Any], gpu_limit: str) -> dict[str, Any]:
        from training.train import train

        summary = train(self.ws, slug, TrainConfig(**{**options, "run": run, "resume": True}), progress=self.progress)
        self.info(summary.describe())
        return summary.to_dict()

    def evaluate(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
        from evaluation import EvalConfig, evaluate

        summary = evaluate(self.ws, slug, run, EvalConfig(**options), progress=self.progress)
        self.info(summary.describe())
        return summary.to_dict()

    def challenge(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
        from evaluation import EvalConfig
        from evaluation.champion import challenge

        decision = challenge(self.ws, slug, run, EvalConfig(**options))
        self.info(decision.describe())
        return decision.to_dict()

    def info(self, message: str) -> None:
        self.echo(message)

    def warning(self, message: str) -> None:
        self.echo(f"warning: {message}")
