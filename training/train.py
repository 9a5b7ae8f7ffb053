"""``train()``: one GAN training loop you can read in one sitting, used by the CLI and by the flow.

What the loop is built from (models, optimizers, EMA, AMP, compile, DDP, batches) lives in
:mod:`training.build`; what it writes (config, metrics, TensorBoard, grids, checkpoints) in
:mod:`training.outputs`. This module is the loop and the step.

A run directory explains itself: ``config.json`` is written before any work, then ``metrics.jsonl`` (one
JSON line per log step), TensorBoard logs, fixed-noise grids ``samples/step_XXXXXXX.png`` and checkpoints
named by step; at the end a progress GIF and a loss chart.

Exact resume: every step reseeds torch's RNG from (seed, rank, step), and the batch of a step is a pure
function of the images seen before it, so a resumed run takes the very steps a straight run would have.
A checkpoint holds everything else that changes (weights, EMA, both optimizers, scaler, counters).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.cache import TensorCache, open_cache
from pipeline.errors import NftganError
from pipeline.locks import exclusive_lock
from pipeline.progress import Progress, report, warn
from pipeline.workspace import RunPaths, Workspace
from training import checkpoints, distributed, losses
from training import probe as collapse_probe
from training.augment import AdaptiveStrength, diff_augment
from training.build import Counters, Models, build_batches, build_models, resolve_augment, resume_point
from training.conditioning import Vocabulary, build_vocabulary
from training.config import DEFAULT_STEPS, TrainConfig
from training.data import DeviceBatches
from training.devices import resolve_amp, resolve_device
from training.grid import PaletteSnap, canvas_of, native_images, palette_tensor
from training.outputs import RunOutputs, checkpoint_state
from training.pixelart import read_pixel_art
from training.sampling import latents
from training.warm import warm_start_source

log = logging.getLogger(__name__)



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
    warm_started_from: dict[str, Any] | None = None  # the checkpoint this run started from (see warm_start)
    collapse: tuple[str, ...] = ()  # one line per probe that suspected collapse (training.probe)
    probe: dict[str, Any] | None = None  # the last probe's row (coverage, its real calibration, threshold)
    canvas: dict[str, Any] | None = None  # a native-grid run's grid and canvas (training.grid)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"], d["notes"], d["rank_digests"] = list(self.augment), list(self.notes), list(self.rank_digests)
        d["collapse"] = list(self.collapse)
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
        if self.canvas:
            c = self.canvas
            lines.append(f"  native grid: {c['grid']}x{c['grid']} drawn onto the {c['canvas_px']}px canvas "
                         f"(cell {c['cell_px']} px at {c['origin'][0]},{c['origin'][1]})")
        if self.probe:
            p = self.probe
            lines.append(f"  collapse probe at step {p['step']}: diversity {p['probe_diversity']:.2f} of real images' "
                         f"(alarm below {p['probe_threshold']:.2f}), coverage {p['probe_coverage']:.3f} "
                         f"(real images: {p['probe_real_coverage']:.3f})")
        lines += [f"  WARNING: {c}" for c in self.collapse]
        if self.resumed_from is not None:
            lines.append(f"  resumed from step {self.resumed_from}")
        if self.warm_started_from:
            w = self.warm_started_from
            trained_on = (w.get("cache_content_hash") or "?")[:12]
            lines.append(f"  warm-started from run {w['run']} step {w['step']} ({w['source']}, trained on "
                         f"cache {trained_on})")
        lines.append(f"  latest checkpoint: {self.latest_checkpoint}")
        lines.append(f"  outputs: {self.run_dir}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def train(ws: Workspace, slug: str, config: TrainConfig, *, progress: Progress | None = None) -> TrainSummary:
    """Train (or, with ``config.resume``, continue) one run of ``slug``; see the module docstring.

    ``progress`` gets a ``ProgressEvent("train", step, total_steps)`` whose detail holds the log row (step,
    total_steps, fraction, loss_g, loss_d, d_real, d_fake, images_per_s, epoch, elapsed_s) at each log step, after that step's checkpoint; ``total_steps`` is None for
    ``--minutes`` (``fraction`` is then the share of the time budget). An exception it raises stops training
    and propagates; the last checkpoint stays valid.
    Under ``torchrun`` this joins the process group and trains with DDP.
    """
    ctx = distributed.init_from_env(config.device)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        device = resolve_device(config.device, local_rank=ctx.local_rank if ctx.enabled else None)
        amp_dtype = resolve_amp(config.amp, device)
        cache = open_cache(ws, slug, config.size_px)
        if len(cache) == 0:
            raise NftganError(f"the {config.size_px}px cache of {slug!r} holds no images: nothing to train on")
        config = replace(config, run=distributed.broadcast_object(ctx, config.run or config.default_run_name()))
        on_cache = config.grid == "cache" or config.grid == "auto" and config.arch != "dcgan"  # mlp: no grid form
        art = None if on_cache else read_pixel_art(ws, slug, config.size_px)
        canvas = None if on_cache else canvas_of(art, cache.images, required=config.grid == "native")
        head_note = None
        heads = config.palette_head != "off"
        if heads and canvas is not None and art is not None:  # G draws the palette's colours only
            canvas = {**canvas, "palette": list(art.doc["palette"]), "palette_head": config.palette_head}
        elif heads:
            head_note = "--palette-head: off, the run is not on a native pixel grid (no palette to draw with)"
        config = replace(config, canvas=canvas)
        conditions, pool, auto_note = None, None, None
        if config.condition == "auto":
            config, conditions, pool, auto_note = _auto_conditioning(ws, slug, config, cache)
        elif config.condition == "traits":
            config, conditions, pool = _conditioning(ws, slug, config, cache)
        run = ws.run(slug, config.run)
        with _run_lock(run) if ctx.is_main else contextlib.nullcontext():
            notes: list[str] = [n for n in (auto_note, head_note) if n is not None]
            ckpt = resume_point(run, config, cache, ctx, slug, notes)
            config = resolve_augment(config, ckpt, len(cache))  # recorded as resolved
            config, warm = _warm_start(ws, slug, config, ckpt, notes)
            outputs = RunOutputs(run, config, enabled=ctx.is_main)
            outputs.start(ckpt)
            models, start = build_models(config, device, amp_dtype, ctx, ckpt, warm,
                                         cond_dim=0 if conditions is None else conditions.shape[1], pool=pool)
            if config.conditioning:
                notes.append(Vocabulary.from_dict(config.conditioning["vocabulary"]).describe())
            images = native_images(cache.images, canvas) if canvas else cache.images
            snap = config.condition_aux_snap and bool(config.condition_aux) and config.conditioning is not None
            wanted = snap or config.snap_fakes
            palette = (PaletteSnap(palette_tensor(art, device), config.snap_rule, art.cell_palettes)
                       if wanted and canvas and art is not None else None)
            for asked, flag in ((snap, "--condition-aux-snap"), (config.snap_fakes, "--snap-fakes")):
                if asked and palette is None:
                    notes.append(f"{flag}: off, the run is not on a native pixel grid (no palette to snap to)")
            if snap and palette is not None and config.condition_aux_view == "augmented" and \
                    config.condition_aux_net == "d":
                notes.append("--condition-aux-snap: off, --condition-aux-view augmented has no pass of its own to "
                             "snap (uncut, clean or both have)")
            batches = build_batches(config, images, device, ctx, start, conditions=conditions)
            try:
                return _loop(_Run(run, config, cache, device, ctx, models, batches, outputs, notes, images, palette),
                             start, ckpt, progress)
            finally:
                batches.close()
                outputs.close()
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
        distributed.shutdown(ctx)


def _auto_conditioning(ws: Workspace, slug: str, config: TrainConfig, cache: TensorCache
                       ) -> tuple[TrainConfig, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None, str | None]:
    """``--condition auto``: trait-conditioned when the collection's traits.csv gives a vocabulary, else
    unconditioned with a note that says why (an explicit ``--condition-on`` that names unknown types is
    still an error). The config is recorded as what it resolved to, so a resume or a warm start compares
    like with like."""
    why = None
    if config.arch != "dcgan":
        why = f"--arch {config.arch} has no trait-conditioned form"
    else:
        try:
            traits = replace(config, condition="traits")
            resolved, conditions, pool = _conditioning(ws, slug, traits, cache)
            return resolved, conditions, pool, None
        except NftganError as e:
            if config.condition_on:
                raise
            why = str(e)
    plain = replace(config, condition="none", condition_on=None, condition_aux=0.0)
    return plain, None, None, f"not trait-conditioned (--condition auto): {why}"


def _conditioning(ws: Workspace, slug: str, config: TrainConfig, cache: TensorCache
                  ) -> tuple[TrainConfig, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A trait-conditioned run's vocabulary (recorded in the config), each cache row's condition vector, and
    the pool of distinct trait sets with their counts (what G draws from when given latents only)."""
    from pipeline.traits_table import read_table

    path = ws.collection(slug).cache_traits(config.size_px)
    if not path.is_file():
        raise NftganError(f"--condition traits needs the collection's traits (cache/{config.size_px}/traits.csv): "
                          f"{slug!r} lists none; scrape its traits and re-run `nftgan prepare {slug}`")
    try:
        kinds, sets, labels = read_table(path, len(cache), cache.manifest.get("item_ids"))
    except (ValueError, OSError) as e:
        raise NftganError(f"{path}: {e}: re-run `nftgan prepare {slug} --size {config.size_px}`") from None
    wanted = [k.strip() for k in (config.condition_on or "").split(",") if k.strip()] or None
    vocab = build_vocabulary(labels, kinds, sets, condition_on=wanted, min_count=config.condition_min_count)
    conditions = vocab.encode_all(labels)
    distinct, counts = np.unique(conditions, axis=0, return_counts=True)
    record = {"vocabulary": vocab.to_dict(), "pool_size": int(len(distinct)), "width": int(vocab.width)}
    return replace(config, conditioning=record), conditions, (distinct, counts.astype(np.float32))


