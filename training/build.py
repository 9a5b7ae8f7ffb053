"""Everything a training run is built from, before its first step: where it resumes, the models, the
optimizers, the EMA copy, mixed precision, ``torch.compile`` and DDP wrappers, and the batches.

The loop in :mod:`training.train` then only calls what is built here.
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass, replace
from typing import Any

import torch

from pipeline.cache import TensorCache
from pipeline.errors import NftganError
from pipeline.workspace import RunPaths
from training import checkpoints, devices, distributed
from training.conditioning import Vocabulary, balance_weights
from training.config import OWN_CLASSIFIER_LR, OWN_CLASSIFIER_WIDTH, TrainConfig
from training.data import DeviceBatches
from training.grid import head_palette
from training.models import TraitNet, make_discriminator, make_generator
from training.warm import WarmStart


@dataclass
class Models:
    """The weights that train, and what the loop calls them through."""

    g: torch.nn.Module
    d: torch.nn.Module
    ema: torch.nn.Module | None  # a slowly following copy of g (what samples and checkpoints show)
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    g_train: Any  # g behind DDP and/or torch.compile
    d_train: Any
    d_frozen: Any  # d compiled, without DDP: G's step reads D, never updates it
    amp_dtype: torch.dtype | None
    d_reg: Any = None  # d behind DDP, never compiled: gradient penalties differentiate it twice
    c: torch.nn.Module | None = None  # the run's own trait classifier (--condition-aux-net own), else None
    opt_c: torch.optim.Optimizer | None = None
    c_train: Any = None  # c behind DDP and/or torch.compile

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def weights(self) -> list[torch.nn.Module]:
        return [m for m in (self.g, self.d, self.ema, self.c) if m is not None]


@dataclass(frozen=True)
class Counters:
    """Where the run stands at its first step (0, or what the checkpoint says)."""

    step: int = 0
    images_seen: int = 0
    elapsed_s: float = 0.0


def resume_point(
    run: RunPaths, config: TrainConfig, cache: TensorCache, ctx: distributed.DistContext, slug: str,
    notes: list[str],
) -> dict[str, Any] | None:
    """The checkpoint to continue from (None: a fresh start), after checking it fits this config and cache."""
    existing = run.checkpoint_files()
    if existing and not config.resume:
        raise NftganError(
            f"run {run.name!r} already has checkpoints: pass --resume to continue it, or choose another --run"
        )
    if not config.resume:
        return None
    step = None
    ckpt = None
    if ctx.is_main:
        ckpt, found_notes = checkpoints.newest_loadable(run)
        notes += found_notes
        step = ckpt["step"] if ckpt is not None else None
    step = distributed.broadcast_object(ctx, step)
    if step is None:
        return None
    if not ctx.is_main:
        ckpt = checkpoints.read_checkpoint(run.checkpoint(step))
    assert ckpt is not None
    saved = recorded_augment(TrainConfig.from_dict(ckpt["config"]), len(cache))
    changed = saved.differences(config)
    if config.augment.strip().lower() == "auto":  # "auto" on a resume: the run's own policy (resolve_augment)
        changed = [k for k in changed if k != "augment"]
    if changed:
        detail = ", ".join(f"{k} {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in changed)
        raise NftganError(
            f"--resume of run {run.name!r} with different options ({detail}): "
            "pass the run's own options or start another --run"
        )
    if ckpt["cache_content_hash"] != cache.content_hash:
        raise NftganError(
            f"the {config.size_px}px cache of {slug!r} changed since run {run.name!r} was checkpointed "
            "(re-prepared?): start another --run"
        )
    if ckpt["world_size"] != ctx.world_size:
        notes.append(
            f"resumed with {ctx.world_size} process(es) instead of {ckpt['world_size']}: "
            "batches differ from an uninterrupted run"
        )
    return ckpt


def recorded_augment(saved: TrainConfig, n_images: int) -> TrainConfig:
    """A checkpoint's config with its augmentation policy as it trained: a config recorded as "auto" predates
    the recorded resolution, and its "auto" meant the DiffAugment ops ``augment_ops`` reads from it."""
    if saved.augment.strip().lower() != "auto":
        return saved
    return replace(saved, augment=",".join(saved.augment_ops(n_images)) or "none")


def resolve_augment(config: TrainConfig, ckpt: dict[str, Any] | None, n_images: int) -> TrainConfig:
    """``config`` with "auto" augmentation resolved, as train() records it: a resumed run keeps the policy it
    trained with (exact resume, whatever "auto" means today); a fresh run takes ``resolved_augment``."""
    if config.augment.strip().lower() != "auto":
        return config
    if ckpt is not None:
        return replace(config, augment=recorded_augment(TrainConfig.from_dict(ckpt["config"]), n_images).augment)
    return replace(config, augment=config.resolved_augment(n_images))


def build_models(
    config: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None, ctx: distributed.DistContext,
    ckpt: dict[str, Any] | None, warm: WarmStart | None = None, *, cond_dim: int = 0,
    pool: tuple[Any, Any] | None = None,
) -> tuple[Models, Counters]:
    """Models, optimizers, EMA, scaler (restored from ``ckpt`` when resuming, or weights, EMA and optimizer
    moments from ``warm`` for a warm start), wrapped for DDP/compile. ``cond_dim``: the length of a
    trait-conditioned run's condition vectors (conditional G, projection D)."""
    cfg, dev = config, device
    if cfg.deterministic:
        if dev.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it at first use
        torch.use_deterministic_algorithms(True)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and device
    widths = cfg.resolved_widths()
    g = make_generator(cfg.arch, cfg.model_px, cfg.z_dim, widths, cond_dim=cond_dim,
                       pool_size=0 if pool is None else len(pool[0]), cond_mapping=cfg.condition_mapping,
                       cond_input=cfg.condition_input,
                       **head_palette(cfg.canvas))
    if pool is not None:  # the collection's trait sets, for a call with latents only (sample grids, probes)
        g.set_pool(torch.as_tensor(pool[0], dtype=torch.float32), torch.as_tensor(pool[1], dtype=torch.float32))
    d = make_discriminator(cfg.arch, cfg.model_px, widths, spectral_norm=cfg.spectral_norm, dropout=cfg.dropout,
                           norm=cfg.d_norm, mbstd_group=cfg.mbstd_group, cond_dim=cond_dim,
                           classify=cfg.condition_aux > 0 and not own_classifier(cfg), fake_slots=fake_slots(cfg),
                           contrast=cfg.d_contrast)
    c = TraitNet(cond_dim, OWN_CLASSIFIER_WIDTH) if own_classifier(cfg) and cond_dim else None
    memory_format = torch.channels_last if devices.channels_last(dev) else torch.preserve_format
    g, d = g.to(dev, memory_format=memory_format), d.to(dev, memory_format=memory_format)
    c = c.to(dev, memory_format=memory_format) if c is not None else None
    ema = copy.deepcopy(g).eval().requires_grad_(False) if cfg.ema > 0 else None
    fused = True if dev.type == "cuda" else None
    betas = (cfg.beta1, cfg.beta2)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=betas, fused=fused)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)
    opt_c = torch.optim.Adam(c.parameters(), lr=OWN_CLASSIFIER_LR, fused=fused) if c is not None else None
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    counters = Counters()
    if ckpt is not None:
        g.load_state_dict(ckpt["generator"])
        d.load_state_dict(ckpt["discriminator"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        opt_g.load_state_dict(ckpt["opt_g"])
        opt_d.load_state_dict(ckpt["opt_d"])
        if c is not None and opt_c is not None:
            c.load_state_dict(ckpt["classifier"])
            opt_c.load_state_dict(ckpt["opt_c"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch_cpu"])
        counters = Counters(int(ckpt["step"]), int(ckpt["images_seen"]), float(ckpt["elapsed_s"]))
    elif warm is not None:
        load_warm_start(warm, g, d, ema, opt_g, opt_d, c, opt_c)

    # what the loop calls: DDP wrappers (gradient all-reduce) and compiled graphs over the same weights
    g_train, d_train, d_frozen, c_train = g, d, d, c
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dev.index] if dev.type == "cuda" else None
        g_train, d_train = DDP(g, device_ids=ids), DDP(d, device_ids=ids)
        c_train = DDP(c, device_ids=ids) if c is not None else None
    d_reg = d_train
    if cfg.compile:
        g_train, d_train = torch.compile(g_train), torch.compile(d_train)
        d_frozen = torch.compile(d)
        c_train = torch.compile(c_train) if c_train is not None else None
    models = Models(g, d, ema, opt_g, opt_d, scaler, g_train, d_train, d_frozen, amp_dtype, d_reg, c, opt_c, c_train)
    return models, counters


def load_warm_start(
    warm: WarmStart, g: torch.nn.Module, d: torch.nn.Module, ema: torch.nn.Module | None,
    opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, c: torch.nn.Module | None = None,
    opt_c: torch.optim.Optimizer | None = None,
) -> None:
    """Weights, EMA and optimizer moments of ``warm``; the optimizers keep this run's hyperparameters. ``c``:
    the run's own trait classifier (the source has one too: ``condition_aux_net`` is a shape field)."""
    state = warm.state
    try:
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        if ema is not None:  # a source trained without EMA: the EMA starts as its generator
            ema.load_state_dict(state["ema"] if state.get("ema") is not None else state["generator"])
        if c is not None:
            c.load_state_dict(state["classifier"])
        for opt, key in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_c, "opt_c")):
            if opt is None:
                continue
            mine = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
            opt.load_state_dict(state[key])
            for group, hyper in zip(opt.param_groups, mine):
                group.update(hyper)  # lr, betas, fused...: this run's options, not the source's
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NftganError(
            f"cannot warm-start from run {warm.run!r} step {warm.step}: its checkpoint does not fit this "
            f"model ({first})"
        ) from e


def own_classifier(cfg: TrainConfig) -> bool:
    """Whether the run's auxiliary trait classifier is a network of its own (``--condition-aux-net own``)."""
    return cfg.condition_aux > 0 and cfg.condition_aux_net == "own"


def fake_slots(cfg: TrainConfig) -> int:
    """How many "drawn by G" logits D's classifier head adds (``--condition-aux-fakes``): one per trait type."""
    if not (cfg.condition_aux_fakes > 0 and cfg.condition_aux > 0 and cfg.conditioning):
        return 0
    return len(Vocabulary.from_dict(cfg.conditioning["vocabulary"]).types)


def build_batches(
    config: TrainConfig, images: Any, device: torch.device, ctx: distributed.DistContext, start: Counters,
    conditions: Any = None,
) -> DeviceBatches:
    """Batches of ``images`` (the cache's, or their native grid: training.grid), with their conditions. With
    ``config.condition_balance`` (training.conditioning.balance_weights), G draws its own trait sets with the
    balanced weights (``condition_balance_draw`` "asks"), or the real batches are drawn with them and G asked
    for theirs ("batches")."""
    weights = None
    if conditions is not None and config.condition_balance > 0 and config.conditioning:
        blocks = Vocabulary.from_dict(config.conditioning["vocabulary"]).blocks()
        weights = balance_weights(conditions, blocks, config.condition_balance)
    by_batches = config.condition_balance_draw == "batches"
    return DeviceBatches(
        images, batch_size=config.batch_size, device=device, seed=config.seed,
        world_size=ctx.world_size, rank=ctx.rank, mode=config.data_on_device,
        start_step=start.step, images_seen_at_start=start.images_seen, conditions=conditions,
        fake_weights=None if by_batches else weights, real_weights=weights if by_batches else None,
    )  # fmt: skip
