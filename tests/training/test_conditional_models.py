"""Trait-conditioned networks (training.models): conditional batch norm in G, a projection D, and the
unconditioned networks unchanged (their checkpoints still load)."""

from __future__ import annotations

import pytest
import torch

from training.models import ConditionalBatchNorm2d, default_widths, make_discriminator, make_generator


def test_a_conditioned_generator_draws_what_its_condition_says_once_trained() -> None:
    torch.manual_seed(0)
    widths = default_widths("dcgan", 32, 8)
    g = make_generator("dcgan", 32, 16, widths, cond_dim=5)
    z = torch.randn(6, 16)
    a, b = torch.zeros(6, 5), torch.zeros(6, 5)
    a[:, 0], b[:, 3] = 1, 1
    assert g(z, a).shape == (6, 3, 32, 32)
    assert torch.equal(g(z, a), g(z, b))  # it starts as the unconditioned generator (gains and shifts zero)
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    for _ in range(30):  # teach it: condition 0 -> dark images, condition 3 -> bright ones
        loss = (g(z, a) + 1).square().mean() + (g(z, b) - 1).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    g.eval()
    assert g(z, a).mean() < -0.3 and g(z, b).mean() > 0.3  # the condition reaches the pixels
    assert sum(isinstance(m, ConditionalBatchNorm2d) for m in g.modules()) == len(widths)


def test_with_condition_input_the_traits_shape_the_first_maps_layout_not_only_its_gains() -> None:
    """--condition-input: G's first layer takes the trait embedding beside z, so two trait sets give first
    maps of different spatial patterns before any norm (through conditional batch norm alone, they differ by
    a per-channel gain and shift only: the same pattern, rescaled)."""
    torch.manual_seed(0)
    widths = default_widths("dcgan", 24, 8)
    z = torch.randn(4, 16)
    a, b = torch.zeros(4, 5), torch.zeros(4, 5)
    a[:, 0], b[:, 3] = 1, 1

    def first_map(g: torch.nn.Module, c: torch.Tensor) -> torch.Tensor:
        x = z.view(4, 16, 1, 1)
        if g.cond_input:
            x = torch.cat([x, g.embed(c).view(4, -1, 1, 1)], 1)
        return g.main[0](x)  # (4, C, 3, 3) before the first norm

    plain = make_generator("dcgan", 24, 16, widths, cond_dim=5)
    joined = make_generator("dcgan", 24, 16, widths, cond_dim=5, cond_input=True)
    with torch.no_grad():
        assert torch.equal(first_map(plain, a), first_map(plain, b))
        assert not torch.allclose(first_map(joined, a), first_map(joined, b))
        assert joined(z, a).shape == (4, 3, 24, 24) and not torch.equal(joined(z, a), joined(z, b))
    assert joined.main[0].weight.shape[0] == 16 + 128  # z, then the 128-wide embedding
    assert plain.main[0].weight.shape[0] == 16


def test_the_mapping_network_lets_trait_values_interact_where_the_linear_embedding_adds_them() -> None:
    """--condition-mapping: G's embedding of "dark skin and a mask" is not the dark skin's plus the mask's
    (the linear embedding's is, exactly), and the mapped generator trains and keeps plain batch norm's start."""
    torch.manual_seed(0)
    widths = default_widths("dcgan", 32, 8)
    none, skin, mask = torch.zeros(1, 5), torch.zeros(1, 5), torch.zeros(1, 5)
    skin[0, 0], mask[0, 3] = 1, 1

    def interaction(g: torch.nn.Module) -> float:
        e = g.embed
        with torch.no_grad():
            return float((e(skin + mask) - e(skin) - e(mask) + e(none)).abs().max())

    linear = make_generator("dcgan", 32, 16, widths, cond_dim=5)
    mapped = make_generator("dcgan", 32, 16, widths, cond_dim=5, cond_mapping=2)
    assert interaction(linear) < 1e-6 and interaction(mapped) > 1e-3
    assert sum(isinstance(m, torch.nn.Linear) for m in mapped.embed) == 3
    z = torch.randn(6, 16)
    assert torch.equal(mapped(z, skin.expand(6, 5)), mapped(z, mask.expand(6, 5)))  # starts unconditioned
    opt = torch.optim.Adam(mapped.parameters(), lr=1e-2)
    for _ in range(30):
        loss = (mapped(z, skin.expand(6, 5)) + 1).square().mean() + (mapped(z, mask.expand(6, 5)) - 1).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mapped.eval()
    assert mapped(z, skin.expand(6, 5)).mean() < -0.3 and mapped(z, mask.expand(6, 5)).mean() > 0.3


