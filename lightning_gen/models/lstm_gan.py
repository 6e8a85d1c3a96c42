"""GAN + LSTM on sequences, after C-RNN-GAN (Mogren 2016, "C-RNN-GAN: Continuous recurrent neural networks
with adversarial training")."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.errors import check_at_least
from lightning_gen.losses import AdversarialLossName, get_adversarial_loss
from lightning_gen.models.common import (
    AdversarialLogs,
    GeneratorEMA,
    batches_done,
    eval_mode,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.sequence_common import (
    SequenceModel,
    batch_lengths,
    masked_moments,
    real_steps,
    zero_padding,
)
from lightning_gen.nets.sequence_classifier import RecurrentClassifier


def moment_loss(real: torch.Tensor, fake: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """TimeGAN's moment-matching term ``G_loss_V`` (Yoon et al. 2019, reference ``timegan.py``): mean absolute
    gap of the per-(step, feature) standard deviations (sqrt(var + 1e-6), differentiable at var 0) plus that
    of the means, both over the batch of (B, T, D) sequences (of ``lengths``, shared by real and fake: at each
    step, over the sequences still running)."""
    real_var, real_mean = masked_moments(real, lengths, unbiased=False)  # (T, D) each
    fake_var, fake_mean = masked_moments(fake, lengths, unbiased=False)
    std_gap = ((fake_var + 1e-6).sqrt() - (real_var + 1e-6).sqrt()).abs().mean()
    return std_gap + (fake_mean - real_mean).abs().mean()


def class_moment_loss(
    real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`moment_loss` within each class of the batch (real and fake share ``labels`` (B,)), averaged over the
    classes that hold at least 2 sequences: the moments of each class, not of the mixture, so that a conditional
    generator is asked for each class's own means and spreads (the pooled term is met by a generator that
    ignores its label, as long as the mixture is right)."""
    gaps = []
    for c in labels.unique():
        rows = (labels == c).nonzero(as_tuple=True)[0]
        if len(rows) >= 2:
            gaps.append(moment_loss(real[rows], fake[rows], None if lengths is None else lengths[rows]))
    return torch.stack(gaps).mean() if gaps else moment_loss(real, fake, lengths)


