"""Prefect 3 flows for nftgan — the only module that imports Prefect.

Each task is a thin wrapper over a stage's public function (the same one the CLI calls); tasks pass
paths and small JSON summaries, never images or tensors.

Resume: every task is cached under a key built from its inputs *and* the content of what it reads
(the catalog's items for ``prepare``, the tensor cache's content hash for ``train`` and ``evaluate``,
the checkpoints for ``evaluate``). A re-run of a failed ``refresh-collection`` therefore finds the
finished stages ``Cached`` and continues with the first one that did not finish; training itself
resumes from its latest checkpoint. A stage whose outputs were deleted is run again
(``refresh_cache``), so a cached result never points at missing files.

A refresh builds on the last one: the listing is incremental (only new items, with a full re-list on
demand and on its own schedule), a changed cache trains a new run warm-started from the collection's
champion for a fraction of the budget, and the new run's best checkpoint challenges the champion
(``evaluation.champion``): it is promoted only when it is better beyond the metric's noise. A failed
refresh records its failure and never demotes the champion. Training holds one slot of a Prefect global
concurrency limit (``gpu``, one slot unless you change it), so two refreshes never train on one GPU at once.

Flows: ``scrape-collection``, ``prepare-collection``, ``train-collection``, ``evaluate-collection``
and ``refresh-collection`` (all of them in a row, then the champion decision). Deployments are in
``prefect.yaml``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from cleaning.prepare import PrepareConfig, inputs_fingerprint, prepare
from evaluation import EvalConfig
from pipeline.cache import cache_content_hash
from pipeline.progress import Progress, ProgressEvent, describe
from pipeline.workspace import Workspace
from refresh import EvalParams, PrepareParams, ScrapeParams, TrainParams, refresh, run_name
from refresh.params import EVAL, GPU_LIMIT, PREPARE, SCRAPE, TRAIN


#: task retries for the network stage (seconds between tries)
NETWORK_RETRY_DELAYS_S = [5, 30, 120]
#: the size of the Prefect global concurrency limit ``GPU_LIMIT`` (refresh.params) when the flow creates it
GPU_LIMIT_SLOTS = 1


# -- cache keys -----------------------------------------------------------------------------------
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _scrape_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    """One listing per flow run: its retries reuse it, the next refresh lists again (incrementally)."""
    return "scrape-" + _digest(p["home"], p["slug"], p["options"], str(ctx.task_run.flow_run_id))


def _prepare_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    ws = Workspace.from_home(p["home"])
    return "prepare-" + _digest(p["home"], p["slug"], p["options"], inputs_fingerprint(ws, p["slug"]))


def _train_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    ws = Workspace.from_home(p["home"])
    size = int(p["options"].get("size_px", PREPARE.size_px))
    cache = cache_content_hash(ws, p["slug"], size) or "no-cache"
    return "train-" + _digest(p["home"], p["slug"], p["run"], p["options"], cache)


def _evaluate_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    from training.checkpoints import list_checkpoints

    ws = Workspace.from_home(p["home"])
    steps = list_checkpoints(ws.run(p["slug"], p["run"]))
    return "evaluate-" + _digest(p["home"], p["slug"], p["run"], p["options"], steps)


def _progress(logger: Any, what: str, *, artifact_id: Any = None, every_s: float = 5.0) -> Progress:
    """How the flows show a stage's progress: a log line at most every ``every_s`` seconds, and Prefect's
    progress artifact when one is given."""
    last = [0.0]

    def show(event: ProgressEvent) -> None:
        if event.is_warning:  # e.g. the collapse alarm: never rate-limited
            logger.warning("%s: %s", what, event.message)
            return
        now = time.monotonic()
        if now - last[0] < every_s and event.fraction != 1.0:
            return
        last[0] = now
        if artifact_id is not None and event.fraction is not None:
            update_progress_artifact(artifact_id, progress=round(100.0 * event.fraction, 1))
        logger.info("%s: %s", what, describe(event))

    return show


def _artifact_key(slug: str, what: str) -> str:
    return f"{slug}-{what}".replace("_", "-").lower()


def _reasons_md(title: str, counts: dict[str, int]) -> str:
    if not counts:
        return ""
    rows = "\n".join(f"| {reason} | {n} |" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"\n\n**{title}**\n\n| reason | items |\n| --- | --- |\n{rows}"


# -- tasks ----------------------------------------------------------------------------------------
@task(name="scrape", cache_key_fn=_scrape_key, persist_result=True, retries=len(NETWORK_RETRY_DELAYS_S),
      retry_delay_seconds=NETWORK_RETRY_DELAYS_S)
def scrape_task(home: str, slug: str, options: dict[str, Any]) -> dict[str, Any]:
    """List the collection's items and download their images (both resumable)."""
    from scraper import ScrapeConfig, scrape

    logger = get_run_logger()
    ws = Workspace.from_home(home)
    config = ScrapeConfig(**options)
    progress = _progress(logger, f"scrape {slug}")
    logger.info("scraping %s from %s (%s source)", slug, config.base_url, config.source)
    result = scrape(ws, slug, config, progress=progress)
    summary = result.to_dict()
    coverage = result.listing.coverage_line()
    logger.info("scrape done: %s", coverage)
    if result.listing.partial:
        logger.warning("scrape of %s is partial: %s", slug, coverage)
    create_markdown_artifact(
        key=_artifact_key(slug, "scrape"),
        description=f"Scrape of {slug}: {coverage}",
        markdown=(
            f"# Scrape of `{slug}`\n\n**Coverage: {coverage}**\n\n"
            f"```\n{result.describe()}\n```\n\n```json\n{json.dumps(summary, indent=2, default=str)}\n```"
        ),
    )
    return summary


