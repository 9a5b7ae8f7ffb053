"""Prefect 3 flows for nftgan — the only module that imports Prefect.

Each task is a thin wrapper over a stage's public function (the same one the CLI calls); tasks pass
paths and small JSON summaries, never images or tensors.

Resume: every task is cached under a key built from its inputs *and* the content of what it reads
(the catalog's items for ``prepare``, the tensor cache's content hash for ``train`` and ``evaluate``,
the checkpoints for ``evaluate``). A re-run of a failed ``refresh-collection`` therefore finds the
finished stages ``Cached`` and continues with the first one that did not finish; training itself
resumes from its latest checkpoint. A stage whose outputs were deleted is run again
(``refresh_cache``), so a cached result never points at missing files.

Flows: ``scrape-collection``, ``prepare-collection``, ``train-collection``, ``evaluate-collection``
and ``refresh-collection`` (all of them in a row). Deployments are in ``prefect.yaml``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
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

from cleaning.prepare import PrepareConfig, inputs_fingerprint, prepare
from evaluation.config import EvalConfig
from pipeline.cache import cache_content_hash
from pipeline.progress import Progress, ProgressEvent
from pipeline.workspace import Workspace
from scraper.api import ScrapeConfig
from training.config import TrainConfig

#: each stage's defaults, written once: in its config (the flows' parameters default to these)
SCRAPE, PREPARE, TRAIN, EVAL = ScrapeConfig(), PrepareConfig(), TrainConfig(), EvalConfig()

#: task retries for the network stage (seconds between tries)
NETWORK_RETRY_DELAYS_S = [5, 30, 120]


# -- cache keys -----------------------------------------------------------------------------------
def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _scrape_key(ctx: TaskRunContext, p: dict[str, Any]) -> str:
    window_s = max(60.0, float(p["every_hours"]) * 3600)
    return "scrape-" + _digest(p["home"], p["slug"], p["options"], int(time.time() // window_s))


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
        now = time.monotonic()
        if now - last[0] < every_s and event.fraction != 1.0:
            return
        last[0] = now
        if artifact_id is not None and event.fraction is not None:
            update_progress_artifact(artifact_id, progress=round(100.0 * event.fraction, 1))
        amount = f"{event.done:g}/{event.total:g}" if event.done is not None and event.total else ""
        logger.info("%s: %s %s %s", what, event.label or event.stage, amount, dict(event.detail))

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
def scrape_task(home: str, slug: str, options: dict[str, Any], every_hours: float = 12.0) -> dict[str, Any]:
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


@task(name="train", cache_key_fn=_train_key, persist_result=True)
def train_task(home: str, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
    """Train (resuming from the run's latest checkpoint when there is one)."""
    from training import train as training
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
    summary = training.train(ws, slug, config, progress=progress)
    update_progress_artifact(progress_id, progress=100.0)
    result = summary.to_dict()
    logger.info("training done: %s", result)
    return result


@task(name="evaluate", cache_key_fn=_evaluate_key, persist_result=True)
def evaluate_task(home: str, slug: str, run: str, options: dict[str, Any]) -> dict[str, Any]:
    """Score every chosen checkpoint, mark the best, publish the metrics table and best samples."""
    from evaluation import EvalConfig, evaluate

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


# -- flows ----------------------------------------------------------------------------------------
def _home(home: str | None) -> str:
    return str(Workspace.from_home(home).root)


def _default_run(arch: str, size: int, cache_hash: str) -> str:
    """One run per (architecture, size, dataset content): an unchanged dataset resumes the same run."""
    return f"{arch}-{size}px-{cache_hash[:8]}"


@flow(name="scrape-collection")
def scrape_flow(slug: str, source: str = SCRAPE.source, base_url: str = SCRAPE.base_url,
                api_base_url: str = SCRAPE.api_base_url, max_items: int | None = None,
                allow_private_hosts: bool = False, home: str | None = None,
                scrape_options: dict[str, Any] | None = None, scrape_every_hours: float = 12.0) -> dict[str, Any]:
    """List and download a collection."""
    options = {"source": source, "base_url": base_url, "api_base_url": api_base_url, "max_items": max_items,
               "allow_private_hosts": allow_private_hosts, **(scrape_options or {})}
    return scrape_task(_home(home), slug, options, scrape_every_hours)


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
               run: str | None = None, home: str | None = None,
               train_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on a prepared collection (resuming the run if it exists)."""
    home = _home(home)
    ws = Workspace.from_home(home)
    run = run or _default_run(arch, size, cache_content_hash(ws, slug, size) or "no-cache")
    options = {"size_px": size, "arch": arch, "steps": steps, "minutes": minutes, "batch_size": batch_size,
               "device": device, **(train_options or {})}
    options = {k: v for k, v in options.items() if v is not None}
    refresh = not ws.run(slug, run).checkpoints.is_dir() or not any(ws.run(slug, run).checkpoints.iterdir())
    return train_task.with_options(refresh_cache=refresh)(home, slug, run, options)


@flow(name="evaluate-collection")
def evaluate_flow(slug: str, run: str, samples: int = EVAL.samples, metrics: list[str] | None = None,
                  extractor: str = EVAL.extractor, checkpoints: str = EVAL.checkpoints, device: str = EVAL.device,
                  home: str | None = None, eval_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a run's checkpoints and mark the best."""
    home = _home(home)
    options = {"samples": samples, "extractor": extractor, "checkpoints": checkpoints, "device": device,
               **(eval_options or {})}
    if metrics:
        options["metrics"] = tuple(metrics)
    refresh = not Workspace.from_home(home).run(slug, run).eval.metrics.is_file()
    return evaluate_task.with_options(refresh_cache=refresh)(home, slug, run, options)


@flow(name="refresh-collection")
def refresh_collection(
    slug: str,
    source: str = SCRAPE.source,
    base_url: str = SCRAPE.base_url,
    api_base_url: str = SCRAPE.api_base_url,
    max_items: int | None = None,
    allow_private_hosts: bool = False,
    size: int = PREPARE.size_px,
    fit: str = PREPARE.fit,
    arch: str = TRAIN.arch,
    train_steps: int | None = None,
    train_minutes: float | None = 60.0,  # a scheduled refresh's budget (the CLI has none by default)
    batch_size: int = TRAIN.batch_size,
    device: str = TRAIN.device,
    run: str | None = None,
    eval_samples: int = EVAL.samples,
    eval_metrics: list[str] | None = None,
    extractor: str = EVAL.extractor,
    eval_checkpoints: str = EVAL.checkpoints,
    home: str | None = None,
    scrape_every_hours: float = 12.0,
    scrape_options: dict[str, Any] | None = None,
    prepare_options: dict[str, Any] | None = None,
    train_options: dict[str, Any] | None = None,
    eval_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scrape → prepare → train → evaluate one collection; finished stages of an earlier try are reused."""
    logger = get_run_logger()
    home = _home(home)
    scraped = scrape_flow(
        slug, source=source, base_url=base_url, api_base_url=api_base_url, max_items=max_items,
        allow_private_hosts=allow_private_hosts, home=home, scrape_options=scrape_options,
        scrape_every_hours=scrape_every_hours,
    )
    prepared = prepare_flow(slug, size=size, fit=fit, home=home, prepare_options=prepare_options)
    run = run or _default_run(arch, size, prepared["content_hash"])
    trained = train_flow(
        slug, size=size, arch=arch, steps=train_steps, minutes=None if train_steps else train_minutes,
        batch_size=batch_size, device=device, run=run, home=home, train_options=train_options,
    )
    evaluated = evaluate_flow(
        slug, run, samples=eval_samples, metrics=eval_metrics, extractor=extractor, checkpoints=eval_checkpoints,
        device=device, home=home, eval_options=eval_options,
    )
    ws = Workspace.from_home(home)
    logger.info("refresh of %s done: run %s, report %s", slug, run, ws.run(slug, run).eval.report)
    return {"slug": slug, "run": run, "home": home, "scrape": scraped, "prepare": prepared,
            "train": trained, "evaluate": evaluated}
