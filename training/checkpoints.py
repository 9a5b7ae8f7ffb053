"""Checkpoints of a run: one dict per file (nanoGPT style), named by step, written atomically.

``<run>/checkpoints/step_0001000.pt`` holds the generator, discriminator, EMA generator, both optimizers,
the AMP scaler, RNG states, step, epoch, images seen, training seconds, the run's config and the hash of
the tensor cache it was trained on. Files are zip archives with a CRC per tensor, so a truncated or
bit-flipped file is found before it is used; they load with ``torch.load(weights_only=True)``.
``best.json`` names the best checkpoint (set by evaluation); retention never deletes it.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import atomic_path, remove_stale_temps, write_json
from pipeline.errors import NftganError
from pipeline.workspace import RunPaths
from training.config import TrainConfig
from training.grid import head_palette
from training.models import make_generator

log = logging.getLogger(__name__)

FORMAT = "nftgan-checkpoint-1"


@dataclass(frozen=True)
class LoadedGenerator:
    generator: torch.nn.Module  # eval mode, on the requested device
    step: int
    z_dim: int
    size_px: int  # the side of the images it gives (a native-grid run's are drawn on the cache's canvas)
    config: dict[str, Any]  # the run's TrainConfig as a dict
    cache_content_hash: str | None = None  # the tensor cache it was trained on


def verify_file(path: Path) -> str | None:
    """Why ``path`` is not a complete checkpoint file ("truncated", "corrupt: ..."), or None if it is."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # reads every member and checks its CRC
    except zipfile.BadZipFile:
        return "truncated or not a checkpoint (no zip directory)"
    except (OSError, EOFError, ValueError) as e:
        return f"unreadable ({e})"
    return f"corrupt (CRC mismatch in {bad})" if bad else None


def list_checkpoints(run: RunPaths) -> list[int]:
    """Steps of the checkpoints on disk that are complete (CRC-checked), ascending."""
    return sorted(step for step, path in run.checkpoint_files().items() if verify_file(path) is None)