def _warm_start(
    ws: Workspace, slug: str, config: TrainConfig, ckpt: dict[str, Any] | None, notes: list[str],
) -> tuple[TrainConfig, Any]:
    """The config to record (with ``warm_started_from``) and the warm-start source of a new run.

    A resumed run continues from its own checkpoint: its recorded source stays, ``--warm-start`` is ignored.
    """
    if ckpt is not None:
        saved = TrainConfig.from_dict(ckpt["config"])
        if config.warm_start_target() is not None and config.warm_start != saved.warm_start:
            notes.append(f"--warm-start {config.warm_start} ignored: the run resumes from its own checkpoint")
        return replace(config, warm_start=saved.warm_start, warm_started_from=saved.warm_started_from), None
    warm = warm_start_source(ws, slug, config)
    if warm is not None:
        theirs = (warm.config.conditioning or {}).get("vocabulary")
        mine = (config.conditioning or {}).get("vocabulary")
        if theirs != mine:
            what = ("was trained without trait conditioning" if theirs is None else
                    "is not trait-conditioned like this run" if mine is None else
                    "was conditioned on another trait vocabulary")
            if warm.source == "champion":  # a nightly refresh: the challenger starts fresh, and says why
                notes.append(f"not warm-started from the champion {warm.run}@{warm.step}: it {what}; trained from "
                             "scratch")
                return replace(config, warm_started_from=None), None
            raise NftganError(f"cannot warm-start from run {warm.run!r} step {warm.step}: it {what}; start fresh "
                              "(--warm-start none) or warm-start from a run with the same conditioning")
    return replace(config, warm_started_from=None if warm is None else warm.record()), warm


