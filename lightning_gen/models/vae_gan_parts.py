"""Pieces of the VAE-GAN (:mod:`lightning_gen.models.vae_gan`) that need none of its state: the feature-wise
reconstruction in a frozen discriminator, the discriminator check and the equilibrium gates."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gen.models.common import check_critic


class _Features(nn.Module):
    """``net.features`` as a module's forward, so ``torch.func.functional_call`` can run it with other
    parameter tensors (built on the fly, never registered: the discriminator's state_dict keys stay as they were)."""

    def __init__(self, net: nn.Module, depth: int | None) -> None:
        super().__init__()
        self.net, self.depth = net, depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.features(x) if self.depth is None else self.net.features(x, depth=self.depth)


def feature_depth(discriminator: nn.Module, feature_layer: int) -> int | None:
    """How many of D's feature layers to run to reach ``feature_layer`` (None: D's ``features`` takes no depth)."""
    n = discriminator.num_feature_layers
    takes_depth = "depth" in inspect.signature(discriminator.features).parameters
    return (feature_layer % n) + 1 if takes_depth else None


def feature_distance(
    discriminator: nn.Module, feature_layer: int, depth: int | None, real: torch.Tensor, recon: torch.Tensor,
    frozen: bool = False,
) -> torch.Tensor:  # fmt: skip
    """L_llike^Dis_l (Larsen et al. 2016, eq. 7): 0.5 * squared distance in D's layer l per image, batch mean.
    x and x~ go through D as one batch. ``frozen``: D's parameters are constants (the gradient reaches
    ``recon`` but not D)."""
    both = torch.cat([real, recon])  # (2B, C, H, W)
    if frozen:
        params = {f"net.{name}": p.detach() for name, p in discriminator.named_parameters()}
        feats = torch.func.functional_call(_Features(discriminator, depth), params, (both,))[feature_layer]
    else:
        feats = discriminator.features(both)[feature_layer]  # (2B, ...)
    f_real, f_recon = feats.chunk(2)  # (B, ...) each
    return 0.5 * (f_real - f_recon).pow(2).flatten(1).sum(1).mean()


def check_feature_discriminator(generator: nn.Module, discriminator: nn.Module, feature_layer: int) -> None:
    """D must read G's images and expose the hidden layer ``feature_layer`` (else a ValueError that says how)."""
    check_critic(generator, discriminator)
    n = getattr(discriminator, "num_feature_layers", None)
    if not callable(getattr(discriminator, "features", None)) or n is None:
        raise ValueError(
            "The discriminator must have `features(x)` (a list of hidden activations) and "
            "`num_feature_layers` for the feature-wise reconstruction (e.g. lightning_gen.nets.DCGANDiscriminator)."
        )
    if not -n <= feature_layer < n:
        raise ValueError(
            f"feature_layer={feature_layer} is not a layer of this discriminator: it has {n} feature layers, "
            f"so use 0..{n - 1} (or -{n}..-1 counting from the end)."
        )


def equilibrium_gates(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, equilibrium: float, margin: float, trainer=None
) -> tuple[bool, bool]:
    """(train D, train G) under equilibrium gating (Larsen et al.'s reference ``GradientDescent(margin,
    equilibrium)``): D's step is skipped while its binary cross-entropy on real or on fake images is below
    ``equilibrium - margin``, G's while one of them is above ``equilibrium + margin``; if both would be
    skipped, both run. Under DDP the cross-entropies are averaged over ranks first (the same decision
    everywhere)."""
    bce = torch.stack([F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()]).detach().float()
    if trainer is not None and trainer.world_size > 1:
        bce = trainer.strategy.reduce(bce, reduce_op="mean")
    bce_real, bce_fake = bce.tolist()  # -log D(x), -log(1 - D(x~))
    low, high = equilibrium - margin, equilibrium + margin
    train_d = bce_real >= low and bce_fake >= low
    train_g = bce_real <= high and bce_fake <= high
    return (True, True) if not (train_d or train_g) else (train_d, train_g)
