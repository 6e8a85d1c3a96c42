"""GAN on images: alternating discriminator and generator updates with manual optimization."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.augment import diff_augment, parse_policy
from lightning_gen.errors import check_at_least
from lightning_gen.losses import AdversarialLossName, get_adversarial_loss
from lightning_gen.models.common import (
    AdversarialLogs,
    GeneratorEMA,
    ManualSteps,
    apply_spectral_norm,
    attached_datamodule,
    check_critic,
    check_image_shape,
    check_penalty_norm,
    eval_mode,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.conditional import Conditional, call_with_labels


class GAN(Conditional, AdversarialLogs, ManualSteps, pl.LightningModule):
    """A GAN trained with alternating updates (Goodfellow et al. 2014, algorithm 1).

    Each training batch takes one discriminator step; every ``n_critic``-th batch also takes one
    generator step on fresh noise (Arjovsky et al. 2017, algorithm 1: several critic updates on
    different batches per generator update). Losses:

    - ``ns``: D minimises -E[log D(x)] - E[log(1 - D(G(z)))]; G minimises the non-saturating
      -E[log D(G(z))] (Goodfellow et al. 2014, sec. 3).
    - ``hinge``: Lim & Ye 2017; Miyato et al. 2018, eqs. 16-17.
    - ``wasserstein``: WGAN critic E[D(G(z))] - E[D(x)] plus ``gp_weight`` times the gradient penalty
      (Gulrajani et al. 2017, eq. 3; n_critic = 5 and Adam(1e-4, betas=(0, 0.9)) in that paper).

    Class-conditional when both networks are built with ``num_classes`` (``lightning_gen.models.conditional``):
    G makes an image of the given class, D judges (image, class) pairs, with a projection head (Miyato &
    Koyama 2018) or an auxiliary classifier (AC-GAN, Odena et al. 2017; the discriminator's
    ``conditioning``), under every loss above. The fakes of the D and G steps get the real batch's labels, so
    the class mix is the data's; an auxiliary classifier adds ``class_weight`` x the cross-entropy of its class
    logits on real and fake to D's loss and on fake to G's. ``sample(n, labels=...)`` draws the classes from
    the training label distribution when none are given.

    Args:
        generator: maps (B, latent_dim) noise to (B, C, H, W) images in [-1, 1]; must have ``latent_dim``.
        discriminator: maps images to (B,) logits / critic values.
        optimizer_g: optimizer factory for G (e.g. ``torch.optim.Adam`` with its init args in the config).
        optimizer_d: optimizer factory for D.
        loss: adversarial loss, one of ``ns``, ``hinge``, ``wasserstein``.
        n_critic: D steps per G step (>= 1).
        gp_weight: weight of the gradient penalty (used with ``wasserstein``).
        spectral_norm: wrap every conv / linear layer of D in spectral normalisation (Miyato et al. 2018).
        ema_decay: if set, keep an exponential moving average of G (updated after each G step); ``sample``
            then uses it.
        clip_grad_norm: if set, clip each network's gradient norm to this value before its step.
        class_weight: weight of the auxiliary classifier's cross-entropy (AC-GAN discriminators only).
        ema_batch_norm: the EMA generator's batch-norm running statistics. ``average``: the moving average of
            G's, like its weights. ``track``: after each EMA update the EMA generator also runs once in train
            mode, without gradients, on that G step's noise and labels, so its statistics are those of its own
            averaged weights (BigGAN's "standing statistics", Brock et al. 2019, sec. 4 / app. C; SWA's
            ``update_bn``, Izmailov et al. 2018). Averaged weights with averaged statistics mismatch (the
            averaged statistics belong to earlier weights, not to their average), which costs a conditional GAN
            much of its class accuracy. Needs ``ema_decay``; costs one no-grad
            forward of G per G step.
        augment: differentiable augmentations of every image D sees in training, real and generated, in D's
            and G's steps (DiffAugment, Zhao et al. 2020; ``lightning_gen.augment``): names joined by commas,
            ``translation`` and / or ``cutout``, e.g. ``"translation,cutout"``. None: off. Validation judges
            un-augmented images.
        mode_seeking_weight: weight of the mode-seeking term in G's loss (MSGAN, Mao et al. 2019, eq. 3): the G
            step's batch is made of pairs with the same label and different noise, and G also minimises
            ``1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + 1e-5)``, against a generator that ignores its noise
            (within-class collapse of a conditional GAN). 0: off.
    """

    data_kind = "image"

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        loss: AdversarialLossName = "ns",
        n_critic: int = 1,
        gp_weight: float = 10.0,
        spectral_norm: bool = False,
        ema_decay: float | None = None,
        clip_grad_norm: float | None = None,
        class_weight: float = 1.0,
        ema_batch_norm: Literal["average", "track"] = "average",
        augment: str | None = None,
        mode_seeking_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.init_conditional(generator, discriminator)
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1 (D steps per G step), got {n_critic}.")
        check_at_least(0, gp_weight=gp_weight, class_weight=class_weight, mode_seeking_weight=mode_seeking_weight)
        check_ema_batch_norm(ema_batch_norm, ema_decay)
        self.augmentations = parse_policy(augment)
        self.mode_seeking_weight = mode_seeking_weight
        if not hasattr(generator, "latent_dim"):
            raise ValueError("The generator must expose `latent_dim` (the size of its noise input).")
        check_critic(generator, discriminator)
        self.adversarial = get_adversarial_loss(loss)
        check_penalty_norm(self.adversarial, gp_weight, discriminator)
        save_plain_hyperparameters(self)
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = apply_spectral_norm(discriminator) if spectral_norm else discriminator
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.n_critic, self.gp_weight, self.clip_grad_norm = n_critic, gp_weight, clip_grad_norm
        self.latent_dim, self.loss_name = generator.latent_dim, loss
        self.class_weight, self.ema_batch_norm = class_weight, ema_batch_norm
        self.auxiliary = self.conditional and getattr(discriminator, "conditioning", None) == "auxiliary"

    # -- public API ---------------------------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, z: torch.Tensor | None = None, labels=None) -> torch.Tensor:
        """``n`` images (n, C, H, W) in [-1, 1], from the EMA generator when there is one (eval mode). A
        conditional model makes them of the classes ``labels`` (one per image, or one for all; default: drawn
        from the training label distribution)."""
        labels = self.labels_for(n, labels)
        g = self.generator_ema.module if self.generator_ema is not None else self.generator
        with eval_mode(g):
            return call_with_labels(g, self.noise(n) if z is None else z.to(self.device), labels)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = attached_datamodule(self)
        check_image_shape(self.generator, getattr(datamodule, "dims", None))
        self.store_label_distribution(datamodule)

    def configure_optimizers(self):
        return [
            self.optimizer_g(self.generator.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, C, H, W) in [-1, 1]
        labels = self.batch_labels(batch)  # (B,) or None; the fakes get the same classes
        given = () if labels is None else (labels,)  # unconditional: the steps' signatures as before
        self.discriminator_step(real, *given)
        if (batch_idx + 1) % self.n_critic == 0:
            self.generator_step(real.shape[0], *given)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """The images as D sees them in training (``augment``; unchanged when it is off)."""
        return diff_augment(images, self.augmentations) if self.augmentations else images

    def critic(self, labels: torch.Tensor | None):
        """D as a function of images with the labels bound: logits, or (logits, class logits) for AC-GAN."""
        if self.auxiliary:
            return lambda x: self.discriminator.logits_and_classes(x, labels=labels)
        return lambda x: call_with_labels(self.discriminator, x, labels)

    def discriminator_step(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """One D update: real vs. fakes from a frozen G (no graph through G)."""
        with torch.no_grad():
            fake = call_with_labels(self.generator, self.noise(real.shape[0]), labels)
        real, fake = self.augment(real), self.augment(fake)
        self.discriminator_update(
            self.optimizers()[1], real, fake, self.critic(labels), labels=labels, class_weight=self.class_weight
        )

    def generator_step(self, batch_size: int, labels: torch.Tensor | None = None) -> None:
        """One G update on fresh noise; D is frozen by ``toggle_optimizer``. Then the EMA update."""
        opt_g = self.optimizers()[0]
        z = self.noise(batch_size)
        seeking = self.mode_seeking_weight > 0 and batch_size >= 2
        if seeking:  # pairs (i, half + i) with the same label and different noise
            half = batch_size // 2
            z = z[: 2 * half]
            labels = None if labels is None else labels[:half].repeat(2)
        with self.toggled_optimizer(opt_g):
            fake = call_with_labels(self.generator, z, labels)
            out = self.critic(labels)(self.augment(fake))
            adversarial = self.adversarial.g(out[0] if self.auxiliary else out)
            class_loss = F.cross_entropy(out[1], labels) if self.auxiliary else None
            g_loss = adversarial if class_loss is None else adversarial + self.class_weight * class_loss
            if seeking:
                g_loss = g_loss + self.mode_seeking_weight * mode_seeking_loss(fake, z)
            self.manual_backward(g_loss)
            g_norm = self.finish_step(opt_g)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
            if self.ema_batch_norm == "track":
                self.generator_ema.track_statistics(z, labels)
        if logs_this_step(self):
            self.log_g_step(g_loss, g_norm)
            if class_loss is not None:
                self.log_dict({"train/g_adversarial": adversarial.detach(), "train/g_class_loss": class_loss.detach()})

    def _evaluate(self, batch, prefix: str) -> None:
        real, labels = batch[0], self.batch_labels(batch)
        critic = self.critic(labels)
        fake = self.sample(real.shape[0], labels=labels)
        real_out, fake_out = critic(real), critic(fake)
        if self.auxiliary:  # the classifier's accuracy on real images of the split
            accuracy = (real_out[1].argmax(1) == labels).float().mean()
            self.log(f"{prefix}/accuracy", accuracy, sync_dist=True)
            real_out, fake_out = real_out[0], fake_out[0]
        self.log_dict(self.d_metrics(prefix, real_out, fake_out), sync_dist=True)
        self.log_class_diversity(prefix, fake, real, labels)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019, eq. 3, as their code): the inverse of the ratio of the mean absolute image
    difference to the mean absolute noise difference between the first and second halves of the batch."""
    half = fake.shape[0] // 2
    ratio = (fake[:half] - fake[half:]).abs().mean() / (z[:half] - z[half:]).abs().mean()
    return 1.0 / (ratio + 1e-5)


def check_ema_batch_norm(ema_batch_norm: str, ema_decay: float | None) -> None:
    if ema_batch_norm not in ("average", "track"):
        raise ValueError(f"ema_batch_norm={ema_batch_norm!r}: choose 'average' or 'track'.")
    if ema_batch_norm == "track" and ema_decay is None:
        raise ValueError("ema_batch_norm='track' sets the EMA generator's statistics: give `ema_decay` as well.")