@dataclass
class _Run:
    """What the loop works with (all built before the first step)."""

    paths: RunPaths
    config: TrainConfig
    cache: TensorCache
    device: torch.device
    ctx: distributed.DistContext
    models: Models
    batches: DeviceBatches
    outputs: RunOutputs
    notes: list[str]
    images: Any  # what D sees: the cache's images, or their native grid
    palette: PaletteSnap | None = None  # --condition-aux-snap / --snap-fakes on a native grid: its palette snap


def _loop(r: _Run, start: Counters, ckpt: dict[str, Any] | None, progress: Progress | None) -> TrainSummary:
    cfg, ctx, models = r.config, r.ctx, r.models
    total = total_steps(cfg, len(r.cache), ctx.world_size)  # None: a --minutes budget
    deadline_s = cfg.minutes * 60 if cfg.minutes is not None else None
    per_step = cfg.batch_size * ctx.world_size
    augment_ops = cfg.augment_ops(len(r.cache))
    ada = (AdaptiveStrength(cfg.ada_target, cfg.ada_kimg, cfg.ada_every, per_step, r.device)
           if cfg.ada_target > 0 and augment_ops else None)
    if ada is not None and ckpt is not None and ckpt.get("ada"):
        ada.load_state_dict(ckpt["ada"])
    probing = bool(cfg.probe_every) and ctx.is_main and (total is None or total >= cfg.probe_every)
    probe = collapse_probe.CollapseProbe.calibrate(r.images, cfg.z_dim) if probing else None
    if probing and probe is None:
        r.notes.append(f"collapse probe off: {len(r.images)} images are too few to calibrate it")
    alarms: list[str] = []
    last_probe: dict[str, Any] | None = None
    fixed_z = latents(cfg.sample_count, cfg.z_dim, cfg.seed)
    blocks = Vocabulary.from_dict(cfg.conditioning["vocabulary"]).blocks() if cfg.conditioning else None
    # a warm-started EMA continues the source's decay schedule (a restarted ramp would reset it to G)
    ema_offset = int(cfg.warm_started_from["step"]) if cfg.warm_started_from else 0
    step, images_seen, elapsed = start.step, start.images_seen, start.elapsed_s
    last_saved = step if ckpt is not None else None
    last_row: dict[str, Any] | None = dict(ckpt["last_metrics"]) if ckpt and ckpt.get("last_metrics") else None

    def save_checkpoint() -> Path | None:
        return r.outputs.checkpoint(checkpoint_state(
            step=step, images_seen=images_seen, n_images=len(r.cache), elapsed_s=elapsed, config=cfg,
            cache_hash=r.cache.content_hash, world_size=ctx.world_size, models=models, device=r.device,
            last_row=last_row, ada=ada.state_dict() if ada is not None else None,
        )) if ctx.is_main else None

    if ckpt is None:
        r.outputs.sample_grid(0, models, fixed_z)
    window = _Window(r.device)
    t0 = time.monotonic()
    models.g.train()
    models.d.train()
    while True:
        if total is not None and step >= total:
            stopped_by = "already done" if step == start.step else ("epochs" if cfg.epochs else "steps")
            break
        if deadline_s is not None and distributed.any_rank(ctx, elapsed >= deadline_s, r.device):
            stopped_by = "minutes"
            break
        torch.manual_seed(step_seed(cfg.seed, ctx.rank, step))  # exact resume: each step is reseeded
        regularize = (cfg.r1_gamma > 0 or cfg.r2_gamma > 0) and step % cfg.reg_every == 0
        # G's trait sets: the real batch's (None), unless it draws its own (--condition-balance)
        fake_cond = r.batches.fake_conditions(step) if r.batches.draws_fake_conditions else None
        window.add(gan_step(models, r.batches.get(step), cfg, r.device, augment_ops, ada=ada, regularize=regularize,
                            cond=r.batches.conditions(step), blocks=blocks, palette=r.palette, fake_cond=fake_cond))
        update_ema(models, cfg.ema, step + ema_offset, rampup=cfg.ema_rampup)
        step, images_seen = step + 1, images_seen + per_step
        elapsed = start.elapsed_s + time.monotonic() - t0
        probe_due = probe is not None and step % cfg.probe_every == 0
        log_due = step % cfg.log_every == 0 or step == total or probe_due
        checkpoint_due = step % cfg.checkpoint_every == 0
        if not (log_due or checkpoint_due):
            continue
        _check_finite(window, step, r.paths)
        if log_due:
            last_row = _metrics_row(window, step, images_seen / len(r.cache), per_step, elapsed,
                                    classifies=blocks is not None and cfg.condition_aux > 0)
            if ada is not None:
                last_row.update(aug_p=round(float(ada.p), 4), ada_rt=round(float(ada.last_rt), 4))
            if probe_due:
                assert probe is not None
                share = step / total if total else elapsed / deadline_s if deadline_s else None
                warm = collapse_probe.warmed_up(step, cfg.probe_every, images_seen, share)
                shown = models.ema if models.ema is not None else models.g
                last_probe = {"step": step, **probe.measure(shown, step, warm=warm)}
                last_row.update({k: v for k, v in last_probe.items() if k != "step"})
                if last_probe["collapse_suspected"]:
                    line = probe.describe(last_probe)
                    alarms.append(line)
                    log.warning("%s", line)
                    warn(progress, "train", line, step, total, unit="steps")
            r.outputs.log(last_row)
        if checkpoint_due:
            save_checkpoint()
            last_saved = step
        if cfg.sample_every and step % cfg.sample_every == 0:
            r.outputs.sample_grid(step, models, fixed_z)
        if log_due and progress is not None and ctx.is_main:
            fraction = step / total if total else min(1.0, elapsed / deadline_s) if deadline_s else None
            report(progress, "train", step, total, unit="steps", **last_row, total_steps=total, fraction=fraction)
    loop_s = time.monotonic() - t0

    _check_finite(window, step, r.paths)
    distributed.sync_buffers(ctx, *models.weights())
    if step != last_saved:
        latest = save_checkpoint()
    else:
        latest = r.paths.checkpoint(last_saved) if last_saved is not None else None
    digests = _rank_digests(ctx, models)
    r.outputs.finish(step, models, fixed_z)
    done = step - start.step
    return TrainSummary(
        run_name=r.paths.name, run_dir=str(r.paths.root), steps_done=step, steps_this_call=done,
        epochs_done=images_seen / len(r.cache), images_seen=images_seen,
        loss_g=last_row["loss_g"] if last_row else None, loss_d=last_row["loss_d"] if last_row else None,
        d_real=last_row["d_real"] if last_row else None, d_fake=last_row["d_fake"] if last_row else None,
        images_per_s=done * per_step / loop_s if done and loop_s > 0 else None, elapsed_s=elapsed,
        latest_checkpoint=str(latest) if latest else None, device=str(r.device), world_size=ctx.world_size,
        augment=augment_ops, resumed_from=start.step if ckpt is not None else None, stopped_by=stopped_by,
        notes=tuple(r.notes), rank_digests=digests, warm_started_from=cfg.warm_started_from,
        collapse=tuple(alarms), probe=last_probe, canvas=cfg.canvas,
    )