def test_local_contrast_makes_a_faint_detail_as_plain_as_a_bright_one() -> None:
    """--d-contrast: a mouth 15 RGB levels from a deep skin and one 210 levels from a light skin differ 14
    times in the image, and about twice in D's contrast channels (the floor keeps a flat region's noise from
    growing without bound); a flat region stays at zero."""
    from training.models import local_contrast

    def face(skin: tuple[int, int, int], mouth: tuple[int, int, int]) -> torch.Tensor:
        x = torch.tensor(skin, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 9, 9).clone()
        x[0, :, 4, 3:6] = torch.tensor(mouth, dtype=torch.float32).view(3, 1)
        return x / 127.5 - 1

    deep, light = face((80, 50, 35), (90, 40, 30)), face((219, 177, 128), (90, 40, 30))
    image_ratio = float((light - light[0, :, 0, 0].view(3, 1, 1)).abs().amax()
                        / (deep - deep[0, :, 0, 0].view(3, 1, 1)).abs().amax())
    assert image_ratio > 10
    a, b = local_contrast(deep).abs().amax(), local_contrast(light).abs().amax()
    assert 0.4 < float(a / b) <= 1.0 and float(a / b) > 4 / image_ratio
    assert float(local_contrast(deep)[..., 0:2, :].abs().amax()) < 1e-4  # far from the mouth: flat
    widths = default_widths("dcgan", 24, 8)
    d = make_discriminator("dcgan", 24, widths, spectral_norm=False, dropout=0.0, cond_dim=5, classify=True,
                           contrast=True)
    assert d.main[0].in_channels == 6
    logits, traits = d(torch.randn(4, 3, 24, 24), torch.zeros(4, 5), classify=True)
    assert logits.shape == (4,) and traits.shape == (4, 5)


def test_the_projection_discriminator_judges_image_and_condition_together() -> None:
    torch.manual_seed(0)
    d = make_discriminator("dcgan", 32, default_widths("dcgan", 32, 8), spectral_norm=True, dropout=0.0,
                           norm="none", mbstd_group=4, cond_dim=5)
    x = torch.randn(8, 3, 32, 32)
    c1, c2 = torch.zeros(8, 5), torch.zeros(8, 5)
    c1[:, 1], c2[:, 2] = 1, 1
    assert d(x, c1).shape == (8,) and not torch.allclose(d(x, c1), d(x, c2))
    try:
        d(x)
    except ValueError as e:
        assert "needs conditions" in str(e)
    else:
        raise AssertionError("a conditioned D without conditions must refuse")


def test_unconditioned_networks_keep_their_parameters() -> None:
    widths = default_widths("dcgan", 32, 8)
    g = make_generator("dcgan", 32, 16, widths)
    d = make_discriminator("dcgan", 32, widths, spectral_norm=False, dropout=0.0)
    names = set(g.state_dict()) | set(d.state_dict())
    assert not any(k.startswith(("embed", "project", "classifier")) or ".gain." in k for k in names)
    conditioned = make_discriminator("dcgan", 32, widths, spectral_norm=False, dropout=0.0, cond_dim=5)
    assert not any(k.startswith("classifier") for k in conditioned.state_dict())  # only with --condition-aux
    assert "main.1.weight" in g.state_dict()  # plain affine batch norm, as checkpoints of earlier runs hold


