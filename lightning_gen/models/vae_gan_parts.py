"""Pieces of the VAE-GAN (:mod:`lightning_gen.models.vae_gan`) that need none of its state: the feature-wise
reconstruction in a frozen discriminator, the decoder pass shared by the reconstructions and their discriminated
copies, the discriminator check, the checks of its options, the equilibrium gates and the adversarial options
shared with the sequence VAE-GAN."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gen.errors import check_at_least
from lightning_gen.losses import AdversarialLossName, check_likelihood
from lightning_gen.models.common import OptionGroup, check_critic


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


class _SharedDecode(torch.autograd.Function):
    """x~ = G(z) computed once and returned twice: the reconstruction and the copy that D sees as a fake.

    Backward: G's parameters get the sum of both copies' gradients; z gets the reconstruction's alone, so no
    adversarial gradient reaches the encoder (Larsen et al.'s reference kills it with ``ScaleGradient(0.0)(z)``
    and decodes z a second time for the GAN). Here G's graph is kept and walked twice: once with both
    gradients for the parameters, once with the reconstruction's gradient for z alone (activation gradients
    only, no weight gradients): about one forward's work instead of a second forward and backward of G.
    """

    @staticmethod
    def forward(ctx, decode, z: torch.Tensor, labels, *params: torch.Tensor):
        ctx.set_materialize_grads(False)  # an unused copy's gradient comes as None, not as zeros
        with torch.enable_grad():
            z_in = z.detach().requires_grad_(z.requires_grad)
            out = decode(z_in, labels)
        ctx.z_in, ctx.out, ctx.params = z_in, out, params
        recon = out.detach()
        return recon, recon.clone()

    @staticmethod
    def backward(ctx, grad_recon: torch.Tensor | None, grad_fake: torch.Tensor | None):
        z_in, out, params = ctx.z_in, ctx.out, ctx.params
        ctx.z_in = ctx.out = ctx.params = None  # the graph is freed after this
        grad_z = None
        if grad_recon is not None and z_in.requires_grad:  # z: the reconstruction's share only
            (grad_z,) = torch.autograd.grad(out, z_in, grad_recon, retain_graph=bool(params))
        total = grad_recon if grad_fake is None else grad_fake if grad_recon is None else grad_recon + grad_fake
        grads = [None] * len(params)
        if params and total is not None:
            grads = torch.autograd.grad(out, params, total, allow_unused=True)
        return (None, grad_z, None, *grads)


def shared_decode(
    decoder: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, decode
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, copy for D) = (G(z), G(z)) from one pass of G: both copies' gradients reach G, only the
    reconstruction's reaches z (see :class:`_SharedDecode`). ``decode(z, labels)`` runs ``decoder``.
    Without autograd, one plain pass."""
    if not torch.is_grad_enabled():
        recon = decode(z, labels)
        return recon, recon
    params = tuple(p for p in decoder.parameters() if p.requires_grad)
    return _SharedDecode.apply(decode, z, labels, *params)


def check_feature_discriminator(decoder: nn.Module, discriminator: nn.Module, feature_layer: int) -> None:
    """D must read the decoder's images and expose the hidden layer ``feature_layer`` (else a ValueError saying how)."""
    check_critic(decoder, discriminator)
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


@dataclass(frozen=True)
class EquilibriumGating(OptionGroup):
    """Equilibrium gating of the VAE-GAN's game (Larsen et al.'s reference ``GradientDescent(margin,
    equilibrium)``; pythae's VAEGAN has it with margin 0.4), one nested mapping in a config::

        gating: {enabled: true, equilibrium: 0.68, margin: 0.35}

    With the ``ns`` loss, D's update is skipped while D's binary cross-entropy on real or on fake images is below
    ``equilibrium - margin`` (D far ahead) and G's while one of them is above ``equilibrium + margin`` (G far
    behind); if both would be skipped, both run (:func:`equilibrium_gates`).

    Attributes:
        enabled: gate the updates (``ns`` loss only: it compares binary cross-entropies).
        equilibrium: the BCE value taken as balance (ln 2 ~ 0.69 is D(x) = 0.5).
        margin: how far from ``equilibrium`` a BCE may go before an update is skipped (>= 0).
    """

    key = "gating"

    enabled: bool = True
    equilibrium: float = 0.68
    margin: float = 0.35

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gating.margin must be >= 0, got {self.margin}.")


