"""VAE on images: the baseline without an adversary, to compare the VAE-GAN with its parts."""

from __future__ import annotations

from typing import NamedTuple

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn
from torch.utils.data import DataLoader

from lightning_gen.errors import check_at_least
from lightning_gen.losses import Likelihood, check_likelihood, kl_normal, kl_warmup, reconstruction_nll, reparameterize
from lightning_gen.models.common import (
    attached_datamodule,
    batches_done,
    check_image_shape,
    eval_mode,
    save_plain_hyperparameters,
)
from lightning_gen.models.conditional import Conditional, call_with_labels
from lightning_gen.models.latent_density import LatentDensityConfig, LatentDensityMixin, PriorKind


class LabelledImages(NamedTuple):
    """A batch of images with their labels, as the latent density's code loader hands it to ``encode_mean``
    for a conditional model (whose encoder needs the labels)."""

    images: torch.Tensor
    labels: torch.Tensor

    def to(self, device) -> LabelledImages:
        return LabelledImages(self.images.to(device), self.labels.to(device))


def check_latent_fit(encoder: nn.Module, decoder: nn.Module) -> None:
    """Raise a clear error when the encoder's latent size or image geometry does not fit the decoder."""
    for name, net in (("encoder", encoder), ("decoder", decoder)):
        if not hasattr(net, "latent_dim"):
            raise ValueError(f"The {name} must expose `latent_dim` (the size of z).")
    if encoder.latent_dim != decoder.latent_dim:
        raise ValueError(
            f"The encoder gives latent_dim={encoder.latent_dim} but the decoder takes latent_dim="
            f"{decoder.latent_dim}; set both networks' `latent_dim` to the same value."
        )
    e_shape = (getattr(encoder, "channels", None), getattr(encoder, "img_size", None))
    d_shape = (getattr(decoder, "channels", None), getattr(decoder, "img_size", None))
    if None not in e_shape + d_shape and e_shape != d_shape:
        raise ValueError(
            f"The encoder reads (channels, img_size) = {e_shape} but the decoder makes {d_shape}; give both "
            "networks the same `channels` and `img_size`."
        )


