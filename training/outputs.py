"""What a training run writes: ``config.json`` first, then metrics (JSON lines and TensorBoard), sample
grids, checkpoints (one dict: weights, optimizers, counters, RNG, config), and at the end a loss chart and
a progress GIF. Only the main process writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import remove_stale_temps, write_json, write_text
from pipeline.workspace import RunPaths
from training import checkpoints
from training.build import Models
from training.config import TrainConfig
from training.sampling import generate_from, grid, save_png
from training.visuals import read_metrics, write_loss_chart, write_progress_gif


class RunOutputs:
    """The files of one run (``run``), written by the main process only (``enabled``)."""

    def __init__(self, run: RunPaths, config: TrainConfig, *, enabled: bool) -> None:
        self.run, self.config, self.enabled = run, config, enabled
        self.writer: Any = None

    def start(self, ckpt: dict[str, Any] | None) -> None:
        """Write config.json, drop what a crashed attempt left after ``ckpt``, open TensorBoard."""
        if not self.enabled:
            return
        run = self.run
        write_json(run.config, self.config.to_dict())
        remove_stale_temps(run.checkpoints)
        if ckpt is None:  # a fresh start: nothing of an earlier attempt may mix into this run's outputs
            checkpoints.forget_best(run)
            run.metrics.unlink(missing_ok=True)
            shutil.rmtree(run.tensorboard, ignore_errors=True)
            for path in [*run.sample_grids().values(), run.progress_gif]:
                path.unlink(missing_ok=True)
        else:
            start = ckpt["step"]
            rows = read_metrics(run)
            torn = run.metrics.is_file() and len(rows) != _line_count(run.metrics)
            if torn or any(r["step"] > start for r in rows):
                write_text(run.metrics, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= start))
            for step, path in run.sample_grids().items():
                if step > start:
                    path.unlink(missing_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        purge = ckpt["step"] + 1 if ckpt is not None else None
        self.writer = SummaryWriter(str(run.tensorboard), purge_step=purge)

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.run.metrics, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key in ("loss_g", "loss_d", "d_real", "d_fake", "images_per_s"):
            self.writer.add_scalar(f"train/{key}", row[key], row["step"])
        for key in ("aug_p", "ada_rt"):
            if key in row:
                self.writer.add_scalar(f"augment/{key}", row[key], row["step"])
        if "probe_coverage" in row:
            self.writer.add_scalar("collapse/diversity", row["probe_diversity"], row["step"])
            self.writer.add_scalar("collapse/coverage", row["probe_coverage"], row["step"])
            self.writer.add_scalar("collapse/threshold", row["probe_threshold"], row["step"])
            self.writer.add_scalar("collapse/suspected", float(row["collapse_suspected"]), row["step"])

    @torch.no_grad()
    def sample_grid(self, step: int, models: Models, fixed_z: torch.Tensor) -> None:
        """The fixed-noise grid of ``step`` (from the EMA generator when there is one)."""
        if not self.enabled:
            return
        g = models.ema if models.ema is not None else models.g
        was_training = g.training
        g.eval()
        images = generate_from(g, fixed_z)
        g.train(was_training)
        picture = grid(images)
        save_png(picture, self.run.sample_grid(step))
        self.writer.add_image("samples", picture, step, dataformats="HWC")

    def checkpoint(self, state: dict[str, Any]) -> Path | None:
        if not self.enabled:
            return None
        path = checkpoints.save_checkpoint(self.run, state)
        checkpoints.prune_checkpoints(self.run, self.config.keep_last)
        return path

    def finish(self, step: int, models: Models, fixed_z: torch.Tensor) -> None:
        if not self.enabled:
            return
        if step not in self.run.sample_grids():
            self.sample_grid(step, models, fixed_z)
        write_loss_chart(self.run)
        write_progress_gif(self.run)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def checkpoint_state(
    *, step: int, images_seen: int, n_images: int, elapsed_s: float, config: TrainConfig, cache_hash: str,
    world_size: int, models: Models, device: torch.device, last_row: dict[str, Any] | None,
    ada: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one dict a checkpoint is: enough to resume the very next step exactly."""
    return {
        "step": step,
        "epoch": images_seen / n_images,
        "images_seen": images_seen,
        "elapsed_s": elapsed_s,
        "config": config.to_dict(),
        "cache_content_hash": cache_hash,
        "world_size": world_size,
        "generator": models.g.state_dict(),
        "discriminator": models.d.state_dict(),
        "ema": models.ema.state_dict() if models.ema is not None else None,
        "opt_g": models.opt_g.state_dict(),
        "opt_d": models.opt_d.state_dict(),
        "classifier": models.c.state_dict() if models.c is not None else None,  # --condition-aux-net own
        "opt_c": models.opt_c.state_dict() if models.opt_c is not None else None,
        "scaler": models.scaler.state_dict(),
        "rng": {
            "scheme": "torch reseeded per step from (seed, rank, step)",
            "torch_cpu": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        },
        "last_metrics": last_row or {},
        "ada": ada,  # the adaptive augmentation state (p and its running r_t), None without ADA
    }


def _line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())
