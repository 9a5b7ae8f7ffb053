"""``TrainConfig``: the options of ``nftgan train``, validated when constructed, saved as the run's config.json.

No torch import here: the CLI builds a config (and fails on a bad option) before loading torch.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.cache import DEFAULT_SIZE_PX
from pipeline.errors import NftganError
from pipeline.workspace import validate_run_name

ARCHS = ("dcgan", "mlp")
LOSSES = ("bce", "hinge", "rpgan")  # rpgan: relativistic pairing (R3GAN), D judges D(x) - D(G(z))
D_NORMS = ("batch", "none")
GRIDS = ("cache", "native", "auto")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DATA_MODES = ("auto", "resident", "stream")
AUGMENT_OPS = ("color", "translation", "cutout", "flip")
DEFAULT_AUGMENT = "color,translation,cutout"
# what "auto" resolves to for a run whose D also classifies traits (conditioned, condition_aux > 0): the
# default row's policy (training.recipes.DEFAULT_ROW, docs/quality.md)
DEFAULT_AUGMENT_CLASSIFIED = "color,translation,cutout"
AUGMENT_AUTO_MAX_IMAGES = 50_000  # "auto" turns DiffAugment on for collections smaller than this
DEFAULT_STEPS = 10_000
WARM_START_KINDS = ("none", "champion")  # or RUN, RUN@STEP, RUN@best, RUN@latest
_WARM_AT = re.compile(r"^(?P<run>[^@]+)(@(?P<which>\d+|best|latest))?$")

# What a field added after a run was saved means for that run: the behaviour before the field existed, so a
# saved config keeps its meaning when a default moves (a missing field takes this, not today's default)
BEFORE_THE_FIELD: dict[str, Any] = {
    "d_norm": "batch", "mbstd_group": 0, "grid": "cache", "r1_gamma": 0.0, "r2_gamma": 0.0, "reg_every": 1,
    "ada_target": 0.0, "ada_kimg": 100.0, "ada_every": 4, "ema_rampup": 10.0, "probe_every": 0, "canvas": None,
    "condition": "none", "condition_on": None, "condition_min_count": 5, "conditioning": None,
    "condition_aux": 0.0, "condition_aux_view": "augmented", "condition_aux_snap": False,
    "condition_aux_focal": 0.0, "palette_head": "off", "snap_fakes": False, "snap_rule": "rgb",
    "condition_balance": 0.0, "condition_aux_fakes": 0.0, "condition_aux_fakes_g": "slot",
    "condition_balance_draw": "asks", "condition_mapping": 0, "d_contrast": False, "condition_aux_net": "d",
    "condition_input": False,
}
CONDITIONS = ("none", "traits", "auto")
AUX_VIEWS = ("augmented", "uncut", "clean", "both")
PALETTE_HEADS = ("off", "straight", "soft")
SNAP_RULES = ("rgb", "cells")
FAKES_G = ("values", "slot")
BALANCE_DRAWS = ("asks", "batches")
AUX_NETS = ("d", "own")
# the optimizer of a run's own trait classifier (--condition-aux-net own): Adam at this learning rate, default
# betas (a plain supervised classifier, as evaluation's, not one of the GAN's players)
OWN_CLASSIFIER_LR = 1e-3
OWN_CLASSIFIER_WIDTH = 16  # channels of its first conv block (doubled twice), as evaluation's

# Fields that may change when a run is resumed: how long to train, how often to write, where and how fast
# to run (a run started on a GPU in bf16 may continue on a CPU). Everything else shapes the training.
RESUMABLE_CHANGES = frozenset(
    {
        "steps", "epochs", "minutes", "resume", "device", "amp", "compile", "data_on_device", "deterministic",
        "checkpoint_every", "keep_last", "sample_every", "log_every", "run",
        # a resumed run continues from its own checkpoint: where it was warm-started from stays recorded
        "warm_start", "warm_started_from",
        # recorded by train() from the cache (a native-grid run's canvas, a conditioned run's vocabulary),
        # checked through the cache hash
        "canvas", "conditioning",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Field names are the ``nftgan train`` options."""

    size_px: int = DEFAULT_SIZE_PX
    arch: str = "dcgan"
    # when to stop: at most one of these; none means DEFAULT_STEPS steps
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int = 16  # per process (DDP: the global batch is batch_size * world size)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    run: str | None = None  # default: <arch>-<size>px-<UTC timestamp>
    resume: bool = False
    # model
    z_dim: int = 100
    # ngf = ndf; widths default to base * 2**k per stage, capped at base * 8. The defaults (width 16, batch 16,
    # EMA 0.98, --condition auto with the auxiliary classifier) are the recipe docs/quality.md measured best at
    # `train --minutes 10` on the 10,000-token collection (its "demo-w16-b16-cond-ac5-native-both-snap-cin" row, on the
    # pixel grid when the cache has one; "demo-w16-b16" where a collection lists no traits): a small model at many
    # updates, told each image's traits. Width 16 at batch 64 (chosen once at 90 CPU seconds) drew a handful
    # of faces at 10 minutes
    base_width: int = 16
    widths: tuple[int, ...] = ()  # explicit generator widths, smallest stage first (D mirrors them)
    spectral_norm: bool = False  # in D (hinge + spectral norm: better at 3 minutes, worse at 10; docs/quality.md)
    dropout: float = 0.0  # in the discriminator
    d_norm: str = "batch"  # batch norm in D's inner layers (never with spectral norm) | none
    mbstd_group: int = 0  # minibatch standard deviation in D (ProGAN): images per group; 0 turns it off
    # D's input also carries each image's local contrast (training.models.local_contrast): a detail a few
    # shades from its surroundings (a mouth on the deepest skin) reaches D as plainly as a bright one. Off: at
    # `train --minutes 10` it drew far worse (recall 0.07 against 0.26; docs/quality.md, twelfth session)
    d_contrast: bool = False
    # pixel art: "native" trains on the collection's own grid (cache/<size>/pixel-art.json: a 24x24 token
    # trains as 24x24) and draws samples back onto the cache's canvas; "auto" does so when the cache has a
    # square pixel grid (the default: on the 10,000-token collection at 10 minutes it beat the padded 32 px
    # cache on trait_match, conditional accuracy and trait_fd, docs/quality.md); "cache" trains on the
    # cache's pixels as they are
    grid: str = "auto"
    # a native-grid run: G draws every pixel from a softmax over the collection's palette colours
    # (training.models.PaletteHead) instead of free RGB, and its samples are each pixel's most likely colour:
    # "straight", the chosen colour in training too (the softmax's gradient backward: straight-through);
    # "soft", the softmax-weighted palette in training (D pushes it towards single colours); "off": RGB
    palette_head: str = "off"
    # a native-grid run: D judges G's fakes snapped to the collection's palette (each pixel its nearest palette
    # colour, Euclidean; straight-through gradients to G's colours), as sample and export give them to users, so
    # G is judged on what the snap makes of its in-between colours (speckles, another hair) and not on them
    snap_fakes: bool = False
    # how training's snaps (--condition-aux-snap, --snap-fakes) choose each pixel's palette colour: "rgb", the
    # nearest of the whole palette in RGB; "cells", the rule of the snap users get (training.pixelart): the
    # nearest in CIELAB, then a colour the collection draws at that cell when one is at most CELL_MARGIN
    # farther. "rgb" stays the default: at `train --minutes 10` on the 10,000-token collection "cells" drew
    # the asked mouth 0.86 ± 0.01 against 0.81 ± 0.05 (snapped, 5 seeds each) but the eyes 0.82 ± 0.02
    # against 0.87 ± 0.06, and exports of 1,000 from its checkpoints missed the collection's eye shares (one
    # ran out of draws, one came out at total variation 0.052) where the default's held 0.035 (docs/quality.md)
    snap_rule: str = "rgb"
    # objective and regularization
    loss: str = "bce"  # bce (with logits, non-saturating G loss) | hinge | rpgan
    label_smoothing: float = 0.0  # one-sided: real targets are 1 - label_smoothing (bce only)
    # zero-centred gradient penalties (gamma / 2 * E||grad D||^2) on real (R1) and generated (R2) images;
    # with reg_every > 1 they are applied lazily, every reg_every steps, scaled by reg_every (StyleGAN2)
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0
    reg_every: int = 1
    separate_batches: bool = True  # D sees real and fake in separate batches (separate BN statistics)
    # DiffAugment policy: "auto", "none", or a comma list of AUGMENT_OPS. train() records what "auto" resolved
    # to (resolved_augment), so a run keeps its policy when the rule moves; a config recorded as "auto" was
    # written before that, when "auto" was DEFAULT_AUGMENT for every run (augment_ops reads it so)
    augment: str = "auto"
    # adaptive augmentation (StyleGAN2-ADA): each op of the policy is applied to an image with probability
    # p, which follows D's overfitting signal r_t = E[sign(D(x) - c)] towards this target; 0 turns it off
    # (then every op applies to every image: plain DiffAugment)
    ada_target: float = 0.0
    ada_kimg: float = 100.0  # thousands of images for p to go from 0 to 1 at the fastest
    ada_every: int = 4  # steps between adjustments of p
    ema: float = 0.98  # decay of the EMA generator; 0 turns it off (a short horizon for many small steps)
    ema_rampup: float = 10.0  # the decay ramps up as (1 + step) / (ema_rampup + step); 0: no ramp-up
    # optimizer (TTUR: separate learning rates)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # speed
    amp: str = "auto"  # auto (bf16 where the device computes it natively, else off) | bf16 | fp16 | off
    compile: bool = False
    data_on_device: str = "auto"  # auto | resident (whole cache on the device) | stream (pinned chunks)
    # outputs
    checkpoint_every: int = 1000
    keep_last: int = 3
    sample_every: int = 500  # 0: only at the start and the end
    sample_count: int = 64
    log_every: int = 50
    # the collapse alarm: every probe_every steps the EMA generator's coverage of held-out real images (in
    # pooled-pixel features) is measured against the coverage real images reach (training.probe); 0: off
    probe_every: int = 500
    seed: int = 0
    deterministic: bool = False
    # where a new run's weights and optimizer state come from: "none" (fresh), "champion" (the collection's
    # champion.json) or a run of the collection, "RUN" (its best checkpoint, else its latest) or "RUN@STEP"
    warm_start: str = "none"
    # recorded by train(), not an option: {"source", "run", "step", "checkpoint", "cache_content_hash"}
    warm_started_from: dict[str, Any] | None = field(default=None, hash=False)
    # recorded by train(), not an option: a native-grid run's geometry {"grid", "cell_px", "origin",
    # "canvas_px", "background"} (see training.grid)
    canvas: dict[str, Any] | None = field(default=None, hash=False)
    # trait conditioning (training.conditioning): "traits" gives G and D each image's traits from the cache's
    # traits.csv; "auto": "traits" when the collection lists traits a vocabulary can be built from (and the
    # arch is dcgan), else "none", said in the run's notes (train() records what it resolved to);
    # condition_on: the trait types, comma-separated (None: those on >= 90% of the tokens with a
    # manageable vocabulary); a value on fewer than condition_min_count tokens is folded into "(other)"
    condition: str = "auto"
    condition_on: str | None = None
    condition_min_count: int = 5
    # the auxiliary trait classifier (AC-GAN, Odena et al. 2017) of a conditioned run, at this weight (0: off):
    # D also predicts each real image's traits, and G is trained to make D see the traits it was asked for,
    # a direct signal for small traits (a mouth, a hair style) that the projection alone is slow to teach.
    # 5 (with condition_aux_snap) is the default: at `train --minutes 10` on the 10,000-token collection its
    # snapped samples showed the asked traits 0.905 ± 0.008 of the time against 0.881 ± 0.011 at weight 3, hair
    # 0.87 against 0.79, the other columns no different (docs/quality.md, 3 seeds each)
    condition_aux: float = 5.0
    # what the auxiliary classifier judges: "augmented", the images D's adversarial loss sees (one forward
    # pass); "clean", the images before DiffAugment, or "uncut", augmented by every op but cutout (a second
    # pass of D per side): cutout hides a mouth in a third of the augmented images, which teaches the
    # classifier a prior instead of the mouth; "both": the mean of the augmented and the clean losses (a
    # classifier that only ever saw clean images is fooled by what G draws for it). "both" is the default: at
    # `train --minutes 10` on the 10,000-token collection it drew the mouth as asked 0.88 of the time against
    # the augmented view's 0.47, with more trait sets and coverage (docs/quality.md, 3 seeds each)
    condition_aux_view: str = "both"
    # a native-grid run: the classifier's own pass judges G's fakes snapped to the collection's palette (each
    # pixel its nearest palette colour; straight-through gradients), as the export's trait check sees them, so
    # G cannot satisfy it with in-between colours that the palette snap turns into another trait (the default,
    # with condition_aux 5; off the native grid it says so in the run's notes)
    condition_aux_snap: bool = True
    # G's side of the classifier's loss weights each fake by (1 - p)**focal (p: the classifier's probability
    # of the asked value), normalized to the same mean: the pull moves to the values G does not draw yet
    # (0: off, every fake alike)
    condition_aux_focal: float = 0.0
    # G's trait sets in training: those of the real batch (0), or the collection's trait sets drawn with each
    # type's value shares raised to 1 - BALANCE (training.conditioning.balance_weights; 1: every value alike),
    # so G is asked for rare values (a Tiara on 1.5% of the tokens) more often than the collection holds them
    condition_balance: float = 0.0
    # with condition_balance, what is drawn with the balanced weights: "asks", G's trait sets only (D's real
    # batches as the collection holds them); "batches", the real batches, G asked for each batch's sets (real
    # and fake sets then keep the same shares, so D cannot tell G's sets from the real ones by their shares;
    # at 0.5 it drew the mouth as asked in 0.85 of the samples but dropped whole hair values in some seeds)
    condition_balance_draw: str = "asks"
    # G's embedding of the trait set: linear (0: one vector per value, summed) or a mapping network of this
    # many hidden layers, so that values of different types can interact (a white mask over a dark skin is
    # not the sum of a dark skin and a white mask). Off: 2 hidden layers drew every type worse at 10 minutes
    condition_mapping: int = 0
    # G's first layer also takes the trait embedding beside z (the conditional GAN's concatenation, Mirza &
    # Osindero 2014, as AC-GAN's generator takes its class), so the traits shape the first 3x3 map's layout, not
    # only every stage's per-channel gains and biases (conditional batch norm). On by default: at `train
    # --minutes 10` on the 10,000-token collection its snapped samples showed the asked eyes, hair and mouth in
    # 0.90, 0.96 and 0.88 of them against 0.87, 0.85 and 0.81 without it (docs/quality.md, 5 seeds each; hair and
    # mouth apart, the eyes within the spread), and its exports kept every value
    condition_input: bool = True
    # D's classifier also learns G's fakes, as a class of their own per trait type ("drawn by G", the
    # semi-supervised GAN's discriminator), their loss at this weight beside the real images' (0: off):
    # trained on real images only, it read G's partial drawings of a value (3D Glasses' lenses on normal
    # eyes) as the value, and G stopped there. At weight 1 D won outright (D(G(z)) 0.00 by step 4,000)
    condition_aux_fakes: float = 0.0
    # with condition_aux_fakes, what G's classifier loss asks of its fakes: "values", the asked value among the
    # type's values (the "drawn by G" slot left out: G is judged on which value it drew, not again on whether
    # it drew it, which the adversarial loss judges); "slot", the asked value against the slot too (a second
    # adversarial loss at the classifier's weight: D won outright at fakes' weights 1 and 0.1)
    condition_aux_fakes_g: str = "values"
    # which network is the auxiliary classifier: "d", a head on D's trunk (the features D learns to tell real
    # from fake); "own", a classifier of its own (training.models.TraitNet, 3x3 convs like evaluation's, its
    # own optimizer), learning the real images' traits beside D, whose verdict on G's (snapped) fakes is G's
    # classifier loss: D's trunk named the mouth of a real Deep-skinned token in only 0.66 to 0.78 of them
    condition_aux_net: str = "d"
    # recorded by train(), not an option: the conditioning vocabulary and the size of its pool of trait sets
    conditioning: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        _check(self.condition in CONDITIONS, f"--condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        _check(self.condition != "none" or not self.condition_on, "--condition-on needs --condition traits")
        _check(self.condition != "traits" or self.arch == "dcgan", "--condition traits needs --arch dcgan")
        _check(self.condition_aux >= 0, f"--condition-aux must be 0 (off) or more, got {self.condition_aux}")
        _check(self.condition_aux_view in AUX_VIEWS,
               f"--condition-aux-view must be one of {', '.join(AUX_VIEWS)}, got {self.condition_aux_view!r}")
        _check(self.palette_head in PALETTE_HEADS,
               f"--palette-head must be one of {', '.join(PALETTE_HEADS)}, got {self.palette_head!r}")
        _check(self.snap_rule in SNAP_RULES,
               f"--snap-rule must be one of {', '.join(SNAP_RULES)}, got {self.snap_rule!r}")
        _check(self.condition_aux_focal >= 0,
               f"--condition-aux-focal must be 0 (off) or more, got {self.condition_aux_focal}")
        _check(0 <= self.condition_balance <= 1,
               f"--condition-balance must be between 0 and 1, got {self.condition_balance}")
        _check(not self.d_contrast or self.arch == "dcgan", "--d-contrast needs --arch dcgan")
        _check(0 <= self.condition_mapping <= 8,
               f"--condition-mapping must be 0 (linear) to 8 hidden layers, got {self.condition_mapping}")
        _check(self.condition_balance_draw in BALANCE_DRAWS,
               f"--condition-balance-draw must be one of {', '.join(BALANCE_DRAWS)}, "
               f"got {self.condition_balance_draw!r}")
        _check(self.condition_aux_fakes_g in FAKES_G,
               f"--condition-aux-fakes-g must be one of {', '.join(FAKES_G)}, got {self.condition_aux_fakes_g!r}")
        _check(self.condition_aux_fakes >= 0,
               f"--condition-aux-fakes must be 0 (off) or more, got {self.condition_aux_fakes}")
        _check(not (self.condition_aux_fakes and self.condition_aux_focal),
               "--condition-aux-fakes does not combine with --condition-aux-focal")
        _check(self.condition_aux_net in AUX_NETS,
               f"--condition-aux-net must be one of {', '.join(AUX_NETS)}, got {self.condition_aux_net!r}")
        _check(not (self.condition_aux_net == "own" and self.condition_aux_fakes),
               "--condition-aux-fakes needs --condition-aux-net d (its \"drawn by G\" slots are D's)")
        if self.condition == "none":  # the auxiliary classifier and G's trait input: conditioned runs only
            object.__setattr__(self, "condition_aux", 0.0)
            object.__setattr__(self, "condition_input", False)  # (so an unconditioned run's shape is as before)
        _check(isinstance(self.condition_min_count, int) and self.condition_min_count >= 1,
               f"--condition-min-count must be at least 1, got {self.condition_min_count!r}")
        _check(self.arch in ARCHS, f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        _check(
            isinstance(self.size_px, int) and 32 <= self.size_px <= 256 and not self.size_px & (self.size_px - 1),
            f"--size must be a power of two from 32 to 256 (32, 64, 128 or 256), got {self.size_px}",
        )
        stops = [n for n in ("steps", "epochs", "minutes") if getattr(self, n) is not None]
        _check(len(stops) <= 1, f"give at most one of --steps, --epochs, --minutes (got {', '.join(stops)})")
        for name in stops:
            value = getattr(self, name)
            _check(math.isfinite(value) and value > 0, f"--{name} must be positive, got {value}")
        _check(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:") and self.device[5:].isdigit(),
            f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )
        if self.run is not None:
            validate_run_name(self.run)
        _check(self.z_dim >= 1, f"--z-dim must be at least 1, got {self.z_dim}")
        _check(self.base_width >= 1, f"--base-width must be at least 1, got {self.base_width}")
        if self.widths:
            n = _stage_count(self.arch, self.model_px)
            _check(
                n is None or len(self.widths) == n,
                f"--widths needs {n} numbers at {self.model_px} px (one per generator stage), "
                f"got {len(self.widths)}",
            )
            _check(all(w >= 1 for w in self.widths), f"--widths must be positive, got {self.widths}")
        _check(0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        _check(self.loss in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        _check(self.d_norm in D_NORMS, f"--d-norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")
        _check(self.grid in GRIDS, f"--grid must be one of {', '.join(GRIDS)}, got {self.grid!r}")
        _check(self.grid != "native" or self.arch == "dcgan", "--grid native needs --arch dcgan")
        _check(self.mbstd_group >= 0, f"--mbstd-group must be 0 (off) or more, got {self.mbstd_group}")
        for name in ("r1_gamma", "r2_gamma"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, f"--{name.replace('_', '-')} must be 0 or more, got {value}")
        _check(self.reg_every >= 1, f"--reg-every must be at least 1, got {self.reg_every}")
        _check(0 <= self.ada_target < 1, f"--ada-target must be in [0, 1) (0 turns it off), got {self.ada_target}")
        _check(math.isfinite(self.ada_kimg) and self.ada_kimg > 0, f"--ada-kimg must be positive, got {self.ada_kimg}")
        _check(self.ada_every >= 1, f"--ada-every must be at least 1, got {self.ada_every}")
        _check(self.ema_rampup >= 0, f"--ema-rampup must be 0 or more, got {self.ema_rampup}")
        _check(self.probe_every >= 0, f"--probe-every must be 0 (off) or more, got {self.probe_every}")
        _check(
            0 <= self.label_smoothing < 0.5,
            f"--label-smoothing must be in [0, 0.5), got {self.label_smoothing}",
        )
        self.augment_ops(0)  # validates the policy string
        _check(0 <= self.ema < 1, f"--ema must be a decay in [0, 1) (0 turns it off), got {self.ema}")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value > 0, f"--{name.replace('_', '-')} must be positive, got {value}")
        for name in ("beta1", "beta2"):
            _check(0 <= getattr(self, name) < 1, f"--{name} must be in [0, 1), got {getattr(self, name)}")
        _check(self.amp in AMP_MODES, f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        _check(
            self.data_on_device in DATA_MODES,
            f"--data-on-device must be one of {', '.join(DATA_MODES)}, got {self.data_on_device!r}",
        )
        for name in ("checkpoint_every", "keep_last", "log_every", "sample_count"):
            _check(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be at least 1")
        _check(self.sample_every >= 0, "--sample-every must be 0 (start and end only) or more")
        _check(0 <= self.seed < 2**31, f"--seed must be in [0, 2**31), got {self.seed}")
        self.warm_start_target()  # validates --warm-start
        _check(self.canvas is None or isinstance(self.canvas, dict), "canvas must be a record of the grid (or None)")
        _check(
            self.warm_started_from is None or isinstance(self.warm_started_from, dict),
            "warm_started_from must be a record of the warm-start source (or None)",
        )

    # -- derived values --------------------------------------------------------------------------------
    @property
    def model_px(self) -> int:
        """The side the generator draws: the native grid of a native-grid run, else the cache's size."""
        return int(self.canvas["grid"]) if self.canvas else self.size_px

    def resolved_widths(self) -> tuple[int, ...]:
        from training.models import default_widths

        return self.widths or default_widths(self.arch, self.model_px, self.base_width)

    def resolved_augment(self, n_images: int) -> str:
        """The policy "auto" stands for in a run that starts now on a cache of ``n_images`` (an explicit policy
        as it is): none for a collection of AUGMENT_AUTO_MAX_IMAGES or more, DEFAULT_AUGMENT_CLASSIFIED for a
        run whose D classifies traits (after --condition auto resolved), else DEFAULT_AUGMENT."""
        if self.augment.strip().lower() != "auto":
            return self.augment
        if n_images >= AUGMENT_AUTO_MAX_IMAGES:
            return "none"
        classified = self.condition == "traits" and self.condition_aux > 0
        return DEFAULT_AUGMENT_CLASSIFIED if classified else DEFAULT_AUGMENT

    def augment_ops(self, n_images: int) -> tuple[str, ...]:
        """The DiffAugment operations of this run's policy for a cache of ``n_images``: train() resolves "auto"
        first (:meth:`resolved_augment`); a config still saying "auto" was recorded before that, when "auto"
        meant DEFAULT_AUGMENT (or none from AUGMENT_AUTO_MAX_IMAGES images), and is read with that meaning."""
        policy = self.augment.strip().lower()
        if policy == "auto":
            return tuple(DEFAULT_AUGMENT.split(",")) if n_images < AUGMENT_AUTO_MAX_IMAGES else ()
        if policy in ("", "none", "off"):
            return ()
        ops = tuple(op.strip() for op in policy.split(",") if op.strip())
        bad = [op for op in ops if op not in AUGMENT_OPS]
        _check(
            not bad,
            f"--augment: unknown operation(s) {', '.join(bad)}; use 'auto', 'none' or a comma list of "
            f"{', '.join(AUGMENT_OPS)}",
        )
        return ops

    def warm_start_target(self) -> tuple[str, str | None] | None:
        """None (a fresh start), ("champion", None), or (RUN, "STEP" | "best" | "latest" | None)."""
        text = self.warm_start.strip()
        if text.lower() == "none":
            return None
        if text.lower() == "champion":
            return ("champion", None)
        match = _WARM_AT.fullmatch(text)
        _check(
            match is not None,
            f"--warm-start must be none, champion, RUN or RUN@STEP (STEP: a number, best or latest), got {text!r}",
        )
        assert match is not None
        validate_run_name(match["run"])
        return (match["run"], match["which"])

    def default_run_name(self, now: _dt.datetime | None = None, cache_hash: str | None = None) -> str:
        """The one rule for a run's name when none is given.

        With the tensor cache's content hash (a refresh): ``<arch>-<size>px-<cache8>-<options6>``, one run per
        (dataset content, options that shape training), so an unchanged refresh resumes the same run and
        other options (a recipe, a new default) make another run instead of a refused resume. Without (a
        one-off ``nftgan train``): ``<arch>-<size>px-<UTC time>``.
        """
        if cache_hash is not None:
            shaping = {k: v for k, v in self.to_dict().items() if k not in RESUMABLE_CHANGES and k != "run"}
            digest = hashlib.sha256(json.dumps([shaping], sort_keys=True, default=str).encode()).hexdigest()
            return f"{self.arch}-{self.size_px}px-{cache_hash[:8]}-{digest[:6]}"
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return f"{self.arch}-{self.size_px}px-{now.strftime('%Y%m%d-%H%M%S')}"

    # -- JSON round trip -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Rebuild a config saved by :meth:`to_dict`; unknown keys (a newer version's) are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NftganError(f"training config has unknown field(s) {', '.join(unknown)}: written by a newer nftgan?")
        data = {**{k: v for k, v in BEFORE_THE_FIELD.items() if k not in data}, **data}
        return cls(**{k: tuple(v) if k == "widths" else v for k, v in data.items()})

    def differences(self, other: "TrainConfig") -> list[str]:
        """Fields (other than those a resume may change) where ``other`` differs from this config."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]


def _stage_count(arch: str, size_px: int) -> int | None:
    from training.geometry import stage_count

    return None if arch == "mlp" else stage_count(size_px)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NftganError(message)


# -- nftgan sample / interpolate (here, with no torch import, so the CLI reads their defaults) ------------
@dataclass(frozen=True)
class SampleConfig:
    #: latest | best | STEP; None: the champion's step when the run is the champion (or none is named), else latest
    checkpoint: str | None = None
    n: int = 64
    seed: int = 0
    out: Path | None = None  # one grid PNG
    out_dir: Path | None = None  # or one PNG per image
    device: str = "auto"
    ema: bool = True
    #: snap to the collection's pixel grid and palette; None: when the cache size has a pixel-art.json
    pixel_art: bool | None = None
    #: raw and snapped grids side by side; None: beside the grid (``<grid>-before-after.png``) when snapping
    before_after: Path | None = None
    #: a trait-conditioned run: one grid row of ``n`` images per request ("type=female,headwear=tiara")
    traits: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise NftganError(f"--n must be at least 1, got {self.n}")
        if self.out is not None and self.out_dir is not None:
            raise NftganError("give either --out FILE.png (a grid) or --out-dir DIR (single images), not both")
        if self.out is not None and Path(self.out).suffix.lower() != ".png":
            raise NftganError(f"--out must name a .png file, got {self.out}")
        if self.before_after is not None and Path(self.before_after).suffix.lower() != ".png":
            raise NftganError(f"--before-after must name a .png file, got {self.before_after}")
        if self.before_after is not None and self.pixel_art is False:
            raise NftganError("--before-after shows the pixel-art snapping, which --no-pixel-art turns off")


@dataclass(frozen=True)
class InterpolateConfig:
    out: Path
    checkpoint: str | None = None  # as SampleConfig.checkpoint
    seed: int = 0
    keyframes: int = 4  # latent points visited in a loop
    frames_between: int = 16
    n: int = 1  # parallel interpolations shown side by side in a grid
    frame_ms: int = 80
    device: str = "auto"
    ema: bool = True
    #: a trait-conditioned run: hold these traits ("type=Alien,accessory=Earring") while z moves; None: hold
    #: the trait set each interpolation's first keyframe draws
    traits: str | None = None

    def __post_init__(self) -> None:
        if Path(self.out).suffix.lower() != ".gif":
            raise NftganError(f"--out must name a .gif file, got {self.out}")
        for name, low in (("keyframes", 2), ("frames_between", 1), ("n", 1), ("frame_ms", 10)):
            if getattr(self, name) < low:
                raise NftganError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}")