class LatentImageAPI(LatentDensityMixin):
    """The public methods shared by the VAE and the VAE-GAN: ``sample``, ``reconstruct``, ``interpolate``.

    Needs ``self.encoder`` (image -> (mu, logvar)), ``self.latent_dim``, ``self.sampling_decoder`` (the
    decoder used for pictures: the EMA copy when there is one) and ``init_latent_density`` called in
    ``__init__`` (``sample`` draws codes from the ex-post density of the training codes, Ghosh et al. 2020).
    All run in eval mode without gradients.

    A conditional model (one that mixes in :class:`~lightning_gen.models.conditional.Conditional` with
    networks built with ``num_classes``; Sohn et al. 2015's CVAE) encodes q(z|x, y) and decodes p(x|z, y):
    ``sample`` takes ``labels`` (default: drawn from the training label distribution), ``encode`` /
    ``reconstruct`` need the images' labels. The ex-post density is one density per class, q(z | y), fitted to
    the codes of each class's images (encoded with their labels): the KL pulls q(z|x, y) towards the label-free
    N(0, I), yet after a few CPU-minutes the codes still carry much of the class (a code of one class decoded
    with another class's label often comes out as its own class), so a code is drawn from the density of the
    class it is decoded with.
    """

    encoder: nn.Module
    latent_dim: int

    @property
    def sampling_decoder(self) -> nn.Module:  # pragma: no cover - each model implements it
        raise NotImplementedError

    def _labels_for(self, n: int, labels) -> torch.Tensor | None:
        """Labels for n decodings (drawn when a conditional model gets none); None when unconditional."""
        if isinstance(self, Conditional):
            return self.labels_for(n, labels)
        if labels is not None:
            raise ValueError("Labels were given but this model is unconditional: drop the labels.")
        return None

    def _image_labels(self, x: torch.Tensor, labels) -> torch.Tensor | None:
        """The labels of the images ``x`` (required by a conditional model: they cannot be drawn)."""
        if getattr(self, "num_classes", None) is not None and labels is None:
            raise ValueError(
                f"This model is conditional (num_classes={self.num_classes}): give the images' labels "
                "(`labels=`, one per image) to encode or reconstruct them."
            )
        return self._labels_for(x.shape[0], labels)

    @torch.no_grad()
    def sample(
        self, n: int, z: torch.Tensor | None = None, prior: PriorKind | None = None, labels=None
    ) -> torch.Tensor:
        """``n`` images (n, C, H, W) in [-1, 1] decoded from codes of the model's prior (the fitted ex-post
        density unless ``prior="standard"``; ``prior`` overrides the configured kind) or from the given ``z``;
        of the classes ``labels`` for a conditional model."""
        labels = self._labels_for(n, labels)
        dec = self.sampling_decoder
        z = self.sample_latent(n, prior, labels) if z is None else z.to(self.device)
        with eval_mode(dec):
            return call_with_labels(dec, z, labels)

    def encode_mean(self, x: torch.Tensor | LabelledImages) -> torch.Tensor:
        """Posterior means (B, latent_dim): the codes the latent density is fitted to."""
        if isinstance(x, LabelledImages):
            return self.encoder(x.images, labels=x.labels)[0]
        return self.encoder(x)[0]

    def _code_loader(self, data, batch_size: int):
        if getattr(self, "num_classes", None) is not None:
            return self._labelled_code_loader(data, batch_size)
        loader = super()._code_loader(data, batch_size)
        datamodule = attached_datamodule(self)
        if data is not None or datamodule is None:
            return loader
        # The image DataModules keep raw images (uint8, or floats in [0, 1]) in their datasets and scale them
        # to [-1, 1] on the device in on_after_batch_transfer: the codes must be of scaled images too.
        return (datamodule.on_after_batch_transfer((x.to(self.device), None), 0)[0] for x in loader)

    def _labelled_code_loader(self, data, batch_size: int):
        """(images, labels) batches for a conditional model's codes: the same items, order and DDP shards as
        the unconditional loader, with the labels kept."""
        if isinstance(data, torch.Tensor):
            raise ValueError(
                "A conditional model encodes with labels: give fit_latent_density a DataLoader or dataset of "
                "(image, label) pairs, not a tensor of images."
            )
        datamodule = attached_datamodule(self)
        scale = data is None and datamodule is not None  # the training set's raw images, as the other loader
        if not isinstance(data, DataLoader):
            plain = super()._code_loader(data, batch_size)  # DataLoader over the images only
            data = DataLoader(plain.dataset.dataset, batch_size=batch_size, sampler=plain.sampler)
        for batch in data:
            x, y = batch[0], batch[1]
            if scale:
                x, y = datamodule.on_after_batch_transfer((x.to(self.device), y.to(self.device)), 0)
            yield LabelledImages(x, self.check_labels(y, x.shape[0]))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z|x) (q(z|x, y) with the images' ``labels``) for images (B, C, H, W) in [-1, 1]."""
        labels = self._image_labels(x, labels)
        with eval_mode(self.encoder):
            return call_with_labels(self.encoder, x.to(self.device), labels)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        """Decode the posterior mean of each image: (B, C, H, W) -> (B, C, H, W) in [-1, 1] (conditional
        models: with the images' ``labels``)."""
        labels = self._image_labels(x, labels)
        mu, _ = self.encode(x, labels)
        dec = self.sampling_decoder
        with eval_mode(dec):
            return call_with_labels(dec, mu, labels)

    @torch.no_grad()
    def interpolate(
        self, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8, labels_a=None, labels_b=None
    ) -> torch.Tensor:
        """Decode ``steps`` evenly spaced points on the line between the posterior means of ``x_a`` and
        ``x_b`` (both (B, C, H, W), or one (C, H, W) image each). Returns (B, steps, C, H, W), endpoints
        included (the first and last images are the reconstructions of x_a and x_b). A conditional model
        needs the images' labels; the first half of the line is decoded with ``labels_a``, the rest with
        ``labels_b``."""
        if steps < 2:
            raise ValueError(f"steps must be >= 2 (the two endpoints at least), got {steps}.")
        if x_a.dim() == 3:
            x_a, x_b = x_a.unsqueeze(0), x_b.unsqueeze(0)  # (1, C, H, W)
        if x_a.shape != x_b.shape:
            raise ValueError(f"x_a and x_b must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}.")
        b = x_a.shape[0]
        labels_a, labels_b = self._image_labels(x_a, labels_a), self._image_labels(x_b, labels_b)
        mu_a, _ = self.encode(x_a, labels_a)
        mu_b, _ = self.encode(x_b, labels_b)  # (B, Z)
        t = torch.linspace(0, 1, steps, device=mu_a.device).view(1, steps, 1)  # (1, S, 1)
        z = mu_a.unsqueeze(1) + t * (mu_b - mu_a).unsqueeze(1)  # (B, S, Z)
        labels = None
        if labels_a is not None:
            second = (torch.arange(steps, device=mu_a.device) >= steps / 2).view(1, steps)  # (1, S)
            labels = torch.where(second, labels_b.view(b, 1), labels_a.view(b, 1)).flatten()  # (B*S,)
        dec = self.sampling_decoder
        with eval_mode(dec):
            images = call_with_labels(dec, z.flatten(0, 1), labels)  # (B*S, C, H, W)
        return images.view(b, steps, *images.shape[1:])  # (B, S, C, H, W)


class VAE(Conditional, LatentImageAPI, pl.LightningModule):
    """Variational autoencoder (Kingma & Welling 2014) on images in [-1, 1].

    Minimises the negative ELBO ``E_q[-log p(x|z)] + beta_t * KL(q(z|x) || N(0, I))`` with one Adam-style
    optimizer over encoder and decoder (one loss, so Lightning's automatic optimization is the plain way).

    - Likelihood ``gaussian``: N(x | G(z), sigma^2 I), sigma fixed (``sigma``, in the [-1, 1] pixel units);
      ``bernoulli``: pixels mapped to [0, 1] and read as Bernoulli probabilities (MNIST-style data).
    - KL weight (beta annealing, Bowman et al. 2016, sec. 3.1): ``beta_t = kl_weight * min(1, t /
      kl_warmup_steps)`` after t training batches.
    - Free bits (Kingma et al. 2016, "Improved variational inference with inverse autoregressive flow",
      appendix "free bits"): each latent dimension's batch-mean KL counts as at least ``free_bits`` nats in
      the loss, so the optimiser gains nothing by pushing it below that; 0 disables.

    Logged for ``train``, ``val`` and ``test``: ``elbo`` (nats per image, the true bound with beta = 1 and
    no free bits), ``kl``, ``recon`` (the reconstruction NLL); plus ``train/loss`` and ``train/kl_weight``.

    Conditional VAE (Sohn et al. 2015, sec. 4) when encoder and decoder are built with ``num_classes``: the
    batch's labels go into q(z|x, y) and p(x|z, y), the prior stays N(0, I) (the ELBO of their eq. 4 with
    p(z|y) = p(z)); ``sample(n, labels=...)`` decodes the given classes (see :class:`LatentImageAPI`).

    Args:
        encoder: image (B, C, H, W) -> (mu, logvar), each (B, latent_dim); must have ``latent_dim``.
        decoder: z (B, latent_dim) -> image in [-1, 1] (e.g. the GAN's ``DCGANGenerator``).
        optimizer: optimizer factory for all parameters.
        likelihood: ``gaussian`` or ``bernoulli``.
        sigma: standard deviation of the Gaussian likelihood (> 0).
        kl_weight: final weight beta of the KL term (>= 0; 1 gives the ELBO).
        kl_warmup_steps: steps over which beta grows linearly from 0 (0: no warm-up).
        free_bits: minimum KL per latent dimension in nats (>= 0).
        latent_density: the density ``sample`` draws codes from (Ghosh et al. 2020), ``{kind, components,
            max_codes, train_components, train_codes}``
            (:class:`~lightning_gen.models.latent_density.LatentDensityConfig`).
    """

    data_kind = "image"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        likelihood: Likelihood = "gaussian",
        sigma: float = 0.1,
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 0,
        free_bits: float = 0.0,
        latent_density: LatentDensityConfig = LatentDensityConfig(),
    ) -> None:
        super().__init__()
        self.init_conditional(encoder, decoder)
        check_latent_fit(encoder, decoder)
        check_likelihood(likelihood)
        if sigma <= 0:
            raise ValueError(f"sigma (the Gaussian likelihood's standard deviation) must be > 0, got {sigma}.")
        check_at_least(0, kl_weight=kl_weight, kl_warmup_steps=kl_warmup_steps, free_bits=free_bits)
        save_plain_hyperparameters(self)
        self.encoder, self.decoder, self.optimizer = encoder, decoder, optimizer
        self.latent_dim = decoder.latent_dim
        self.likelihood, self.sigma = likelihood, sigma
        self.kl_weight, self.kl_warmup_steps, self.free_bits = kl_weight, kl_warmup_steps, free_bits
        self.init_latent_density(self.latent_dim, latent_density)

    @property
    def sampling_decoder(self) -> nn.Module:
        """The decoder ``sample`` / ``reconstruct`` run."""
        return self.decoder

    # -- Lightning hooks ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = attached_datamodule(self)
        check_image_shape(self.decoder, getattr(datamodule, "dims", None))
        self.store_label_distribution(datamodule)

    def configure_optimizers(self):
        return self.optimizer(self.parameters())

    def current_kl_weight(self) -> float:
        """beta at the current optimizer step (linear warm-up from 0 to ``kl_weight``)."""
        return kl_warmup(batches_done(self), self.kl_weight, self.kl_warmup_steps)

    def kl_term(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The KL as it enters the loss (batch mean): with free bits, sum_j max(free_bits, E_batch[KL_j])."""
        if self.free_bits == 0:
            return kl_normal(mu, logvar).mean()
        per_dim = kl_normal(mu.reshape(-1, 1), logvar.reshape(-1, 1)).view_as(mu)  # (B, Z): KL of each dim
        return per_dim.mean(0).clamp(min=self.free_bits).sum()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One pass: posterior statistics, a reparameterised sample, its decoding and the per-image terms."""
        mu, logvar = call_with_labels(self.encoder, x, labels)  # (B, Z) each
        recon = call_with_labels(self.decoder, reparameterize(mu, logvar), labels)  # (B, C, H, W)
        nll = reconstruction_nll(x, recon, self.likelihood, self.sigma)  # (B,)
        kl = kl_normal(mu, logvar)  # (B,)
        return {"mu": mu, "logvar": logvar, "recon": recon, "nll": nll, "kl": kl}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        out = self(batch[0], self.batch_labels(batch))
        beta = self.current_kl_weight()
        loss = out["nll"].mean() + beta * self.kl_term(out["mu"], out["logvar"])
        self._log_terms(out, "train")
        self.log_dict({"train/loss": loss.detach(), "train/kl_weight": beta})
        return loss

    def _log_terms(self, out: dict[str, torch.Tensor], prefix: str) -> None:
        nll, kl = out["nll"].detach().mean(), out["kl"].detach().mean()
        self.log_dict(
            {f"{prefix}/elbo": -(nll + kl), f"{prefix}/kl": kl, f"{prefix}/recon": nll},
            prog_bar=prefix == "train",
            sync_dist=prefix != "train",
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._log_terms(self(batch[0], self.batch_labels(batch)), "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._log_terms(self(batch[0], self.batch_labels(batch)), "test")
