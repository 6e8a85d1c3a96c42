"""Loss functions as plain functions: adversarial objectives, gradient penalty, KL, reconstruction.

The objectives are the standard, cited ones. (The project's seed document wrote ``L_G = E[D(G(z))]`` and
similar; those are not the published objectives and are not used.) Discriminator outputs are raw logits
(or critic values): the sigmoid lives inside the loss, which is numerically stable and AMP-safe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

AdversarialLossName = Literal["ns", "hinge", "wasserstein"]
Likelihood = Literal["gaussian", "bernoulli"]


def d_loss_ns(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))], Goodfellow et al. 2014, eq. 1 (D maximises V(D, G)).

    With D = sigmoid(logit): -log sigmoid(l) = softplus(-l) and -log(1 - sigmoid(l)) = softplus(l).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_ns(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E[log D(G(z))], Goodfellow et al. 2014, sec. 3."""
    return F.softplus(-fake_logits).mean()


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))], Lim & Ye 2017; Miyato et al. 2018, eq. 16."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))], the generator side of the hinge loss (Miyato et al. 2018, eq. 17)."""
    return -fake_logits.mean()


def d_loss_wasserstein(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Critic loss E[D(G(z))] - E[D(x)], Arjovsky et al. 2017, eq. 3; add :func:`gradient_penalty`."""
    return fake_logits.mean() - real_logits.mean()


def g_loss_wasserstein(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss -E[D(G(z))], Arjovsky et al. 2017, algorithm 1."""
    return -fake_logits.mean()


class AdversarialLoss(NamedTuple):
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    needs_gradient_penalty: bool


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "ns": AdversarialLoss(d_loss_ns, g_loss_ns, False),
    "hinge": AdversarialLoss(d_loss_hinge, g_loss_hinge, False),
    "wasserstein": AdversarialLoss(d_loss_wasserstein, g_loss_wasserstein, True),
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
    if name not in ADVERSARIAL_LOSSES:
        raise ValueError(f"Unknown adversarial loss {name!r}; choose one of {sorted(ADVERSARIAL_LOSSES)}.")
    return ADVERSARIAL_LOSSES[name]


def mean_d_output(logits: torch.Tensor, loss_name: str) -> torch.Tensor:
    """Mean D output as usually reported (the ``D(x)`` / ``D(G(z))`` of training logs): a probability for
    ``ns``, the raw score for ``hinge`` and ``wasserstein``. Detached."""
    logits = logits.detach()
    return torch.sigmoid(logits).mean() if loss_name == "ns" else logits.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat, Gulrajani et al. 2017, eq. 3.

    ``real`` and ``fake`` have the same shape (B, ...); ``fake`` should be detached from G.
    """
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(2, dim=1)  # (B,)
    return ((norm - 1.0) ** 2).mean()


def d_loss_with_gp(
    adversarial: AdversarialLoss,
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    gp_weight: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's loss, plus ``gp_weight`` times :func:`gradient_penalty` of ``critic`` when the loss needs one
    (``wasserstein``) and ``gp_weight > 0``; returns (loss, penalty or None)."""
    d_loss = adversarial.d(real_logits, fake_logits)
    if not (adversarial.needs_gradient_penalty and gp_weight > 0):
        return d_loss, None
    gp = gradient_penalty(critic, real, fake)
    return d_loss + gp_weight * gp, gp


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, summed over latent dims (Kingma & Welling 2014,
    appendix B): -0.5 * sum(1 + logvar - mu^2 - exp(logvar)). Returns shape (B,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that gradients pass through
    (Kingma & Welling 2014, sec. 2.4)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log N(x | mean, sigma^2 I) per sample, summed over pixels; shape (B,)."""
    sq = ((x - mean) / sigma).pow(2).flatten(1)  # (B, C*H*W)
    return 0.5 * sq.sum(1) + sq.shape[1] * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


def bernoulli_nll(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x01 | p) per sample, summed over pixels; shape (B,).

    Images live in [-1, 1]; targets and probabilities are mapped to [0, 1] (``(v + 1) / 2``), the usual
    continuous relaxation of binarised MNIST (the NLL is then not a normalised density, but its optimum is
    still p = x).
    """
    p = ((mean + 1) / 2).clamp(1e-6, 1 - 1e-6)  # tanh output -> probability, kept off log(0)
    target = ((x + 1) / 2).clamp(0, 1)
    # Written out rather than F.binary_cross_entropy, which raises on a NaN input ("all elements of input
    # should be between 0 and 1") before the divergence guard can name the step and keep the last checkpoint.
    nll = -(target * p.log() + (1 - target) * (1 - p).log())
    return nll.flatten(1).sum(1)


def check_likelihood(likelihood: str) -> None:
    """A data likelihood the VAE-type models know: ``gaussian`` (real values) or ``bernoulli`` (binary pixels or
    piano-roll notes)."""
    if likelihood not in ("gaussian", "bernoulli"):
        raise ValueError(
            f"likelihood must be 'gaussian' (real values) or 'bernoulli' (binary pixels, piano rolls), "
            f"got {likelihood!r}."
        )


def reconstruction_nll(x: torch.Tensor, mean: torch.Tensor, likelihood: Likelihood, sigma: float) -> torch.Tensor:
    """-log p(x | z) per sample for the decoder's mean image ``mean`` (both (B, C, H, W) in [-1, 1])."""
    if likelihood == "gaussian":
        return gaussian_nll(x, mean, sigma)
    return bernoulli_nll(x, mean)


def kl_warmup(step: int, weight: float, warmup_steps: int) -> float:
    """KL weight annealed linearly from 0 to ``weight`` over ``warmup_steps`` optimizer steps (Bowman et
    al. 2016, sec. 3.1), against the posterior collapse of recurrent VAEs."""
    return weight if warmup_steps <= 0 else weight * min(1.0, step / warmup_steps)


class ScaleGradient(torch.autograd.Function):
    """Identity on the way forward; multiplies the gradient by ``scale`` on the way back. Larsen et al.'s
    reference code (``util.ScaleGradient`` and ``WeightedParameter`` in autoencoding_beyond_pixels) routes
    the VAE-GAN's gradients this way instead of running each network once per loss."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    return ScaleGradient.apply(x, scale)
