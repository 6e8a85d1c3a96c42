"""VAE-GAN on images (Larsen et al. 2016): encoder, decoder (the GAN's generator) and discriminator, three
optimizers, one pass."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen import lightning_internals as li
from lightning_gen.losses import (
    Likelihood,
    bernoulli_nll,
    get_adversarial_loss,
    gradient_penalty,
    kl_normal,
    reparameterize,
    scale_gradient,
)
from lightning_gen.models.common import (
    AdversarialLogs,
    GeneratorEMA,
    ManualSteps,
    apply_spectral_norm,
    attached_datamodule,
    batches_done,
    check_image_shape,
    check_penalty_norm,
    eval_mode,
    logs_this_step,
    save_plain_hyperparameters,
)
from lightning_gen.models.conditional import Conditional, call_with_labels
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.models.vae import LatentImageAPI, check_latent_fit
from lightning_gen.models.vae_gan_parts import (
    AdversarialConfig,
    EquilibriumGating,
    check_feature_discriminator,
    check_vaegan_options,
    equilibrium_gates,
    feature_depth,
    feature_distance,
    shared_decode,
)


class VAEGAN(Conditional, LatentImageAPI, AdversarialLogs, ManualSteps, pl.LightningModule):
    """VAE-GAN: a VAE whose reconstruction error is measured in a GAN discriminator's features
    (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity metric").

    Objectives (sec. 2.2, eqs. 5-9). With x~ = G(z), z ~ q(z|x) = N(mu(x), diag(exp(logvar(x)))):

    - ``L_prior = KL(q(z|x) || N(0, I))`` (eq. 5; ``losses.kl_normal``).
    - ``L_llike^Dis_l = -E_q[log N(Dis_l(x) | Dis_l(x~), I)] = 0.5 * ||Dis_l(x) - Dis_l(x~)||^2`` per image,
      summed over the layer's n_l features, constant dropped (eqs. 6-7): a Gaussian in D's
      ``feature_layer``-th hidden layer. x and x~ go through D as one batch.
    - ``L_GAN``: D tells real images from samples G(z_p) (eq. 8), and from reconstructions G(E(x)) with
      ``adversarial.reconstructions`` (the paper's eq. 8; the reference code's ``discriminate_ae_recon``,
      off in its CelebA and STL runs, which halves G's work), with the chosen adversarial loss (``ns``,
      ``hinge``, ``wasserstein``). z_p comes from N(0, I) (``adversarial.prior="standard"``, the paper) or from
      the ex-post latent density that ``sample`` uses (``adversarial.prior="density"``: the adversarial term then trains
      G on the codes it will be sampled from; N(0, I) until the density is first fitted).

    **One forward, one backward per batch** (Larsen et al.'s reference code, ``model/aegan.py``): every loss
    is computed once and gradients are routed by scaling them, then each optimizer steps on its own
    network's gradients:

    - E gets ``kl_weight * L_prior + feature_recon_weight * L_llike`` (+ ``data_recon_weight`` x pixel
      reconstruction): the ELBO in D's
      feature space. E gets nothing from ``L_GAN`` (the reference's ``ScaleGradient(0.0)(z)``): the prior
      codes are not E's, and the discriminated reconstructions are x~ itself, from the same pass of G, whose
      gradient reaches G but not z (:func:`~lightning_gen.models.vae_gan_parts.shared_decode`; the
      reference decodes z a second time for D). ``adversarial.prior_samples`` sets how many prior codes G
      decodes.
    - G gets ``gamma / n_l`` times the reconstruction gradient (a per-feature mean, so ``gamma`` means the
      same for every layer size: the reference's ``recon_vs_gan_weight`` = 5e-5 on its 8x8x256 = 16,384
      features is gamma ~ 0.8, 1e-5 for CelebA gamma ~ 0.16) plus the adversarial gradient. The scaling is
      exact: G's output gradient is scaled by ``gamma / n_l`` and the gradient entering E through z by its
      inverse, so E sees the unscaled term.
    - The adversarial route is the reference's ``decoder_neggrad``: the fakes enter D through a gradient
      reversal, so one D pass gives D the gradient of its loss and G the negated one (the zero-sum game of
      Goodfellow et al. 2014: with ``ns`` G minimises ``log(1 - D(G(z)))``; with ``wasserstein`` it is
      exactly WGAN's ``-D(G(z))``). Equilibrium gating keeps D(G(z)) away from the saturated end.
    - D's parameters are constants in the feature-wise reconstruction (``torch.func.functional_call`` with
      detached parameters; the reference weights that copy's parameter gradients by 0), so D is trained
      only by ``L_GAN`` (+ the gradient penalty for ``wasserstein``).

    Equilibrium gating (on by default; the reference's ``GradientDescent(margin, equilibrium=0.68)``, also
    pythae's VAEGAN with margin 0.4): with the ``ns`` loss, D's update is skipped while D's binary
    cross-entropy on real or on fake images is below ``equilibrium - margin`` (D far ahead) and G's update is
    skipped while one of them is above ``equilibrium + margin`` (G far behind); if both would be skipped,
    both run. E always steps. Under DDP the cross-entropies are averaged over ranks first, so every rank
    takes the same decision.

    Conditional when the three networks are built with ``num_classes``: the batch's labels go into
    E (q(z|x, y)), G (p(x|z, y), reconstructions and fakes alike: the fakes take the real batch's labels, as
    the conditional GAN's) and D (a projection discriminator, Miyato & Koyama 2018); the feature-wise
    reconstruction reads D's label-free hidden layers. ``sample(n, labels=...)`` decodes the given classes
    (drawn from the training label mix when none are given), ``reconstruct`` / ``encode`` need the labels.

    Sampling (``sample``) decodes codes from the ex-post latent density (``latent_density``, see
    :mod:`lightning_gen.models.latent_density`); the KL pulls towards N(0, I).

    Args:
        encoder: image -> (mu, logvar), each (B, latent_dim); must have ``latent_dim``.
        decoder: z (B, latent_dim) -> image in [-1, 1], the GAN's generator G; must have ``latent_dim``.
        discriminator: image -> (B,) logits, with ``features(x)`` (list of hidden activations) and
            ``num_feature_layers``.
        optimizer_e: optimizer factory for the encoder.
        optimizer_g: optimizer factory for the decoder (G).
        optimizer_d: optimizer factory for the discriminator.
        gamma: weight of the per-feature reconstruction against the adversarial loss in G's gradient (> 0).
        feature_layer: index into ``discriminator.features(x)`` of the layer Dis_l (negative counts from the
            end: -1 is D's last hidden layer).
        kl_weight: weight of ``L_prior`` in E's update (>= 0; 1 in the paper).
        feature_recon_weight: weight of ``L_llike`` (>= 0); 0 drops the feature-wise term and D's pass for it.
        data_recon_weight: weight of the pixel reconstruction next to ``L_llike`` (>= 0).
        likelihood: the pixel reconstruction's likelihood: ``gaussian`` (``0.5 * ||x - x~||^2``, unit
            variance in [-1, 1] pixel units) or ``bernoulli`` (the VAE's, pixels mapped to [0, 1]).
        adversarial: the game, ``{loss, gp_weight, spectral_norm, start, weight, reconstructions, prior,
            prior_samples}`` (:class:`~lightning_gen.models.vae_gan_parts.AdversarialConfig`). During the warm start
            (``start`` batches) G gets only its reconstruction gradient while D already learns to tell real images
            from G's samples; judged reconstructions are x~ itself (one pass of G for both, no GAN gradient to E,
            :func:`~lightning_gen.models.vae_gan_parts.shared_decode`); ``prior: density`` draws the game's codes
            from the training copy of the density ``sample`` uses
            (:meth:`~lightning_gen.models.latent_density.LatentDensityMixin.init_training_density`).
        gating: equilibrium gating, ``{enabled, equilibrium, margin}``
            (:class:`~lightning_gen.models.vae_gan_parts.EquilibriumGating`; ``ns`` loss only).
        latent_density: the density ``sample`` draws codes from, ``{kind, components, max_codes,
            train_components, train_codes}`` (:class:`~lightning_gen.models.latent_density.LatentDensityConfig`).
        ema_decay: if set, an exponential moving average of the decoder (``decoder_ema``), used by ``sample`` /
            ``reconstruct``.
        clip_grad_norm: if set, clip each network's gradient norm to this value before its step.
    """

    data_kind = "image"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        discriminator: nn.Module,
        optimizer_e: OptimizerCallable = torch.optim.Adam,
        optimizer_g: OptimizerCallable = torch.optim.Adam,
        optimizer_d: OptimizerCallable = torch.optim.Adam,
        gamma: float = 1.0,
        feature_layer: int = -1,
        kl_weight: float = 1.0,
        feature_recon_weight: float = 1.0,
        data_recon_weight: float = 0.0,
        likelihood: Likelihood = "gaussian",
        adversarial: AdversarialConfig = AdversarialConfig(),
        gating: EquilibriumGating = EquilibriumGating(),
        latent_density: LatentDensityConfig = LatentDensityConfig(),
        ema_decay: float | None = None,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__()
        gating, game = EquilibriumGating.of(gating), AdversarialConfig.of(adversarial)
        self.init_conditional(encoder, decoder, discriminator)
        check_vaegan_options(
            loss=game.loss, gating=gating, gamma=gamma, likelihood=likelihood,
            weights={"kl_weight": kl_weight, "feature_recon_weight": feature_recon_weight,
                     "data_recon_weight": data_recon_weight},
        )  # fmt: skip
        check_latent_fit(encoder, decoder)
        check_feature_discriminator(decoder, discriminator, feature_layer)
        self.adversarial = get_adversarial_loss(game.loss)
        check_penalty_norm(self.adversarial, game.gp_weight, discriminator)
        save_plain_hyperparameters(self)
        self.automatic_optimization = False
        self.encoder, self.decoder = encoder, decoder
        self.discriminator = apply_spectral_norm(discriminator) if game.spectral_norm else discriminator
        self.decoder_ema = GeneratorEMA(decoder, ema_decay) if ema_decay is not None else None
        self.optimizer_e, self.optimizer_g, self.optimizer_d = optimizer_e, optimizer_g, optimizer_d
        self.latent_dim, self.loss_name = decoder.latent_dim, game.loss
        self.gamma, self.feature_layer, self.kl_weight = gamma, feature_layer, kl_weight
        self.feature_recon_weight, self.data_recon_weight = feature_recon_weight, data_recon_weight
        self.likelihood, self.gating, self.game = likelihood, gating, game
        self.gp_weight, self.clip_grad_norm = game.gp_weight, clip_grad_norm
        self.init_latent_density(self.latent_dim, latent_density)
        self.init_training_density()  # the density the adversarial codes come from (adversarial.prior="density")
        self._feature_depth = feature_depth(self.discriminator, feature_layer)  # stop D after layer l

    # -- public API (sample / reconstruct / interpolate come from LatentImageAPI) ---------------------
    @property
    def sampling_decoder(self) -> nn.Module:
        """The decoder ``sample`` / ``reconstruct`` run: its weight average when ``ema_decay`` is set."""
        return self.decoder_ema.module if self.decoder_ema is not None else self.decoder

    def noise(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Codes of the adversarial samples (``adversarial.prior``), of the classes ``labels`` for a conditional
        model."""
        if self.game.prior == "density":
            return self.training_density.sample(n, labels=labels).to(self.device)
        return torch.randn(n, self.latent_dim, device=self.device)

    # -- Lightning hooks (the training density's copy is taken in LatentDensityMixin.on_train_batch_start) -----
    def setup(self, stage: str) -> None:
        datamodule = attached_datamodule(self)
        check_image_shape(self.decoder, getattr(datamodule, "dims", None))
        self.store_label_distribution(datamodule)

    def configure_optimizers(self):
        return [
            self.optimizer_e(self.encoder.parameters()),
            self.optimizer_g(self.decoder.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    # -- losses -------------------------------------------------------------------------------------
    def feature_reconstruction(self, real: torch.Tensor, recon: torch.Tensor, frozen_d: bool = False) -> torch.Tensor:
        """L_llike^Dis_l (Larsen et al. 2016, eq. 7): 0.5 * squared distance in D's layer l, batch mean.
        ``frozen_d``: D's parameters are constants (the gradient reaches ``recon`` but not D)."""
        return feature_distance(self.discriminator, self.feature_layer, self._feature_depth, real, recon, frozen_d)

    def feature_size(self, real: torch.Tensor) -> int:
        """n_l, the number of features of one image in D's layer l (computed once, from one image)."""
        if getattr(self, "_feature_size", None) is None:
            with torch.no_grad(), eval_mode(self.discriminator):
                self._feature_size = self.discriminator.features(real[:1])[self.feature_layer][0].numel()
        return self._feature_size

    def _decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return call_with_labels(self.decoder, z, labels)

    @staticmethod
    def pixel_reconstruction(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        return 0.5 * (real - recon).pow(2).flatten(1).sum(1).mean()

    def pixel_nll(self, real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """The pixel term of ``likelihood`` per image, batch mean."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(real, recon).mean()
        return self.pixel_reconstruction(real, recon)

    def adversarial_on(self) -> bool:
        """Whether G gets the adversarial gradient: False during the VAE warm start (``adversarial.start``
        batches; always True outside a fit)."""
        if self.game.start == 0 or li.attached_trainer(self) is None:
            return True
        return batches_done(self) >= self.game.start

    def gates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[bool, bool]:
        """(train D, train G) under equilibrium gating; both True when gating is off."""
        if not self.gating.enabled:
            return True, True
        g = self.gating
        return equilibrium_gates(real_logits, fake_logits, g.equilibrium, g.margin, li.attached_trainer(self))

    def losses(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every term of one training step from one pass through E, G (on the codes and on prior codes) and
        D, with the gradient routing described in the class docstring; ``loss`` is what to backpropagate."""
        b = real.shape[0]
        mu, logvar = call_with_labels(self.encoder, real, labels)  # (B, Z) each
        z = reparameterize(mu, logvar)
        kl = kl_normal(mu, logvar).mean()
        # reconstruction route: G's share scaled by w = gamma / n_l, E's restored by 1 / w
        w = self.gamma / self.feature_size(real)
        z_g = scale_gradient(z, 1.0 / w)
        if self.game.reconstructions:  # one pass of G: x~ and the copy D judges (no GAN gradient to z)
            recon, recon_fake = shared_decode(self.decoder, z_g, labels, self._decode)  # (B, C, H, W) each
        else:
            recon = call_with_labels(self.decoder, z_g, labels)  # (B, C, H, W)
        zero = real.new_zeros(())  # the feature term when feature_recon_weight is 0 (D's pass for it skipped)
        feat = self.feature_reconstruction(real, recon, frozen_d=True) if self.feature_recon_weight > 0 else zero
        pixel = self.pixel_nll(real, recon)
        recon_loss = self.feature_recon_weight * feat + self.data_recon_weight * pixel
        out = {"kl": kl, "feature_recon": feat, "recon": pixel, "e_loss": self.kl_weight * kl + recon_loss}
        # adversarial route: prior codes decoded apart from the codes of E (no batch-norm path into z), fakes
        # through a gradient reversal. During the VAE warm start D learns on G's fakes but G gets nothing from
        # the game (fakes detached). A conditional model's fakes take the real batch's labels (as the
        # conditional GAN's).
        playing = self.adversarial_on()
        # prior codes decoded for the game (with the batch's first n_prior labels)
        n_prior = 0 if self.game.prior_samples == 0 else max(1, round(self.game.prior_samples * b))
        fakes, fake_labels = [], []
        if self.game.reconstructions:
            fakes.append(recon_fake)
            fake_labels.append(labels)
        if n_prior > 0:
            prior_labels = None if labels is None else labels[:n_prior]
            with torch.set_grad_enabled(playing and torch.is_grad_enabled()):
                fakes.append(call_with_labels(self.decoder, self.noise(n_prior, prior_labels), prior_labels))
            fake_labels.append(prior_labels)
        fake = torch.cat(fakes if playing else [f.detach() for f in fakes])  # (F, C, H, W): [G(z),] G(z_p)
        fake_labels = None if labels is None else torch.cat(fake_labels)  # (F,)
        both = torch.cat([real, scale_gradient(fake, -self.game.weight) if playing else fake])  # (B + F, C, H, W)
        logits = call_with_labels(
            self.discriminator, both, None if labels is None else torch.cat([labels, fake_labels])
        )
        real_logits, *fake_logits = logits.split([b, *(len(f) for f in fakes)])
        d_loss = sum(self.adversarial.d(real_logits, f) for f in fake_logits)
        out["d_loss"] = d_loss
        if self.adversarial.needs_gradient_penalty and self.gp_weight > 0:
            reals = torch.cat([real[: len(f)] for f in fakes])  # (F, C, H, W): a real partner for every fake
            critic = lambda x: call_with_labels(self.discriminator, x, fake_labels)  # noqa: E731
            out["gradient_penalty"] = gradient_penalty(critic, reals, fake.detach())
            d_loss = d_loss + self.gp_weight * out["gradient_penalty"]
        out["loss"] = self.kl_weight * kl + w * recon_loss + d_loss
        out.update(real_logits=real_logits, fake_logits=torch.cat(fake_logits))
        if self.game.reconstructions:
            out["recon_logits"] = fake_logits[0]
        if n_prior > 0:
            out["prior_logits"] = fake_logits[-1]
        return out

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, C, H, W) in [-1, 1]
        opt_e, opt_g, opt_d = self.optimizers()
        out = self.losses(real, self.batch_labels(batch))
        self.manual_backward(out["loss"])
        train_d, train_g = self.gates(out["real_logits"], out["fake_logits"])
        if not self.adversarial_on():  # VAE warm start: G has only its reconstruction gradient, always taken
            train_g = True
        norms = {
            "e": self.finish_step(opt_e),
            "g": self.finish_step(opt_g, step=train_g),
            "d": self.finish_step(opt_d, step=train_d),
        }
        if train_g and self.decoder_ema is not None:
            self.decoder_ema.update(self.decoder)
        if logs_this_step(self):  # Lightning keeps only the last on_step value: skip the others' cost
            self._log_train(out, norms, train_d, train_g)

    def _log_train(self, out: dict, norms: dict, train_d: bool, train_g: bool) -> None:
        metrics = {f"train/{k}": out[k].detach() for k in ("kl", "feature_recon", "recon", "e_loss", "d_loss")}
        # G's adversarial score against D, as the other families log it (G's gradient is the zero-sum game's)
        game_logits = out.get("prior_logits", out.get("recon_logits"))  # D(G(z_p)), or D(G(E(x))) without prior fakes
        metrics["train/g_adversarial"] = self.adversarial.g(game_logits.detach())
        if "gradient_penalty" in out:
            metrics["train/gradient_penalty"] = out["gradient_penalty"].detach()
        metrics.update(
            {
                "train/D(x)": self._d_output(out["real_logits"]),
                "train/d_updated": float(train_d),
                "train/g_updated": float(train_g),
            }
        )
        if "prior_logits" in out:
            metrics["train/D(G(z))"] = self._d_output(out["prior_logits"])
        if "recon_logits" in out:
            metrics["train/D(G(E(x)))"] = self._d_output(out["recon_logits"])
        for name, norm in norms.items():
            metrics[f"train/grad_norm_{name}"] = norm if norm is not None else torch.zeros(())
        self.log_dict(metrics)
        self.log_dict({"d_loss": metrics["train/d_loss"], "kl": metrics["train/kl"]}, prog_bar=True, logger=False)

    # -- evaluation ---------------------------------------------------------------------------------
    def _evaluate(self, batch, prefix: str) -> None:
        real, labels = batch[0], self.batch_labels(batch)
        mu, logvar = call_with_labels(self.encoder, real, labels)
        recon = call_with_labels(self.sampling_decoder, mu, labels)  # the posterior mean's decoding
        real_logits = call_with_labels(self.discriminator, real, labels)
        fake = self.sample(real.shape[0], labels=labels)
        prior_logits = call_with_labels(self.discriminator, fake, labels)
        self.log_dict(
            {
                f"{prefix}/kl": kl_normal(mu, logvar).mean(),
                f"{prefix}/feature_recon": self.feature_reconstruction(real, recon),
                f"{prefix}/recon": self.pixel_nll(real, recon),  # data-space NLL of ``likelihood``
                **self.d_metrics(prefix, real_logits, prior_logits),
            },
            sync_dist=True,
        )
        self.log_class_diversity(prefix, fake, real, labels)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
