"""``train()``: one GAN training loop you can read in one sitting, used by the CLI and by the flow.

A run directory explains itself: ``config.json`` is written before any work, then ``metrics.jsonl`` (one
JSON line per log step), TensorBoard logs, fixed-noise grids ``samples/step_XXXXXXX.png`` and checkpoints
named by step; at the end a progress GIF and a loss chart.

Exact resume: every step reseeds torch's RNG from (seed, rank, step), and the batch of a step is a pure
function of the images seen before it, so a resumed run takes the very steps a straight run would have.
A checkpoint holds everything else that changes (weights, EMA, both optimizers, scaler, counters).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from pipeline.atomic import remove_stale_temps, write_json, write_text
from pipeline.cache import open_cache
from pipeline.errors import NftganError
from pipeline.locks import exclusive_lock
from pipeline.workspace import RunPaths, Workspace
from training import checkpoints, distributed, losses
from training.augment import diff_augment
from training.config import DEFAULT_STEPS, TrainConfig
from training.data import DeviceBatches
from training.devices import resolve_amp, resolve_device
from training.models import make_discriminator, make_generator
from training.sampling import generate_from, grid, latents, save_png
from training.visuals import read_metrics, write_loss_chart, write_progress_gif

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainSummary:
    run_name: str
    run_dir: str
    steps_done: int  # the run's step counter at the end (all sessions)
    steps_this_call: int
    epochs_done: float
    images_seen: int
    loss_g: float | None
    loss_d: float | None
    d_real: float | None
    d_fake: float | None
    images_per_s: float | None  # this call's images over its training seconds
    elapsed_s: float  # training seconds over all sessions
    latest_checkpoint: str | None
    device: str
    world_size: int
    augment: tuple[str, ...]
    resumed_from: int | None
    stopped_by: str  # steps | epochs | minutes | already done
    notes: tuple[str, ...] = ()
    rank_digests: tuple[str, ...] = ()  # DDP: sha256 of each rank's final weights (all equal)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"], d["notes"], d["rank_digests"] = list(self.augment), list(self.notes), list(self.rank_digests)
        return d

    def describe(self) -> str:
        lines = [
            f"run {self.run_name}: step {self.steps_done} ({self.steps_this_call} this time, "
            f"{self.epochs_done:.2f} epochs, stopped by {self.stopped_by}) on {self.device}"
            + (f" x{self.world_size}" if self.world_size > 1 else ""),
        ]
        if self.loss_g is not None:
            lines.append(
                f"  loss G {self.loss_g:.4f}  loss D {self.loss_d:.4f}  D(x) {self.d_real:.3f}  "
                f"D(G(z)) {self.d_fake:.3f}"
            )
        if self.images_per_s:
            lines.append(f"  {self.images_per_s:.1f} images/s; {self.elapsed_s / 60:.1f} min of training in all")
        lines.append(f"  augment: {','.join(self.augment) or 'none'}")
        if self.resumed_from is not None:
            lines.append(f"  resumed from step {self.resumed_from}")
        lines.append(f"  latest checkpoint: {self.latest_checkpoint}")
        lines.append(f"  outputs: {self.run_dir}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def train(ws: Workspace, slug: str, config: TrainConfig, *, progress: Progress | None = None) -> TrainSummary:
    """Train (or, with ``config.resume``, continue) one run of ``slug``; see the module docstring.

    ``progress`` gets a dict (step, total_steps, fraction, loss_g, loss_d, d_real, d_fake, images_per_s,
    epoch, elapsed_s) at each log step, after that step's checkpoint; ``total_steps`` is None for
    ``--minutes`` (``fraction`` is then the share of the time budget). An exception it raises stops training
    and propagates; the last checkpoint stays valid.
    Under ``torchrun`` this joins the process group and trains with DDP.
    """
    ctx = distributed.init_from_env(config.device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _Trainer(ws, slug, config, ctx).run(progress)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        distributed.shutdown(ctx)


def step_seed(seed: int, rank: int, step: int) -> int:
    return ((seed * 1_000_003 + step) * 4099 + rank) % 2**63


class _Window:
    """Sums of (loss_g, loss_d, D(x), D(G(z))) over the steps since the last log, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, device=device)
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.steps = 0
        self.started = time.monotonic()

    def add(self, stats: torch.Tensor) -> None:
        self.sums += stats
        self.bad |= ~torch.isfinite(stats).all()
        self.steps += 1

    def take(self) -> tuple[list[float], int, float]:
        """Means over the window, its number of steps and its seconds; then start a new window."""
        means, steps = (self.sums / max(1, self.steps)).tolist(), self.steps
        seconds = time.monotonic() - self.started
        self.sums.zero_()
        self.steps = 0
        self.started = time.monotonic()
        return means, steps, seconds


