"""TimeGAN (Yoon, Jarrett & van der Schaar 2019, "Time-series Generative Adversarial Networks", NeurIPS), after
its reference code (github.com/jsyoon0823/TimeGAN, ``timegan.py``): an autoencoder into a latent space, a GAN in
that space, and a supervisor that learns the latent dynamics, trained in three phases."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen import lightning_internals as li
from lightning_gen.errors import check_at_least
from lightning_gen.losses import d_loss_ns, g_loss_ns, get_adversarial_loss
from lightning_gen.models.common import (
    AdversarialLogs,
    GeneratorEMA,
    batches_done,
    eval_mode,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.lstm_gan import moment_loss
from lightning_gen.models.sequence_common import SequenceModel

Phase = Literal["embedding", "supervised", "joint"]
_NETWORKS = ("embedder", "recovery", "generator", "supervisor", "discriminator")


def next_step_mse(h: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """The supervised loss ``G_loss_S`` of the reference: the supervisor's prediction at step t (B, T, H) against
    the code at step t + 1 (paper eq. 5)."""
    return F.mse_loss(predicted[:, :-1], h[:, 1:])


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt`` as the reference takes it on its MSE losses, with a finite gradient at 0."""
    return (x + 1e-12).sqrt()


class TimeGAN(AdversarialLogs, SequenceModel):
    """TimeGAN: embedder e and recovery r (an autoencoder from data to codes H and back), generator g (noise to
    codes E^), supervisor s (codes to the next step's codes) and discriminator d (codes to a logit per step); the
    GAN plays in the latent space, and the supervisor ties the generator's codes to the real data's step-to-step
    dynamics (paper sec. 4; the networks: :class:`~lightning_gen.nets.timegan.TimeGANNetworks`).

    Training is in three phases, by batches trained (``batches_done``, restored on resume, so a resumed run is
    in the phase the stopped one was), each a step of the reference's loops (``timegan.py``, its losses):

    1. **embedding** (``embedding_steps`` batches): e and r minimise ``10 * sqrt(MSE(x, r(e(x))))`` (``E_loss0``).
    2. **supervised** (``supervised_steps`` batches): s minimises ``G_loss_S = MSE(h_{t+1}, s(h)_t)`` on the
       codes of real data (e frozen). The reference also lists g's variables here; g gets no gradient from this
       loss.
    3. **joint**, every later batch: a generator step, g and s minimising
       ``G_loss_U + gamma * G_loss_U_e + supervised * sqrt(G_loss_S) + moment_matching * G_loss_V``: the
       non-saturating adversarial loss on the supervised fake codes H^ = s(g(z)) and (weight gamma,
       ``latent_adversarial``) on the raw ones E^ = g(z), the supervised loss, and the moment term
       :func:`~lightning_gen.models.lstm_gan.moment_loss` between x and X^ = r(H^); then an embedder step, e
       and r minimising ``10 * sqrt(MSE(x, r(e(x)))) + 0.1 * G_loss_S``; and on every ``generator_steps``-th
       joint batch a discriminator step, d minimising ``BCE(d(e(x)), 1) + BCE(d(H^), 0) + gamma * BCE(d(E^), 0)``
       only when that loss exceeds ``d_threshold`` (the reference's ``if check_d_loss > 0.15``), so that d does
       not overpower g. The reference draws a fresh batch for each of its two generator / embedder steps and for
       the discriminator step of a joint iteration; here the discriminator step uses the batch of the second.
       Under DDP the decision to train d is taken on the loss averaged over the ranks, so all ranks agree.

    The noise is uniform on [0, 1) at every step (the reference's ``random_generator``); every network ends in a
    sigmoid but d, so the data must be min-max scaled to [0, 1] (every sequence DataModule here is). The
    reference trains each phase with its own Adam (``E0_solver`` / ``E_solver``, ``GS_solver`` / ``G_solver``);
    here each pair of networks keeps one optimizer across the phases (three in all). The reference uses
    Adam(lr 1e-3), batch 128, 50,000 iterations per phase, hidden size 24, 3 GRU layers.

    Args:
        networks: an nn.Module with the five networks as attributes ``embedder``, ``recovery``, ``generator``,
            ``supervisor``, ``discriminator`` and the methods ``noise(n, T, device)``, ``generate(z)`` and
            ``discriminate(h)`` (e.g. :class:`~lightning_gen.nets.timegan.TimeGANNetworks`).
        optimizer_e: optimizer factory for the embedder and the recovery.
        optimizer_g: optimizer factory for the generator and the supervisor.
        optimizer_d: optimizer factory for the discriminator.
        embedding_steps: batches of the embedding phase.
        supervised_steps: batches of the supervised phase, after it.
        latent_adversarial: weight of the adversarial terms on the generator's raw codes E^ (reference ``gamma``).
        supervised: weight of ``sqrt(G_loss_S)`` in the generator's loss (reference: 100).
        moment_matching: weight of the moment term ``G_loss_V`` in the generator's loss (reference: 100).
        d_threshold: the discriminator steps only when its loss exceeds this (reference: 0.15; 0: always).
        generator_steps: generator (and embedder) steps per discriminator step in the joint phase (reference: 2).
        clip_grad_norm: if set, clip each optimizer's gradient norm to this value before its step.
        ema_decay: if set, keep an exponential moving average of generator, supervisor and recovery (updated after
            each of their steps in the joint phase) and sample from it. Not in the reference; off by default.

    Logs ``train/recon`` (the autoencoder's MSE ``E_loss_T0``), ``train/e_loss``; ``train/supervised``
    (``G_loss_S``); in the joint phase ``train/g_loss`` (the generator's whole loss), ``train/g_adversarial``
    (``G_loss_U``), ``train/g_adversarial_latent`` (``G_loss_U_e``), ``train/moment_matching`` (``G_loss_V``),
    ``train/grad_norm_g``, and D's ``train/d_loss``, ``train/D(x)``, ``train/D(G(z))`` (on H^),
    ``train/grad_norm_d``, ``train/d_trained`` (1 when d stepped, 0 when its loss was under the threshold);
    ``train/phase`` (0, 1, 2); ``val/`` and ``test/`` ``recon``, ``supervised``, ``d_loss``, ``D(x)``,
    ``D(G(z))``, ``moment_gap``.
    """

    def __init__(
        self,
        networks: nn.Module,
        optimizer_e: OptimizerCallable = torch.optim.Adam,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        embedding_steps: int = 1000,
        supervised_steps: int = 1000,
        latent_adversarial: float = 1.0,
        supervised: float = 100.0,
        moment_matching: float = 100.0,
        d_threshold: float = 0.15,
        generator_steps: int = 2,
        clip_grad_norm: float | None = None,
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        missing = [n for n in (*_NETWORKS, "data_dim", "noise", "generate", "discriminate") if not hasattr(networks, n)]
        if missing:
            raise ValueError(
                f"networks lacks {missing}: give TimeGAN's five networks in one module, e.g. "
                "lightning_gen.nets.timegan.TimeGANNetworks."
            )
        check_at_least(0, embedding_steps=embedding_steps, supervised_steps=supervised_steps,
                       latent_adversarial=latent_adversarial, supervised=supervised, moment_matching=moment_matching,
                       d_threshold=d_threshold)  # fmt: skip
        if generator_steps < 1:
            raise ValueError(f"generator_steps must be >= 1 (generator steps per D step), got {generator_steps}.")
        save_plain_hyperparameters(self)
        self.init_sequence_model(networks.data_dim, clip_grad_norm, networks)
        self.networks = networks
        self.optimizer_e, self.optimizer_g, self.optimizer_d = optimizer_e, optimizer_g, optimizer_d
        self.embedding_steps, self.supervised_steps = embedding_steps, supervised_steps
        self.latent_adversarial, self.supervised, self.moment_matching = latent_adversarial, supervised, moment_matching
        self.d_threshold, self.generator_steps = d_threshold, generator_steps
        # AdversarialLogs' names and D outputs (probabilities): TimeGAN's losses are the non-saturating GAN's
        self.adversarial, self.loss_name, self.gp_weight = get_adversarial_loss("ns"), "ns", 0.0
        self.sampler_ema = GeneratorEMA(self._sampler(), ema_decay) if ema_decay is not None else None

    def _sampler(self) -> nn.Module:
        """The networks a sample goes through, as one module for the EMA: generator, supervisor, recovery."""
        n = self.networks
        return nn.ModuleList([n.generator, n.supervisor, n.recovery])

    # -- public API ---------------------------------------------------------------------------------
    def phase(self) -> tuple[Phase, int]:
        """The training phase of the current batch and the batches already trained in that phase."""
        done = batches_done(self)
        if done < self.embedding_steps:
            return "embedding", done
        done -= self.embedding_steps
        if done < self.supervised_steps:
            return "supervised", done
        return "joint", done - self.supervised_steps

    @torch.no_grad()
    def sample(self, n: int, length: int | None = None, z: torch.Tensor | None = None, labels=None) -> torch.Tensor:
        """``n`` sequences (n, length, D) in [0, 1], recovery(supervisor(generator(z))) as the reference generates
        (the training length by default; the networks are recurrent, so any length works), from the EMA copy when
        there is one. ``z``: the noise (n, length, noise_dim), uniform on [0, 1) by default. TimeGAN is
        unconditional: ``labels`` must be None."""
        self.labels_for(n, labels)  # a clear error for labels given to an unconditional model
        if z is None:
            z = self.networks.noise(n, self.sample_length(length), device=self.device)
        if self.sampler_ema is None:
            with eval_mode(self.networks):
                return self.networks.generate(z.to(self.device))
        generator, supervisor, recovery = self.sampler_ema.module
        with eval_mode(self.sampler_ema):
            return recovery(supervisor(generator(z.to(self.device))))

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(li.attached_trainer(self), "datamodule", None)
        if getattr(datamodule, "variable_length", False):
            raise ValueError(
                f"{type(datamodule).__name__} holds sequences of different lengths; this TimeGAN trains on windows of "
                "one length (its losses would count the padding). Cut the data into fixed-length windows (e.g. "
                "ArraySequenceDataModule's window_length), or use a model that takes lengths (R-VAE, R-VAE-GAN, "
                "LSTM-GAN)."
            )

    def configure_optimizers(self):
        n = self.networks
        return [
            self.optimizer_e([*n.embedder.parameters(), *n.recovery.parameters()]),
            self.optimizer_g([*n.generator.parameters(), *n.supervisor.parameters()]),
            self.optimizer_d(n.discriminator.parameters()),
        ]

    def training_step(self, batch, batch_idx: int) -> None:
        x = batch[0]  # (B, T, D) in [0, 1]; TimeGAN is unconditional
        phase, done = self.phase()
        if logs_this_step(self):
            self.log("train/phase", float(("embedding", "supervised", "joint").index(phase)))
        if phase == "embedding":
            self.embedding_step(x)
        elif phase == "supervised":
            self.supervised_step(x)
        else:
            self.generator_step(x)
            self.embedding_step(x, joint=True)
            if (done + 1) % self.generator_steps == 0:
                self.discriminator_step(x)

    def embedding_step(self, x: torch.Tensor, joint: bool = False) -> None:
        """One step of embedder and recovery: ``10 * sqrt(MSE(x, r(e(x))))`` (``E_loss0``), plus
        ``0.1 * G_loss_S`` in the joint phase (``E_loss``; the supervisor is frozen, e gets its gradient)."""
        opt_e = self.optimizers()[0]
        n = self.networks
        with self.toggled_optimizer(opt_e):
            h = n.embedder(x)  # (B, T, H)
            recon = F.mse_loss(n.recovery(h), x)  # E_loss_T0
            e_loss = 10 * _sqrt(recon)
            if joint:
                supervised = next_step_mse(h, n.supervisor(h))
                e_loss = e_loss + 0.1 * supervised
            self.manual_backward(e_loss)
            e_norm = self.finish_step(opt_e)
        if logs_this_step(self):
            self.log_dict({"train/recon": recon.detach(), "train/e_loss": e_loss.detach(), "train/grad_norm_e": e_norm})

    def supervised_step(self, x: torch.Tensor) -> None:
        """One step of the supervisor alone on real codes (embedder frozen): ``G_loss_S`` (``GS_solver``)."""
        opt_g = self.optimizers()[1]
        n = self.networks
        with self.toggled_optimizer(opt_g):
            with torch.no_grad():
                h = n.embedder(x)  # (B, T, H), the embedder is not trained here
            supervised = next_step_mse(h, n.supervisor(h))
            self.manual_backward(supervised)
            s_norm = self.finish_step(opt_g)
        if logs_this_step(self):
            self.log_dict({"train/supervised": supervised.detach(), "train/grad_norm_g": s_norm})

    def generator_step(self, x: torch.Tensor) -> None:
        """One step of generator and supervisor on ``G_loss`` (class docstring); e, r and d frozen."""
        opt_g = self.optimizers()[1]
        n = self.networks
        with self.toggled_optimizer(opt_g):
            e_hat = n.generator(n.noise(x.shape[0], x.shape[1], device=self.device))  # E^ (B, T, H)
            h_hat = n.supervisor(e_hat)  # H^ (B, T, H)
            x_hat = n.recovery(h_hat)  # X^ (B, T, D)
            h = n.embedder(x).detach()  # real codes, the embedder is not trained here
            adversarial = g_loss_ns(n.discriminate(h_hat))  # G_loss_U
            adversarial_latent = g_loss_ns(n.discriminate(e_hat))  # G_loss_U_e
            supervised = next_step_mse(h, n.supervisor(h))  # G_loss_S
            moments = moment_loss(x, x_hat)  # G_loss_V
            g_loss = adversarial + self.latent_adversarial * adversarial_latent
            g_loss = g_loss + self.supervised * _sqrt(supervised) + self.moment_matching * moments
            self.manual_backward(g_loss)
            g_norm = self.finish_step(opt_g)
        if self.sampler_ema is not None:
            self.sampler_ema.update(self._sampler())
        if logs_this_step(self):
            terms = {"train/g_adversarial": adversarial, "train/g_adversarial_latent": adversarial_latent,
                     "train/supervised": supervised, "train/moment_matching": moments}  # fmt: skip
            self.log_dict({k: v.detach() for k, v in terms.items()})
            self.log_g_step(g_loss, g_norm)

    def discriminator_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``D_loss`` of the reference on real codes e(x) against H^ and (weight gamma) E^, made without a graph
        through e, g and s; returns the loss and the logits on real codes and on H^ (B, T) each."""
        n = self.networks
        with torch.no_grad():
            e_hat = n.generator(n.noise(x.shape[0], x.shape[1], device=self.device))  # (B, T, H)
            h_hat, h = n.supervisor(e_hat), n.embedder(x)
        real, fake, fake_latent = n.discriminate(h), n.discriminate(h_hat), n.discriminate(e_hat)
        d_loss = d_loss_ns(real, fake) + self.latent_adversarial * F.softplus(fake_latent).mean()
        return d_loss, real, fake

    def discriminator_step(self, x: torch.Tensor) -> None:
        """One D step, taken only when its loss exceeds ``d_threshold`` (the reference's rule), the loss averaged
        over the DDP ranks so that every rank takes the same decision."""
        opt_d = self.optimizers()[2]
        with self.toggled_optimizer(opt_d):
            d_loss, real, fake = self.discriminator_loss(x)
            trained = bool(self.all_gather(d_loss.detach()).mean() > self.d_threshold)
            d_norm = torch.zeros((), device=self.device)  # no step: nothing moved
            if trained:
                self.manual_backward(d_loss)
                d_norm = self.finish_step(opt_d)
        if logs_this_step(self):
            self.log_d_step(d_loss, real, fake, d_norm)
            self.log("train/d_trained", float(trained))

    def _evaluate(self, batch, prefix: str) -> None:
        x = batch[0]
        n = self.networks
        h = n.embedder(x)
        d_loss, real, fake = self.discriminator_loss(x)
        self.log_dict(
            {
                f"{prefix}/recon": F.mse_loss(n.recovery(h), x),
                f"{prefix}/supervised": next_step_mse(h, n.supervisor(h)),
                f"{prefix}/d_loss": d_loss,
                f"{prefix}/D(x)": self._d_output(real),
                f"{prefix}/D(G(z))": self._d_output(fake),
            },
            sync_dist=True,
        )
        self.log_moment_gap(x, prefix)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
