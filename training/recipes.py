"""Named training recipes: ``TrainConfig`` overrides, measured in ``bench/quality.py`` (see docs/quality.md).

``CANDIDATES`` holds every recipe the benchmark trains, each spelled out in full on top of :data:`BASE`
(every option a recipe may touch, at the former defaults), so a row still means the same recipe after the
defaults move. ``PRODUCT`` holds the product's named recipes ("cpu": the measured default, "gpu": the one
named for GPU budgets). :func:`recipe_config` applies one. No torch import here (like training.config).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.errors import NftganError
from training.config import TrainConfig

#: every option a candidate may change, at the former defaults (before the quality benchmark of docs/quality.md);
#: the augmentation as "auto" was for every run then (the benchmark's collections are under 50,000 images)
BASE: dict[str, Any] = {
    "arch": "dcgan", "base_width": 64, "batch_size": 64, "loss": "bce", "spectral_norm": False, "d_norm": "batch",
    "mbstd_group": 0, "r1_gamma": 0.0, "r2_gamma": 0.0, "reg_every": 1, "augment": "color,translation,cutout", "ada_target": 0.0,
    "ema": 0.999, "ema_rampup": 10.0, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "grid": "cache",
    "condition": "none", "condition_aux": 0.0, "condition_aux_view": "augmented", "condition_aux_snap": False,
    "condition_aux_focal": 0.0, "palette_head": "off",
    "snap_fakes": False, "snap_rule": "rgb", "condition_balance": 0.0, "condition_balance_draw": "asks",
    "condition_mapping": 0, "d_contrast": False, "condition_aux_net": "d",
    "condition_input": False,
    "condition_aux_fakes": 0.0, "condition_aux_fakes_g": "values",
}

_R3 = {"loss": "rpgan", "r1_gamma": 0.1, "r2_gamma": 0.1, "d_norm": "none"}
#: the former default's recipe ("demo-w16-b16-cond-ac3-native"), of which the variants below change one option
#: (the default is now its "both" variant)
_AC3_NATIVE = {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits", "condition_aux": 3.0,
               "grid": "auto"}
#: the default's row ("demo-w16-b16-cond-ac5-native-both-snap"), of which the snap-rule variants change one option
_AC5_SNAP = {**_AC3_NATIVE, "condition_aux_view": "both", "condition_aux_snap": True, "condition_aux": 5.0}

#: the cells snap without cutout ("…-snap-cells-nocut"), of which the twelfth session's rows change one option
_CELLS_NOCUT = {**_AC5_SNAP, "snap_rule": "cells", "augment": "color,translation"}

#: name -> (what the docs' table says it is, overrides of BASE)
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    # the reference: pytorch/examples dcgan/main.py (ngf = ndf = 64, bce, Adam 2e-4 betas 0.5/0.999, batch 64,
    # BN in both nets, no EMA, no augmentation)
    "reference": ("pytorch/examples DCGAN (width 64, bce, no EMA, no augmentation)", {"ema": 0.0, "augment": "none"}),
    "former": ("the former defaults (reference + EMA 0.999 + DiffAugment color,translation,cutout)", {}),
    "today": ("the defaults before this benchmark (former, base width 16)", {"base_width": 16}),
    "mbstd": ("former + minibatch stddev in D (group 4)", {"mbstd_group": 4}),
    "ada": ("former + adaptive augmentation (target r_t 0.6)", {"ada_target": 0.6}),
    "mbstd-ada": ("former + minibatch stddev + adaptive augmentation", {"mbstd_group": 4, "ada_target": 0.6}),
    "hinge-sn": ("former + hinge loss + spectral norm in D", {"loss": "hinge", "spectral_norm": True}),
    "r3gan": ("relativistic pairing loss + R1 + R2 (gamma 0.1), no BN in D, DiffAugment, EMA", dict(_R3)),
    "r3gan-lazy": ("r3gan with lazy R1/R2 (every 4 steps)", {**_R3, "reg_every": 4}),
    "r3gan-mbstd": ("r3gan + minibatch stddev", {**_R3, "mbstd_group": 4}),
    "w32-mbstd": ("former at base width 32 + minibatch stddev", {"base_width": 32, "mbstd_group": 4}),
    "ttur": ("former + TTUR (lr_g 1e-4, lr_d 4e-4)", {"lr_g": 1e-4, "lr_d": 4e-4}),
    "mbstd-native": ("mbstd on the native pixel grid (24x24 from 3x3)", {"mbstd_group": 4, "grid": "auto"}),
    "native": ("former on the native pixel grid", {"grid": "auto"}),
    # what `nftgan demo` trains (commands.demo): a small model and a short EMA horizon for its 3 minutes
    "demo": ("the demo's options (former at width 32, EMA 0.98, batch 32)",
             {"base_width": 32, "ema": 0.98, "batch_size": 32}),
    # candidates for the demo's few thousand steps on 200 images: learn faster early
    "demo-ada": ("demo with adaptive augmentation (none until D overfits) instead of fixed DiffAugment",
                 {"base_width": 32, "ema": 0.98, "batch_size": 32, "ada_target": 0.6}),
    "demo-b16": ("demo at batch 16 (twice the updates)", {"base_width": 32, "ema": 0.98, "batch_size": 16}),
    "demo-hinge": ("demo with hinge loss + spectral norm in D",
                   {"base_width": 32, "ema": 0.98, "batch_size": 32, "loss": "hinge", "spectral_norm": True}),
    "demo-b8": ("demo at batch 8 (four times the updates)", {"base_width": 32, "ema": 0.98, "batch_size": 8}),
    "demo-w16-b16": ("demo at base width 16 and batch 16", {"base_width": 16, "ema": 0.98, "batch_size": 16}),
    "demo-lr": ("demo with learning rates 5e-4", {"base_width": 32, "ema": 0.98, "batch_size": 32, "lr_g": 5e-4,
                                                  "lr_d": 5e-4}),
    # trait conditioning (#20): the same networks given each image's traits (conditional BN, projection D)
    "demo-w16-b16-cond": ("demo-w16-b16 conditioned on the collection's traits",
                          {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits"}),
    "former-cond": ("former conditioned on the collection's traits", {"condition": "traits"}),
    # one of three 10-minute seeds of demo-w16-b16-cond collapsed (docs/quality.md): the same with D stabilised
    # as BigGAN's conditional D is (hinge loss, spectral norm)
    "demo-w16-b16-cond-sn": ("demo-w16-b16-cond with hinge loss + spectral norm in D",
                             {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits",
                              "loss": "hinge", "spectral_norm": True}),
    # conditional accuracy of the conditioned rows stayed far under the classifier's ceiling (small traits
    # such as hair and mouth were drawn at random): D also classifies the traits and G is trained to satisfy it
    "former-cond-ac": ("former-cond + D's auxiliary trait classifier (AC-GAN, weight 1)",
                       {"condition": "traits", "condition_aux": 1.0}),
    "demo-w16-b16-cond-ac": ("demo-w16-b16-cond + D's auxiliary trait classifier (AC-GAN, weight 1)",
                             {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits",
                              "condition_aux": 1.0}),
    # at weight 1, hair and mouth were still drawn as asked in only a third to a half of the samples
    "demo-w16-b16-cond-ac3": ("demo-w16-b16-cond + D's auxiliary trait classifier (AC-GAN, weight 3)",
                              {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits",
                               "condition_aux": 3.0}),
    # #18's native-grid question, asked of the default: the 24x24 tokens trained on their own grid (3, 6, 12, 24)
    "demo-w16-b16-cond-ac3-native": ("demo-w16-b16-cond-ac3 on the native pixel grid (24x24 from 3x3)",
                                     dict(_AC3_NATIVE)),
    # D's auxiliary classifier of the default got 0.64 on the mouth on clean real images (0.56 augmented):
    # it cannot teach G a one-pixel smile it does not see itself. The same with the classifier on clean images
    "demo-w16-b16-cond-ac3-native-clean": ("demo-w16-b16-cond-ac3-native with the auxiliary classifier on the images "
                                           "before DiffAugment",
                                           {**_AC3_NATIVE, "condition_aux_view": "clean"}),
    # the clean view raised the mouth and lowered hair: G learns to satisfy a classifier that never saw an
    # augmented image with what the trait classifier does not see. Two ways that keep it robust but let it see
    # the mouth: its own pass without cutout only, or no cutout in the run at all (no second pass)
    "demo-w16-b16-cond-ac3-native-uncut": ("demo-w16-b16-cond-ac3-native with the auxiliary classifier on images "
                                           "augmented but for cutout",
                                           {**_AC3_NATIVE, "condition_aux_view": "uncut"}),
    "demo-w16-b16-cond-ac3-native-nocut": ("demo-w16-b16-cond-ac3-native with DiffAugment color,translation "
                                           "(no cutout)",
                                           {**_AC3_NATIVE, "augment": "color,translation"}),
    # clean drew smiles and frowns as asked (0.94, 0.88) but cigarettes and masks as smiles: the classifier
    # that saw only clean images was fooled. Both views: the augmented one keeps it robust
    "demo-w16-b16-cond-ac3-native-both": ("demo-w16-b16-cond-ac3-native with the auxiliary classifier on the "
                                          "augmented and the clean images",
                                          {**_AC3_NATIVE, "condition_aux_view": "both"}),
    # both drew the mouth as asked (0.88) but hair less (0.82 against 0.89), and its exports lost most to the
    # trait check on hair: G satisfies the clean classifier with in-between colours that the palette snap of
    # samples and exports turns into another hair. The same with that classifier judging the snapped fakes
    "demo-w16-b16-cond-ac3-native-both-snap": ("demo-w16-b16-cond-ac3-native-both with the classifier's clean view "
                                               "of G's fakes snapped to the palette (straight-through)",
                                               {**_AC3_NATIVE, "condition_aux_view": "both",
                                                "condition_aux_snap": True}),
    # every seed of both leaves a few values it draws as asked a third of the time or less (bandana, eye patch,
    # pipe in one; wild hair, 3D glasses in another): G's classifier loss weighted towards its misses
    "demo-w16-b16-cond-ac3-native-both-focal": ("demo-w16-b16-cond-ac3-native-both with G's classifier loss "
                                                "focal (gamma 2): weighted towards the fakes it misses",
                                                {**_AC3_NATIVE, "condition_aux_view": "both",
                                                 "condition_aux_focal": 2.0}),
    # snapped samples lose a tenth of their mouths and a few hairs to the palette snap (in-between colours the
    # snap turns into another value), and the demo's snapped samples are speckled where the output was between
    # two colours: G draws the palette's colours itself (a softmax over the palette per pixel, straight-through)
    "demo-w16-b16-cond-ac3-native-palette": ("demo-w16-b16-cond-ac3-native with G drawing palette colours "
                                             "(straight-through softmax over the palette per pixel)",
                                             {**_AC3_NATIVE, "palette_head": "straight"}),
    "demo-w16-b16-cond-ac3-native-both-palette": ("demo-w16-b16-cond-ac3-native-both with G drawing palette "
                                                  "colours (straight-through softmax over the palette per pixel)",
                                                  {**_AC3_NATIVE, "condition_aux_view": "both",
                                                   "palette_head": "straight"}),
    # both and both-snap leave hair (0.82 / 0.85 drawn, 0.79 / 0.83 snapped) and the snapped mouth (0.78 / 0.82)
    # under #20's bar of 0.85; the classifier's pull on G at weight 5 (10 was unstable on the padded cache)
    "demo-w16-b16-cond-ac5-native-both": ("demo-w16-b16-cond-ac3-native-both with the auxiliary classifier at "
                                          "weight 5", {**_AC3_NATIVE, "condition_aux_view": "both",
                                                       "condition_aux": 5.0}),
    "demo-w16-b16-cond-ac5-native-both-snap": ("demo-w16-b16-cond-ac3-native-both-snap with the auxiliary "
                                               "classifier at weight 5", _AC5_SNAP),
    # the classifier's snapped pass snapped as users get samples (CIELAB, the colours drawn at each cell), not
    # to the nearest of the palette in RGB: the snap users get reads a Normal mouth as a Smile in a fifth of the
    # default's samples, and a shadow that RGB snaps to the background, CIELAB to the skin
    "demo-w16-b16-cond-ac5-native-both-snap-cells": ("demo-w16-b16-cond-ac5-native-both-snap with training's snap "
                                                     "as users get samples (CIELAB, the colours drawn at each cell)",
                                                     {**_AC5_SNAP, "snap_rule": "cells"}),
    # with it the mouth was drawn as asked in every seed (0.86 ± 0.01 snapped) but one seed or another never drew
    # a rarer eye value (3D Glasses 0.00, VR 0.08): the focal weights move G's classifier pull to such values
    "demo-w16-b16-cond-ac5-native-both-snap-cells-focal": ("demo-w16-b16-cond-ac5-native-both-snap-cells with G's "
                                                           "classifier loss focal (gamma 2)",
                                                           {**_AC5_SNAP, "snap_rule": "cells",
                                                            "condition_aux_focal": 2.0}),
    # the default's misses are its rarer values, and which ones is a matter of the seed (over 5 seeds: a Tiara
    # drawn as asked 13% of the time, a Pipe 34%, Clown Eyes 48%, against 99% for the commonest): G is asked for
    # the collection's trait sets with each type's value shares flattened (square root), so it meets rare ones
    # more often
    "demo-w16-b16-cond-ac5-native-both-snap-bal": ("demo-w16-b16-cond-ac5-native-both-snap with G's trait sets "
                                                   "in training drawn with each type's value shares square-rooted",
                                                   {**_AC5_SNAP, "condition_balance": 0.5}),
    # balanced asks did not help (4 seeds); D's classifier, trained on real images only, reads G's misses as the
    # asked value (3D Glasses asked: the evaluation classifier saw Normal eyes, D's classifier 3D Glasses, in
    # every sample): it learns G's fakes as a class of their own, so only a whole drawing of a value passes
    "demo-w16-b16-cond-ac5-native-both-snap-fk": ("demo-w16-b16-cond-ac5-native-both-snap with D's classifier also "
                                                  "learning G's fakes as a class of their own per trait type",
                                                  {**_AC5_SNAP, "condition_aux_fakes": 1.0,
                                                   "condition_aux_fakes_g": "slot"}),
    # at weight 1 D won outright in both seeds (D(G(z)) 0.00 from step ~4,000, G's classifier loss 9 to 12): the
    # fakes' term at a tenth of the real images'
    "demo-w16-b16-cond-ac5-native-both-snap-fk-light": ("demo-w16-b16-cond-ac5-native-both-snap-fk with the "
                                                        "fakes' classifier loss at weight 0.1",
                                                        {**_AC5_SNAP, "condition_aux_fakes": 0.1,
                                                         "condition_aux_fakes_g": "slot"}),
    # it diverged too (both seeds: D(G(z)) 0.00, samples of noise): G's classifier loss against the slot is a
    # second adversarial loss at 5 times the first. G judged on which value it drew only, D's classifier still
    # learning the slot, at weights 0.1 and 1
    "demo-w16-b16-cond-ac5-native-both-snap-fkv": ("demo-w16-b16-cond-ac5-native-both-snap with D's classifier "
                                                   "learning G's fakes as a class of their own (weight 0.1), G's "
                                                   "classifier loss over the values only",
                                                   {**_AC5_SNAP, "condition_aux_fakes": 0.1}),
    "demo-w16-b16-cond-ac5-native-both-snap-fkv1": ("demo-w16-b16-cond-ac5-native-both-snap-fkv with the fakes' "
                                                    "classifier loss at weight 1",
                                                    {**_AC5_SNAP, "condition_aux_fakes": 1.0}),
    # the default's misses are partial drawings its classifier takes for the value (coloured pupils for 3D
    # Glasses); DiffAugment's cutout teaches that classifier (its augmented view) to name a trait from a part of
    # it. The default without cutout: the classifier sees whole traits, augmented (colour, translation) and clean
    "demo-w16-b16-cond-ac5-native-both-snap-nocut": ("demo-w16-b16-cond-ac5-native-both-snap with DiffAugment "
                                                     "color,translation (no cutout)",
                                                     {**_AC5_SNAP, "augment": "color,translation"}),
    # cells drew the snapped mouth as asked in every seed (0.86 ± 0.01) but hair 0.86, and nocut hair (0.92 ±
    # 0.03) but the snapped mouth 0.78: the two changes touch different passes (training's snap rule, the
    # augmentation of D's inputs), so both together
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut": ("demo-w16-b16-cond-ac5-native-both-snap-cells with "
                                                           "DiffAugment color,translation (no cutout)",
                                                           _CELLS_NOCUT),
    # its misses are on dark skins: a Normal mouth is drawn as asked in 0.93 of the samples on a light skin and
    # 0.38 on the deepest, a Medical Mask in 1.00 and 0.00 (a grey-green smear, not the white mask). G's
    # linear embedding adds one vector per value, so "white mask over dark skin" is the dark skin's
    # modulation plus the mask's; a small mapping network (StyleGAN's) lets the values interact
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut-map2": ("demo-w16-b16-cond-ac5-native-both-snap-cells-nocut "
                                                                "with G's trait embedding through a mapping "
                                                                "network (2 hidden layers)",
                                                                {**_CELLS_NOCUT, "condition_mapping": 2}),
    # on the deepest skins a mouth is a few ΔE from the skin, and the raw output there is speckled with colour
    # noise the snap turns into a smile's or a frown's corner: G's weights averaged over a longer horizon
    # (the EMA's 50 steps were chosen for the demo's 3 minutes)
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut-ema995": ("demo-w16-b16-cond-ac5-native-both-snap-cells-"
                                                                  "nocut with EMA 0.995",
                                                                  {**_CELLS_NOCUT, "ema": 0.995}),
    # D's own classifier names the mouth of a real token on the deepest skin in 0.67 of them (1.00 on every
    # other skin): the mouth is 15 RGB levels from that skin, against 210 on a light one, so G is taught
    # nothing there. D also sees each image's local contrast (3x3), where both are plain
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut-lcn": ("demo-w16-b16-cond-ac5-native-both-snap-cells-"
                                                               "nocut with D also seeing each image's local "
                                                               "contrast (3x3)",
                                                               {**_CELLS_NOCUT, "d_contrast": True}),
    # every snap and augmentation leaves a Medical Mask on a dark or deep skin drawn as asked in 0.00 to 0.10
    # of the samples (0.98 on a light skin): ~1 % of the tokens, seldom met in a batch. The real batches drawn
    # with each type's value shares square-rooted and G asked for their sets (so real and fake sets keep the
    # same shares, which the balanced asks alone did not)
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut-balb": ("demo-w16-b16-cond-ac5-native-both-snap-cells-"
                                                                "nocut with the real batches drawn with each "
                                                                "type's value shares square-rooted, G asked for "
                                                                "their trait sets",
                                                                {**_CELLS_NOCUT, "condition_balance": 0.5,
                                                                 "condition_balance_draw": "batches"}),
    # balb drew the mouth at the bar in four seeds of five but dropped a whole hair value in three (a Beanie,
    # a Top Hat): half the flattening
    "demo-w16-b16-cond-ac5-native-both-snap-cells-nocut-balb25": ("demo-w16-b16-cond-ac5-native-both-snap-cells-"
                                                                  "nocut-balb with balance 0.25 (shares raised "
                                                                  "to 0.75)",
                                                                  {**_CELLS_NOCUT, "condition_balance": 0.25,
                                                                   "condition_balance_draw": "batches"}),
    # D's trunk (4x4 stride-2 convolutions, trained to tell real from fake) names the mouth of a real token on
    # the deepest skin in two thirds of them, so G is taught little there; evaluation's classifier (3x3
    # convolutions at full resolution) names every one. The auxiliary classifier as a network of its own
    # (training.models.TraitNet), learning the real images' traits beside D and judging G's snapped fakes
    "demo-w16-b16-cond-ac5-native-both-snap-own": ("demo-w16-b16-cond-ac5-native-both-snap with the auxiliary "
                                                   "classifier a network of its own (3x3 convolutions), not a "
                                                   "head on D", {**_AC5_SNAP, "condition_aux_net": "own"}),
    # the own classifier drew worse (mouth 0.59): G satisfied it (its loss on G's fakes 0.29, under D's head's
    # 0.39) with drawings evaluation's classifier rejects. D's head it is, at twice the weight: weight 5 beat 3
    "demo-w16-b16-cond-ac5-native-both-snap-ac10": ("demo-w16-b16-cond-ac5-native-both-snap with the auxiliary "
                                                    "classifier at weight 10", {**_AC5_SNAP, "condition_aux": 10.0}),
    # G's traits reach it only through conditional batch norm: a per-channel gain and shift at every stage,
    # the same over the whole map; a value G never learns in a seed (3D Glasses, a Tiara, a Top Hat) drops out
    # of the exports. The trait embedding also beside z at the first layer (the conditional GAN's
    # concatenation, Mirza & Osindero 2014), so the traits shape the layout from the first 3x3 map
    "demo-w16-b16-cond-ac5-native-both-snap-cin": ("demo-w16-b16-cond-ac5-native-both-snap with G's first layer "
                                                   "also taking the trait embedding beside z",
                                                   {**_AC5_SNAP, "condition_input": True}),
    # the straight-through head drew faces in wrong, saturated colours at the demo budget (the argmax of
    # near-uniform softmaxes, steered by the averaged colour's gradient): the softmax-weighted palette in
    # training, its exact gradient, and the most likely colour only in samples
    "demo-w16-b16-cond-ac3-native-softpal": ("demo-w16-b16-cond-ac3-native with G drawing a softmax over the "
                                             "palette per pixel (soft in training, the most likely colour in "
                                             "samples)", {**_AC3_NATIVE, "palette_head": "soft"}),
    "demo-w16-b16-cond-ac3-native-both-softpal": ("demo-w16-b16-cond-ac3-native-both with G drawing a softmax over "
                                                  "the palette per pixel (soft in training, the most likely colour "
                                                  "in samples)",
                                                  {**_AC3_NATIVE, "condition_aux_view": "both",
                                                   "palette_head": "soft"}),
    # the palette head drew wrong colours at the demo budget (straight-through over 75 logits from near-uniform
    # softmaxes): G keeps its RGB output, and D judges it snapped to the palette (straight-through, one matmul)
    "demo-w16-b16-cond-ac3-native-snapd": ("demo-w16-b16-cond-ac3-native with D judging G's fakes snapped to the "
                                           "palette (straight-through)",
                                           {**_AC3_NATIVE, "snap_fakes": True}),
    "demo-w16-b16-cond-ac3-native-both-snapd": ("demo-w16-b16-cond-ac3-native-both with D judging G's fakes snapped "
                                                "to the palette (straight-through)",
                                                {**_AC3_NATIVE, "condition_aux_view": "both", "snap_fakes": True}),
    "demo-w16-b16-cond-ac10": ("demo-w16-b16-cond + D's auxiliary trait classifier (AC-GAN, weight 10)",
                               {"base_width": 16, "ema": 0.98, "batch_size": 16, "condition": "traits",
                                "condition_aux": 10.0}),
}

#: the candidate TrainConfig's defaults are (with --condition auto and --grid auto): docs/quality.md's default row
DEFAULT_ROW = "demo-w16-b16-cond-ac5-native-both-snap-cin"

#: The product's recipes. "cpu" is the default recipe (TrainConfig's defaults: the row of docs/quality.md best
#: at `train --minutes 10`, "demo-w16-b16-cond-ac5-native-both-snap", with --condition auto and --grid auto, so that a
#: collection without traits or pixel grid trains as "demo-w16-b16"). "gpu" is argued for long GPU budgets,
#: not measured on a GPU here: hinge + spectral norm (the standard stabiliser of long runs, SNGAN/BigGAN) plus minibatch stddev and
#: adaptive augmentation, the pair that drew the most distinct trait sets in the CPU screen and whose worth
#: grows with the steps (D overfits a small collection more the longer it trains, which ADA answers).
PRODUCT: dict[str, dict[str, Any]] = {
    "cpu": {},
    "gpu": {"loss": "hinge", "spectral_norm": True, "base_width": 64, "batch_size": 64, "ema": 0.999, "augment": "auto",
            "mbstd_group": 4, "ada_target": 0.6},
}

RECIPES: dict[str, dict[str, Any]] = {**PRODUCT, **{name: {**BASE, **o} for name, (_, o) in CANDIDATES.items()}}


def recipe_options(name: str | None) -> dict[str, Any]:
    """Recipe ``name``'s ``TrainConfig`` overrides (none for None), checked; what a flow merges into its options."""
    if name is None:
        return {}
    recipe_config(name)  # an unknown name or option is a one-line error
    return dict(RECIPES[name])


def recipe_config(name: str, **fields: Any) -> TrainConfig:
    """A ``TrainConfig`` with recipe ``name``'s overrides, then ``fields`` (e.g. steps, run) on top."""
    if name not in RECIPES:
        raise NftganError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {**RECIPES[name], **fields}
    bad = sorted(set(overrides) - known)
    if bad:
        raise NftganError(f"recipe {name!r} sets unknown option(s) {', '.join(bad)}")
    return TrainConfig(**overrides)
