"""Warm start: a new run begins from another checkpoint of the collection instead of random weights.

``--warm-start champion`` takes the checkpoint named by ``collections/<slug>/champion.json``;
``--warm-start RUN`` a run's best checkpoint (else its latest), ``RUN@STEP`` one step of it. The new run
loads the generator, discriminator, EMA generator and both optimizers' moments from that checkpoint, then
trains on the *current* tensor cache with its own step counter from 0 (``--steps`` is its budget). The
optimizers keep this run's hyperparameters (learning rates, betas); the EMA continues its decay schedule
from the source's step, so it does not restart as a copy of G.

Only a source whose tensors have this run's shapes can be used: ``arch``, ``size_px``, ``z_dim``, the
resolved widths and ``spectral_norm`` must match (:data:`SHAPE_FIELDS`). :func:`check_warm_start` says
whether a warm start is possible (and why not) without raising, so a flow can fall back to a fresh start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.champion import read_champion
from pipeline.errors import NftganError
from pipeline.workspace import Workspace
from training.config import TrainConfig

#: the options that change a tensor's shape (or name): a warm-start source must agree on all of them
SHAPE_FIELDS = ("arch", "size_px", "grid", "z_dim", "widths", "spectral_norm", "d_norm", "mbstd_group",
                "condition_mapping", "d_contrast", "condition_aux_net",
                "condition_input")
#: the shape fields of a trait-conditioned model only (G's trait embedding and input, D's classifier)
CONDITIONED_FIELDS = ("condition_mapping", "condition_aux_net", "condition_input")


@dataclass(frozen=True)
class WarmStart:
    """The checkpoint a new run starts from, loaded (``state``: the checkpoint dict, on the CPU)."""

    source: str  # "champion" or "run"
    run: str
    step: int
    checkpoint: Path
    cache_content_hash: str | None  # the tensor cache the source was trained on
    config: TrainConfig  # the source run's config
    state: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the new run's config.json keeps as ``warm_started_from``."""
        return {
            "source": self.source, "run": self.run, "step": self.step, "checkpoint": str(self.checkpoint),
            "cache_content_hash": self.cache_content_hash,
        }


def warm_start_source(ws: Workspace, slug: str, config: TrainConfig) -> WarmStart | None:
    """The checkpoint ``config.warm_start`` names, loaded and checked against ``config`` (None: "none").

    One-line :class:`NftganError` when there is no such checkpoint or its shapes differ from this run's.
    """
    from training.checkpoints import read_checkpoint, require_run, resolve_step

    target = config.warm_start_target()
    if target is None:
        return None
    name, which = target
    if name == "champion":
        champion = read_champion(ws, slug)
        if champion.current is None:
            raise NftganError(f"--warm-start champion: collection {slug!r} has no champion yet "
                              "(train with --warm-start none, then `nftgan champion --challenge`)")
        source, run_name, step = "champion", str(champion.run), int(champion.step or 0)
        run = ws.run(slug, run_name)
        if step not in run.checkpoint_files():
            raise NftganError(f"--warm-start champion: the champion's checkpoint (run {run_name!r} step {step}) "
                              "is gone from disk; warm-start from another run or --warm-start none")
    else:
        source, run_name = "run", name
        run = ws.run(slug, run_name)
        require_run(run)
        if which is None:
            from training.checkpoints import best_step

            which = "best" if best_step(run) is not None else "latest"
        step = resolve_step(run, which)
    path = run.checkpoint(step)
    state = read_checkpoint(path)
    saved = TrainConfig.from_dict(state["config"])
    problem = shape_differences(saved, config)
    if problem:
        raise NftganError(f"cannot warm-start from run {run_name!r} step {step}: its {problem} "
                          "(use the source's model options, or --warm-start none)")
    return WarmStart(source, run_name, step, path, state.get("cache_content_hash"), saved, state)


def check_warm_start(ws: Workspace, slug: str, config: TrainConfig) -> tuple[bool, str]:
    """(True, "run 'NAME' step N (champion|run)") when ``config.warm_start`` can be used, else (False, why
    not: a one-line message); never raises for a user-level problem, so a flow can fall back to a fresh start."""
    try:
        found = warm_start_source(ws, slug, config)
    except NftganError as e:
        return False, str(e)
    if found is None:
        return False, "--warm-start none"
    return True, f"run {found.run!r} step {found.step} ({found.source})"


def shape_differences(source: TrainConfig, config: TrainConfig) -> str:
    """'' when ``source``'s tensors fit ``config``'s models, else e.g. "size_px 64 differs from 32".

    The trait-conditioned networks' own options (:data:`CONDITIONED_FIELDS`) shape nothing in an
    unconditioned model, so they are compared only when both sides may be conditioned (``config`` may still
    say ``--condition auto``); a conditioned run against an unconditioned source is the vocabulary check's
    to name (``training.train``)."""
    both = source.conditioning is not None and config.condition != "none"
    fields = [k for k in SHAPE_FIELDS if both or k not in CONDITIONED_FIELDS]
    mine = {k: getattr(config, k) for k in fields} | {"widths": config.resolved_widths()}
    theirs = {k: getattr(source, k) for k in fields} | {"widths": source.resolved_widths()}
    diffs = [f"{k} {theirs[k]!r} differs from {mine[k]!r}" for k in fields if theirs[k] != mine[k]]
    return ", ".join(diffs)


def recorded_warm_start(ws: Workspace, slug: str, run: str) -> str | None:
    """The ``--warm-start`` a run was started with, when it was warm-started (None: a fresh start, or no
    config yet). A refresh that resumes such a run gives it the same (shortened) budget again."""
    import json

    path = ws.run(slug, run).config
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not saved.get("warm_started_from"):
        return None
    value = saved.get("warm_start")
    return value if isinstance(value, str) and value.strip().lower() != "none" else None
