"""GAN objectives on discriminator logits, and the zero-centred gradient penalties.

- ``bce``: the non-saturating logistic loss of Goodfellow et al. (with logits).
- ``hinge``: D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z)) (Lim & Ye 2017, SNGAN, BigGAN).
- ``rpgan``: the relativistic pairing loss of R3GAN (Huang et al., "The GAN is dead; long live the GAN!",
  NeurIPS 2024; after Jolicoeur-Martineau 2018): each real image is paired with a generated one and D
  judges the difference, D: softplus(D(G(z)) - D(x)), G: softplus(D(x) - D(G(z))). With R1 and R2 it has
  local convergence guarantees, and the paper reports full mode coverage on Stacked MNIST with nothing else.

R1 (Mescheder et al. 2018) penalizes the squared norm of D's gradient at real images, R2 at generated
ones: ``gamma / 2 * E ||grad_x D(x)||^2``. They are computed in float32 outside autocast's reach (the
gradient is taken of an fp32 sum), and need a D that can be differentiated twice (not ``torch.compile``d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(
    kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """D's loss; ``label_smoothing`` is one-sided (real targets 1 - s, fake targets stay 0; bce only)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "rpgan":
        return F.softplus(fake_logits - real_logits).mean()
    real_target = torch.full_like(real_logits, 1.0 - label_smoothing)
    return F.binary_cross_entropy_with_logits(real_logits, real_target) + F.binary_cross_entropy_with_logits(
        fake_logits, torch.zeros_like(fake_logits)
    )


def generator_loss(kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss; ``rpgan`` also needs D's logits of a real batch (no gradient flows into them)."""
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "rpgan":
        if real_logits is None:
            raise ValueError("the rpgan generator loss needs real logits")
        return F.softplus(real_logits.detach().float() - fake_logits).mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def needs_real_logits_for_g(kind: str) -> bool:
    return kind == "rpgan"


def gradient_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E ||grad_inputs sum(logits)||^2 per image (R1 at real inputs, R2 at generated ones), float32.

    ``inputs`` must require grad and be what produced ``logits``; the graph is kept (create_graph) so the
    penalty can be backpropagated into D's weights.
    """
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.float().square().sum(dim=tuple(range(1, grad.ndim))).mean()


def overfitting_sign(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """StyleGAN2-ADA's r_t before averaging: the sign of D's verdict on real training images (+1: "real").

    For the relativistic loss only differences mean something, so the verdict is sign(D(x) - D(G(z))).
    """
    real = real_logits.detach().float()
    if kind == "rpgan":
        return (real - fake_logits.detach().float()).sign().mean()
    return real.sign().mean()


def trait_classification_loss(logits: torch.Tensor, cond: torch.Tensor,
                              blocks: tuple[tuple[int, int, bool, int | None], ...], *, focal: float = 0.0,
                              fake_slots: bool = False, as_fake: bool = False) -> torch.Tensor:
    """The auxiliary trait classifier's loss (AC-GAN, Odena et al. 2017): cross-entropy of each single-valued
    type's slots against the condition's class, binary cross-entropy per slot of a set type (summed over its
    slots), averaged over
    types. A token whose traits were never listed teaches nothing: its rows are left out (every single-valued
    type at UNKNOWN), as is a single-valued type's UNKNOWN class wherever it is the target.
    ``blocks``: ``Vocabulary.blocks()``.

    ``focal`` > 0 weights each row of a type by ``(1 - p)**focal`` (p: the probability the classifier gives the
    target; focal loss, Lin et al. 2017), normalized to mean 1 over the type's kept rows, not differentiated:
    the same total pull, moved from the rows the classifier already sees as asked to those it does not (the
    values a generator has not learned yet).

    ``fake_slots`` (``--condition-aux-fakes``; the semi-supervised GAN's discriminator, Salimans et al. 2016,
    per trait type): the logits carry one more slot per type after the condition vector's, the class "drawn
    by G"; a single-valued type is a softmax over its values and that slot, a set type gains a sigmoid slot
    for it. Real images and G's own loss target the traits (the slot 0); ``as_fake`` (D's step on G's fakes):
    every row targets the slot, whatever traits it was asked for. So a fake that shows only a part of a value
    (a Cap where a Bandana was asked, with the bandana's colour) is "drawn by G" to the classifier, not a
    Bandana, and G keeps being pulled towards what real tokens of the value look like."""
    logits, cond = logits.float(), cond.float()
    width = cond.shape[1]
    singles = [(o, w, u) for o, w, is_set, u in blocks if not is_set]
    targets = {o: cond[:, o:o + w].argmax(1) for o, w, _ in singles}
    listed = torch.ones(cond.shape[0], dtype=torch.bool, device=cond.device)  # as fakes every row counts
    if not as_fake and singles and all(u is not None for _, _, u in singles):
        listed = ~torch.stack([targets[o] == u for o, _, u in singles]).all(0)
    total = logits.new_zeros(())
    for i, (o, w, is_set, u) in enumerate(blocks):
        scores = logits[:, o:o + w]
        if fake_slots:  # the type's "drawn by G" slot, after the condition vector's slots
            scores = torch.cat([scores, logits[:, width + i:width + i + 1]], 1)
        if is_set:
            keep = listed
            target = cond[:, o:o + w]
            if fake_slots:  # real: the set and not the slot; as a fake: the slot alone
                target = F.pad(target * (not as_fake), (0, 1), value=float(as_fake))
            per_row = F.binary_cross_entropy_with_logits(scores, target, reduction="none").sum(1)
        else:
            keep = listed if u is None or as_fake else listed & (targets[o] != u)
            per_row = F.cross_entropy(scores, torch.full_like(targets[o], w) if as_fake else targets[o],
                                      reduction="none")
        if focal > 0:  # p = exp(-loss): the target's probability (a set type's: of its whole set)
            with torch.no_grad():
                weight = (1 - torch.exp(-per_row)).clamp(min=0).pow(focal) * keep
                weight = weight / (weight.sum() / keep.sum().clamp(min=1)).clamp(min=1e-12)
            per_row = per_row * weight
        total = total + (per_row * keep).sum() / keep.sum().clamp(min=1)
    return total / max(1, len(blocks))