@dataclass(frozen=True)
class AdversarialConfig(OptionGroup):
    """The GAN half of the two VAE-GANs (:class:`~lightning_gen.models.vae_gan.VAEGAN` on images,
    :class:`~lightning_gen.models.rvae_gan.RVAEGAN` on sequences), one nested mapping in a config::

        adversarial: {loss: ns, start: 1500, prior: density, prior_samples: 1.0}

    Attributes:
        loss: adversarial loss, ``ns`` (Goodfellow et al. 2014), ``hinge`` (Lim & Ye 2017) or ``wasserstein``
            with a gradient penalty (Gulrajani et al. 2017; image VAE-GAN only).
        gp_weight: weight of the gradient penalty with ``wasserstein`` (>= 0).
        spectral_norm: spectral normalisation on every conv / linear layer of D (Miyato et al. 2018; image
            VAE-GAN only).
        start: training batches of VAE warm start before the game: until then the decoder gets no adversarial
            gradient (a VAE-GAN warm-started from a VAE; C-RNN-GAN pretrains its generator by maximum likelihood,
            Mogren 2016). 0: adversarial from the first batch.
        weight: weight of the decoder's adversarial gradient (>= 0; D's own loss is not scaled).
        reconstructions: D also judges the reconstructions G(E(x)) as fakes (Larsen et al. 2016, eq. 8; the
            reference code's ``discriminate_ae_recon``; image VAE-GAN only).
        prior: codes of the adversarial samples: ``density`` (the training copy of the ex-post latent density
            that ``sample`` uses: the game trains the decoder on the codes it will be sampled from; N(0, I) until
            the first fit) or ``standard`` (N(0, I), the paper; image VAE-GAN only).
        prior_samples: prior codes decoded for the game per batch, a fraction of the batch (1: the paper's B;
            0: only the reconstructions are judged, the reference's ``discriminate_sample_z=False``; image
            VAE-GAN only).
    """

    key = "adversarial"

    loss: AdversarialLossName = "ns"
    gp_weight: float = 10.0
    spectral_norm: bool = False
    start: int = 0
    weight: float = 1.0
    reconstructions: bool = False
    prior: Literal["density", "standard"] = "density"
    prior_samples: float = 1.0

    def __post_init__(self) -> None:
        if self.prior not in ("density", "standard"):
            raise ValueError(f"adversarial.prior must be 'density' or 'standard', got {self.prior!r}.")
        if not 0.0 <= self.prior_samples <= 1.0:
            raise ValueError(
                f"adversarial.prior_samples must be in [0, 1] (a fraction of the batch), got {self.prior_samples}."
            )
        if self.prior_samples == 0 and not self.reconstructions:
            raise ValueError(
                "adversarial.prior_samples=0 with adversarial.reconstructions=false gives D no fakes: set "
                "prior_samples > 0 or reconstructions: true."
            )
        check_at_least(0, **{f"adversarial.{k}": getattr(self, k) for k in ("gp_weight", "start", "weight")})

    def refuse_unsupported(self, model: str, fields: tuple[str, ...]) -> None:
        """A ValueError naming each of ``fields`` that differs from its default: options ``model`` does not have."""
        changed = [f for f in fields if getattr(self, f) != getattr(type(self)(), f)]
        if changed:
            given = ", ".join(f"adversarial.{f}={getattr(self, f)!r}" for f in changed)
            raise ValueError(f"{model} has no {given}: leave them at their defaults (the image VAEGAN has them).")


def check_vaegan_options(
    *,
    loss: str,
    gating: EquilibriumGating,
    gamma: float,
    weights: Mapping[str, float],
    likelihood: str,
) -> None:
    """The VAE-GAN's scalar options, each refused with a ValueError that says what to set. ``weights``: the loss
    weights by option name, each >= 0."""
    check_likelihood(likelihood)
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0 (G's share of the reconstruction gradient), got {gamma}.")
    check_at_least(0, **weights)
    if gating.enabled and loss != "ns":
        raise ValueError(
            f"gating compares D's binary cross-entropies, which only loss='ns' has (got {loss!r}); "
            "set gating: {enabled: false}."
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
