"""GAN + LSTM on sequences, after C-RNN-GAN (Mogren 2016, "C-RNN-GAN: Continuous recurrent neural networks
with adversarial training")."""

from __future__ import annotations

import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.losses import AdversarialLossName, get_adversarial_loss, gradient_penalty, mean_d_output
from lightning_gen.models.common import GeneratorEMA, logs_this_step, save_plain_hyperparameters
from lightning_gen.models.sequence_common import SequenceModel


class LSTMGAN(SequenceModel):
    """A recurrent GAN: an LSTM generator driven by noise at every step against a (bidirectional) recurrent
    discriminator, trained with alternating updates (Goodfellow et al. 2014, algorithm 1).

    Each training batch takes one D step; every ``n_critic``-th batch also takes one G step on fresh noise.
    The adversarial losses are those of :class:`~lightning_gen.models.GAN` (``ns``, ``hinge``,
    ``wasserstein`` with gradient penalty); a per-step discriminator's logits (B, T) enter the losses as
    B * T decisions (C-RNN-GAN's per-step decisions, Mogren 2016, sec. 3). ``feature_matching`` adds
    ``weight * ||E f(x) - E f(G(z))||^2`` over D's top-layer hidden states to G's loss (Salimans et al. 2016,
    sec. 3.1; C-RNN-GAN trains G with feature matching, sec. 4).

    Args:
        generator: maps noise (B, T, latent_dim) to sequences (B, T, D) in [0, 1] (e.g. ``LSTMGenerator``).
        discriminator: maps (B, T, D) to logits (B, T) or (B,) and has ``features`` (e.g.
            ``RecurrentDiscriminator``).
        optimizer_g: optimizer factory for G.
        optimizer_d: optimizer factory for D.
        loss: ``ns``, ``hinge`` or ``wasserstein``.
        n_critic: D steps per G step (>= 1).
        gp_weight: weight of the gradient penalty (with ``wasserstein``).
        feature_matching: weight of the feature-matching term in G's loss (0: off).
        ema_decay: if set, an exponential moving average of G is kept and used by ``sample``.
        clip_grad_norm: if set, clip each network's gradient norm to this value before its step.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        loss: AdversarialLossName = "ns",
        n_critic: int = 1,
        gp_weight: float = 10.0,
        feature_matching: float = 0.0,
        ema_decay: float | None = None,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__()
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1 (D steps per G step), got {n_critic}.")
        if gp_weight < 0 or feature_matching < 0:
            raise ValueError(f"gp_weight and feature_matching must be >= 0, got {gp_weight}, {feature_matching}.")
        for name in ("latent_dim", "data_dim"):
            if not hasattr(generator, name):
                raise ValueError(f"The generator must expose `{name}`.")
        if getattr(discriminator, "data_dim", generator.data_dim) != generator.data_dim:
            raise ValueError(
                f"The generator makes {generator.data_dim} features per step but the discriminator reads "
                f"{discriminator.data_dim}."
            )
        if feature_matching > 0 and not hasattr(discriminator, "features"):
            raise ValueError("feature_matching needs a discriminator with a `features(x)` method.")
        self.adversarial = get_adversarial_loss(loss)
        save_plain_hyperparameters(self)
        self.init_sequence_model(generator.data_dim, clip_grad_norm)
        self.generator, self.discriminator = generator, discriminator
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.n_critic, self.gp_weight, self.feature_matching = n_critic, gp_weight, feature_matching
        self.latent_dim, self.loss_name = generator.latent_dim, loss

    # -- public API ---------------------------------------------------------------------------------
    def noise(self, n: int, length: int) -> torch.Tensor:
        """Fresh noise at every step: (n, length, latent_dim)."""
        return torch.randn(n, length, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, length: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` sequences (n, length, D) in [0, 1] (the training length by default; any length works, the
        generator runs step by step), from the EMA generator when there is one."""
        g = self.generator_ema.module if self.generator_ema is not None else self.generator
        was_training = g.training
        g.eval()
        try:
            return g(self.noise(n, self.sample_length(length)) if z is None else z.to(self.device))
        finally:
            g.train(was_training)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return [
            self.optimizer_g(self.generator.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, T, D) in [0, 1]
        self.discriminator_step(real)
        if (batch_idx + 1) % self.n_critic == 0:
            self.generator_step(real)

    def _critic(self, x: torch.Tensor) -> torch.Tensor:
        """One critic value per sequence (B,), the mean over steps, for the per-sample gradient penalty."""
        out = self.discriminator(x)
        return out.flatten(1).mean(1) if out.dim() > 1 else out

    def discriminator_step(self, real: torch.Tensor) -> None:
        """One D update: real vs. fakes from a frozen G (no graph through G)."""
        opt_d = self.optimizers()[1]
        self.toggle_optimizer(opt_d)
        with torch.no_grad():
            fake = self.generator(self.noise(real.shape[0], real.shape[1]))
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        d_loss = self.adversarial.d(real_logits, fake_logits)
        if self.adversarial.needs_gradient_penalty and self.gp_weight > 0:
            with torch.backends.cudnn.flags(enabled=False):  # cuDNN RNNs have no double backward
                gp = gradient_penalty(self._critic, real, fake)
            d_loss = d_loss + self.gp_weight * gp
        self.manual_backward(d_loss)
        d_norm = self.finish_step(opt_d, self.discriminator.parameters())
        self.untoggle_optimizer(opt_d)
        if not logs_this_step(self):  # only every log_every_n_steps-th value is written
            return
        if self.adversarial.needs_gradient_penalty and self.gp_weight > 0:
            self.log("train/gradient_penalty", gp)
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/D(x)": self._d_output(real_logits),
                "train/D(G(z))": self._d_output(fake_logits),
                "train/grad_norm_d": d_norm,
            }
        )
        self.log("d_loss", d_loss.detach(), prog_bar=True, logger=False)

    def generator_step(self, real: torch.Tensor) -> None:
        """One G update on fresh noise (adversarial + optional feature matching); D is frozen by the toggle."""
        opt_g = self.optimizers()[0]
        self.toggle_optimizer(opt_g)
        fake = self.generator(self.noise(real.shape[0], real.shape[1]))  # (B, T, D)
        g_loss = self.adversarial.g(self.discriminator(fake))
        if self.feature_matching > 0:
            with torch.no_grad():
                real_features = self.discriminator.features(real).mean((0, 1))  # (F,)
            fm = (self.discriminator.features(fake).mean((0, 1)) - real_features).pow(2).sum()
            g_loss = g_loss + self.feature_matching * fm
        self.manual_backward(g_loss)
        g_norm = self.finish_step(opt_g, self.generator.parameters())
        self.untoggle_optimizer(opt_g)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        if not logs_this_step(self):
            return
        if self.feature_matching > 0:
            self.log("train/feature_matching", fm.detach())
        self.log_dict({"train/g_loss": g_loss.detach(), "train/grad_norm_g": g_norm})
        self.log("g_loss", g_loss.detach(), prog_bar=True, logger=False)

    def _d_output(self, logits: torch.Tensor) -> torch.Tensor:
        return mean_d_output(logits, self.loss_name)

    def _evaluate(self, batch, prefix: str) -> None:
        real = batch[0]
        fake = self.sample(real.shape[0], length=real.shape[1])
        real_logits, fake_logits = self.discriminator(real), self.discriminator(fake)
        self.log_dict(
            {
                f"{prefix}/d_loss": self.adversarial.d(real_logits, fake_logits),
                f"{prefix}/D(x)": self._d_output(real_logits),
                f"{prefix}/D(G(z))": self._d_output(fake_logits),
            },
            sync_dist=True,
        )
        self.log_moment_gap(real, prefix)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