def test_a_conditioned_gan_step_trains_both_networks_on_the_batch_conditions() -> None:
    """One training step of a conditioned pair: the real batch's conditions (DeviceBatches.conditions, in the
    batch's own order) reach G and D, and D's projection learns from them."""
    import numpy as np

    from training.build import build_models
    from training.config import TrainConfig
    from training.data import DeviceBatches
    from training.distributed import DistContext
    from training.train import gan_step

    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=8, steps=3, device="cpu", amp="off", ema=0.9)
    device = torch.device("cpu")
    models, _ = build_models(cfg, device, None, DistContext(), None, None, cond_dim=4)
    images = np.random.default_rng(0).integers(0, 255, (20, 3, 32, 32), dtype=np.uint8)
    conditions = np.eye(4, dtype=np.float32)[np.arange(20) % 4]
    batches = DeviceBatches(images, batch_size=8, device=device, seed=0, mode="resident", conditions=conditions)
    idx = batches.indices(0)
    assert torch.equal(batches.conditions(0), torch.from_numpy(conditions)[idx])  # the batch's own rows
    before = models.d.project.weight.detach().clone()
    out = gan_step(models, batches.get(0), cfg, device, (), cond=batches.conditions(0))
    assert torch.isfinite(out).all() and not torch.equal(before, models.d.project.weight)


def test_with_fake_conditions_g_draws_for_them_and_not_for_the_real_batchs() -> None:
    """gan_step's ``fake_cond`` (a balanced run's own draw): G is asked for those trait sets only, so the
    embedding columns of values that only the real batch holds get no update, and the value asked for does
    (without ``fake_cond``, G draws for the real batch's and every column moves)."""
    import numpy as np

    from training.build import build_models
    from training.config import TrainConfig
    from training.distributed import DistContext
    from training.train import gan_step

    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=8, steps=3, device="cpu", amp="off", ema=0.9,
                      condition="traits", condition_aux=1.0, condition_aux_view="both")
    device = torch.device("cpu")
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    cond = torch.from_numpy(np.eye(4, dtype=np.float32)[np.arange(8) % 3])  # values 0, 1, 2
    asked = torch.zeros(8, 4)
    asked[:, 3] = 1  # value 3 only
    blocks = ((0, 4, False, None),)
    for fake_cond, moved in ((asked, [False, False, False, True]), (None, [True, True, True, False])):
        torch.manual_seed(0)
        models, _ = build_models(cfg, device, None, DistContext(), None, None, cond_dim=4)
        before = models.g.embed.weight.detach().clone()
        for _ in range(2):  # (the first step moves the batch norms' gains off zero; the second the embedding)
            out = gan_step(models, real, cfg, device, (), cond=cond, blocks=blocks, fake_cond=fake_cond)
            assert torch.isfinite(out).all()
        changed = (models.g.embed.weight.detach() != before).any(0).tolist()
        assert changed == moved


def test_the_trait_classification_loss_follows_the_targets_and_skips_unlisted_tokens() -> None:
    """AC-GAN's auxiliary loss: low when the logits name each row's class (and a set type's values), high when
    they name another; a token whose traits were never listed, and a type at UNKNOWN, teach nothing."""
    from training.conditioning import build_vocabulary
    from training.losses import trait_classification_loss

    labels = [{"type": "a", "acc": frozenset({"x"})}, {"type": "b", "acc": frozenset({"x", "y"})},
              {"type": "a", "acc": frozenset()}, None] * 3
    vocab = build_vocabulary(labels, ["type", "acc"], {"acc"}, min_count=1)
    cond = torch.from_numpy(vocab.encode_all(labels))
    blocks = vocab.blocks()
    assert [b[2] for b in blocks] == [False, True] and blocks[0][3] is not None  # type has UNKNOWN, acc is a set
    right = (cond * 2 - 1) * 20  # logits that name each row's slots
    wrong = -right
    assert trait_classification_loss(right, cond, blocks) < 0.01 < 5 < trait_classification_loss(wrong, cond, blocks)
    unlisted = torch.tensor([lab is None for lab in labels])
    garbage = right.clone()
    garbage[unlisted] = torch.randn(int(unlisted.sum()), cond.shape[1]) * 50  # the unlisted rows say anything
    assert torch.allclose(trait_classification_loss(garbage, cond, blocks), trait_classification_loss(right, cond, blocks))