@task(name="prepare", cache_key_fn=_prepare_key, persist_result=True)
def prepare_task(home: str, slug: str, options: dict[str, Any]) -> dict[str, Any]:
    """Clean the collection into the tensor cache."""
    logger = get_run_logger()
    ws = Workspace.from_home(home)
    config = PrepareConfig(**options)
    summary = prepare(ws, slug, config, progress=_progress(logger, f"prepare {slug}"))
    logger.info(summary.describe())
    create_markdown_artifact(
        key=_artifact_key(slug, "prepare"),
        description=f"Cleaning stage of {slug}",
        markdown=(
            f"# Cleaning stage of `{slug}`\n\n"
            f"- cache: **{summary.count}** images of {summary.candidates} at {summary.size_px}px"
            f" ({'reused' if summary.reused else f'{summary.decoded_now} decoded'})\n"
            f"- cache file: `{summary.cache_path}`\n- content hash: `{summary.content_hash[:16]}`"
            + _reasons_md("Rejected", summary.rejected)
            + _reasons_md("Duplicates", summary.duplicates)
        ),
    )
    return summary.to_dict()


@contextlib.contextmanager
def _gpu_slot(limit: str, logger: Any) -> Iterator[None]:
    """Hold one slot of the global concurrency limit ``limit`` (created with GPU_LIMIT_SLOTS slots when it
    does not exist yet), so that two flows never train on one GPU at the same time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(limit)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit, limit=GPU_LIMIT_SLOTS))
                logger.info("created the concurrency limit %r with %d slot(s)", limit, GPU_LIMIT_SLOTS)
            except ObjectAlreadyExists:
                pass  # another refresh created it first
    logger.info("waiting for a slot of concurrency limit %r", limit)
    # strict: a missing limit is an error, not "no limit"; a failed lease renewal (a server restart in
    # hour two) must not cancel the training itself
    with concurrency(limit, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        logger.info("holding a slot of %r", limit)
        yield


@task(name="train", cache_key_fn=_train_key, persist_result=True)
def train_task(home: str, slug: str, run: str, options: dict[str, Any], gpu_limit: str = GPU_LIMIT) -> dict[str, Any]:
    """Train (resuming from the run's latest checkpoint when there is one), holding a ``gpu_limit`` slot."""
    from training.train import train
    from training.config import TrainConfig

    logger = get_run_logger()
    ws = Workspace.from_home(home)
    config = TrainConfig(**{**options, "run": run, "resume": True})
    progress_id = create_progress_artifact(
        progress=0.0, key=_artifact_key(slug, "training-progress"), description=f"Training {slug}/{run}"
    )
    run_paths = ws.run(slug, run)
    create_link_artifact(
        key=_artifact_key(slug, "run-dir"),
        link=run_paths.root.as_uri(),
        link_text=f"run folder {run_paths.root} (TensorBoard: tensorboard --logdir {run_paths.tensorboard})",
        description=f"Files of run {run}",
    )
    progress = _progress(logger, f"train {run}", artifact_id=progress_id, every_s=2.0)
    with _gpu_slot(gpu_limit, logger) if gpu_limit else contextlib.nullcontext():
        summary = train(ws, slug, config, progress=progress)
    update_progress_artifact(progress_id, progress=100.0)
    result = summary.to_dict()
    logger.info("training done: %s", summary.describe())
    return result


@task(name="evaluate", cache_key_fn=_evaluate_key, persist_result=True)
def evaluate_task(home: str, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
    """Score every chosen checkpoint, mark the best, publish the metrics table and best samples."""
    from evaluation import evaluate

    logger = get_run_logger()
    ws = Workspace.from_home(home)
    config = EvalConfig(**options)
    summary = evaluate(ws, slug, run, config, progress=_progress(logger, f"evaluate {run}"))
    result = summary.to_dict()
    table = summary.table()
    if table:
        create_table_artifact(
            key=_artifact_key(slug, "evaluation"), table=table, description=f"Metrics per checkpoint of {slug}/{run}",
        )
    md = f"# Evaluation of `{slug}/{run}`\n\n```json\n{json.dumps(result, indent=2, default=str)[:4000]}\n```\n"
    if summary.best_grid is not None:
        data = base64.b64encode(summary.best_grid.read_bytes()).decode()
        md += (f"\n## Samples of the best checkpoint\n\n![best samples](data:image/png;base64,{data})\n\n"
               f"`{summary.best_grid}`\n")
    create_markdown_artifact(key=_artifact_key(slug, "best-samples"), markdown=md,
                             description=f"Best checkpoint of {slug}/{run}")
    logger.info("evaluation done: best step %s", result.get("best_step"))
    return result


def _challenge_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    """The same challenger against the same champion under the same protocol is decided once."""
    from pipeline.champion import read_champion
    from training.checkpoints import best_step

    ws = Workspace.from_home(p["home"])
    current = read_champion(ws, p["slug"]).current
    return "challenge-" + _digest(p["home"], p["slug"], p["run"], p["options"], best_step(ws.run(p["slug"], p["run"])),
                                  current)


def _image_md(title: str, path: Any) -> str:
    if path is None or not Path(path).is_file():
        return f"_{title}: no image_"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"**{title}**\n\n![{title}](data:image/png;base64,{data})"


@task(name="challenge", cache_key_fn=_challenge_key, persist_result=True)
def challenge_task(home: str, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
    """Compare the run's best checkpoint with the collection's champion; promote it only when it is better
    beyond the metric's noise. Publishes the comparison (scores side by side, both sample grids)."""
    from evaluation.champion import challenge

    logger = get_run_logger()
    ws = Workspace.from_home(home)
    decision = challenge(ws, slug, run, EvalConfig(**options))
    result = decision.to_dict()
    verdict = "PROMOTED" if decision.promoted else "KEPT the champion"
    rows = decision.table()
    table_md = ""
    if rows:
        cols = list(rows[0])
        table_md = ("| " + " | ".join(cols) + " |\n| " + " | ".join("---" for _ in cols) + " |\n"
                    + "\n".join("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows))
    create_markdown_artifact(
        key=_artifact_key(slug, "champion"),
        description=f"Champion of {slug}: {verdict} ({run})",
        markdown=(
            f"# Champion decision for `{slug}`: {verdict}\n\n**Why:** {decision.reason}\n\n"
            f"Challenger: `{run}`. Rule: {result.get('rule', '')}\n\n{table_md}\n\n"
            f"{_image_md('champion samples', result.get('champion_grid'))}\n\n"
            f"{_image_md('challenger samples (same latents)', result.get('challenger_grid'))}\n"
        ),
    )
    logger.info("champion decision for %s: %s (%s)", slug, verdict, decision.reason)
    return result


# -- flows ----------------------------------------------------------------------------------------
def _home(home: str | None) -> str:
    return str(Workspace.from_home(home).root)


@flow(name="scrape-collection")
def scrape_flow(slug: str, source: str = SCRAPE.source, base_url: str = SCRAPE.base_url,
                api_base_url: str = SCRAPE.api_base_url, max_items: int | None = None,
                allow_private_hosts: bool = False, full: bool = SCRAPE.full,
                full_every_days: float = SCRAPE.full_every_days, home: str | None = None,
                scrape_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """List (only what is new, unless a full re-list is asked for or due) and download a collection."""
    options = {"source": source, "base_url": base_url, "api_base_url": api_base_url, "max_items": max_items,
               "allow_private_hosts": allow_private_hosts, "full": full, "full_every_days": full_every_days,
               **(scrape_options or {})}
    return scrape_task(_home(home), slug, options)


@flow(name="prepare-collection")
def prepare_flow(slug: str, size: int = PREPARE.size_px, fit: str = PREPARE.fit, home: str | None = None,
                 prepare_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Clean a collection into a tensor cache."""
    home = _home(home)
    options = {"size_px": size, "fit": fit, **(prepare_options or {})}
    refresh = cache_content_hash(Workspace.from_home(home), slug, size) is None
    return prepare_task.with_options(refresh_cache=refresh)(home, slug, options)


@flow(name="train-collection")
def train_flow(slug: str, size: int = PREPARE.size_px, arch: str = TRAIN.arch, steps: int | None = None,
               minutes: float | None = None, batch_size: int = TRAIN.batch_size, device: str = TRAIN.device,
               run: str | None = None, warm_start: str = TRAIN.warm_start, home: str | None = None,
               gpu_limit: str = GPU_LIMIT, condition: str | None = None,
               train_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on a prepared collection (resuming the run if it exists), optionally warm-started;
    ``condition="traits"`` trains a trait-conditioned generator."""
    from training.checkpoints import list_checkpoints

    home = _home(home)
    ws = Workspace.from_home(home)
    options = {"size_px": size, "arch": arch, "steps": steps, "minutes": minutes, "batch_size": batch_size,
               "device": device, "warm_start": warm_start, "condition": condition, **(train_options or {})}
    options = {k: v for k, v in options.items() if v is not None}
    run = run or run_name(options, cache_content_hash(ws, slug, size) or "no-cache")
    refresh = not list_checkpoints(ws.run(slug, run))
    return train_task.with_options(refresh_cache=refresh)(home, slug, run, options, gpu_limit)


@flow(name="evaluate-collection")
def evaluate_flow(slug: str, run: str, samples: int = EVAL.samples, metrics: list[str] | None = None,
                  extractor: str = EVAL.extractor, checkpoints: str = EVAL.checkpoints, device: str = EVAL.device,
                  home: str | None = None, eval_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a run's checkpoints and mark the best."""
    home = _home(home)
    options = {"checkpoints": checkpoints, **_eval_options(samples, metrics, extractor, device, eval_options)}
    refresh = not Workspace.from_home(home).run(slug, run).eval.metrics.is_file()
    return evaluate_task.with_options(refresh_cache=refresh)(home, slug, run, options)


@flow(name="challenge-champion")
def challenge_flow(slug: str, run: str, samples: int = EVAL.samples, metrics: list[str] | None = None,
                   extractor: str = EVAL.extractor, device: str = EVAL.device, home: str | None = None,
                   eval_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decide whether ``run`` (its best checkpoint) replaces the collection's champion."""
    options = _eval_options(samples, metrics, extractor, device, eval_options)
    return challenge_task(_home(home), slug, run, options)


def _eval_options(samples: int, metrics: list[str] | None, extractor: str, device: str,
                  eval_options: dict[str, Any] | None) -> dict[str, Any]:
    options: dict[str, Any] = {"samples": samples, "extractor": extractor, "device": device, **(eval_options or {})}
    if metrics:
        options["metrics"] = tuple(metrics)
    return options


class _FlowStages:
    """The refresh's stages as this module's flows: each cached, retried and published as when run alone."""

    def __init__(self, home: str, logger: Any) -> None:
        self.home, self.logger = home, logger

    def scrape(self, slug: str, options: dict[str, Any]) -> dict[str, Any]:
        return scrape_flow(slug, home=self.home, scrape_options=options)

    def prepare(self, slug: str, options: dict[str, Any]) -> dict[str, Any]:
        return prepare_flow(slug, size=options["size_px"], home=self.home, prepare_options=options)

    def train(self, slug: str, run: str, options: dict[str, Any], gpu_limit: str) -> dict[str, Any]:
        return train_flow(slug, size=options["size_px"], run=run, home=self.home, gpu_limit=gpu_limit,
                          train_options=options)

    def evaluate(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
        return evaluate_flow(slug, run, home=self.home, eval_options=options)

    def challenge(self, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
        return challenge_flow(slug, run, home=self.home, eval_options=options)

    def info(self, message: str) -> None:
        self.logger.info("%s", message)

    def warning(self, message: str) -> None:
        self.logger.warning("%s", message)


@flow(name="refresh-collection")
def refresh_collection(
    slug: str,
    scrape: ScrapeParams = ScrapeParams(),
    prepare: PrepareParams = PrepareParams(),
    train: TrainParams = TrainParams(),
    evaluate: EvalParams = EvalParams(),
    home: str | None = None,
) -> dict[str, Any]:
    """Scrape (new items) → prepare → train (warm-started from the champion) → evaluate → challenge the
    champion, by the policy of ``refresh`` (what ``nftgan refresh`` runs without Prefect). Finished stages
    of an earlier try are reused; a failure is recorded in champion.json and leaves the champion as it was.
    Parameters are grouped per stage, e.g. ``--param train='{"minutes": 30, "recipe": "gpu"}'``."""
    home = _home(home)
    stages = _FlowStages(home, get_run_logger())
    return refresh(Workspace.from_home(home), slug, stages, scrape, prepare, train, evaluate)
