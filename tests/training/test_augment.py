from __future__ import annotations

import pytest
import torch

from pipeline.errors import NftganError
from training.augment import OPS, cutout, diff_augment, flip, translation
from training.config import AUGMENT_AUTO_MAX_IMAGES, TrainConfig


def _images(b=6, size=16):
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_op_keeps_shape_is_seeded_and_differentiable(op):
    x = _images().requires_grad_(True)
    torch.manual_seed(1)
    a = OPS[op](x)
    torch.manual_seed(1)
    b = OPS[op](x)
    assert a.shape == x.shape
    assert torch.equal(a, b)
    a.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_translation_shifts_content_and_fills_with_zeros():
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8).expand(5, 3, 8, 8).contiguous()
    torch.manual_seed(3)
    y = translation(x)
    for img in y[:, 0]:
        matches = [
            (dy, dx)
            for dy in range(-1, 2)
            for dx in range(-1, 2)
            if torch.equal(img, _shifted(x[0, 0], dy, dx))
        ]
        assert len(matches) == 1


def _shifted(img, dy, dx):
    out = torch.zeros_like(img)
    h, w = img.shape
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[y, x] = img[y - dy, x - dx]
    return out


def test_cutout_zeros_one_square_and_leaves_the_rest():
    x = torch.ones(8, 3, 16, 16)
    torch.manual_seed(0)
    y = cutout(x)
    zeroed = (y == 0).all(dim=1)  # (b, h, w): the same pixels in every channel
    assert ((y == 0) | (y == 1)).all()
    for mask in zeroed:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        assert 0 < mask.sum() <= 8 * 8
        # a rectangle: the count equals the bounding box area
        assert mask.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_flip_mirrors_some_images_and_keeps_the_others():
    x = _images(b=32)
    torch.manual_seed(0)
    y = flip(x)
    same = [torch.equal(a, b) for a, b in zip(x, y)]
    mirrored = [torch.equal(a.flip(2), b) for a, b in zip(x, y)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < 32


def test_diff_augment_applies_the_policy_in_order():
    x = _images()
    torch.manual_seed(5)
    y = diff_augment(x, ("color", "translation"))
    torch.manual_seed(5)
    assert torch.equal(y, translation(OPS["color"](x)))
    assert torch.equal(diff_augment(x, ()), x)


def test_auto_resolves_by_whether_d_classifies_traits_and_reads_an_old_record_as_it_trained(monkeypatch):
    """What train() records for "auto": DEFAULT_AUGMENT for an unconditioned run or one without the
    classifier, DEFAULT_AUGMENT_CLASSIFIED (here a rule without cutout) where D classifies traits, no
    augmentation from 50,000 images, an explicit policy as it is. A config still saying "auto" (recorded
    before the resolution) reads as the ops of then, cutout included, for every run; resolve_augment keeps a
    resumed run's own policy, either way."""
    import training.config
    from training.build import recorded_augment, resolve_augment

    monkeypatch.setattr(training.config, "DEFAULT_AUGMENT_CLASSIFIED", "color,translation")
    classified = TrainConfig(condition="traits", condition_aux=5.0)
    assert TrainConfig(condition="none").resolved_augment(1000) == "color,translation,cutout"
    assert TrainConfig(condition="traits", condition_aux=0.0).resolved_augment(1000) == "color,translation,cutout"
    assert classified.resolved_augment(1000) == "color,translation"
    assert classified.resolved_augment(AUGMENT_AUTO_MAX_IMAGES) == "none"
    assert TrainConfig(condition="traits", augment="flip").resolved_augment(1000) == "flip"
    assert classified.augment_ops(1000) == ("color", "translation", "cutout")  # "auto" as once recorded
    old = {"config": classified.to_dict()}  # a checkpoint of a run recorded before the resolution
    assert recorded_augment(classified, 1000).augment == "color,translation,cutout"
    assert recorded_augment(classified, AUGMENT_AUTO_MAX_IMAGES).augment == "none"
    assert resolve_augment(classified, old, 1000).augment == "color,translation,cutout"
    assert resolve_augment(classified, None, 1000).augment == "color,translation"
    new = {"config": TrainConfig(condition="traits", condition_aux=5.0, augment="color").to_dict()}
    assert resolve_augment(classified, new, 1000).augment == "color"
    assert resolve_augment(TrainConfig(augment="flip"), new, 1000).augment == "flip"  # resume_point refuses it


def test_policy_auto_is_on_only_for_small_collections_and_unknown_ops_fail():
    cfg = TrainConfig()
    assert cfg.augment_ops(1000) == ("color", "translation", "cutout")
    assert cfg.augment_ops(AUGMENT_AUTO_MAX_IMAGES) == ()
    assert TrainConfig(augment="none").augment_ops(10) == ()
    assert TrainConfig(augment="flip, color").augment_ops(10**6) == ("flip", "color")
    with pytest.raises(NftganError, match="unknown operation"):
        TrainConfig(augment="color,zoom")
