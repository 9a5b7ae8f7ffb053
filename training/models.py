"""The DCGAN family (Radford et al. 2015) for any power-of-two size from 32 to 256 px, and an MLP baseline.

Generator at 64 px with widths (ngf*8, ngf*4, ngf*2, ngf), as in the paper's Figure 1::

    z                  100 x 1 x 1
    ConvT 4, 1, 0      ngf*8 x 4 x 4      BN, ReLU        (project and reshape)
    ConvT 4, 2, 1      ngf*4 x 8 x 8      BN, ReLU
    ConvT 4, 2, 1      ngf*2 x 16 x 16    BN, ReLU
    ConvT 4, 2, 1      ngf   x 32 x 32    BN, ReLU
    ConvT 4, 2, 1      3     x 64 x 64    tanh

Other sizes add or drop one stride-2 stage per doubling (``len(widths) == log2(size_px) - 2``); a side
that is not a power of two starts from its own small map (24 px: 3x3, 6, 12, 24; :mod:`training.geometry`).
The discriminator mirrors it: strided convs, LeakyReLU 0.2 (no BN on the first layer; no BN at all with
spectral norm or ``norm="none"``), optional dropout, optionally a minibatch standard deviation channel
before its last layer (ProGAN), no pooling, no fully connected layer, one logit out.

No I/O here; this module imports only torch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from training.geometry import start_and_stages, stage_count



def default_widths(arch: str, size_px: int, base_width: int) -> tuple[int, ...]:
    """Generator widths from the first (smallest) stage to the last; the discriminator uses them reversed.

    DCGAN: ``base * 2**k`` halving per stage, capped at ``base * 8`` (64 px, base 64: 512, 256, 128, 64 as
    in pytorch/examples). MLP: hidden widths ``base*4, base*8, base*16`` (256, 512, 1024 at base 64).
    """
    if arch == "mlp":
        return (base_width * 4, base_width * 8, base_width * 16)
    n = stage_count(size_px)
    return tuple(min(base_width * 2 ** (n - 1 - i), base_width * 8) for i in range(n))


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift come from the condition (de Vries et al. 2017; BigGAN's generator):
    ``gamma = 1 + W_g e``, ``beta = W_b e`` for the embedded condition ``e``. Starts as plain batch norm."""

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(embed_dim, channels, bias=False)
        self.bias = nn.Linear(embed_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        gamma = 1 + self.gain(e).to(x.dtype)
        beta = self.bias(e).to(x.dtype)
        return self.bn(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class PaletteHead(nn.Module):
    """A pixel-art generator's last step: logits over the collection's palette per pixel (N, K, H, W) to an
    image (N, 3, H, W) on the networks' scale.

    Without gradients (samples, exports, the EMA generator): each pixel's most likely colour, so every pixel
    is one palette colour (no in-between colours for a snap to turn into another trait). In training,
    ``straight_through``: the same colour forward and the gradient of the softmax-weighted mean of the
    palette backward (the straight-through estimator, Bengio et al. 2013, as Gumbel-softmax's "hard" mode
    uses it); otherwise the softmax-weighted mean itself, with its exact gradient (D, which sees only single
    colours in real images, pushes each pixel's softmax towards one colour)."""

    def __init__(self, palette: torch.Tensor, *, straight_through: bool = True) -> None:
        super().__init__()
        if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) < 2:
            raise ValueError(f"a palette head needs a (K >= 2, 3) palette, got {tuple(palette.shape)}")
        self.register_buffer("palette", palette.detach().float().clone())
        self.straight_through = straight_through

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        training = torch.is_grad_enabled() and logits.requires_grad
        if training:
            soft = torch.einsum("nkhw,kc->nchw", logits.float().softmax(1), self.palette)
            if not self.straight_through:
                return soft.to(logits.dtype)
        hard = self.palette[logits.argmax(1)].permute(0, 3, 1, 2)  # (N, 3, H, W): each pixel's likeliest colour
        if not training:
            return hard.to(logits.dtype)
        return (hard + (soft - soft.detach())).to(logits.dtype)  # exactly hard forward, soft backward

    def extra_repr(self) -> str:
        return f"colours={len(self.palette)}, straight_through={self.straight_through}"


class DCGANGenerator(nn.Module):
    """``cond_dim > 0``: a trait-conditioned generator; every batch norm is conditional on a learned
    embedding of the condition vector (one-hot and multi-hot blocks, :mod:`training.conditioning`).
    ``palette`` (K, 3, on the networks' scale): the last layer draws K logits per pixel and a
    :class:`PaletteHead` turns them into palette colours, instead of RGB through tanh."""

    def __init__(self, size_px: int, z_dim: int, widths: tuple[int, ...], *, cond_dim: int = 0,
                 embed_dim: int = 128, pool_size: int = 0, palette: torch.Tensor | None = None,
                 straight_through: bool = True, cond_mapping: int = 0, cond_input: bool = False) -> None:
        super().__init__()
        if len(widths) != stage_count(size_px):
            raise ValueError(f"{size_px} px needs {stage_count(size_px)} widths, got {len(widths)}")
        self.z_dim = z_dim
        self.size_px = size_px
        self.cond_dim = cond_dim
        # cond_input: the first layer also takes the trait embedding beside z (the conditional GAN's
        # concatenation), so a trait shapes the layout from the first 3x3 map, not only each stage's
        # per-channel gains
        self.cond_input = bool(cond_input and cond_dim)
        start, _ = start_and_stages(size_px)

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, embed_dim) if cond_dim else nn.BatchNorm2d(c)

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + (embed_dim if self.cond_input else 0), widths[0], start, 1, 0, bias=False),
            norm(widths[0]),
            nn.ReLU(inplace=True),
            # widths[0] x start x start (4 x 4 at powers of two)
        ]
        side = start
        for c_in, c_out in zip(widths, widths[1:]):
            side *= 2
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                norm(c_out),
                nn.ReLU(inplace=True),
                # c_out x side x side
            ]
        out = 3 if palette is None else len(palette)
        layers += [
            nn.ConvTranspose2d(widths[-1], out, 4, 2, 1, bias=False),
            nn.Tanh() if palette is None else PaletteHead(palette, straight_through=straight_through),
            # 3 x size_px x size_px
        ]
        self.main = nn.Sequential(*layers)
        init_weights(self)
        for m in self.modules():  # the conditional norms start as plain batch norm
            if isinstance(m, ConditionalBatchNorm2d):
                nn.init.zeros_(m.gain.weight)
                nn.init.zeros_(m.bias.weight)
        if cond_dim and not cond_mapping:  # the embedding: linear, a sum of one vector per trait value
            self.embed: nn.Module = nn.Linear(cond_dim, embed_dim, bias=False)
            nn.init.normal_(self.embed.weight, 0.0, 1.0 / cond_dim**0.5)
        elif cond_dim:  # a mapping network (StyleGAN's, small): trait values' embeddings that interact
            maps: list[nn.Module] = []
            for i in range(cond_mapping + 1):
                maps.append(nn.Linear(cond_dim if i == 0 else embed_dim, embed_dim))
                if i < cond_mapping:
                    maps.append(nn.LeakyReLU(0.2))
            self.embed = nn.Sequential(*maps)
        if pool_size:  # the collection's distinct trait sets and their cumulative shares (set_pool)
            self.register_buffer("pool", torch.zeros(pool_size, cond_dim))
            self.register_buffer("pool_cdf", torch.linspace(1.0 / pool_size, 1.0, pool_size))

    def set_pool(self, conditions: torch.Tensor, weights: torch.Tensor) -> None:
        """The condition vectors a call without conditions draws from, with their weights (the collection's
        joint trait distribution)."""
        self.pool.copy_(conditions)
        cdf = weights.double().cumsum(0)
        self.pool_cdf.copy_((cdf / cdf[-1]).to(self.pool_cdf.dtype))

    def draw_conditions(self, z: torch.Tensor) -> torch.Tensor:
        """Conditions for latents ``z`` from the pool, by inverse CDF of ``z[:, 0]``'s normal CDF: a pure
        function of the latents, so fixed latents give fixed trait sets, in the collection's proportions."""
        u = 0.5 * (1 + torch.erf(z[:, 0].float() / 2**0.5))
        idx = torch.searchsorted(self.pool_cdf.float(), u.clamp(0, 1 - 1e-7).to(self.pool_cdf.device))
        return self.pool[idx.clamp(max=len(self.pool) - 1)]

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = z.view(z.shape[0], self.z_dim, 1, 1)
        if not self.cond_dim:
            return self.main(x)
        if c is None and hasattr(self, "pool"):
            c = self.draw_conditions(z.view(z.shape[0], self.z_dim))
        if c is None or c.shape != (z.shape[0], self.cond_dim):
            raise ValueError(f"a conditioned generator needs conditions of shape ({z.shape[0]}, {self.cond_dim})")
        e = self.embed(c.to(self.main[0].weight.dtype))
        if self.cond_input:
            x = torch.cat([x, e.to(x.dtype).view(*e.shape, 1, 1)], 1)
        for m in self.main:
            x = m(x, e) if isinstance(m, ConditionalBatchNorm2d) else m(x)
        return x


