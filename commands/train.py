"""CLI commands of this package: ``nftgan train``, ``nftgan sample``, ``nftgan interpolate``.

Each parses its options into the stage's config and calls the stage's public function. Torch is imported
inside the commands so ``nftgan --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.errors import NftganError
from commands._common import config_options, defaults_of
from training.config import InterpolateConfig, SampleConfig, TrainConfig

TRAIN_DEFAULTS, SAMPLE_DEFAULTS, INTERPOLATE_DEFAULTS = TrainConfig(), SampleConfig(), defaults_of(InterpolateConfig)

#: command-line parameters named otherwise than their TrainConfig field
TRAIN_RENAMED = {"size": "size_px", "compile_": "compile"}
_SPEED = "Speed"
_MODEL = "Model"
_OUT = "Outputs"


def _widths(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise NftganError(f"--widths must be comma-separated integers, e.g. 512,256,128,64; got {text!r}") from None


def train_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug (its tensor cache must exist: nftgan prepare).")],
    size: Annotated[int, typer.Option("--size", help="The tensor cache's size in pixels: 32, 64, 128 or 256.")] = TRAIN_DEFAULTS.size_px,
    arch: Annotated[str, typer.Option(help="dcgan, or mlp (the fully connected baseline).")] = TRAIN_DEFAULTS.arch,
    steps: Annotated[Optional[int], typer.Option(help="Train this many steps (default 10000).")] = TRAIN_DEFAULTS.steps,
    epochs: Annotated[Optional[float], typer.Option(help="Or this many passes over the cache.")] = TRAIN_DEFAULTS.epochs,
    minutes: Annotated[Optional[float], typer.Option(help="Or this many minutes of training (all sessions).")] = TRAIN_DEFAULTS.minutes,
    batch_size: Annotated[
        int, typer.Option(help="Images per step (per process under torchrun).")
    ] = TRAIN_DEFAULTS.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = TRAIN_DEFAULTS.device,
    run: Annotated[Optional[str], typer.Option(help="Run name (default <arch>-<size>px-<time>).")] = TRAIN_DEFAULTS.run,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its last good checkpoint.")] = TRAIN_DEFAULTS.resume,
    augment: Annotated[
        str, typer.Option(help="DiffAugment: auto (under 50k images color,translation,cutout, without cutout where D "
                          "classifies traits; recorded as resolved), none, or e.g. color,translation,cutout,flip.")
    ] = TRAIN_DEFAULTS.augment,
    loss: Annotated[
        str, typer.Option(help="bce (non-saturating, with logits), hinge, or rpgan (R3GAN's relativistic pairing).")
    ] = TRAIN_DEFAULTS.loss,
    r1_gamma: Annotated[
        float, typer.Option(help="R1 penalty on real images, gamma/2 E|grad D|^2 (0 = off).")
    ] = TRAIN_DEFAULTS.r1_gamma,
    r2_gamma: Annotated[float, typer.Option(help="R2: the same on generated images (0 = off).")] = TRAIN_DEFAULTS.r2_gamma,
    reg_every: Annotated[
        int, typer.Option(help="Lazy regularization: R1/R2 every N steps, weighted N times.")
    ] = TRAIN_DEFAULTS.reg_every,
    ada_target: Annotated[
        float, typer.Option(help="Adaptive augmentation: p follows D's r_t to this target (0 = fixed DiffAugment).")
    ] = TRAIN_DEFAULTS.ada_target,
    ada_kimg: Annotated[float, typer.Option(help="ADA speed: kimg for p to go 0 -> 1.")] = TRAIN_DEFAULTS.ada_kimg,
    ada_every: Annotated[int, typer.Option(help="ADA: steps between adjustments.")] = TRAIN_DEFAULTS.ada_every,
    grid: Annotated[
        str, typer.Option(help="Pixel art: native (train on the collection's own grid, drawn back on the cache's "
                          "canvas), auto (native when the cache has a square pixel grid) or cache.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.grid,
    d_norm: Annotated[str, typer.Option(help="batch or none: normalization in D.", rich_help_panel=_MODEL)] = TRAIN_DEFAULTS.d_norm,
    mbstd_group: Annotated[
        int, typer.Option(help="Minibatch stddev in D: images per group (0 = off).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.mbstd_group,
    condition: Annotated[
        str, typer.Option(help="traits: give G and D each image's traits (from the cache's traits.csv); auto: "
                          "traits when the collection lists them; none.",
                          rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition,
    condition_on: Annotated[
        Optional[str], typer.Option(help="Trait types to condition on, comma-separated (default: those on 90% of "
                                    "the tokens with at most 64 values).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_on,
    condition_min_count: Annotated[
        int, typer.Option(help="A trait value on fewer tokens is folded into '(other)'.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_min_count,
    condition_aux: Annotated[
        float, typer.Option(help="A conditioned run: weight of D's auxiliary trait classifier, which G is trained "
                            "to satisfy (AC-GAN; 0 = off).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux,
    condition_aux_view: Annotated[
        str, typer.Option(help="What the auxiliary classifier judges: augmented (the images D's loss sees), "
                          "uncut (augmented but for cutout), clean (before DiffAugment) or both (augmented and "
                          "clean); all but augmented take a second pass of D.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_view,
    condition_aux_snap: Annotated[
        bool, typer.Option("--condition-aux-snap/--no-condition-aux-snap",
                           help="A native-grid run: the classifier's own pass judges G's fakes snapped to the "
                           "palette, as the export's trait check sees them.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_snap,
    condition_aux_focal: Annotated[
        float, typer.Option(help="A conditioned run: G's side of the classifier's loss weights each fake by "
                            "(1 - p)**FOCAL, p the classifier's probability of the asked traits (focal loss; "
                            "0 = off).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_focal,
    condition_balance: Annotated[
        float, typer.Option(help="A conditioned run: G's trait sets in training are the collection's, drawn with "
                            "each type's value shares raised to 1 - BALANCE (0 = as in the collection, 1 = every "
                            "value alike), so rare values are asked for more often.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_balance,
    condition_balance_draw: Annotated[
        str, typer.Option(help="With --condition-balance, what is drawn balanced: asks (G's trait sets only) or "
                          "batches (the real batches, G asked for their sets).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_balance_draw,
    d_contrast: Annotated[
        bool, typer.Option("--d-contrast/--no-d-contrast",
                           help="D also sees each image's local contrast, so details a few shades from their "
                           "surroundings (a mouth on a deep skin) reach it plainly.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.d_contrast,
    condition_mapping: Annotated[
        int, typer.Option(help="A conditioned run: G embeds the trait set linearly (0) or through a mapping "
                          "network of this many hidden layers, so that values of different types interact.",
                          rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_mapping,
    condition_input: Annotated[
        bool, typer.Option("--condition-input/--no-condition-input",
                           help="A conditioned run: G's first layer also takes the trait embedding beside z, so "
                           "the traits shape the layout from the start.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_input,
    condition_aux_fakes: Annotated[
        float, typer.Option(help="A conditioned run: D's trait classifier also learns G's fakes as a class of "
                            "their own per trait type, their loss at this weight beside the real images' (0 = off), "
                            "so a partial drawing of a trait does not pass for it.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_fakes,
    condition_aux_fakes_g: Annotated[
        str, typer.Option(help="With --condition-aux-fakes, what G's classifier loss asks: values (the asked value "
                          "among the type's values) or slot (also against the \"drawn by G\" slot).",
                          rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_fakes_g,
    condition_aux_net: Annotated[
        str, typer.Option(help="A conditioned run: the auxiliary trait classifier is a head on D (d) or a "
                          "network of its own (own) that learns the real images' traits beside D and judges "
                          "G's fakes.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.condition_aux_net,
    palette_head: Annotated[
        str, typer.Option(help="A native-grid run: G draws every pixel from a softmax over the collection's "
                          "palette, its samples the most likely colour: straight (that colour in training too, "
                          "straight-through), soft (the softmax-weighted palette in training) or off (RGB).",
                          rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.palette_head,
    snap_fakes: Annotated[
        bool, typer.Option("--snap-fakes/--no-snap-fakes",
                           help="A native-grid run: D judges G's fakes snapped to the collection's palette "
                           "(straight-through), as samples and exports are drawn.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.snap_fakes,
    snap_rule: Annotated[
        str, typer.Option(help="How training's palette snaps (--condition-aux-snap, --snap-fakes) pick a pixel's "
                          "colour: rgb (the nearest of the palette) or cells (as samples are snapped: CIELAB, "
                          "preferring the colours the collection draws at that cell).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.snap_rule,
    probe_every: Annotated[
        int, typer.Option(help="Collapse alarm: steps between diversity probes (0 = off).", rich_help_panel=_OUT)
    ] = TRAIN_DEFAULTS.probe_every,
    spectral_norm: Annotated[
        bool, typer.Option("--spectral-norm/--no-spectral-norm", help="Spectral norm in D.", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.spectral_norm,
    ema: Annotated[float, typer.Option(help="EMA generator decay (0 = off); samples use it.")] = TRAIN_DEFAULTS.ema,
    ema_rampup: Annotated[
        float, typer.Option(help="EMA ramp-up: decay min(ema, (1+step)/(this+step)); 0 = none.")
    ] = TRAIN_DEFAULTS.ema_rampup,
    amp: Annotated[
        str,
        typer.Option(help="auto (bf16 where native: CUDA, AVX512-BF16/AMX CPUs), bf16, fp16 or off.", rich_help_panel=_SPEED),
    ] = TRAIN_DEFAULTS.amp,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile G and D.", rich_help_panel=_SPEED)] = TRAIN_DEFAULTS.compile,
    data_on_device: Annotated[
        str, typer.Option(help="auto, resident (whole cache on the device) or stream.", rich_help_panel=_SPEED)
    ] = TRAIN_DEFAULTS.data_on_device,
    z_dim: Annotated[int, typer.Option(help="Latent size.", rich_help_panel=_MODEL)] = TRAIN_DEFAULTS.z_dim,
    base_width: Annotated[
        int, typer.Option(help="ngf = ndf (widths double per stage up to 8x).", rich_help_panel=_MODEL)
    ] = TRAIN_DEFAULTS.base_width,
    widths: Annotated[
        Optional[str],
        typer.Option(help="Explicit G widths, smallest stage first, e.g. 1024,512,256,128.", rich_help_panel=_MODEL),
    ] = None,
    dropout: Annotated[float, typer.Option(help="Dropout in D.", rich_help_panel=_MODEL)] = TRAIN_DEFAULTS.dropout,
    label_smoothing: Annotated[float, typer.Option(help="One-sided: real targets 1 - this (bce).")] = TRAIN_DEFAULTS.label_smoothing,
    separate_batches: Annotated[
        bool, typer.Option("--separate-batches/--joint-batches", help="D sees real and fake in separate batches.")
    ] = TRAIN_DEFAULTS.separate_batches,
    lr_g: Annotated[float, typer.Option(help="Generator learning rate (Adam).")] = TRAIN_DEFAULTS.lr_g,
    lr_d: Annotated[float, typer.Option(help="Discriminator learning rate (Adam).")] = TRAIN_DEFAULTS.lr_d,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = TRAIN_DEFAULTS.beta1,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = TRAIN_DEFAULTS.beta2,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.", rich_help_panel=_OUT)] = TRAIN_DEFAULTS.checkpoint_every,
    keep_last: Annotated[int, typer.Option(help="Checkpoints kept (plus the best).", rich_help_panel=_OUT)] = TRAIN_DEFAULTS.keep_last,
    sample_every: Annotated[
        int, typer.Option(help="Steps between sample grids (0: start and end).", rich_help_panel=_OUT)
    ] = TRAIN_DEFAULTS.sample_every,
    sample_count: Annotated[int, typer.Option(help="Images in each sample grid.", rich_help_panel=_OUT)] = TRAIN_DEFAULTS.sample_count,
    log_every: Annotated[int, typer.Option(help="Steps between metrics lines.", rich_help_panel=_OUT)] = TRAIN_DEFAULTS.log_every,
    seed: Annotated[int, typer.Option(help="Seed of weights, batches and noise.")] = TRAIN_DEFAULTS.seed,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Deterministic kernels only (slower).")
    ] = TRAIN_DEFAULTS.deterministic,
    warm_start: Annotated[
        str,
        typer.Option(help="Start a new run from: none, champion (the collection's), RUN (its best, else latest "
                     "checkpoint) or RUN@STEP; weights, EMA and optimizer state, then --steps more."),
    ] = TRAIN_DEFAULTS.warm_start,
    recipe: Annotated[
        Optional[str],
        typer.Option(help="A named recipe of training/recipes.py (cpu: the defaults, the best measured at "
                     "train --minutes 10; gpu: for long GPU budgets; or any benchmark row of docs/quality.md); "
                     "options given here override it."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Train a GAN on a collection's tensor cache; --resume continues a run exactly where it stopped.

    Several GPUs: torchrun --nproc_per_node N -m commands -- train SLUG ... (the `--` keeps torchrun
    from reading nftgan's options).
    """
    from commands._common import progress_enabled, workspace
    from commands._progress import progress_bars

    fields = {**config_options(ctx, TrainConfig, TRAIN_RENAMED), "widths": _widths(widths)}
    if recipe is not None:
        from training.recipes import recipe_config

        def given_here(field: str) -> bool:  # by name: typer may bring its own click
            param = next((p for p, f in TRAIN_RENAMED.items() if f == field), field)
            source = ctx.get_parameter_source(param)
            return source is not None and source.name != "DEFAULT"

        given = {k: v for k, v in fields.items() if given_here(k)}
        config = recipe_config(recipe, **given)
    else:
        config = TrainConfig(**fields)
    from training.train import train

    is_main = os.environ.get("RANK", "0") == "0"
    with progress_bars(is_main and progress_enabled(), echo=is_main and not as_json) as progress:
        summary = train(workspace(ctx), slug, config, progress=progress)
    if is_main:
        typer.echo(json.dumps(summary.to_dict(), sort_keys=True) if as_json else summary.describe())


