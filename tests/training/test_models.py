from __future__ import annotations

import pytest
import torch
from torch import nn

from training.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    default_widths,
    make_discriminator,
    make_generator,
    stage_count,
)


@pytest.mark.parametrize("size_px", [32, 64, 128, 256])
def test_every_power_of_two_size_maps_z_to_an_image_and_an_image_to_one_logit(size_px):
    widths = default_widths("dcgan", size_px, 4)
    g = make_generator("dcgan", size_px, 10, widths)
    d = make_discriminator("dcgan", size_px, widths, spectral_norm=False, dropout=0.0)
    x = g(torch.randn(2, 10))
    assert x.shape == (2, 3, size_px, size_px)
    assert x.abs().max() <= 1  # tanh out
    assert d(x).shape == (2,)


def test_default_64px_widths_are_the_reference_dcgan_and_d_mirrors_g():
    widths = default_widths("dcgan", 64, 64)
    assert widths == (512, 256, 128, 64)
    g = make_generator("dcgan", 64, 100, widths)
    d = make_discriminator("dcgan", 64, widths, spectral_norm=False, dropout=0.0)
    g_convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in g_convs] == [512, 256, 128, 64, 3]
    assert [c.out_channels for c in d_convs] == [64, 128, 256, 512, 1]
    assert sum(p.numel() for p in g.parameters()) == 3_576_704  # pytorch/examples dcgan netG at nz=100, ngf=64
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in [*g.modules(), *d.modules()])


def test_widths_are_capped_at_eight_times_the_base_for_large_sizes():
    assert default_widths("dcgan", 256, 64) == (512, 512, 512, 256, 128, 64)
    assert stage_count(32) == 3


def test_wrong_number_of_widths_or_size_is_rejected():
    with pytest.raises(ValueError, match="needs 4 widths"):
        DCGANGenerator(64, 100, (8, 4))
    with pytest.raises(ValueError, match="not a start side"):
        DCGANDiscriminator(36, (8, 4, 2))


def test_dcgan_init_draws_weights_from_n_0_0_02():
    g = make_generator("dcgan", 64, 100, (512, 256, 128, 64))
    w = g.main[0].weight
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    bn = g.main[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)


def test_spectral_norm_discriminator_has_no_batchnorm_and_unit_spectral_norm():
    d = make_discriminator("dcgan", 32, (32, 16, 8), spectral_norm=True, dropout=0.3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert any(isinstance(m, nn.Dropout) for m in d.modules())
    d.train()
    for _ in range(20):  # power iteration converges during forward passes
        d(torch.randn(4, 3, 32, 32))
    conv = d.main[2]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_mlp_baseline_shapes():
    widths = default_widths("mlp", 32, 4)
    g = make_generator("mlp", 32, 10, widths)
    d = make_discriminator("mlp", 32, widths, spectral_norm=True, dropout=0.1)
    x = g(torch.randn(3, 10))
    assert x.shape == (3, 3, 32, 32)
    assert d(x).shape == (3,)