class MinibatchStd(nn.Module):
    """ProGAN's minibatch standard deviation, per image: for each group of ``group`` images, the mean over
    features and pixels of their standard deviation across the group. A generator that draws the same image
    again and again gives itself away to D through it. The group shrinks to divide the batch.

    ProGAN appends it as one more constant channel before D's last convolution; a constant channel ``s``
    through a convolution adds ``s * sum(its kernel)``, so D adds ``weight * s`` to its logit instead, the
    same function without a convolution over an odd channel count (a slow path for bf16 kernels)."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group, b)
        while b % g:
            g -= 1
        y = x.float().reshape(g, b // g, c, h, w)
        y = y - y.mean(dim=0)  # (torch's var over the outer dimension is a slow path on CPUs)
        std = (y.square().mean(dim=0) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (b // g,)
        return std.repeat(g)  # image i belongs to group i % (b // g)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def local_contrast(x: torch.Tensor, size: int = 3, floor: float = 0.05) -> torch.Tensor:
    """Each pixel's difference from the mean of its ``size`` x ``size`` neighbourhood, divided by that
    neighbourhood's RMS difference (channels pooled; ``floor`` keeps a flat region's noise from growing
    without bound): a mouth two shades from a deep skin is as plain here as one on a light skin."""
    pad = (size // 2,) * 4
    mean = nn.functional.avg_pool2d(nn.functional.pad(x, pad, mode="replicate"), size, 1)
    diff = x - mean
    var = nn.functional.avg_pool2d(nn.functional.pad(diff.square().mean(1, keepdim=True), pad, mode="replicate"),
                                   size, 1)
    return diff * torch.rsqrt(var + floor**2)


class DCGANDiscriminator(nn.Module):
    """``cond_dim > 0``: a projection discriminator (Miyato & Koyama 2018): the logit gains the inner product
    of an embedding of the condition with D's last feature map summed over space, so D judges whether the
    image shows the traits it is said to, not only whether it looks real."""

    def __init__(
        self, size_px: int, widths: tuple[int, ...], *, spectral_norm: bool = False, dropout: float = 0.0,
        norm: str = "batch", mbstd_group: int = 0, cond_dim: int = 0, classify: bool = False,
        fake_slots: int = 0, contrast: bool = False,
    ) -> None:
        super().__init__()
        if len(widths) != stage_count(size_px):
            raise ValueError(f"{size_px} px needs {stage_count(size_px)} widths, got {len(widths)}")
        start, _ = start_and_stages(size_px)
        self.contrast = contrast  # D also sees each image's local contrast (local_contrast), 3 more channels
        layers: list[nn.Module] = [
            nn.Conv2d(6 if contrast else 3, widths[0], 4, 2, 1, bias=spectral_norm),
            nn.LeakyReLU(0.2, inplace=True),
            # widths[0] x size/2 x size/2
        ]
        side = size_px // 2
        for c_in, c_out in zip(widths, widths[1:]):
            side //= 2
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=spectral_norm or norm == "none"))
            if not spectral_norm and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            # c_out x side x side
        layers.append(nn.Conv2d(widths[-1], 1, start, 1, 0, bias=spectral_norm))
        # 1 x 1 x 1
        self.main = _initialized(layers, spectral_norm=spectral_norm)
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group > 0 else None
        if self.mbstd is not None:
            self.mbstd_weight = nn.Parameter(torch.zeros(()))
        self.cond_dim = cond_dim
        if cond_dim:
            project = nn.Linear(cond_dim, widths[-1], bias=False)
            nn.init.normal_(project.weight, 0.0, 0.02)
            self.project = _spectral_norm(project) if spectral_norm else project
        self.classifies = bool(classify and cond_dim)
        if self.classifies:  # the auxiliary trait classifier (AC-GAN): one logit per slot of a condition vector,
            # on the whole map (where a trait is matters); fake_slots: one more logit per type, after the vector's
            head = nn.Linear(widths[-1] * start * start, cond_dim + fake_slots)
            nn.init.normal_(head.weight, 0.0, 0.02)
            nn.init.zeros_(head.bias)
            self.classifier = _spectral_norm(head) if spectral_norm else head

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, *, classify: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One logit per image; ``classify`` (a D built with ``classify=True``): also the auxiliary
        classifier's trait logits, ``(logits, trait_logits)``."""
        if self.contrast:
            x = torch.cat([x, local_contrast(x)], 1)
        if self.mbstd is None and not self.cond_dim:
            return self.main(x).view(x.shape[0])  # one logit per image
        h = self.main[:-1](x)  # widths[-1] x start x start
        out = self.main[-1](h).view(x.shape[0])
        if self.mbstd is not None:
            out = out + self.mbstd_weight * self.mbstd(h).to(h.dtype)
        if self.cond_dim:
            if c is None or c.shape != (x.shape[0], self.cond_dim):
                raise ValueError(f"a conditioned discriminator needs conditions of shape ({x.shape[0]}, {self.cond_dim})")
            out = out + (self.project(c.to(h.dtype)) * h.sum(dim=(2, 3))).sum(1)
        if classify:
            if not self.classifies:
                raise ValueError("this discriminator has no trait classifier")
            return out, self.classifier(h.flatten(1))
        return out