def sample_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    run: Annotated[Optional[str], typer.Argument(help="Run name (default: the collection's champion).")] = None,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="latest, best or a step number (default: the champion's step, else latest)."),
    ] = SAMPLE_DEFAULTS.checkpoint,
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = SAMPLE_DEFAULTS.n,
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = SAMPLE_DEFAULTS.seed,
    out: Annotated[Optional[Path], typer.Option(help="Write one grid PNG here.")] = SAMPLE_DEFAULTS.out,
    out_dir: Annotated[Optional[Path], typer.Option(help="Or write one PNG per image into this folder.")] = SAMPLE_DEFAULTS.out_dir,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = SAMPLE_DEFAULTS.device,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA generator if the run has one.")] = SAMPLE_DEFAULTS.ema,
    pixel_art: Annotated[
        Optional[bool],
        typer.Option("--pixel-art/--no-pixel-art", help="Snap to the collection's pixel grid and palette "
                     "(default: on when prepare found the collection drawn as pixel art)."),
    ] = SAMPLE_DEFAULTS.pixel_art,
    before_after: Annotated[
        Optional[Path],
        typer.Option(help="Write the raw and snapped grids side by side here (default: beside the grid)."),
    ] = SAMPLE_DEFAULTS.before_after,
    traits: Annotated[
        Optional[list[str]],
        typer.Option(help="A trait-conditioned run: ask for traits, e.g. 'type=Alien,accessory=Earring'; each "
                     "--traits is one row of --n images."),
    ] = SAMPLE_DEFAULTS.traits,
) -> None:
    """Generate images at full size from a run's checkpoint (default: the champion): a grid, or single PNGs."""
    from commands._common import workspace
    from training.sampling import sample

    config = SampleConfig(**config_options(ctx, SampleConfig))
    result = sample(workspace(ctx), slug, run, config)
    paths = result.paths
    where = paths[0] if len(paths) == 1 else f"{len(paths)} images in {paths[0].parent}"
    typer.echo(f"wrote {where} ({result.run} step {result.step})")
    if result.pixel_art is not None:
        w, h = result.pixel_art.grid_wh
        typer.echo(f"snapped to the {w}x{h} pixel grid and {len(result.pixel_art.palette)}-colour palette")
    if result.before_after is not None:
        typer.echo(f"wrote {result.before_after} (before | after)")


