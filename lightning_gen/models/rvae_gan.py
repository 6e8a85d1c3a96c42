"""GAN + recurrent VAE on sequences: the VAE-GAN of Larsen et al. 2016 ("Autoencoding beyond pixels using a
learned similarity metric") with recurrent encoder, decoder and discriminator."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen.errors import check_at_least
from lightning_gen.losses import (
    Likelihood,
    get_adversarial_loss,
    kl_normal,
    kl_warmup,
    reparameterize,
    scale_gradient,
)
from lightning_gen.models.common import (
    AdversarialLogs,
    GeneratorEMA,
    batches_done,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.models.rvae import RecurrentVAEModel, check_vae_parts, sequence_nll
from lightning_gen.models.sequence_common import batch_lengths, real_steps, zero_padding
from lightning_gen.models.vae_gan_parts import AdversarialConfig


@contextmanager
def frozen(module: nn.Module):
    """Parameters of ``module`` out of the autograd graph (requires_grad False) for the block: gradients
    flow through the module to its inputs, none are kept for its parameters (so DDP expects none)."""
    states = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in states:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, state in states:
            p.requires_grad_(state)


class RVAEGAN(AdversarialLogs, RecurrentVAEModel):
    """R-VAE-GAN: a recurrent VAE whose decoder is also the generator of a GAN, three optimizers.

    One training step, as in Larsen et al.'s reference code (``aegan.py`` of autoencoding_beyond_pixels: one
    graph, one backward, gradients routed by scaling), costs one encoder pass, one decoder pass on the
    posterior (the reconstruction x~, teacher forcing at rate ``teacher_forcing``) and one on the prior (x_p,
    free-running; z_p from the latent density that ``sample`` uses, as fitted at the last epoch boundary, and
    N(0, I) before the first fit: the GAN trains the decoder on the codes it will be sampled from):

    1. **encoder and decoder**, one backward of
       ``beta * KL + gamma * L_rec + adversarial.weight * L_G(D(x_p))``, where
       ``L_rec = feature_recon_weight * L_feat + data_recon_weight * L_data``: ``L_feat`` is the Gaussian
       reconstruction error in D's features (Larsen et al. 2016, sec. 2.2; D's top recurrent layer), ``L_data``
       the plain VAE likelihood (Gaussian or Bernoulli). The code z enters the decoder through a gradient
       scaled by ``1 / gamma``, so the encoder's gradient is that of ``beta * KL + L_rec`` and the decoder's
       that of ``gamma * L_rec + L_G`` (Larsen et al. 2016, algorithm 1 and sec. 2.3). The adversarial loss
       reaches the decoder only: it is taken on prior samples, whose z has no encoder behind it, as in the
       reference code's experiments (``discriminate_ae_recon=False, discriminate_sample_z=True``). D is
       frozen (its parameters out of the graph) during this pass. Then the encoder's and the decoder's
       optimizers step.
    2. **D step** on real x against detached prior samples, the GAN loss ``adversarial.loss``; with the same D as
       step 1, so the three networks update as from one simultaneous graph, as in the reference code.

    Each backward fills the gradients of every parameter its graph reaches, so two-process DDP (with
    ``find_unused_parameters``) sees no parameter left waiting. Binary data (``likelihood="bernoulli"``):
    reconstructions and prior samples are binary rolls (straight-through Bernoulli samples), so D never
    compares soft rolls with binary real ones.

    Args:
        encoder: (B, T, D) to (mu, logvar) (e.g. ``RecurrentEncoder``).
        decoder: with ``generate(z, length, target, teacher_forcing, binary)`` (e.g. ``RecurrentDecoder``).
        discriminator: (B, T, D) to logits (B, T) or (B,), with ``features(x)`` (B, T, F) and
            ``classify(features)`` (e.g. ``RecurrentDiscriminator``).
        optimizer_e: optimizer factory for the encoder.
        optimizer_g: optimizer factory for the decoder (the generator).
        optimizer_d: optimizer factory for the discriminator.
        likelihood: ``gaussian`` or ``bernoulli``, for ``L_data`` and for sampling.
        sigma: standard deviation of the Gaussian data likelihood.
        gamma: weight of the reconstruction against the adversarial loss in the decoder's loss (> 0).
        feature_recon_weight: weight of the feature-wise reconstruction ``L_feat`` (0: off, D is then not run
            on reconstructions).
        data_recon_weight: weight of the data-space likelihood ``L_data`` (1.0 is the R-VAE's own loss; with a
            small weight the encoder hardly learns in a short run).
        teacher_forcing: probability of feeding the real previous step when reconstructing.
        kl_weight: final KL weight (beta).
        kl_warmup_steps: batches of linear KL warm-up (0: none).
        clip_grad_norm: if set, clip each network's gradient norm before its step.
        latent_density: what ``sample`` (and, through its copy taken at each epoch's start, the prior samples of
            training) draw z from, ``{kind, components, max_codes, train_components, train_codes}``
            (:class:`~lightning_gen.models.latent_density.LatentDensityConfig`).
        adversarial: the game, ``{loss, start, weight}``
            (:class:`~lightning_gen.models.vae_gan_parts.AdversarialConfig`; ``loss`` ``ns`` or ``hinge``, since
            ``wasserstein`` would need a gradient penalty; the image VAE-GAN's other keys are refused). ``weight``
            scales the decoder's adversarial loss on prior samples. During the warm start (``start`` batches) a
            step is the R-VAE's (one encoder and one decoder pass, the data-space likelihood and the KL; no prior
            samples, no feature term, D not trained), as C-RNN-GAN pretrains its generator by maximum likelihood
            (Mogren 2016) and the VAE-GAN is warm-started from a VAE. A warm-start batch costs what an R-VAE batch
            costs, so a short budget trains the decoder on many more batches before the adversary refines it.
        ema_decay: if set, keep an exponential moving average of the decoder's weights (updated after each
            decoder step; Yazici et al. 2019) and sample from it; the density is still fitted to the live
            encoder's codes, and the GAN's prior samples still come from the live decoder.

    Sequences of different lengths (batches ending with a mask): reconstructions and prior samples take the
    lengths of the real batch (as TimeGAN's reference code generates with the real batch's lengths), the encoder
    and D read every sequence packed, and every loss term counts real steps only (padding is zero in x, x~ and
    x_p alike); ``sample`` draws lengths from the training length distribution.

    Class-conditional when the three networks are built with ``num_classes``: encoder q(z | x, y) and decoder
    p(x | z, y) as in the conditional VAE (Sohn et al. 2015), D reads the label with the sequence; the
    reconstructions and the prior samples of a batch are made for the real batch's labels, and D judges all of
    them with those labels. The latent density is one mixture per class (:class:`RecurrentVAEModel`).

    Logs ``train/e_loss`` (the encoder's objective ``beta * KL + L_rec``), ``train/g_loss`` (the decoder's,
    ``gamma * L_rec + adversarial.weight * L_G``; ``g_loss`` in the progress bar), ``train/recon`` (``L_data``),
    ``train/feature_recon`` (``L_feat``), ``train/g_adversarial`` (``L_G``), ``train/kl``, ``train/kl_weight``,
    ``train/grad_norm_e``, ``train/grad_norm_g`` and D's ``train/d_loss``, ``train/D(x)``, ``train/D(G(z))``,
    ``train/grad_norm_d`` (no GAN terms during the warm start); ``val/`` and ``test/`` ``recon``, ``kl``,
    ``d_loss``, ``D(x)``, ``D(G(z))``, ``moment_gap``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        optimizer_e: OptimizerCallable = torch.optim.Adam,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        likelihood: Likelihood = "gaussian",
        sigma: float = 0.1,
        gamma: float = 1.0,
        feature_recon_weight: float = 1.0,
        data_recon_weight: float = 1.0,
        teacher_forcing: float = 0.5,
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 200,
        clip_grad_norm: float | None = None,
        latent_density: LatentDensityConfig = LatentDensityConfig(),
        adversarial: AdversarialConfig = AdversarialConfig(),
        ema_decay: float | None = None,
    ) -> None:
        super().__init__()
        check_vae_parts(encoder, decoder, likelihood)
        if getattr(discriminator, "data_dim", decoder.data_dim) != decoder.data_dim:
            raise ValueError(
                f"The decoder makes {decoder.data_dim} features per step; the discriminator reads "
                f"{discriminator.data_dim}."
            )
        for method in ("features", "classify"):
            if not hasattr(discriminator, method):
                raise ValueError(f"The discriminator needs a `{method}` method (feature-wise reconstruction).")
        game = AdversarialConfig.of(adversarial)
        game.refuse_unsupported("RVAEGAN", ("spectral_norm", "reconstructions", "prior", "prior_samples"))
        self.adversarial = get_adversarial_loss(game.loss)
        if self.adversarial.needs_gradient_penalty:
            raise ValueError(
                "adversarial.loss='wasserstein' is not supported by RVAEGAN (no gradient penalty): use ns or hinge."
            )
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}.")
        if gamma <= 0 or sigma <= 0:
            raise ValueError(f"gamma and sigma must be > 0, got {gamma} and {sigma}.")
        check_at_least(0, feature_recon_weight=feature_recon_weight, data_recon_weight=data_recon_weight,
                       kl_weight=kl_weight, kl_warmup_steps=kl_warmup_steps)  # fmt: skip
        save_plain_hyperparameters(self)
        self.init_sequence_model(decoder.data_dim, clip_grad_norm, encoder, decoder, discriminator)
        self.encoder, self.decoder, self.discriminator = encoder, decoder, discriminator
        self.optimizer_e, self.optimizer_g, self.optimizer_d = optimizer_e, optimizer_g, optimizer_d
        self.likelihood, self.sigma, self.gamma = likelihood, sigma, gamma
        self.feature_recon_weight, self.data_recon_weight = feature_recon_weight, data_recon_weight
        self.game, self.teacher_forcing = game, teacher_forcing
        self.kl_weight, self.kl_warmup_steps, self.loss_name = kl_weight, kl_warmup_steps, game.loss
        self.gp_weight = 0.0  # no gradient penalty (wasserstein is refused above)
        self.init_recurrent_vae(latent_density)
        self.init_training_density()  # the density the prior samples of training come from
        self.decoder_ema = GeneratorEMA(decoder, ema_decay) if ema_decay is not None else None

    @property
    def sampling_decoder(self) -> nn.Module:
        """The decoder ``sample`` runs: its weight average when ``ema_decay`` is set."""
        return self.decoder_ema.module if self.decoder_ema is not None else self.decoder

    # -- Lightning hooks ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return [
            self.optimizer_e(self.encoder.parameters()),
            self.optimizer_g(self.decoder.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def training_step(self, batch, batch_idx: int) -> None:
        x, labels = batch[0], self.batch_labels(batch)  # (B, T, D) in [0, 1]; (B,) or None
        lengths = batch_lengths(batch)  # (B,) for sequences of different lengths, else None
        adversarial = batches_done(self) >= self.game.start  # after the warm start (class docstring)
        prior = self.encoder_decoder_step(x, adversarial, labels, lengths)
        if adversarial:
            self.discriminator_step(x, prior, labels, lengths)

    def _d_features(self, x: torch.Tensor, labels=None, lengths=None) -> torch.Tensor:
        """D's features (B, T, F), sequences of different lengths packed (features past a length are 0)."""
        return (
            self.discriminator.features(x, labels)
            if lengths is None
            else self.discriminator.features(x, labels, lengths)
        )

    def _d_logits(self, h: torch.Tensor, lengths=None) -> torch.Tensor:
        """D's logits from its features, those of the real steps only."""
        return (
            self.discriminator.classify(h)
            if lengths is None
            else real_steps(self.discriminator.classify(h, lengths), lengths)
        )

    def encoder_decoder_loss(
        self, x: torch.Tensor, adversarial: bool = True, labels: torch.Tensor | None = None, lengths=None
    ) -> dict[str, torch.Tensor]:
        """The loss of step 1 (class docstring) and its parts: one encoder pass, one decoder pass on the
        posterior, one on the prior, D frozen; z reaches the decoder through a gradient scaled by 1 / gamma.
        ``adversarial=False`` (warm start): the R-VAE's loss, no prior pass and no D (``prior`` is None, and no
        ``feature_nll`` / ``adversarial`` entries: nothing of the GAN was computed). ``e_loss`` and ``g_loss``
        are the encoder's and the decoder's objectives, whose gradients ``loss`` gives each network."""
        b, length = x.shape[0], x.shape[1]
        mu, logvar = self.encode(x, labels, lengths)  # (B, Z) each
        z = reparameterize(mu, logvar)
        z_dec = scale_gradient(z, 1.0 / self.gamma)  # encoder gets grad of L_rec, decoder of gamma * L_rec
        raw, recon = self.decoder.generate(z_dec, length, x, self.teacher_forcing, self.binary, labels)
        recon = zero_padding(recon, lengths)
        data_nll = sequence_nll(x, raw, self.decoder, self.likelihood, self.sigma, lengths)  # (B,)
        kl = kl_normal(mu, logvar)  # (B,)
        beta = kl_warmup(batches_done(self), self.kl_weight, self.kl_warmup_steps)
        if not adversarial:
            recon_loss = self.data_recon_weight * data_nll.mean()
            return {"loss": beta * kl.mean() + self.gamma * recon_loss, "e_loss": beta * kl.mean() + recon_loss,
                    "g_loss": self.gamma * recon_loss, "data_nll": data_nll, "kl": kl, "beta": beta,
                    "prior": None}  # fmt: skip
        z_prior = self.training_density.sample(b, labels=labels).to(self.device)  # N(0, I) until the first fit
        _, prior = self.decoder.generate(z_prior, length, binary=self.binary, labels=labels)  # (B, T, D)
        prior = zero_padding(prior, lengths)
        with frozen(self.discriminator):
            if self.feature_recon_weight > 0:
                three = None if labels is None else labels.repeat(3)  # x, recon and prior share the labels
                h = self._d_features(
                    torch.cat([x, recon, prior]), three, None if lengths is None else lengths.repeat(3)
                )
                real_features, recon_features, prior_features = h.split(b)  # (B, T, F) each; 0 past a length
                feature_nll = 0.5 * (recon_features - real_features.detach()).pow(2).flatten(1).sum(1)  # (B,)
            else:
                prior_features, feature_nll = self._d_features(prior, labels, lengths), x.new_zeros(b)
            g_adversarial = self.adversarial.g(self._d_logits(prior_features, lengths))
        recon_loss = (self.feature_recon_weight * feature_nll + self.data_recon_weight * data_nll).mean()
        g_loss = self.gamma * recon_loss + self.game.weight * g_adversarial
        return {"loss": beta * kl.mean() + g_loss, "e_loss": beta * kl.mean() + recon_loss, "g_loss": g_loss,
                "feature_nll": feature_nll, "data_nll": data_nll, "kl": kl, "beta": beta,
                "adversarial": g_adversarial, "prior": prior}  # fmt: skip

    def encoder_decoder_step(
        self, x: torch.Tensor, adversarial: bool = True, labels: torch.Tensor | None = None, lengths=None
    ) -> torch.Tensor | None:
        """Step 1: one backward, then the encoder's and the decoder's optimizer step (each touches only its
        own network's gradients); returns the prior samples (detached) for D (None in the warm start)."""
        opt_e, opt_g, _ = self.optimizers()
        out = self.encoder_decoder_loss(x, adversarial, labels, lengths)
        self.manual_backward(out["loss"])
        e_norm = self.finish_step(opt_e)
        g_norm = self.finish_step(opt_g)
        if self.decoder_ema is not None:
            self.decoder_ema.update(self.decoder)
        if logs_this_step(self):
            logs = {
                "train/e_loss": out["e_loss"].detach(),
                "train/recon": out["data_nll"].detach().mean(),
                "train/kl": out["kl"].detach().mean(),
                "train/kl_weight": out["beta"],
                "train/grad_norm_e": e_norm,
            }
            if adversarial:  # the warm start computes no GAN term: logging zeros would draw a false plateau
                logs["train/feature_recon"] = out["feature_nll"].detach().mean()
                logs["train/g_adversarial"] = out["adversarial"].detach()
            self.log_dict(logs)
            self.log_g_step(out["g_loss"], g_norm)
        return None if out["prior"] is None else out["prior"].detach()

    def discriminator_step(
        self, x: torch.Tensor, prior: torch.Tensor, labels: torch.Tensor | None = None, lengths=None
    ) -> None:
        """Step 2: D learns real x against prior samples made (and detached) in step 1 for the same labels (and
        lengths)."""
        critic = lambda v: self._d_logits(self._d_features(v, labels, lengths), lengths)  # noqa: E731
        self.discriminator_update(self.optimizers()[2], x, prior, critic)

    def _evaluate(self, batch, prefix: str) -> None:
        x, labels, lengths = batch[0], self.batch_labels(batch), batch_lengths(batch)
        mu, logvar = self.encode(x, labels, lengths)
        raw = self.decoder(mu, x.shape[1], labels=labels)  # free-running reconstruction from the posterior mean
        fake = self.evaluation_fakes(x, labels, lengths)
        real_logits = self._d_logits(self._d_features(x, labels, lengths), lengths)
        fake_logits = self._d_logits(self._d_features(fake, labels, lengths), lengths)
        self.log_dict(
            {
                f"{prefix}/recon": sequence_nll(x, raw, self.decoder, self.likelihood, self.sigma, lengths).mean(),
                f"{prefix}/kl": kl_normal(mu, logvar).mean(),
                **self.d_metrics(prefix, real_logits, fake_logits),
            },
            sync_dist=True,
        )
        self.log_moment_gap(x, prefix, labels, lengths, fake if lengths is not None else None)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