def test_the_focal_weighting_moves_the_pull_to_the_rows_the_classifier_misses() -> None:
    """--condition-aux-focal: the same loss where every row is as hard as the others (the weights have mean 1),
    and a larger share of the gradient on a row the classifier gets wrong than without it."""
    from training.conditioning import build_vocabulary
    from training.losses import trait_classification_loss

    labels = [{"type": t} for t in "abcabcab"]
    vocab = build_vocabulary(labels, ["type"], set(), min_count=1)
    cond = torch.from_numpy(vocab.encode_all(labels))
    blocks = vocab.blocks()
    right = (cond * 2 - 1) * 2.0
    same = trait_classification_loss(right, cond, blocks)
    assert torch.allclose(trait_classification_loss(right, cond, blocks, focal=2.0), same)
    mixed = right.clone()
    mixed[0] = -mixed[0]  # the classifier misses row 0 only

    def share_of_row0(focal: float) -> float:
        logits = mixed.clone().requires_grad_(True)
        trait_classification_loss(logits, cond, blocks, focal=focal).backward()
        per_row = logits.grad.norm(dim=1)
        return float(per_row[0] / per_row.sum())

    plain, focal = share_of_row0(0.0), share_of_row0(2.0)
    assert focal > 0.95 > plain + 0.1  # row 0 draws nearly all of the pull with it, clearly less without
    assert torch.allclose(trait_classification_loss(mixed, cond, blocks, focal=0.0),
                          trait_classification_loss(mixed, cond, blocks))


def test_the_drawn_by_g_slot_is_the_target_of_fakes_and_a_wrong_answer_for_real_images() -> None:
    """--condition-aux-fakes: one more logit per trait type (after the vector's). Real images (and G's loss)
    target the traits, so a classifier that answers "drawn by G" for them pays; D's step on fakes targets the
    slot, whatever was asked, and counts the rows whose traits were never listed too. A set type gets a
    sigmoid slot of its own."""
    from training.conditioning import build_vocabulary
    from training.losses import trait_classification_loss

    labels = [{"type": t, "acc": frozenset(a)} for t, a in zip("abcab", ["x", "xy", "", "y", "x"])] + [None]
    vocab = build_vocabulary(labels, ["acc", "type"], {"acc"}, min_count=1)
    cond = torch.from_numpy(vocab.encode_all(labels))
    blocks, width, n = vocab.blocks(), vocab.width, len(vocab.types)
    assert [b[2] for b in blocks] == [True, False] and cond.shape == (6, width)
    traits = torch.cat([(cond * 2 - 1) * 6.0, torch.full((6, n), -6.0)], 1)  # sure of the traits, not fake
    fake = torch.cat([torch.full((6, width), -6.0), torch.full((6, n), 6.0)], 1)  # sure it is G's
    kw = dict(fake_slots=True)
    assert trait_classification_loss(traits, cond, blocks, **kw) < 0.05
    assert trait_classification_loss(fake, cond, blocks, **kw) > 3.0
    assert trait_classification_loss(fake, cond, blocks, as_fake=True, **kw) < 0.05
    assert trait_classification_loss(traits, cond, blocks, as_fake=True, **kw) > 3.0
    # the unlisted row (the last): left out for real images, counted as a fake
    unlisted_only = traits.clone()
    unlisted_only[5] = fake[5]
    assert torch.allclose(trait_classification_loss(unlisted_only, cond, blocks, **kw),
                          trait_classification_loss(traits, cond, blocks, **kw))
    assert trait_classification_loss(unlisted_only, cond, blocks, as_fake=True, **kw) < \
        trait_classification_loss(traits, cond, blocks, as_fake=True, **kw)