def read_checkpoint(path: Path, *, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one checkpoint dict with ``weights_only=True``; a damaged or foreign file is a clear error."""
    problem = verify_file(path)
    if problem:
        raise NftganError(f"checkpoint {path} is {problem}: use another --checkpoint")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises several types for bad pickles; all mean "unusable file"
        raise NftganError(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {e})".splitlines()[0]) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NftganError(f"{path} is not an nftgan checkpoint (expected format {FORMAT})")
    return ckpt


def save_checkpoint(run: RunPaths, state: dict[str, Any]) -> Path:
    """Write ``state`` (must hold ``step``) atomically as the checkpoint of that step."""
    target = run.checkpoint(state["step"])
    with atomic_path(target, suffix=".pt") as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return target


def prune_checkpoints(run: RunPaths, keep_last: int) -> list[int]:
    """Delete all but the newest ``keep_last`` checkpoints, never the best one nor the collection's
    champion (when it is a checkpoint of this run); returns the deleted steps."""
    from pipeline.champion import read_champion
    from pipeline.workspace import Workspace

    keep = {best_step(run)}
    try:
        champion = read_champion(Workspace(run.home), run.slug)
        if champion.run == run.name:
            keep.add(champion.step)
    except NftganError as e:  # an unreadable champion.json: keep everything rather than guess
        log.warning("not pruning checkpoints of %s: %s", run.name, e)
        return []
    steps = sorted(run.checkpoint_files())
    doomed = [s for s in steps[: max(0, len(steps) - keep_last)] if s not in keep]
    for s in doomed:
        run.checkpoint(s).unlink(missing_ok=True)
    remove_stale_temps(run.checkpoints)
    return doomed


def set_aside(run: RunPaths, step: int, reason: str) -> Path:
    """Rename a damaged checkpoint to ``*.pt.corrupt`` (kept for inspection, never loaded again)."""
    src = run.checkpoint(step)
    dst = src.with_name(src.name + ".corrupt")
    os.replace(src, dst)
    log.warning("checkpoint %s is %s; moved aside to %s", src.name, reason, dst.name)
    return dst


def newest_loadable(run: RunPaths, *, device: str | torch.device = "cpu") -> tuple[dict[str, Any] | None, list[str]]:
    """The newest checkpoint that loads, setting damaged newer ones aside; plus one note per damaged file.

    This is what ``--resume`` uses: a checkpoint truncated by a crash falls back to the previous good one.
    """
    notes = []
    for step, path in sorted(run.checkpoint_files().items(), reverse=True):
        try:
            return read_checkpoint(path, device=device), notes
        except NftganError as e:
            reason = verify_file(path) or "unloadable"
            set_aside(run, step, reason)
            notes.append(f"{path.name} is {reason} ({e}); set aside as {path.name}.corrupt")
    return None, notes


# -- best checkpoint -------------------------------------------------------------------------------------
def mark_best(run: RunPaths, step: int, info: dict[str, Any]) -> None:
    """Record ``step`` as the run's best checkpoint (``info``: e.g. metric name and value)."""
    if step not in run.checkpoint_files():
        raise NftganError(f"run {run.name!r} has no checkpoint at step {step} to mark as best")
    write_json(run.best_mark, {**info, "step": int(step)})


def forget_best(run: RunPaths) -> None:
    """Drop the best mark (a run that starts over has no best checkpoint)."""
    run.best_mark.unlink(missing_ok=True)


def best_step(run: RunPaths) -> int | None:
    path = run.best_mark
    if not path.is_file():
        return None
    try:
        return int(json.loads(path.read_text())["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise NftganError(f"{path} is malformed ({e}); delete it or mark the best checkpoint again") from e


# -- loading a generator ---------------------------------------------------------------------------------
def require_run(run: RunPaths) -> None:
    """A clear error for a run that does not exist."""
    if not run.root.is_dir():
        parent = run.root.parent
        have = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        hint = f" (runs: {', '.join(have)})" if have else " (no runs yet: start one with `nftgan train`)"
        raise NftganError(f"no run {run.name!r} for collection {run.slug!r}{hint}")


def resolve_step(run: RunPaths, which: str | int) -> int:
    """The step that ``which`` ("latest", "best" or a step number) names, with clear errors."""
    require_run(run)
    if isinstance(which, str) and which not in ("latest", "best"):
        if not which.isdigit():
            raise NftganError(f"--checkpoint must be 'latest', 'best' or a step number, got {which!r}")
        which = int(which)
    if which == "best":
        step = best_step(run)
        if step is None:
            raise NftganError(f"run {run.name!r} has no best checkpoint marked yet (run `nftgan evaluate`)")
        return step
    if which == "latest":
        valid = list_checkpoints(run)
        if not valid:
            raise NftganError(f"run {run.name!r} has no complete checkpoint yet")
        return valid[-1]
    if int(which) not in run.checkpoint_files():
        have = sorted(run.checkpoint_files())
        raise NftganError(f"run {run.name!r} has no checkpoint at step {which} (steps on disk: {have})")
    return int(which)


def load_generator(
    run: RunPaths, which: str | int = "latest", *, device: str = "cpu", ema: bool = True
) -> LoadedGenerator:
    """The generator of one checkpoint, in eval mode on ``device`` (the EMA weights when ``ema``)."""
    step = resolve_step(run, which)
    ckpt = read_checkpoint(run.checkpoint(step), device=device)
    config = TrainConfig.from_dict(ckpt["config"])
    cond = config.conditioning or {}
    g = make_generator(config.arch, config.model_px, config.z_dim, config.resolved_widths(),
                       cond_dim=int(cond.get("width", 0)), pool_size=int(cond.get("pool_size", 0)),
                       cond_mapping=config.condition_mapping,
                       cond_input=config.condition_input, **head_palette(config.canvas))
    weights = ckpt["ema"] if ema and ckpt.get("ema") is not None else ckpt["generator"]
    try:
        g.load_state_dict(weights)
    except RuntimeError as e:
        raise NftganError(f"checkpoint step {step} of run {run.name!r} does not match its config: {e}") from e
    if cond:  # what a conditioned generator's conditions mean (read by evaluation and export)
        g.vocabulary = cond.get("vocabulary")
    if config.canvas:  # a native-grid run: its images are drawn onto the cache's canvas
        from training.grid import OnCanvas

        g = OnCanvas(g, config.canvas)
    g.to(device).eval().requires_grad_(False)
    return LoadedGenerator(
        generator=g, step=step, z_dim=config.z_dim, size_px=config.size_px, config=config.to_dict(),
        cache_content_hash=ckpt.get("cache_content_hash"),
    )
