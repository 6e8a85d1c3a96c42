"""GAN + recurrent VAE on sequences: the VAE-GAN of Larsen et al. 2016 ("Autoencoding beyond pixels using a
learned similarity metric") with recurrent encoder, decoder and discriminator."""

from __future__ import annotations

import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.losses import AdversarialLossName, get_adversarial_loss, kl_normal, mean_d_output
from lightning_gen.models.common import batches_done, logs_this_step, save_plain_hyperparameters
from lightning_gen.models.rvae import Likelihood, RecurrentVAEModel, check_vae_parts, kl_warmup, reconstruction_nll


class RVAEGAN(RecurrentVAEModel):
    """R-VAE-GAN: a recurrent VAE whose decoder is also the generator of a GAN, three optimizers.

    One training step follows Larsen et al. 2016, algorithm 1: encode x to z, decode a reconstruction x~
    (teacher forcing at rate ``teacher_forcing``) and a sample x_p from z_p ~ N(0, I); then

    1. **D step**: real x against both x~ and x_p (detached), the GAN loss ``loss``;
    2. **encoder step** on ``beta * KL + L_feat`` (+ ``data_recon_weight * L_data``), where ``L_feat`` is the
       reconstruction error measured in D's hidden features, a Gaussian in feature space (Larsen et al. 2016,
       sec. 2.2: "we replace the VAE error ... with a reconstruction error expressed in the GAN discriminator");
       here D's top recurrent layer, one feature vector per step;
    3. **decoder step** on ``gamma * L_feat`` (+ ``data_recon_weight * L_data``) plus the generator's
       adversarial loss on x~ and x_p (sec. 2.3: gamma weighs reconstruction against fooling D).

    Each step is one optimizer at a time (``toggle_optimizer``, as the image VAE-GAN), after D's update; the
    decoder's step reuses the encoder step's z. Taking both gradients from one graph with
    ``backward(inputs=...)`` would save a decoder pass but breaks DDP, whose reducer then waits for gradients
    of parameters that the graph reaches but the backward never fills. ``L_data`` is the plain VAE
    likelihood (Gaussian or Bernoulli), off by default as in the paper.

    Args:
        encoder: (B, T, D) to (mu, logvar) (e.g. ``RecurrentEncoder``).
        decoder: z to raw outputs (B, T, D), with ``activate`` (e.g. ``RecurrentDecoder``).
        discriminator: (B, T, D) to logits (B, T) or (B,), with ``features(x)`` (B, T, F)
            (e.g. ``RecurrentDiscriminator``).
        optimizer_e: optimizer factory for the encoder.
        optimizer_g: optimizer factory for the decoder (the generator).
        optimizer_d: optimizer factory for the discriminator.
        loss: adversarial loss, ``ns`` or ``hinge`` (``wasserstein`` would need a gradient penalty).
        likelihood: ``gaussian`` or ``bernoulli``, for ``L_data``.
        sigma: standard deviation of the Gaussian data likelihood.
        gamma: weight of the feature-wise reconstruction in the decoder's loss.
        data_recon_weight: weight of the data-space likelihood in encoder and decoder losses (0: off).
        teacher_forcing: probability of feeding the real previous step when reconstructing.
        kl_weight: final KL weight (beta).
        kl_warmup_steps: batches of linear KL warm-up (0: none).
        clip_grad_norm: if set, clip each network's gradient norm before its step.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        optimizer_e: OptimizerCallable = torch.optim.Adam,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        loss: AdversarialLossName = "ns",
        likelihood: Likelihood = "gaussian",
        sigma: float = 0.1,
        gamma: float = 1.0,
        data_recon_weight: float = 0.0,
        teacher_forcing: float = 0.5,
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 1000,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__()
        check_vae_parts(encoder, decoder, likelihood)
        if getattr(discriminator, "data_dim", decoder.data_dim) != decoder.data_dim:
            raise ValueError(
                f"The decoder makes {decoder.data_dim} features per step; the discriminator reads "
                f"{discriminator.data_dim}."
            )
        if not hasattr(discriminator, "features"):
            raise ValueError("The discriminator needs a `features(x)` method (feature-wise reconstruction).")
        self.adversarial = get_adversarial_loss(loss)
        if self.adversarial.needs_gradient_penalty:
            raise ValueError("loss='wasserstein' is not supported by RVAEGAN (no gradient penalty): use ns or hinge.")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}.")
        if min(gamma, data_recon_weight, kl_weight) < 0 or sigma <= 0:
            raise ValueError("gamma, data_recon_weight and kl_weight must be >= 0 and sigma > 0.")
        save_plain_hyperparameters(self)
        self.init_sequence_model(decoder.data_dim, clip_grad_norm)
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.optimizer_e, self.optimizer_g, self.optimizer_d = optimizer_e, optimizer_g, optimizer_d
        self.likelihood, self.sigma, self.gamma, self.data_recon_weight = likelihood, sigma, gamma, data_recon_weight
        self.teacher_forcing, self.kl_weight, self.kl_warmup_steps = teacher_forcing, kl_weight, kl_warmup_steps
        self.latent_dim, self.loss_name = decoder.latent_dim, loss

    # -- Lightning hooks ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return [
            self.optimizer_e(self.encoder.parameters()),
            self.optimizer_g(self.decoder.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def reconstruct_train(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode x, draw z, decode a reconstruction with teacher forcing (Larsen et al. 2016, algorithm 1)."""
        mu, logvar = self.encoder(x)  # (B, Z) each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        raw = self.decoder(z, x.shape[1], target=x, teacher_forcing=self.teacher_forcing)  # (B, T, D)
        return {"mu": mu, "logvar": logvar, "z": z, "raw": raw, "recon": self.decoder.activate(raw)}

    def prior_sample(self, n: int, length: int) -> torch.Tensor:
        z_prior = torch.randn(n, self.latent_dim, device=self.device)
        return self.decoder.activate(self.decoder(z_prior, length))  # (B, T, D)

    def feature_nll(self, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Gaussian reconstruction error in D's features, per sequence (B,) (Larsen et al. 2016, sec. 2.2)."""
        with torch.no_grad():
            real_features = self.discriminator.features(x)  # (B, T, F): a fixed target
        return 0.5 * (self.discriminator.features(recon) - real_features).pow(2).flatten(1).sum(1)

    def training_step(self, batch, batch_idx: int) -> None:
        x = batch[0]  # (B, T, D) in [0, 1]
        with torch.no_grad():
            recon, prior = self.reconstruct_train(x)["recon"], self.prior_sample(x.shape[0], x.shape[1])
        self.discriminator_step(x, recon, prior)
        z = self.encoder_step(x)
        self.decoder_step(x, z)

    def discriminator_step(self, x: torch.Tensor, recon: torch.Tensor, prior: torch.Tensor) -> None:
        """D learns real x against reconstructions and prior samples (made without a graph)."""
        opt_d = self.optimizers()[2]
        self.toggle_optimizer(opt_d)
        real_logits = self.discriminator(x)
        fake_logits = self.discriminator(torch.cat([recon, prior]))  # (2B, ...)
        d_loss = self.adversarial.d(real_logits, fake_logits)
        self.manual_backward(d_loss)
        d_norm = self.finish_step(opt_d)
        self.untoggle_optimizer(opt_d)
        if logs_this_step(self):
            self.log_dict(
                {
                    "train/d_loss": d_loss.detach(),
                    "train/D(x)": self._d_output(real_logits),
                    "train/D(G(z))": self._d_output(fake_logits),
                    "train/grad_norm_d": d_norm,
                }
            )
            self.log("d_loss", d_loss.detach(), prog_bar=True, logger=False)

    def encoder_step(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder on beta * KL + feature-wise (+ data) reconstruction; decoder and D frozen by
        ``toggle_optimizer`` (so DDP waits for no gradient of theirs). Returns z (detached) for the decoder."""
        opt_e = self.optimizers()[0]
        self.toggle_optimizer(opt_e)
        out = self.reconstruct_train(x)
        feature_nll = self.feature_nll(x, out["recon"])  # (B,)
        data_nll = reconstruction_nll(out["raw"], x, self.decoder, self.likelihood, self.sigma)  # (B,)
        kl = kl_normal(out["mu"], out["logvar"])  # (B,)
        beta = kl_warmup(batches_done(self), self.kl_weight, self.kl_warmup_steps)
        encoder_loss = (beta * kl + feature_nll + self.data_recon_weight * data_nll).mean()
        self.manual_backward(encoder_loss)
        e_norm = self.finish_step(opt_e)
        self.untoggle_optimizer(opt_e)
        if logs_this_step(self):
            self.log_dict(
                {
                    "train/encoder_loss": encoder_loss.detach(),
                    "train/feature_recon": feature_nll.detach().mean(),
                    "train/data_recon": data_nll.detach().mean(),
                    "train/kl": kl.detach().mean(),
                    "train/kl_weight": beta,
                    "train/grad_norm_e": e_norm,
                }
            )
        return out["z"].detach()

    def decoder_step(self, x: torch.Tensor, z: torch.Tensor) -> None:
        """Decoder on gamma * feature-wise (+ data) reconstruction plus the adversarial loss on the
        reconstruction and a prior sample (Larsen et al. 2016, sec. 2.3); encoder and D frozen."""
        opt_g = self.optimizers()[1]
        self.toggle_optimizer(opt_g)
        raw = self.decoder(z, x.shape[1], target=x, teacher_forcing=self.teacher_forcing)  # (B, T, D)
        recon = self.decoder.activate(raw)
        feature_nll = self.feature_nll(x, recon)
        data_nll = reconstruction_nll(raw, x, self.decoder, self.likelihood, self.sigma)
        fakes = torch.cat([recon, self.prior_sample(x.shape[0], x.shape[1])])  # (2B, T, D)
        adversarial = self.adversarial.g(self.discriminator(fakes))
        decoder_loss = (self.gamma * feature_nll + self.data_recon_weight * data_nll).mean() + adversarial
        self.manual_backward(decoder_loss)
        g_norm = self.finish_step(opt_g)
        self.untoggle_optimizer(opt_g)
        if logs_this_step(self):
            self.log_dict(
                {
                    "train/decoder_loss": decoder_loss.detach(),
                    "train/g_adversarial": adversarial.detach(),
                    "train/grad_norm_g": g_norm,
                }
            )
            self.log("g_loss", decoder_loss.detach(), prog_bar=True, logger=False)

    def _d_output(self, logits: torch.Tensor) -> torch.Tensor:
        return mean_d_output(logits, self.loss_name)

    def _evaluate(self, batch, prefix: str) -> None:
        x = batch[0]
        mu, logvar = self.encoder(x)
        raw = self.decoder(mu, x.shape[1])  # free-running reconstruction from the posterior mean
        fake = self.sample(x.shape[0], length=x.shape[1])
        real_logits, fake_logits = self.discriminator(x), self.discriminator(fake)
        self.log_dict(
            {
                f"{prefix}/data_recon": reconstruction_nll(raw, x, self.decoder, self.likelihood, self.sigma).mean(),
                f"{prefix}/kl": kl_normal(mu, logvar).mean(),
                f"{prefix}/d_loss": self.adversarial.d(real_logits, fake_logits),
                f"{prefix}/D(x)": self._d_output(real_logits),
                f"{prefix}/D(G(z))": self._d_output(fake_logits),
            },
            sync_dist=True,
        )
        self.log_moment_gap(x, prefix)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
