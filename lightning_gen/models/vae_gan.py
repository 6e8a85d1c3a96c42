"""VAE-GAN on images (Larsen et al. 2016): encoder, decoder/generator and discriminator, three optimizers."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.losses import AdversarialLossName, get_adversarial_loss, gradient_penalty, kl_normal, mean_d_output
from lightning_gen.models.common import (
    GeneratorEMA,
    apply_spectral_norm,
    clip_grad_norm_before_step,
    has_batch_norm,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.gan import check_image_shape
from lightning_gen.models.vae import LatentImageAPI, check_latent_fit, reparameterize


class VAEGAN(LatentImageAPI, pl.LightningModule):
    """VAE-GAN: a VAE whose reconstruction error is measured in a GAN discriminator's features
    (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

    Objectives (sec. 2.2, eqs. 5-9). With x~ = G(z), z ~ q(z|x) = N(mu(x), diag(exp(logvar(x)))):

    - ``L_prior = KL(q(z|x) || N(0, I))`` (eq. 5; ``losses.kl_normal``).
    - ``L_llike^Dis_l = -E_q[log N(Dis_l(x) | Dis_l(x~), I)] = 0.5 * ||Dis_l(x) - Dis_l(x~)||^2`` per image,
      summed over the layer's features, constant dropped (eqs. 6-7): a Gaussian in D's ``feature_layer``-th
      hidden layer (``discriminator.features(x)[feature_layer]``). x and x~ go through D as one batch, so
      batch norm in D normalises both with the same statistics.
    - ``L_GAN``: D tells real images from reconstructions G(E(x)) and from prior samples G(z), z ~ N(0, I)
      (eq. 8); the loss is the chosen adversarial loss (``ns``, ``hinge``, ``wasserstein``) applied to real
      vs. reconstructions plus real vs. prior samples.

    One training step updates, in this order (sec. 2.3 and algorithm 1, one network at a time):

    1. D on ``L_GAN`` (plus the gradient penalty for ``wasserstein``), fakes made without gradient.
    2. E on ``kl_weight * L_prior + L_llike^Dis_l`` (+ ``pixel_weight`` x pixel reconstruction).
    3. G on ``gamma * L_llike^Dis_l`` + the generator side of ``L_GAN`` on the reconstructions of the
       same z (drawn in step 2) and on fresh prior samples (+ ``pixel_weight`` x pixel reconstruction).
       Then the EMA of G, if any.

    The pixel reconstruction is ``0.5 * ||x - x~||^2`` per image (a unit Gaussian in pixel space, the plain
    VAE's term); 0 (default) leaves it out as in the paper.

    Equilibrium gating (off by default; not in the paper's algorithm, but common in VAE-GAN code, e.g.
    lucabergamini/VAEGAN-PYTORCH with equilibrium 0.68 and margin 0.35): with the ``ns`` loss, D's update is
    skipped while D's binary cross-entropy on real or on fake images is below ``equilibrium - margin`` (D far
    ahead), and G's update is skipped while one of them is above ``equilibrium + margin`` (G far ahead); if
    both would be skipped, both run.

    Args:
        encoder: image -> (mu, logvar), each (B, latent_dim); must have ``latent_dim``.
        generator: the decoder, z (B, latent_dim) -> image in [-1, 1]; must have ``latent_dim``.
        discriminator: image -> (B,) logits, with ``features(x)`` (list of hidden activations) and
            ``num_feature_layers``.
        optimizer_e: optimizer factory for the encoder.
        optimizer_g: optimizer factory for the decoder / generator.
        optimizer_d: optimizer factory for the discriminator.
        gamma: weight of the feature-wise reconstruction against the adversarial loss in G's update
            (>= 0; sec. 2.3).
        feature_layer: index into ``discriminator.features(x)`` of the layer Dis_l (negative counts from the
            end: -1 is D's last hidden layer).
        kl_weight: weight of ``L_prior`` in E's update (>= 0; 1 in the paper).
        pixel_weight: weight of the pixel reconstruction in E's and G's updates (>= 0).
        loss: adversarial loss, one of ``ns``, ``hinge``, ``wasserstein``.
        gp_weight: gradient penalty weight with ``wasserstein``.
        spectral_norm: spectral normalisation on every conv / linear layer of D (Miyato et al. 2018).
        ema_decay: if set, an exponential moving average of G, used by ``sample`` / ``reconstruct``.
        equilibrium_gating: skip D's or G's update when the other side is far ahead (``ns`` only).
        equilibrium: the BCE value taken as balance (ln 2 ~ 0.69 is D(x) = 0.5).
        equilibrium_margin: how far from ``equilibrium`` a BCE may go before an update is skipped.
        clip_grad_norm: if set, clip each network's gradient norm to this value before its step.
    """

    data_kind = "image"

    def __init__(
        self,
        encoder: nn.Module,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_e: OptimizerCallable = torch.optim.Adam,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        gamma: float = 1.0,
        feature_layer: int = -1,
        kl_weight: float = 1.0,
        pixel_weight: float = 0.0,
        loss: AdversarialLossName = "ns",
        gp_weight: float = 10.0,
        spectral_norm: bool = False,
        ema_decay: float | None = None,
        equilibrium_gating: bool = False,
        equilibrium: float = 0.68,
        equilibrium_margin: float = 0.35,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("gamma", gamma), ("kl_weight", kl_weight), ("pixel_weight", pixel_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}.")
        check_latent_fit(encoder, generator)
        self._check_discriminator(generator, discriminator, feature_layer)
        self.adversarial = get_adversarial_loss(loss)
        if self.adversarial.needs_gradient_penalty and gp_weight > 0 and has_batch_norm(discriminator):
            raise ValueError(
                "The gradient penalty is per sample, and batch norm in the critic mixes samples (Gulrajani et "
                "al. 2017, sec. 4): give the discriminator norm='layer' or norm='none' with loss=wasserstein."
            )
        if equilibrium_gating and loss != "ns":
            raise ValueError(
                f"equilibrium_gating compares D's binary cross-entropies, which only loss='ns' has (got {loss!r})."
            )
        if equilibrium_margin < 0:
            raise ValueError(f"equilibrium_margin must be >= 0, got {equilibrium_margin}.")
        save_plain_hyperparameters(self)
        self.automatic_optimization = False
        self.encoder, self.generator = encoder, generator
        self.discriminator = apply_spectral_norm(discriminator) if spectral_norm else discriminator
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_e, self.optimizer_g, self.optimizer_d = optimizer_e, optimizer_g, optimizer_d
        self.latent_dim, self.loss_name = generator.latent_dim, loss
        self.gamma, self.feature_layer, self.kl_weight, self.pixel_weight = (
            gamma,
            feature_layer,
            kl_weight,
            pixel_weight,
        )
        self.gp_weight, self.clip_grad_norm = gp_weight, clip_grad_norm
        self.equilibrium_gating, self.equilibrium, self.equilibrium_margin = (
            equilibrium_gating,
            equilibrium,
            equilibrium_margin,
        )

    @staticmethod
    def _check_discriminator(generator: nn.Module, discriminator: nn.Module, feature_layer: int) -> None:
        g_shape = (getattr(generator, "channels", None), getattr(generator, "img_size", None))
        d_shape = (getattr(discriminator, "channels", None), getattr(discriminator, "img_size", None))
        if None not in g_shape + d_shape and g_shape != d_shape:
            raise ValueError(
                f"The generator makes (channels, img_size) = {g_shape} but the discriminator expects {d_shape}."
            )
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

    # -- public API (sample / reconstruct / interpolate come from LatentImageAPI) ---------------------
    def sampling_decoder(self) -> nn.Module:
        return self.generator_ema.module if self.generator_ema is not None else self.generator

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        check_image_shape(self.generator, getattr(datamodule, "dims", None))

    def configure_optimizers(self):
        return [
            self.optimizer_e(self.encoder.parameters()),
            self.optimizer_g(self.generator.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def _finish_step(self, optimizer) -> torch.Tensor | None:
        """Step (clipping happens in ``on_before_optimizer_step``) and zero the gradients; return the gradient
        norm when it is measured (clipping, or a step whose metrics the logger will write)."""
        self._grad_norm = None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return self._grad_norm

    def on_before_optimizer_step(self, optimizer) -> None:
        # inside opt.step(), after fp16 gradients are unscaled: clipping here is right in every precision
        if self.clip_grad_norm is not None or logs_this_step(self):
            self._grad_norm = clip_grad_norm_before_step(optimizer, self.clip_grad_norm)

    # -- losses -------------------------------------------------------------------------------------
    def feature_reconstruction(self, real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """L_llike^Dis_l (Larsen et al. 2016, eq. 7): 0.5 * squared distance in D's layer l, batch mean."""
        feats = self.discriminator.features(torch.cat([real, recon]))[self.feature_layer]  # (2B, ...)
        f_real, f_recon = feats.chunk(2)  # (B, ...) each
        return 0.5 * (f_real - f_recon).pow(2).flatten(1).sum(1).mean()

    @staticmethod
    def pixel_reconstruction(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        return 0.5 * (real - recon).pow(2).flatten(1).sum(1).mean()

    def gates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[bool, bool]:
        """(train D, train G) under equilibrium gating; both True when gating is off."""
        if not self.equilibrium_gating:
            return True, True
        bce_real = float(F.softplus(-real_logits).mean())  # -log D(x)
        bce_fake = float(F.softplus(fake_logits).mean())  # -log(1 - D(x~))
        low, high = self.equilibrium - self.equilibrium_margin, self.equilibrium + self.equilibrium_margin
        train_d = bce_real >= low and bce_fake >= low
        train_g = bce_real <= high and bce_fake <= high
        return (True, True) if not (train_d or train_g) else (train_d, train_g)

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, C, H, W) in [-1, 1]
        train_g = self.discriminator_step(real)
        z = self.encoder_step(real)
        if train_g:
            self.generator_step(real, z)

    def discriminator_step(self, real: torch.Tensor) -> bool:
        """Step 1: D on real vs. reconstructions and prior samples (no graph through E or G).
        Returns whether G may take its step (equilibrium gating)."""
        opt_d = self.optimizers()[2]
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            recon = self.generator(reparameterize(*self.encoder(real)))
            prior = self.generator(self.noise(real.shape[0]))
        real_logits = self.discriminator(real)
        recon_logits, prior_logits = self.discriminator(recon), self.discriminator(prior)
        d_loss = self.adversarial.d(real_logits, recon_logits) + self.adversarial.d(real_logits, prior_logits)
        if self.adversarial.needs_gradient_penalty and self.gp_weight > 0:
            gp = gradient_penalty(self.discriminator, torch.cat([real, real]), torch.cat([recon, prior]))
            d_loss = d_loss + self.gp_weight * gp
        train_d, train_g = self.gates(real_logits.detach(), torch.cat([recon_logits, prior_logits]).detach())
        d_norm = None
        if train_d:
            self.manual_backward(d_loss)
            d_norm = self._finish_step(opt_d)
        self.untoggle_optimizer(opt_d)
        if not logs_this_step(self):  # Lightning keeps only the last on_step value: skip the others' cost
            return train_g
        if self.adversarial.needs_gradient_penalty and self.gp_weight > 0:
            self.log("train/gradient_penalty", gp)
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/D(x)": self._d_output(real_logits),
                "train/D(G(E(x)))": self._d_output(recon_logits),
                "train/D(G(z))": self._d_output(prior_logits),
                "train/grad_norm_d": d_norm if d_norm is not None else torch.zeros(()),
                "train/d_updated": float(train_d),
                "train/g_updated": float(train_g),
            }
        )
        self.log("d_loss", d_loss.detach(), prog_bar=True, logger=False)
        return train_g

    def encoder_step(self, real: torch.Tensor) -> torch.Tensor:
        """Step 2: E on kl_weight * KL + feature-wise (+ pixel) reconstruction; G and D are frozen but
        pass gradients. Returns the drawn z (detached) for G's step."""
        opt_e = self.optimizers()[0]
        self.toggle_optimizer(opt_e)
        mu, logvar = self.encoder(real)  # (B, Z) each
        z = reparameterize(mu, logvar)
        recon = self.generator(z)
        kl = kl_normal(mu, logvar).mean()
        feat = self.feature_reconstruction(real, recon)
        pixel = self.pixel_reconstruction(real, recon)
        e_loss = self.kl_weight * kl + feat + self.pixel_weight * pixel
        self.manual_backward(e_loss)
        e_norm = self._finish_step(opt_e)
        self.untoggle_optimizer(opt_e)
        if not logs_this_step(self):
            return z.detach()
        self.log_dict(
            {
                "train/e_loss": e_loss.detach(),
                "train/kl": kl.detach(),
                "train/feature_recon": feat.detach(),
                "train/pixel_recon": pixel.detach(),
                "train/grad_norm_e": e_norm,
            }
        )
        self.log("kl", kl.detach(), prog_bar=True, logger=False)
        return z.detach()

    def generator_step(self, real: torch.Tensor, z: torch.Tensor) -> None:
        """Step 3: G on gamma * feature-wise reconstruction + adversarial loss on reconstructions and prior
        samples (+ pixel reconstruction); E and D are frozen. Then the EMA update."""
        opt_g = self.optimizers()[1]
        self.toggle_optimizer(opt_g)
        recon = self.generator(z)
        prior = self.generator(self.noise(real.shape[0]))
        feat = self.feature_reconstruction(real, recon)
        adv = self.adversarial.g(self.discriminator(recon)) + self.adversarial.g(self.discriminator(prior))
        g_loss = self.gamma * feat + adv
        if self.pixel_weight > 0:
            g_loss = g_loss + self.pixel_weight * self.pixel_reconstruction(real, recon)
        self.manual_backward(g_loss)
        g_norm = self._finish_step(opt_g)
        self.untoggle_optimizer(opt_g)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        if logs_this_step(self):
            self.log_dict({"train/g_loss": g_loss.detach(), "train/g_adv": adv.detach(), "train/grad_norm_g": g_norm})
            self.log("g_loss", g_loss.detach(), prog_bar=True, logger=False)

    def _d_output(self, logits: torch.Tensor) -> torch.Tensor:
        return mean_d_output(logits, self.loss_name)

    # -- evaluation ---------------------------------------------------------------------------------
    def _evaluate(self, batch, prefix: str) -> None:
        real = batch[0]
        mu, logvar = self.encoder(real)
        recon = self.sampling_decoder()(mu)  # the posterior mean's decoding, as ``reconstruct``
        real_logits = self.discriminator(real)
        prior_logits = self.discriminator(self.sample(real.shape[0]))
        self.log_dict(
            {
                f"{prefix}/kl": kl_normal(mu, logvar).mean(),
                f"{prefix}/feature_recon": self.feature_reconstruction(real, recon),
                f"{prefix}/pixel_mse": F.mse_loss(recon, real),
                f"{prefix}/d_loss": self.adversarial.d(real_logits, prior_logits),
                f"{prefix}/D(x)": self._d_output(real_logits),
                f"{prefix}/D(G(z))": self._d_output(prior_logits),
            },
            sync_dist=True,
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