def test_an_auxiliary_classifier_step_with_fake_slots_teaches_d_the_slot_on_gs_fakes() -> None:
    """A D step of --condition-aux-fakes: the head has a "drawn by G" logit per type, and after a few steps
    on one batch D's classifier gives G's fakes a higher probability of it than the real images."""
    from training.build import build_models
    from training.config import TrainConfig
    from training.distributed import DistContext
    from training.train import gan_step
    from training.conditioning import build_vocabulary

    labels = [{"type": t} for t in "abcdabcd"]
    vocab = build_vocabulary(labels, ["type"], set(), min_count=1)
    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=8, steps=3, device="cpu", amp="off", ema=0.9,
                      condition="traits", condition_aux=1.0, condition_aux_view="both", condition_aux_fakes=1.0,
                      conditioning={"vocabulary": vocab.to_dict()}, lr_d=2e-3)
    device = torch.device("cpu")
    torch.manual_seed(0)
    models, _ = build_models(cfg, device, None, DistContext(), None, None, cond_dim=vocab.width)
    assert models.d.classifier.out_features == vocab.width + 1
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    cond = torch.from_numpy(vocab.encode_all(labels))
    for _ in range(20):
        assert torch.isfinite(gan_step(models, real, cfg, device, (), cond=cond, blocks=vocab.blocks())).all()
    with torch.no_grad():
        fakes = models.g(torch.randn(8, 16), cond)
        slot = vocab.width  # the type's "drawn by G" logit, after its values'
        p_real = models.d(real, cond, classify=True)[1][:, :slot + 1].softmax(1)[:, slot].mean()
        p_fake = models.d(fakes, cond, classify=True)[1][:, :slot + 1].softmax(1)[:, slot].mean()
    assert p_fake > p_real + 0.2


@pytest.mark.parametrize(("asks", "g_width_extra"), [("values", 0), ("slot", 1)])
def test_gs_classifier_loss_with_fake_slots_is_over_the_values_or_also_the_slot(monkeypatch, asks, g_width_extra) -> None:
    """--condition-aux-fakes-g: D's classifier loss is taken with the "drawn by G" slot on the real images and
    on G's fakes (as fakes); G's own loss over the type's values only ("values") or against the slot too."""
    from training import losses
    from training.build import build_models
    from training.config import TrainConfig
    from training.conditioning import build_vocabulary
    from training.distributed import DistContext
    from training.train import gan_step

    labels = [{"type": t} for t in "abcdabcd"]
    vocab = build_vocabulary(labels, ["type"], set(), min_count=1)
    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=8, steps=3, device="cpu", amp="off", ema=0.9,
                      condition="traits", condition_aux=1.0, condition_aux_view="clean", condition_aux_fakes=0.5,
                      condition_aux_fakes_g=asks, conditioning={"vocabulary": vocab.to_dict()})
    models, _ = build_models(cfg, torch.device("cpu"), None, DistContext(), None, None, cond_dim=vocab.width)
    calls: list[tuple[int, bool, bool]] = []
    real_loss = losses.trait_classification_loss

    def spy(logits, cond, blocks, **kw):
        calls.append((logits.shape[1] - vocab.width, kw.get("fake_slots", False), kw.get("as_fake", False)))
        return real_loss(logits, cond, blocks, **kw)

    monkeypatch.setattr(losses, "trait_classification_loss", spy)
    cond = torch.from_numpy(vocab.encode_all(labels))
    gan_step(models, torch.rand(8, 3, 32, 32) * 2 - 1, cfg, torch.device("cpu"), (), cond=cond, blocks=vocab.blocks())
    # the clean view: one pass each, D's real images, D's fakes (as fakes), then G's
    assert calls == [(1, True, False), (1, True, True), (g_width_extra, asks == "slot", False)]