# -- one step ----------------------------------------------------------------------------------------------
def gan_step(
    models: Models, real: torch.Tensor, cfg: TrainConfig, device: torch.device, augment_ops: tuple[str, ...],
    *, ada: AdaptiveStrength | None = None, regularize: bool = False, cond: torch.Tensor | None = None,
    blocks: tuple[tuple[int, int, bool, int | None], ...] | None = None,
    palette: PaletteSnap | None = None, fake_cond: torch.Tensor | None = None,
) -> torch.Tensor:
    """One D update then one G update; returns (loss_g, loss_d, D(x), D(G(z)), traits_d, traits_g) on the device
    (the last two: the auxiliary classifier's loss on the real batch and G's on its fakes; 0 without it).

    ``cond``: a trait-conditioned run's condition vectors of the real batch (training.conditioning); G draws
    the fakes for the same conditions, so both sides follow the collection's trait distribution, and D
    judges each image with its condition (projection). ``fake_cond``: G draws the fakes for these conditions
    instead (``cfg.condition_balance``: trait sets drawn with rarer values more often; D judges each fake with
    its own condition, and G's classifier loss asks for it).

    ``regularize``: this step's D update also carries the R1/R2 penalties (``reg_every`` times their weight,
    StyleGAN2's lazy regularization), through the uncompiled D (it is differentiated twice). ``ada``: the
    adaptive augmentation state, whose p gates each op per image and which D's verdicts on real images feed.

    ``cfg.condition_aux > 0`` (with ``blocks``, the vocabulary's ``Vocabulary.blocks()``): D's auxiliary
    classifier learns the real images' traits (real images only, so G cannot teach it what its own drawings
    mean), and G's loss gains its verdict on the fakes against the traits they were drawn for;
    ``cfg.condition_aux_view``: "clean", both verdicts on the images before DiffAugment, in a pass of their
    own; "uncut", the same pass on the images with every op of the policy but cutout; "both", the mean of
    the augmented and the clean verdicts' losses. ``palette`` (a native grid's snap, when
    ``cfg.condition_aux_snap`` or ``cfg.snap_fakes`` asks for it, :class:`training.grid.PaletteSnap`): with
    ``condition_aux_snap``, that own pass judges G's fakes snapped, straight through; with ``snap_fakes``,
    every verdict on the fakes does (the adversarial loss's and the classifier's, D's step and G's).
    ``cfg.condition_aux_fakes``: D's step also teaches the classifier G's fakes as "drawn by G", in the same
    views as the real images (losses.trait_classification_loss's ``fake_slots``), at that weight beside them.
    """
    m = models
    p = ada.p if ada is not None else None

    def augment(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, augment_ops, p) if augment_ops else x

    b = real.shape[0]
    z = torch.randn(b, cfg.z_dim, device=device)
    d_net = m.d_reg if regularize and m.d_reg is not None else m.d_train
    c = () if cond is None else (cond,)  # the networks' extra argument, when conditioned
    if fake_cond is None:
        fake_cond = cond
    cf = () if fake_cond is None else (fake_cond,)  # the fakes' (the real batch's, unless balanced)
    aux = cfg.condition_aux if cond is not None and blocks is not None else 0.0
    # the classifier's views: a ride on the adversarial pass ("augmented"; "both"), and/or a pass of D of its
    # own on the images before DiffAugment ("clean"; "both") or after every op of it but cutout ("uncut")
    view = cfg.condition_aux_view
    aux_ops = tuple(o for o in augment_ops if o != "cutout") if view == "uncut" else ()
    # (the snapped fakes differ from what the adversarial pass saw, even where the policy has no op)
    aux_palette = palette if cfg.condition_aux_snap else None  # the classifier's own pass of snapped fakes
    own_pass = bool(aux) and view != "augmented" and (aux_ops != tuple(augment_ops) or aux_palette is not None)
    k = {"classify": True} if aux and m.c is None and (view in ("augmented", "both") or not own_pass) else {}

    fk = bool(aux) and cfg.condition_aux_fakes > 0  # the classifier's "drawn by G" slots

    def aux_loss(shared: torch.Tensor | None, net: Any, images: torch.Tensor, target: torch.Tensor,
                 focal: float = 0.0, as_fake: bool = False, slots: bool = True) -> torch.Tensor:
        """The mean of the classifier's views' losses against ``target`` (the images' condition vectors):
        ``shared``, its logits from the adversarial pass (when ``k`` asked for them), and its own pass of
        ``net`` over ``images`` (``own_pass``)."""
        assert blocks is not None
        views = [shared] if k else []
        if own_pass:
            views.append(net(diff_augment(images, aux_ops, p) if aux_ops else images, target, classify=True)[1])
        if fk and not slots:  # the values' logits only (they come first)
            views = [v[:, :target.shape[1]] for v in views]
        return sum(losses.trait_classification_loss(v, target, blocks, focal=focal, fake_slots=fk and slots,
                                                    as_fake=as_fake) for v in views) / len(views)

    def own_loss(net: Any, images: torch.Tensor, target: torch.Tensor, focal: float = 0.0) -> torch.Tensor:
        """The run's own classifier (``--condition-aux-net own``; ``net``: ``m.c_train`` where it learns, the
        bare ``m.c`` in G's step, as D's is ``d_frozen`` there: no DDP all-reduce waits for its gradients) in
        the views ``view`` names: the images as D's adversarial pass sees them ("augmented", "both"), and as
        they are ("clean", "both") or with every op but cutout ("uncut")."""
        assert blocks is not None
        views = []
        if view in ("augmented", "both"):
            views.append(augment(images))
        if view != "augmented":
            views.append(diff_augment(images, aux_ops, p) if aux_ops else images)
        return sum(losses.trait_classification_loss(net(v), target, blocks, focal=focal)
                   for v in views) / len(views)
    with m.autocast(device):
        fake = m.g_train(z, *cf)
        if cfg.snap_fakes and palette is not None:  # D judges (and G is judged on) the fakes as users get them
            fake = palette(fake)
        real_in, fake_in = augment(real), augment(fake.detach())
        if regularize:
            real_in = real_in.detach().requires_grad_(cfg.r1_gamma > 0)
            fake_in = fake_in.detach().requires_grad_(cfg.r2_gamma > 0)
        if cfg.separate_batches:
            real_out, fake_out = d_net(real_in, *c, **k), d_net(fake_in, *cf, **k)
            (real_logits, real_traits), (fake_logits, fake_traits) = (real_out, fake_out) if k else ((real_out, None),
                                                                                                   (fake_out, None))
        else:
            both = d_net(torch.cat([real_in, fake_in]), *(torch.cat([cond, fake_cond]),) if cond is not None else (), **k)
            both, traits = both if k else (both, None)
            real_logits, fake_logits = both[:b], both[b:]
            real_traits = traits[:b] if traits is not None else None
            fake_traits = traits[b:] if traits is not None else None
        loss_d = losses.discriminator_loss(cfg.loss, real_logits, fake_logits, label_smoothing=cfg.label_smoothing)
        traits_d = traits_g = torch.zeros((), device=device)
        if aux and m.c is not None:  # the own classifier learns the real images' traits (its own optimizer)
            traits_d = own_loss(m.c_train, real, cond)
        elif aux:
            traits_d = aux_loss(real_traits, d_net, real, cond)
            if fk:  # and G's fakes as "drawn by G", in the same views (the snapped pass: snapped)
                drawn = fake.detach()
                traits_d = traits_d + cfg.condition_aux_fakes * aux_loss(
                    fake_traits, d_net, drawn if aux_palette is None or cfg.snap_fakes else aux_palette(drawn),
                    fake_cond, as_fake=True)
    if regularize:  # float32, outside autocast: the penalty is a sum of squares of small gradients
        penalty = torch.zeros((), device=device)
        if cfg.r1_gamma > 0:
            penalty = penalty + cfg.r1_gamma / 2 * losses.gradient_penalty(real_logits, real_in)
        if cfg.r2_gamma > 0:
            penalty = penalty + cfg.r2_gamma / 2 * losses.gradient_penalty(fake_logits, fake_in)
        loss_d = loss_d + cfg.reg_every * penalty
    total_d = loss_d + aux * traits_d if aux and m.c is None else loss_d
    if ada is not None:
        ada.accumulate(losses.overfitting_sign(cfg.loss, real_logits, fake_logits))
    m.opt_d.zero_grad(set_to_none=True)
    if m.opt_c is not None:
        m.opt_c.zero_grad(set_to_none=True)
        total_d = total_d + traits_d  # the classifier's own loss, its gradient reaching only its weights
    m.scaler.scale(total_d).backward()
    m.scaler.step(m.opt_d)
    if m.opt_c is not None:
        m.scaler.step(m.opt_c)

    m.d.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    if m.c is not None:
        m.c.requires_grad_(False)
    with m.autocast(device):
        g_fake = m.d_frozen(augment(fake), *cf, **k)
        g_fake_logits, g_fake_traits = g_fake if k else (g_fake, None)
        g_real_logits = None
        if losses.needs_real_logits_for_g(cfg.loss):
            with torch.no_grad():
                g_real_logits = m.d_frozen(augment(real), *c)
        loss_g = losses.generator_loss(cfg.loss, g_fake_logits, g_real_logits)
        if aux and m.c is not None:
            traits_g = own_loss(m.c, fake if aux_palette is None or cfg.snap_fakes else aux_palette(fake), fake_cond,
                                focal=cfg.condition_aux_focal)
        elif aux:
            traits_g = aux_loss(g_fake_traits, m.d_frozen,
                                fake if aux_palette is None or cfg.snap_fakes else aux_palette(fake), fake_cond,
                                focal=cfg.condition_aux_focal, slots=cfg.condition_aux_fakes_g == "slot")
        total_g = loss_g + aux * traits_g if aux else loss_g
    m.opt_g.zero_grad(set_to_none=True)
    m.scaler.scale(total_g).backward()
    m.scaler.step(m.opt_g)
    m.scaler.update()
    m.d.requires_grad_(True)
    if m.c is not None:
        m.c.requires_grad_(True)
    with torch.no_grad():
        d_real, d_fake = real_logits.float().sigmoid().mean(), fake_logits.float().sigmoid().mean()
        return torch.stack([loss_g.float(), loss_d.float(), d_real, d_fake, traits_d.float(), traits_g.float()])