def interpolate_cmd(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Collection slug.")],
    out: Annotated[Path, typer.Option(help="The GIF to write.")],
    run: Annotated[Optional[str], typer.Argument(help="Run name (default: the collection's champion).")] = None,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="latest, best or a step number (default: the champion's step, else latest)."),
    ] = INTERPOLATE_DEFAULTS.checkpoint,
    seed: Annotated[int, typer.Option(help="Seed of the keyframe latents.")] = INTERPOLATE_DEFAULTS.seed,
    keyframes: Annotated[int, typer.Option(help="Latent points visited, in a loop.")] = INTERPOLATE_DEFAULTS.keyframes,
    frames_between: Annotated[int, typer.Option(help="Frames from one keyframe to the next.")] = INTERPOLATE_DEFAULTS.frames_between,
    n: Annotated[int, typer.Option("--n", help="Interpolations side by side.")] = INTERPOLATE_DEFAULTS.n,
    frame_ms: Annotated[int, typer.Option(help="Milliseconds per frame.")] = INTERPOLATE_DEFAULTS.frame_ms,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = INTERPOLATE_DEFAULTS.device,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA generator if the run has one.")] = INTERPOLATE_DEFAULTS.ema,
    traits: Annotated[
        Optional[str], typer.Option(help="A trait-conditioned run: hold these traits while z moves (default: the "
                                    "traits the first keyframe draws).")
    ] = INTERPOLATE_DEFAULTS.traits,
) -> None:
    """Write a looping GIF that walks through the generator's latent space."""
    from commands._common import workspace
    from training.sampling import interpolate

    config = InterpolateConfig(**config_options(ctx, InterpolateConfig))
    typer.echo(f"wrote {interpolate(workspace(ctx), slug, run, config)}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``sample`` and ``interpolate`` to ``app``."""
    app.command("train")(train_cmd)
    app.command("sample")(sample_cmd)
    app.command("interpolate")(interpolate_cmd)