def test_an_auxiliary_classifier_step_trains_d_to_classify_and_g_to_be_classified() -> None:
    import numpy as np

    from training.build import build_models
    from training.config import TrainConfig
    from training.conditioning import build_vocabulary
    from training.data import DeviceBatches
    from training.distributed import DistContext
    from training.train import gan_step

    labels = [{"type": t} for t in "abcd"] * 5
    vocab = build_vocabulary(labels, ["type"], min_count=1)
    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=8, steps=3, device="cpu", amp="off", ema=0.9,
                      condition="traits", condition_aux=1.0)
    device = torch.device("cpu")
    conditions = vocab.encode_all(labels)
    models, _ = build_models(cfg, device, None, DistContext(), None, None, cond_dim=conditions.shape[1])
    images = np.random.default_rng(0).integers(0, 255, (20, 3, 32, 32), dtype=np.uint8)
    batches = DeviceBatches(images, batch_size=8, device=device, seed=0, mode="resident", conditions=conditions)
    gain = next(m for m in models.g.modules() if isinstance(m, ConditionalBatchNorm2d)).gain.weight
    head, g_gain = models.d.classifier.weight.detach().clone(), gain.detach().clone()
    out = gan_step(models, batches.get(0), cfg, device, (), cond=batches.conditions(0), blocks=vocab.blocks())
    assert torch.isfinite(out).all() and out.shape == (6,)
    assert out[4] > 0.5 and out[5] > 0.5  # both classifier losses are reported (near chance: ln 5 at the start)
    assert not torch.equal(head, models.d.classifier.weight) and not torch.equal(g_gain, gain)
    try:
        make_discriminator("dcgan", 32, default_widths("dcgan", 32, 8), spectral_norm=False, dropout=0.0,
                           cond_dim=5)(torch.randn(2, 3, 32, 32), torch.zeros(2, 5), classify=True)
    except ValueError as e:
        assert "no trait classifier" in str(e)
    else:
        raise AssertionError("a D without the classifier must refuse to classify")


def test_the_classifier_views_judge_the_images_they_name() -> None:
    """--condition-aux-view: the classifier's loss on the real batch is its verdict on the augmented images
    D's adversarial loss sees ("augmented"), on the images as they are ("clean"), on both (their mean), or
    on every op of the policy but cutout ("uncut"; here the policy is cutout alone, so the images as they are)."""
    import copy

    import numpy as np
    import pytest

    from pipeline.errors import NftganError
    from training.augment import diff_augment
    from training.build import build_models
    from training.config import TrainConfig
    from training.conditioning import build_vocabulary
    from training.distributed import DistContext
    from training.losses import trait_classification_loss
    from training.train import gan_step

    labels = [{"type": t} for t in "abcd"] * 4
    vocab = build_vocabulary(labels, ["type"], min_count=1)
    cond = torch.from_numpy(vocab.encode_all(labels)).float()
    real = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (16, 3, 32, 32)).astype(np.float32))
    for view, ops in (("clean", ("translation", "cutout")), ("augmented", ("translation", "cutout")),
                      ("both", ("translation", "cutout")), ("uncut", ("cutout",))):
        torch.manual_seed(0)
        cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=16, steps=1, device="cpu", amp="off",
                          condition="traits", condition_aux=1.0, condition_aux_view=view)
        models, _ = build_models(cfg, torch.device("cpu"), None, DistContext(), None, None, cond_dim=cond.shape[1])
        before = copy.deepcopy(models.d)  # the step updates D; its classifier's verdicts before the update
        torch.manual_seed(1)
        torch.randn(16, cfg.z_dim)  # the step's latents, then its augmentation of the real batch
        augmented = diff_augment(real, ops)

        def loss(x: torch.Tensor) -> float:
            with torch.no_grad():
                return trait_classification_loss(before(x, cond, classify=True)[1], cond, vocab.blocks()).item()

        expected = {"clean": loss(real), "augmented": loss(augmented), "uncut": loss(real),
                    "both": (loss(real) + loss(augmented)) / 2}[view]
        torch.manual_seed(1)
        out = gan_step(models, real, cfg, torch.device("cpu"), ops, cond=cond, blocks=vocab.blocks())
        assert out[4].item() == pytest.approx(expected, rel=1e-5), view
        assert abs(loss(real) - loss(augmented)) > 1e-3  # the views differ, so each check means something
    with pytest.raises(NftganError, match="--condition-aux-view must be one of augmented, uncut, clean, both"):
        TrainConfig(condition="traits", condition_aux_view="raw")