@torch.no_grad()
def update_ema(models: Models, decay_max: float, step: int, *, rampup: float = 10.0) -> None:
    if models.ema is None:
        return
    # ramp up: early steps follow G closely (the decay reaches decay_max after about rampup / (1 - decay_max) steps)
    decay = min(decay_max, (1 + step) / (rampup + step)) if rampup > 0 else decay_max
    torch._foreach_lerp_(list(models.ema.parameters()), list(models.g.parameters()), 1 - decay)
    for eb, b in zip(models.ema.buffers(), models.g.buffers()):
        eb.copy_(b)


def total_steps(cfg: TrainConfig, n_images: int, world_size: int) -> int | None:
    """Steps the run ends at (None when a --minutes budget ends it)."""
    if cfg.minutes is not None:
        return None
    if cfg.epochs is not None:
        return math.ceil(cfg.epochs * n_images / (cfg.batch_size * world_size))
    return cfg.steps or DEFAULT_STEPS


def step_seed(seed: int, rank: int, step: int) -> int:
    return ((seed * 1_000_003 + step) * 4099 + rank) % 2**63


class _Window:
    """Sums of gan_step's statistics over the steps since the last log, kept on the device."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(6, device=device)
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


def _metrics_row(window: _Window, step: int, epoch: float, per_step: int, elapsed: float, *,
                 classifies: bool = False) -> dict[str, Any]:
    """A metrics.jsonl row; ``classifies``: with the auxiliary classifier's losses (``traits_d`` on real
    images, ``traits_g`` on the fakes; loss_g and loss_d stay the adversarial losses)."""
    (loss_g, loss_d, d_real, d_fake, traits_d, traits_g), steps, seconds = window.take()
    row = {
        "step": step, "epoch": round(epoch, 4), "loss_g": loss_g, "loss_d": loss_d, "d_real": d_real,
        "d_fake": d_fake, "images_per_s": round(per_step * steps / seconds, 2), "elapsed_s": round(elapsed, 3),
    }
    if classifies:
        row.update(traits_d=traits_d, traits_g=traits_g)
    return row


def _check_finite(window: _Window, step: int, run: RunPaths) -> None:
    """Stop before a non-finite step can reach a checkpoint (checked at log and checkpoint steps)."""
    if not bool(window.bad):
        return
    latest = checkpoints.list_checkpoints(run)
    raise NftganError(
        f"losses became non-finite before step {step}; training stopped "
        f"(last good checkpoint: {'step ' + str(latest[-1]) if latest else 'none'}). "
        "Try lower --lr-g/--lr-d, --loss hinge or --spectral-norm"
    )


def _rank_digests(ctx: distributed.DistContext, models: Models) -> tuple[str, ...]:
    """DDP: every rank's weight digest (they must agree); empty without DDP."""
    if not ctx.enabled:
        return ()
    digests = tuple(distributed.gather_objects(ctx, distributed.state_digest(*models.weights())))
    if len(set(digests)) != 1:
        raise RuntimeError(f"DDP ranks ended with different weights: {digests}")
    return digests


def _run_lock(run: RunPaths) -> contextlib.AbstractContextManager[None]:
    """One trainer per run directory at a time."""
    return exclusive_lock(
        run.train_lock, f"run {run.name!r} is being trained by another process; wait for it or use another --run"
    )
