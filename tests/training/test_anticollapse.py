"""The anti-collapse options: relativistic loss, R1/R2, lazy regularization, minibatch stddev, ADA, EMA ramp-up."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.errors import NftganError
from training import losses
from training.augment import AdaptiveStrength, diff_augment
from training.checkpoints import read_checkpoint
from training.config import TrainConfig
from training.models import MinibatchStd, make_discriminator, make_generator
from training.train import train
from training.visuals import read_metrics

from .conftest import tiny_config
from .test_train import Stop, assert_same_state, stop_at


def test_relativistic_pairing_loss_is_the_softplus_of_the_paired_difference():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    d = losses.discriminator_loss("rpgan", real, fake)
    assert d.item() == pytest.approx(((math.log1p(math.exp(-1.5))) + math.log1p(math.exp(2.0))) / 2)
    g = losses.generator_loss("rpgan", fake, real)
    assert g.item() == pytest.approx((math.log1p(math.exp(1.5)) + math.log1p(math.exp(-2.0))) / 2)
    # shifting every logit by a constant changes nothing: only differences count
    assert losses.discriminator_loss("rpgan", real + 7, fake + 7).item() == pytest.approx(d.item())
    with pytest.raises(ValueError, match="real logits"):
        losses.generator_loss("rpgan", fake)


def test_gradient_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    lin = nn.Linear(12, 1)
    x = torch.randn(5, 3, 2, 2, requires_grad=True)
    logits = lin(x.flatten(1)).view(-1)
    penalty = losses.gradient_penalty(logits, x)
    assert penalty.item() == pytest.approx(lin.weight.square().sum().item(), rel=1e-5)
    penalty.backward()  # the graph is kept: the penalty reaches the weights (d/dw |w|^2 = 2w)
    assert torch.allclose(lin.weight.grad, 2 * lin.weight.detach(), rtol=1e-5)


def test_minibatch_stddev_tells_a_batch_of_copies_from_a_varied_one():
    layer = MinibatchStd(4)
    varied = torch.randn(8, 5, 3, 3)
    copies = varied[:1].expand(8, -1, -1, -1)
    out_v, out_c = layer(varied), layer(copies)
    assert out_v.shape == (8,)
    assert out_c.abs().max() < 1e-3 < out_v.min()  # copies: std ~ 0; varied: clearly not
    assert layer(torch.randn(6, 5, 3, 3)).shape == (6,)  # a batch of 6: groups of 3
    # as a constant extra channel through D's last convolution: D's logit moves with the statistic
    d = make_discriminator("dcgan", 32, (16, 8, 4), spectral_norm=False, dropout=0.0, mbstd_group=4)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        d.mbstd_weight.fill_(1.0)
        h = d.main[:-1](x)
        assert torch.allclose(d(x), d.main[-1](h).view(8) + d.mbstd(h), atol=1e-6)


@pytest.mark.parametrize("size_px, start", [(24, 3), (40, 5), (32, 4)])
def test_generators_of_non_power_of_two_sides_start_from_their_own_small_map(size_px, start):
    g = make_generator("dcgan", size_px, 16, (16, 8, 4))
    assert g.main[0].kernel_size == (start, start)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 3, size_px, size_px)
    d = make_discriminator("dcgan", size_px, (16, 8, 4), spectral_norm=False, dropout=0.0, norm="none")
    assert d(x).shape == (2,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


def test_adaptive_strength_follows_the_overfitting_signal_and_clamps():
    ada = AdaptiveStrength(target=0.6, kimg=1.0, every=2, images_per_step=100, device=torch.device("cpu"))
    for _ in range(4):
        ada.accumulate(torch.tensor(1.0))  # D is sure every real image is real: overfitting
    assert float(ada.p) == pytest.approx(0.4)  # 2 adjustments of 2 * 100 / 1000
    for _ in range(20):
        ada.accumulate(torch.tensor(1.0))
    assert float(ada.p) == 1.0
    for _ in range(30):
        ada.accumulate(torch.tensor(0.0))  # below the target: p falls, never under 0
    assert float(ada.p) == 0.0
    # p gates each op per image: p = 0 changes nothing, p = 1 changes every image
    x = torch.rand(16, 3, 8, 8) * 2 - 1
    assert torch.equal(diff_augment(x, ("color",), torch.tensor(0.0)), x)
    changed = (diff_augment(x, ("color",), torch.tensor(1.0)) - x).flatten(1).abs().amax(1) > 0
    assert changed.all()


def test_new_options_are_validated_in_one_line():
    for bad, match in (({"loss": "wgan"}, "--loss"), ({"d_norm": "layer"}, "--d-norm"), ({"r1_gamma": -1.0}, "--r1-gamma"),
                       ({"reg_every": 0}, "--reg-every"), ({"ada_target": 1.0}, "--ada-target"),
                       ({"mbstd_group": -1}, "--mbstd-group"), ({"grid": "huge"}, "--grid"),
                       ({"grid": "native", "arch": "mlp"}, "needs --arch dcgan")):
        with pytest.raises(NftganError, match=match):
            TrainConfig(**bad)


R3 = dict(loss="rpgan", r1_gamma=0.1, r2_gamma=0.1, d_norm="none", mbstd_group=4, ada_target=0.6, ada_every=1,
          ada_kimg=0.05, augment="color,translation,cutout")


@pytest.mark.parametrize("options", [R3, {**R3, "reg_every": 2}, {**R3, "amp": "bf16", "separate_batches": False}],
                         ids=["r3-every-step", "r3-lazy", "r3-bf16-joint"])
def test_anti_collapse_options_train_with_finite_losses_and_log_ada(ws, make_cache, options):
    make_cache("tiny", 32)
    summary = train(ws, "tiny", tiny_config(log_every=1, **options))
    assert all(math.isfinite(v) for v in (summary.loss_g, summary.loss_d))
    rows = read_metrics(ws.run("tiny", "t"))
    assert all(0 <= r["aug_p"] <= 1 and -1 <= r["ada_rt"] <= 1 for r in rows)
    assert read_checkpoint(ws.run("tiny", "t").checkpoint(4))["ada"]["p"] == pytest.approx(rows[-1]["aug_p"], abs=1e-4)


def test_penalties_change_the_discriminator_update(ws, make_cache):
    make_cache("tiny", 32)
    base = dict(loss="rpgan", d_norm="none", steps=2, checkpoint_every=2, deterministic=True)
    train(ws, "tiny", tiny_config(run="plain", **base))
    train(ws, "tiny", tiny_config(run="r1", r1_gamma=10.0, **base))
    a = read_checkpoint(ws.run("tiny", "plain").checkpoint(2))["discriminator"]
    b = read_checkpoint(ws.run("tiny", "r1").checkpoint(2))["discriminator"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_resume_is_exact_with_adaptive_augmentation_and_lazy_penalties(ws, make_cache):
    make_cache("tiny", 32, n=20)
    options = dict(steps=6, checkpoint_every=3, log_every=1, deterministic=True, **{**R3, "reg_every": 2, "ada_every": 2})
    train(ws, "tiny", tiny_config(run="straight", **options))
    with pytest.raises(Stop):
        train(ws, "tiny", tiny_config(run="split", **options), progress=stop_at(3))
    train(ws, "tiny", tiny_config(run="split", resume=True, **options))
    keys = ("generator", "discriminator", "ema", "opt_g", "opt_d", "ada")
    a, b = (read_checkpoint(ws.run("tiny", r).checkpoint(6)) for r in ("straight", "split"))
    assert_same_state({k: a[k] for k in keys}, {k: b[k] for k in keys})


def test_ema_rampup_zero_uses_the_full_decay_from_the_first_step():
    from training.train import update_ema

    class M:
        pass

    g, ema = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    g.weight.data.fill_(1.0)
    ema.weight.data.fill_(0.0)
    m = M()
    m.g, m.ema = g, ema
    update_ema(m, 0.9, 0, rampup=0)
    assert ema.weight.item() == pytest.approx(0.1)
    ema.weight.data.fill_(0.0)
    update_ema(m, 0.9, 0, rampup=10)  # ramped: decay 1/10 at step 0
    assert ema.weight.item() == pytest.approx(0.9)


def test_a_config_saved_before_the_new_fields_keeps_its_meaning_when_defaults_move(monkeypatch):
    from training import config as config_module

    old = TrainConfig().to_dict()
    for name in config_module.BEFORE_THE_FIELD:
        old.pop(name)
    monkeypatch.setattr(config_module.TrainConfig.__dataclass_fields__["mbstd_group"], "default", 4)
    loaded = TrainConfig.from_dict(old)
    assert (loaded.mbstd_group, loaded.d_norm, loaded.grid, loaded.r1_gamma, loaded.ada_target) == (0, "batch", "cache", 0.0, 0.0)