class LSTMGAN(AdversarialLogs, SequenceModel):
    """A recurrent GAN: an LSTM generator driven by noise at every step against a (bidirectional) recurrent
    discriminator, trained with alternating updates (Goodfellow et al. 2014, algorithm 1).

    Each training batch takes one D step; every ``n_critic``-th batch also takes one G step on fresh noise.
    The adversarial losses are those of :class:`~lightning_gen.models.GAN` (``ns``, ``hinge``,
    ``wasserstein`` with gradient penalty); a per-step discriminator's logits (B, T) enter the losses as
    B * T decisions (C-RNN-GAN's per-step decisions, Mogren 2016, sec. 3). ``feature_matching`` adds
    ``weight * ||E f(x) - E f(G(z))||^2`` over D's top-layer hidden states to G's loss (Salimans et al. 2016,
    sec. 3.1; C-RNN-GAN trains G with feature matching, sec. 4). The anchors' other training aids are
    options too: TimeGAN's moment term and supervised next-step term, C-RNN-GAN's maximum-likelihood
    pretraining (below). On sines the moment term is what makes it learn within a few CPU minutes
    (benchmarks/README.md, "Sines: LSTM-GAN").

    Args:
        generator: maps noise (B, T, noise_dim) to sequences (B, T, D) (e.g. ``LSTMGenerator``, whose
            ``noise(n, T)`` makes that input: per-step noise and a per-sequence latent).
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
        moment_matching: weight of TimeGAN's moment term :func:`moment_loss` in G's loss (0: off). TimeGAN's
            reference code uses 100 (``G_loss = G_loss_U + ... + 100 * G_loss_V``).
        supervised: weight of the supervised next-step term ``weight * sqrt(NLL)`` in G's loss, G
            teacher-forced on the real batch (0: off; needs ``feed_previous``). TimeGAN's reference code adds
            ``100 * sqrt(G_loss_S)``, its supervisor's next-step error (Yoon et al. 2019, sec. 4.2); without an
            embedding space the generator itself is the next-step model here.
        pretrain_batches: batches of maximum-likelihood pretraining before the adversarial game: G alone
            minimises the teacher-forced next-step NLL, D waits (0: none; needs ``feed_previous``). C-RNN-GAN
            pretrains G for 6 epochs (Mogren 2016, sec. 4; ``--pretraining_epochs 6`` in its run scripts).
        classifier_hidden: conditional models only: when > 0, an auxiliary classifier of this width
            (:class:`~lightning_gen.nets.sequence_classifier.RecurrentClassifier`, a bidirectional GRU reading no
            label) is trained with D (in D's optimizer) on the cross-entropy of the real and the generated
            sequences' classes, while G lowers that of its sequences: AC-GAN's class loss L_C (Odena et al. 2017,
            sec. 3), beside the label D reads (0: none).
        class_weight: weight of the classifier's cross-entropy in D's and G's losses.
        class_moments: take the moment term within each class of the batch (:func:`class_moment_loss`) instead
            of over the whole batch (conditional models).

    Sequences of different lengths (batches ending with a mask, :class:`~lightning_gen.data.SequenceDataModule`):
    every fake of a batch is generated with the length of the real sequence beside it (TimeGAN's reference code
    feeds its generator the real batch's lengths), D reads both packed, and every loss term counts the real steps
    only; ``sample`` draws lengths from the training length distribution (:class:`LengthDistribution`).

    Class-conditional (a conditional GAN, Mirza & Osindero 2014) when G and D are built with ``num_classes``:
    both read the label's embedding at every step, D judges real sequences with their labels against fakes
    made for the same labels, and every G term (adversarial, feature and moment matching, supervised) is
    taken with the real batch's labels.

    Logs ``train/d_loss``, ``train/D(x)``, ``train/D(G(z))``, ``train/gradient_penalty``, ``train/grad_norm_d``,
    ``train/g_loss`` (G's whole objective), ``train/g_adversarial`` and each added term
    (``train/feature_matching``, ``train/moment_matching``, ``train/supervised``, ``train/class_loss``) when there
    are any, ``train/d_class_loss`` (with a classifier), ``train/grad_norm_g``, ``train/pretrain_nll``; ``val/`` and
    ``test/`` ``d_loss``, ``D(x)``, ``D(G(z))``, ``moment_gap``.
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
        moment_matching: float = 0.0,
        supervised: float = 0.0,
        pretrain_batches: int = 0,
        classifier_hidden: int = 0,
        class_weight: float = 1.0,
        class_moments: bool = False,
    ) -> None:
        super().__init__()
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1 (D steps per G step), got {n_critic}.")
        check_at_least(0, gp_weight=gp_weight, feature_matching=feature_matching, moment_matching=moment_matching,
                       supervised=supervised, pretrain_batches=pretrain_batches, class_weight=class_weight,
                       classifier_hidden=classifier_hidden)  # fmt: skip
        if (supervised > 0 or pretrain_batches > 0) and not getattr(generator, "feed_previous", False):
            raise ValueError(
                "supervised and pretrain_batches teacher-force the generator on x_{t-1}: they need a generator "
                "with feed_previous=True."
            )
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
        self.init_sequence_model(generator.data_dim, clip_grad_norm, generator, discriminator)
        self.generator, self.discriminator = generator, discriminator
        if (classifier_hidden > 0 or class_moments) and not self.conditional:
            raise ValueError(
                "classifier_hidden and class_moments are for class-conditional models: build the generator and the "
                "discriminator with num_classes, or drop them."
            )
        self.classifier = None
        if classifier_hidden > 0:
            self.classifier = RecurrentClassifier(generator.data_dim, self.num_classes, classifier_hidden)
        self.class_weight, self.class_moments = class_weight, class_moments
        self.generator_ema = GeneratorEMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.n_critic, self.gp_weight, self.feature_matching = n_critic, gp_weight, feature_matching
        self.moment_matching, self.supervised, self.pretrain_batches = moment_matching, supervised, pretrain_batches
        self.latent_dim, self.loss_name = generator.latent_dim, loss

    # -- public API ---------------------------------------------------------------------------------
    def noise(self, n: int, length: int) -> torch.Tensor:
        """The generator's input (n, length, noise_dim): fresh noise at every step (and its per-sequence
        latent, repeated over steps, when it has one)."""
        if hasattr(self.generator, "noise"):
            return self.generator.noise(n, length, device=self.device)
        return torch.randn(n, length, self.latent_dim, device=self.device)

    @torch.no_grad()
    def sample(
        self, n: int, length: int | None = None, z: torch.Tensor | None = None, labels=None, lengths=None
    ) -> torch.Tensor:
        """``n`` sequences (n, length, D) in [0, 1] (the training length by default; any length works, the
        generator runs step by step), from the EMA generator when there is one; of the classes ``labels`` for
        a conditional model (one per sequence, or one for all; default: drawn from the training labels).

        A model trained on sequences of different lengths makes sequences of ``lengths`` (n,) (default: drawn
        from the training length distribution, per class), zero-padded to the longest; ``length`` forces one."""
        g = self.generator_ema.module if self.generator_ema is not None else self.generator
        y = self.labels_for(n, labels)
        steps, lengths = self.generation_lengths(n, length, lengths, y)
        with eval_mode(g):
            return zero_padding(g(self.noise(n, steps) if z is None else z.to(self.device), y), lengths)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return [
            self.optimizer_g(self.generator.parameters()),
            self.optimizer_d(self._d_parameters()),
        ]

    def _d_parameters(self):
        """D's parameters, and the auxiliary classifier's (trained beside D, by D's optimizer)."""
        if self.classifier is None:
            return self.discriminator.parameters()
        return itertools.chain(self.discriminator.parameters(), self.classifier.parameters())

    def training_step(self, batch, batch_idx: int) -> None:
        real, labels = batch[0], self.batch_labels(batch)  # (B, T, D) in [0, 1]; (B,) or None
        lengths = batch_lengths(batch)  # (B,) for sequences of different lengths, else None
        if batches_done(self) < self.pretrain_batches:
            self.pretrain_step(real, labels, lengths)
            return
        self.discriminator_step(real, labels, lengths)
        if (batch_idx + 1) % self.n_critic == 0:
            self.generator_step(real, labels, lengths)

    def pretrain_step(self, real: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> None:
        """One maximum-likelihood update of G alone (C-RNN-GAN's pretraining): teacher-forced next-step NLL."""
        opt_g = self.optimizers()[0]
        with self.toggled_optimizer(opt_g):
            nll = self.generator.next_step_loss(self.noise(real.shape[0], real.shape[1]), real, labels, lengths)
            self.manual_backward(nll)
            self.finish_step(opt_g)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        if logs_this_step(self):
            self.log("train/pretrain_nll", nll.detach())

    def _logits(self, x: torch.Tensor, labels=None, lengths=None) -> torch.Tensor:
        """D's logits on the real steps only (the discriminator packs sequences of different lengths)."""
        if lengths is None:
            return self.discriminator(x, labels)
        return real_steps(self.discriminator(x, labels, lengths), lengths)

    def _critic(self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> torch.Tensor:
        """One critic value per sequence (B,), the mean over (real) steps, for the per-sample gradient penalty."""
        out = self.discriminator(x, labels) if lengths is None else self.discriminator(x, labels, lengths)
        if out.dim() == 1:
            return out
        if lengths is None:
            return out.flatten(1).mean(1)
        mask = torch.arange(out.shape[1], device=out.device) < lengths.to(out.device)[:, None]
        return (out * mask).sum(1) / lengths.to(out)

    def _features(self, x: torch.Tensor, labels=None, lengths=None) -> torch.Tensor:
        """D's top-layer features averaged over sequences and their real steps (F,)."""
        if lengths is None:
            return self.discriminator.features(x, labels).mean((0, 1))
        return self.discriminator.features(x, labels, lengths).sum((0, 1)) / lengths.sum()  # padding's are 0

    def discriminator_step(self, real: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> None:
        """One D update: real vs. fakes from a frozen G (no graph through G), both with the real labels (and
        lengths)."""
        with torch.no_grad():
            fake = zero_padding(self.generator(self.noise(real.shape[0], real.shape[1]), labels), lengths)
        if self.classifier is None:
            critic = lambda x: self._logits(x, labels, lengths)  # noqa: E731
        else:  # AC-GAN: (logits, class logits); the update adds the class cross-entropy on real and fake
            critic = lambda x: (self._logits(x, labels, lengths), self.classifier(x, lengths))  # noqa: E731
        self.discriminator_update(
            self.optimizers()[1],
            real,
            fake,
            critic,
            lambda x: self._critic(x, labels, lengths),
            penalty_without_cudnn=True,
            labels=labels,
            class_weight=self.class_weight,
        )

    def generator_step(self, real: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> None:
        """One G update on fresh noise (adversarial + optional feature matching); D is frozen by the toggle."""
        opt_g = self.optimizers()[0]
        with self.toggled_optimizer(opt_g):
            z = self.noise(real.shape[0], real.shape[1])
            fake = zero_padding(self.generator(z, labels), lengths)  # (B, T, D)
            g_loss = g_adversarial = self.adversarial.g(self._logits(fake, labels, lengths))
            terms = {}
            if self.feature_matching > 0:
                with torch.no_grad():
                    real_features = self._features(real, labels, lengths)  # (F,)
                fake_features = self._features(fake, labels, lengths)  # (F,)
                terms["feature_matching"] = (fake_features - real_features).pow(2).sum()
                g_loss = g_loss + self.feature_matching * terms["feature_matching"]
            if self.moment_matching > 0:
                moments = class_moment_loss(real, fake, labels, lengths) if self.class_moments else None
                terms["moment_matching"] = moment_loss(real, fake, lengths) if moments is None else moments
                g_loss = g_loss + self.moment_matching * terms["moment_matching"]
            if self.supervised > 0:  # the same noise, teacher-forced on the real batch
                terms["supervised"] = self.generator.next_step_loss(z, real, labels, lengths)
                g_loss = g_loss + self.supervised * (terms["supervised"] + 1e-12).sqrt()
            if self.classifier is not None:  # AC-GAN: G's sequences should be classified as asked
                terms["class_loss"] = F.cross_entropy(self.classifier(fake, lengths), labels)
                g_loss = g_loss + self.class_weight * terms["class_loss"]
            self.manual_backward(g_loss)
            g_norm = self.finish_step(opt_g)
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)
        if not logs_this_step(self):
            return
        if terms:  # g_loss has more terms than the adversarial one
            terms["g_adversarial"] = g_adversarial
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()})
        self.log_g_step(g_loss, g_norm)

    def _evaluate(self, batch, prefix: str) -> None:
        real, labels, lengths = batch[0], self.batch_labels(batch), batch_lengths(batch)
        fake = self.evaluation_fakes(real, labels, lengths)
        real_logits, fake_logits = self._logits(real, labels, lengths), self._logits(fake, labels, lengths)
        self.log_dict(self.d_metrics(prefix, real_logits, fake_logits), sync_dist=True)
        self.log_moment_gap(real, prefix, labels, lengths, fake if lengths is not None else None)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