def test_condition_aux_belongs_to_conditioned_runs() -> None:
    """The auxiliary classifier's weight is a default of conditioned runs; an unconditioned one has none
    (it is recorded as 0, so its config says what it trained)."""
    import pytest

    from pipeline.errors import NftganError
    from training.config import TrainConfig

    assert TrainConfig(condition="none", condition_aux=1.0).condition_aux == 0.0
    assert TrainConfig(condition="traits", condition_aux=1.0).condition_aux == 1.0
    with pytest.raises(NftganError, match="--condition-aux must be 0 \\(off\\) or more"):
        TrainConfig(condition="traits", condition_aux=-1.0)


def test_the_snapped_view_judges_gs_fakes_on_the_palette_with_gradients_straight_through() -> None:
    """--condition-aux-snap: the classifier's own pass on G's side sees each fake pixel as its nearest palette
    colour (what the export's trait check sees), while G's gradient passes through the snap unchanged."""
    import copy

    import numpy as np
    import pytest

    from training.build import build_models
    from training.conditioning import build_vocabulary
    from training.config import TrainConfig
    from training.distributed import DistContext
    from training.grid import PaletteSnap
    from training.losses import trait_classification_loss
    from training.train import gan_step

    palette = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -0.5, -1.0], [0.0, 0.2, 0.9]])
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (4, 3, 5, 5)).astype(np.float32)).requires_grad_()
    y = PaletteSnap(palette)(x)
    pixels, colours = y.detach().permute(0, 2, 3, 1).reshape(-1, 3), x.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    nearest = torch.cdist(colours, palette).argmin(1)
    assert torch.allclose(pixels, palette[nearest], atol=1e-6) and len(set(nearest.tolist())) > 1
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    assert torch.equal(x.grad, torch.arange(y.numel()).view_as(y).float())  # straight through: the identity

    labels = [{"type": t} for t in "abcd"] * 4
    vocab = build_vocabulary(labels, ["type"], min_count=1)
    cond = torch.from_numpy(vocab.encode_all(labels)).float()
    real = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (16, 3, 32, 32)).astype(np.float32))
    cfg = TrainConfig(size_px=32, base_width=8, z_dim=16, batch_size=16, steps=1, device="cpu", amp="off",
                      condition="traits", condition_aux=1.0, condition_aux_view="clean", condition_aux_snap=True)
    said = {}
    for snapped, ops in ((False, ("translation",)), (True, ("translation",)), (True, ())):
        torch.manual_seed(0)
        models, _ = build_models(cfg, torch.device("cpu"), None, DistContext(), None, None, cond_dim=cond.shape[1])
        torch.manual_seed(1)
        fake = copy.deepcopy(models.g)(torch.randn(16, cfg.z_dim), cond).detach()  # the step's fakes
        torch.manual_seed(1)
        out = gan_step(models, real, cfg, torch.device("cpu"), ops, cond=cond, blocks=vocab.blocks(),
                       palette=PaletteSnap(palette) if snapped else None)
        with torch.no_grad():  # D after its update, as G's side of the step saw it
            judged = PaletteSnap(palette)(fake) if snapped else fake
            expected = trait_classification_loss(models.d(judged, cond, classify=True)[1], cond, vocab.blocks())
        assert out[5].item() == pytest.approx(expected.item(), rel=1e-5), (snapped, ops)
        said[snapped, ops] = out[5].item()
    assert abs(said[True, ("translation",)] - said[False, ("translation",)]) > 1e-4  # the snap changed the verdict
    # the snap is the default: a run that asks for the augmented view alone (no pass of its own) is not refused
    assert TrainConfig(condition="traits", condition_aux_view="augmented").condition_aux_snap is True