def _run_lock(run: RunPaths) -> contextlib.AbstractContextManager[None]:
    """One trainer per run directory at a time."""
    return exclusive_lock(
        run.train_lock, f"run {run.name!r} is being trained by another process; wait for it or use another --run"
    )


class _Trainer:
    def __init__(self, ws: Workspace, slug: str, config: TrainConfig, ctx: distributed.DistContext) -> None:
        self.ctx = ctx
        self.device = resolve_device(config.device, local_rank=ctx.local_rank if ctx.enabled else None)
        self.amp_dtype = resolve_amp(config.amp, self.device)
        self.cache = open_cache(ws, slug, config.size_px)
        if len(self.cache) == 0:
            raise NftganError(f"the {config.size_px}px cache of {slug!r} holds no images: nothing to train on")
        run_name = distributed.broadcast_object(ctx, config.run or config.default_run_name())
        self.config = replace(config, run=run_name)
        self.run_paths = ws.run(slug, run_name)
        self.slug = slug
        self.notes: list[str] = []

    # -- the whole run ---------------------------------------------------------------------------------
    def run(self, progress: Progress | None) -> TrainSummary:
        lock = _run_lock(self.run_paths) if self.ctx.is_main else contextlib.nullcontext()
        with lock:
            ckpt = self._resume_point()
            self._prepare_outputs(ckpt)
            self._build(ckpt)
            try:
                return self._loop(ckpt, progress)
            finally:
                self.batches.close()
                if self.writer is not None:
                    self.writer.close()

    def _resume_point(self) -> dict[str, Any] | None:
        run, cfg, ctx = self.run_paths, self.config, self.ctx
        existing = run.checkpoint_files()
        if existing and not cfg.resume:
            raise NftganError(
                f"run {run.name!r} already has checkpoints: pass --resume to continue it, or choose another --run"
            )
        if not cfg.resume:
            return None
        step = None
        if ctx.is_main:
            ckpt, notes = checkpoints.newest_loadable(run)
            self.notes += notes
            step = ckpt["step"] if ckpt is not None else None
        step = distributed.broadcast_object(ctx, step)
        if step is None:
            return None
        if not ctx.is_main:
            ckpt = checkpoints.read_checkpoint(run.checkpoint(step))
        saved = TrainConfig.from_dict(ckpt["config"])
        changed = saved.differences(cfg)
        if changed:
            detail = ", ".join(f"{k} {getattr(saved, k)!r} -> {getattr(cfg, k)!r}" for k in changed)
            raise NftganError(
                f"--resume of run {run.name!r} with different options ({detail}): "
                "pass the run's own options or start another --run"
            )
        if ckpt["cache_content_hash"] != self.cache.content_hash:
            raise NftganError(
                f"the {cfg.size_px}px cache of {self.slug!r} changed since run {run.name!r} was checkpointed "
                "(re-prepared?): start another --run"
            )
        if ckpt["world_size"] != ctx.world_size:
            self.notes.append(
                f"resumed with {ctx.world_size} process(es) instead of {ckpt['world_size']}: "
                "batches differ from an uninterrupted run"
            )
        return ckpt

    def _prepare_outputs(self, ckpt: dict[str, Any] | None) -> None:
        """Write config.json, then drop what a crashed attempt left after the checkpoint we start from."""
        if not self.ctx.is_main:
            return
        run = self.run_paths
        write_json(run.config, self.config.to_dict())
        remove_stale_temps(run.checkpoints)
        if ckpt is None:  # a fresh start: nothing of an earlier attempt may mix into this run's outputs
            checkpoints.forget_best(run)
            run.metrics.unlink(missing_ok=True)
            shutil.rmtree(run.tensorboard, ignore_errors=True)
            for path in [*run.sample_grids().values(), run.progress_gif]:
                path.unlink(missing_ok=True)
            return
        start = ckpt["step"]
        rows = read_metrics(run)
        torn = run.metrics.is_file() and len(rows) != _line_count(run.metrics)
        if torn or any(r["step"] > start for r in rows):
            write_text(run.metrics, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= start))
        for step, path in run.sample_grids().items():
            if step > start:
                path.unlink(missing_ok=True)

    def _build(self, ckpt: dict[str, Any] | None) -> None:
        cfg, dev, ctx = self.config, self.device, self.ctx
        if cfg.deterministic:
            if dev.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it at first use
            torch.use_deterministic_algorithms(True)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and device
        widths = cfg.resolved_widths()
        g = make_generator(cfg.arch, cfg.size_px, cfg.z_dim, widths)
        d = make_discriminator(cfg.arch, cfg.size_px, widths, spectral_norm=cfg.spectral_norm, dropout=cfg.dropout)
        memory_format = torch.channels_last if dev.type == "cuda" else torch.preserve_format
        self.g, self.d = g.to(dev, memory_format=memory_format), d.to(dev, memory_format=memory_format)
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False) if cfg.ema > 0 else None
        fused = True if dev.type == "cuda" else None
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp_dtype == torch.float16)
        self.start_step, self.images_seen, self.elapsed_before = 0, 0, 0.0
        if ckpt is not None:
            self.g.load_state_dict(ckpt["generator"])
            self.d.load_state_dict(ckpt["discriminator"])
            if self.ema is not None:
                self.ema.load_state_dict(ckpt["ema"])
            self.opt_g.load_state_dict(ckpt["opt_g"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            torch.set_rng_state(ckpt["rng"]["torch_cpu"])
            self.start_step, self.images_seen = int(ckpt["step"]), int(ckpt["images_seen"])
            self.elapsed_before = float(ckpt["elapsed_s"])

        # what the loop calls: DDP wrappers (gradient all-reduce) and compiled graphs over the same weights
        self.g_train, self.d_train, self.d_frozen = self.g, self.d, self.d
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [dev.index] if dev.type == "cuda" else None
            self.g_train, self.d_train = DDP(self.g, device_ids=ids), DDP(self.d, device_ids=ids)
        if cfg.compile:
            self.g_train, self.d_train = torch.compile(self.g_train), torch.compile(self.d_train)
            self.d_frozen = torch.compile(self.d)

        self.augment_ops = cfg.augment_ops(len(self.cache))
        self.batches = DeviceBatches(
            self.cache.images, batch_size=cfg.batch_size, device=dev, seed=cfg.seed,
            world_size=ctx.world_size, rank=ctx.rank, mode=cfg.data_on_device,
            start_step=self.start_step, images_seen_at_start=self.images_seen,
        )  # fmt: skip
        self.fixed_z = latents(cfg.sample_count, cfg.z_dim, cfg.seed)
        self.writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.start_step + 1 if ckpt is not None else None
            self.writer = SummaryWriter(str(self.run_paths.tensorboard), purge_step=purge)

    # -- one step ----------------------------------------------------------------------------------------
    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.augment_ops) if self.augment_ops else x

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _gan_step(self, real: torch.Tensor) -> torch.Tensor:
        """One D update then one G update; returns (loss_g, loss_d, D(x), D(G(z))) on the device."""
        cfg = self.config
        b = real.shape[0]
        z = torch.randn(b, cfg.z_dim, device=self.device)
        with self._autocast():
            fake = self.g_train(z)
            if cfg.separate_batches:
                real_logits = self.d_train(self._augment(real))
                fake_logits = self.d_train(self._augment(fake.detach()))
            else:
                both = self.d_train(torch.cat([self._augment(real), self._augment(fake.detach())]))
                real_logits, fake_logits = both[:b], both[b:]
            loss_d = losses.discriminator_loss(cfg.loss, real_logits, fake_logits, label_smoothing=cfg.label_smoothing)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        self.d.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        with self._autocast():
            loss_g = losses.generator_loss(cfg.loss, self.d_frozen(self._augment(fake)))
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self.d.requires_grad_(True)
        with torch.no_grad():
            d_real, d_fake = real_logits.float().sigmoid().mean(), fake_logits.float().sigmoid().mean()
            return torch.stack([loss_g.float(), loss_d.float(), d_real, d_fake])

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        if self.ema is None:
            return
        decay = min(self.config.ema, (1 + step) / (10 + step))  # ramp up: early steps follow G closely
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.g.parameters()), 1 - decay)
        for eb, b in zip(self.ema.buffers(), self.g.buffers()):
            eb.copy_(b)

    # -- outputs -----------------------------------------------------------------------------------------
    def _save_checkpoint(self, step: int, elapsed_s: float, last_row: dict[str, Any] | None) -> Path:
        state = {
            "step": step,
            "epoch": self.images_seen / len(self.cache),
            "images_seen": self.images_seen,
            "elapsed_s": elapsed_s,
            "config": self.config.to_dict(),
            "cache_content_hash": self.cache.content_hash,
            "world_size": self.ctx.world_size,
            "generator": self.g.state_dict(),
            "discriminator": self.d.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {
                "scheme": "torch reseeded per step from (seed, rank, step)",
                "torch_cpu": torch.get_rng_state(),
                "torch_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
            "last_metrics": last_row or {},
        }
        path = checkpoints.save_checkpoint(self.run_paths, state)
        checkpoints.prune_checkpoints(self.run_paths, self.config.keep_last)
        return path

    @torch.no_grad()
    def _save_grid(self, step: int) -> None:
        g = self.ema if self.ema is not None else self.g
        was_training = g.training
        g.eval()
        images = generate_from(g, self.fixed_z)
        g.train(was_training)
        picture = grid(images)
        save_png(picture, self.run_paths.sample_grid(step))
        if self.writer is not None:
            self.writer.add_image("samples", picture, step, dataformats="HWC")

    def _log(self, row: dict[str, Any]) -> None:
        with open(self.run_paths.metrics, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key in ("loss_g", "loss_d", "d_real", "d_fake", "images_per_s"):
            self.writer.add_scalar(f"train/{key}", row[key], row["step"])

    # -- the loop ----------------------------------------------------------------------------------------
    def _total_steps(self) -> int | None:
        cfg = self.config
        if cfg.minutes is not None:
            return None
        if cfg.epochs is not None:
            return math.ceil(cfg.epochs * len(self.cache) / (cfg.batch_size * self.ctx.world_size))
        return cfg.steps or DEFAULT_STEPS

    def _loop(self, ckpt: dict[str, Any] | None, progress: Progress | None) -> TrainSummary:
        cfg, ctx, run = self.config, self.ctx, self.run_paths
        total = self._total_steps()
        deadline_s = cfg.minutes * 60 if cfg.minutes is not None else None
        per_step = cfg.batch_size * ctx.world_size
        step = self.start_step
        last_saved = step if ckpt is not None else None
        last_row: dict[str, Any] | None = dict(ckpt["last_metrics"]) if ckpt and ckpt.get("last_metrics") else None
        if ctx.is_main and ckpt is None:
            self._save_grid(0)
        window = _Window(self.device)
        t0 = time.monotonic()
        elapsed = self.elapsed_before
        self.g.train()
        self.d.train()
        while True:
            if total is not None and step >= total:
                stopped_by = "already done" if step == self.start_step else ("epochs" if cfg.epochs else "steps")
                break
            if deadline_s is not None and distributed.any_rank(ctx, elapsed >= deadline_s, self.device):
                stopped_by = "minutes"
                break
            torch.manual_seed(step_seed(cfg.seed, ctx.rank, step))
            stats = self._gan_step(self.batches.get(step))
            window.add(stats)
            self._update_ema(step)
            step += 1
            self.images_seen += per_step
            elapsed = self.elapsed_before + time.monotonic() - t0
            log_due = step % cfg.log_every == 0 or step == total
            ckpt_due = step % cfg.checkpoint_every == 0
            if not (log_due or ckpt_due):
                continue
            self._check_finite(window, step)
            row = None
            if log_due:
                (loss_g, loss_d, d_real, d_fake), steps, seconds = window.take()
                row = {
                    "step": step, "epoch": round(self.images_seen / len(self.cache), 4),
                    "loss_g": loss_g, "loss_d": loss_d, "d_real": d_real, "d_fake": d_fake,
                    "images_per_s": round(per_step * steps / seconds, 2), "elapsed_s": round(elapsed, 3),
                }  # fmt: skip
                last_row = row
                if ctx.is_main:
                    self._log(row)
            if ckpt_due:
                if ctx.is_main:
                    self._save_checkpoint(step, elapsed, last_row)
                last_saved = step
            if ctx.is_main and cfg.sample_every and step % cfg.sample_every == 0:
                self._save_grid(step)
            if row is not None and progress is not None and ctx.is_main:
                fraction = step / total if total else min(1.0, elapsed / deadline_s) if deadline_s else None
                progress({**row, "total_steps": total, "fraction": fraction})

        loop_s = time.monotonic() - t0
        self._check_finite(window, step)
        latest_path = None
        distributed.sync_buffers(ctx, *[m for m in (self.g, self.d, self.ema) if m is not None])
        if step != last_saved and ctx.is_main:
            latest_path = self._save_checkpoint(step, elapsed, last_row)
        elif last_saved is not None:
            latest_path = run.checkpoint(last_saved)
        digests = ()
        if ctx.enabled:
            digests = tuple(distributed.gather_objects(ctx, distributed.state_digest(*self._weights())))
            if len(set(digests)) != 1:
                raise RuntimeError(f"DDP ranks ended with different weights: {digests}")
        if ctx.is_main:
            if step not in run.sample_grids():
                self._save_grid(step)
            write_loss_chart(run)
            write_progress_gif(run)
        steps_this_call = step - self.start_step
        return TrainSummary(
            run_name=run.name,
            run_dir=str(run.root),
            steps_done=step,
            steps_this_call=steps_this_call,
            epochs_done=self.images_seen / len(self.cache),
            images_seen=self.images_seen,
            loss_g=last_row["loss_g"] if last_row else None,
            loss_d=last_row["loss_d"] if last_row else None,
            d_real=last_row["d_real"] if last_row else None,
            d_fake=last_row["d_fake"] if last_row else None,
            images_per_s=steps_this_call * per_step / loop_s if steps_this_call and loop_s > 0 else None,
            elapsed_s=elapsed,
            latest_checkpoint=str(latest_path) if latest_path else None,
            device=str(self.device),
            world_size=ctx.world_size,
            augment=self.augment_ops,
            resumed_from=self.start_step if ckpt is not None else None,
            stopped_by=stopped_by,
            notes=tuple(self.notes),
            rank_digests=digests,
        )

    def _check_finite(self, window: _Window, step: int) -> None:
        """Stop before a non-finite step can reach a checkpoint (checked at log and checkpoint steps)."""
        if not bool(window.bad):
            return
        latest = checkpoints.list_checkpoints(self.run_paths)
        raise NftganError(
            f"losses became non-finite before step {step}; training stopped "
            f"(last good checkpoint: {'step ' + str(latest[-1]) if latest else 'none'}). "
            "Try lower --lr-g/--lr-d, --loss hinge or --spectral-norm"
        )

    def _weights(self) -> list[torch.nn.Module]:
        return [m for m in (self.g, self.d, self.ema) if m is not None]


def _line_count(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())