class TraitNet(nn.Module):
    """A run's own auxiliary trait classifier (``--condition-aux-net own``): 3x3 convolutions at full
    resolution, as evaluation's trait classifier, so that a one-pixel mouth two shades from a deep skin is
    seen where it is (D's 4x4 stride-2 trunk, trained to tell real from fake, names it in two thirds of real
    tokens). One logit per slot of a condition vector; no batch norm, so a batch of G's fakes is judged as
    the real images are."""

    def __init__(self, cond_dim: int, width: int) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]

        w = width
        self.body = nn.Sequential(  # S -> S/2 -> S/4 -> 4x4: where a trait is matters, so no global pool
            *block(3, w), nn.AvgPool2d(2),
            *block(w, 2 * w), nn.AvgPool2d(2),
            *block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(4 * w * 16, 128), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(128, cond_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MLPGenerator(nn.Module):
    """The fully connected baseline of the original GAN paper: z -> hidden layers -> 3*S*S, tanh."""

    def __init__(self, size_px: int, z_dim: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.size_px = size_px
        layers: list[nn.Module] = []
        c_in = z_dim
        for c_out in widths:
            layers += [nn.Linear(c_in, c_out), nn.LeakyReLU(0.2, inplace=True)]  # c_out
            c_in = c_out
        layers += [nn.Linear(c_in, 3 * size_px * size_px), nn.Tanh()]  # 3*S*S
        self.main = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim)).view(z.shape[0], 3, self.size_px, self.size_px)


class MLPDiscriminator(nn.Module):
    def __init__(
        self, size_px: int, widths: tuple[int, ...], *, spectral_norm: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3 * size_px * size_px
        for c_out in reversed(widths):
            layers += [nn.Linear(c_in, c_out), nn.LeakyReLU(0.2, inplace=True)]  # c_out
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            c_in = c_out
        layers.append(nn.Linear(c_in, 1))  # 1
        self.main = _initialized(layers, spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.reshape(x.shape[0], -1)).view(x.shape[0])


def _initialized(layers: list[nn.Module], *, spectral_norm: bool) -> nn.Sequential:
    """DCGAN init, then (optionally) spectral norm on every conv and linear layer (init sees plain weights)."""
    init_weights(nn.Sequential(*layers))
    if spectral_norm:
        layers = [_spectral_norm(m) if isinstance(m, (nn.Conv2d, nn.Linear)) else m for m in layers]
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv and linear weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def make_generator(arch: str, size_px: int, z_dim: int, widths: tuple[int, ...], *, cond_dim: int = 0,
                   pool_size: int = 0, palette: torch.Tensor | None = None, straight_through: bool = True,
                   cond_mapping: int = 0, cond_input: bool = False) -> nn.Module:
    if cond_dim and arch != "dcgan":
        raise ValueError("trait conditioning needs the dcgan architecture")
    if palette is not None and arch != "dcgan":
        raise ValueError("a palette head needs the dcgan architecture")
    if arch == "dcgan":
        return DCGANGenerator(size_px, z_dim, widths, cond_dim=cond_dim, pool_size=pool_size, palette=palette,
                              straight_through=straight_through, cond_mapping=cond_mapping, cond_input=cond_input)
    return MLPGenerator(size_px, z_dim, widths)


def make_discriminator(
    arch: str, size_px: int, widths: tuple[int, ...], *, spectral_norm: bool, dropout: float,
    norm: str = "batch", mbstd_group: int = 0, cond_dim: int = 0, classify: bool = False, fake_slots: int = 0,
    contrast: bool = False,
) -> nn.Module:
    """``widths`` are the generator's; the DCGAN discriminator runs them in reverse (wide at the end).
    ``classify``: a conditioned D that also classifies the traits (the auxiliary classifier); ``fake_slots``:
    its head has that many more logits (one "drawn by G" class per trait type: ``--condition-aux-fakes``);
    ``contrast``: D's input also carries the image's local contrast (``--d-contrast``)."""
    if contrast and arch != "dcgan":
        raise ValueError("--d-contrast needs the dcgan architecture")
    if cond_dim and arch != "dcgan":
        raise ValueError("trait conditioning needs the dcgan architecture")
    if arch == "dcgan":
        return DCGANDiscriminator(size_px, widths[::-1], spectral_norm=spectral_norm, dropout=dropout, norm=norm,
                                  mbstd_group=mbstd_group, cond_dim=cond_dim, classify=classify,
                                  fake_slots=fake_slots, contrast=contrast)
    return MLPDiscriminator(size_px, widths, spectral_norm=spectral_norm, dropout=dropout)
