"""Recurrent VAE on sequences: the baseline without an adversary (Fabius & van Amersfoort 2015, "Variational
Recurrent Auto-Encoders"; Bowman et al. 2016, "Generating Sentences from a Continuous Space")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset, default_collate

from lightning_gen import lightning_internals as li
from lightning_gen.errors import check_at_least
from lightning_gen.losses import Likelihood, check_likelihood, kl_normal, kl_warmup, reparameterize
from lightning_gen.models.common import batches_done, eval_mode, logs_this_step, save_plain_hyperparameters
from lightning_gen.models.latent_density import LatentDensityConfig, LatentDensityMixin, PriorKind
from lightning_gen.models.sequence_common import SequenceModel, batch_lengths, zero_padding


def check_vae_parts(encoder: nn.Module, decoder: nn.Module, likelihood: str) -> None:
    """Clear errors when an encoder / decoder pair or the likelihood do not fit together."""
    for net, names in ((encoder, ("latent_dim", "data_dim")), (decoder, ("latent_dim", "data_dim"))):
        for name in names:
            if not hasattr(net, name):
                raise ValueError(f"{type(net).__name__} must expose `{name}`.")
    if (encoder.latent_dim, encoder.data_dim) != (decoder.latent_dim, decoder.data_dim):
        raise ValueError(
            f"The encoder maps {encoder.data_dim} features to z of size {encoder.latent_dim}, the decoder maps z "
            f"of size {decoder.latent_dim} to {decoder.data_dim} features: they must match."
        )
    check_likelihood(likelihood)
    if likelihood == "bernoulli" and getattr(decoder, "output", "sigmoid") != "sigmoid":
        raise ValueError("likelihood='bernoulli' needs a decoder with output='sigmoid' (its outputs are logits).")


def sequence_nll(
    x: torch.Tensor, raw: torch.Tensor, decoder: nn.Module, likelihood: str, sigma: float, lengths=None
) -> torch.Tensor:
    """-log p(x | z) per sequence (B,), summed over steps and features, up to a constant; over the real steps
    of sequences of ``lengths`` (B,) (None: all steps), so padding is never a target.

    ``bernoulli``: binary cross-entropy on the decoder's logits (piano rolls). ``gaussian``: squared error
    of the decoder's mean over ``2 sigma^2`` (a Gaussian with fixed standard deviation ``sigma``).
    """
    if likelihood == "bernoulli":
        values = F.binary_cross_entropy_with_logits(raw, x, reduction="none")
    else:
        values = (decoder.activate(raw) - x).pow(2) / (2 * sigma**2)
    return zero_padding(values, lengths).flatten(1).sum(1)


class RecurrentVAEModel(LatentDensityMixin, SequenceModel):
    """What the R-VAE and the R-VAE-GAN share: the ex-post latent density they sample from, and sampling /
    reconstructing with their recurrent decoder (``self.encoder``, ``self.decoder``, ``self.latent_dim``,
    ``self.likelihood``).

    Piano rolls (``likelihood="bernoulli"``) are sampled as binary rolls, one Bernoulli draw per step and
    pitch, each fed back to the decoder (:meth:`RecurrentDecoder.generate` with ``binary=True``).

    Class-conditional (a conditional VAE, Sohn et al. 2015: q(z | x, y), p(x | z, y)) when the encoder and
    decoder are built with ``num_classes``. The ex-post latent density is one density per class, q(z | y), fitted to
    the codes of each class's training sequences encoded with their labels; a sampled code comes from the
    density of the class it is decoded with (codes keep much of the class, see ``models/vae.py``).
    """

    def init_recurrent_vae(self, latent_density: LatentDensityConfig) -> None:
        self.latent_dim = self.decoder.latent_dim
        self.init_latent_density(self.latent_dim, latent_density)

    @property
    def binary(self) -> bool:
        """Whether the data are binary (piano rolls): values are sampled, not the decoder's means."""
        return self.likelihood == "bernoulli"

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None):
        """q(z | x): (mu, logvar), the encoder reading sequences of ``lengths`` packed (None: every step)."""
        return self.encoder(x, labels) if lengths is None else self.encoder(x, labels, lengths)

    def encode_mean(self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> torch.Tensor:
        return self.encode(x, labels, lengths)[0]  # posterior means (B, Z)

    @torch.no_grad()
    def fit_latent_density(self, data=None, batch_size: int = 256) -> None:
        """Fit the latent density (:meth:`_fit_latent_density`), then :meth:`refresh_residuals` on the same data."""
        self._fit_latent_density(data, batch_size)
        self.refresh_residuals(data, batch_size)

    @torch.no_grad()
    def refresh_residuals(self, data=None, batch_size: int = 256) -> None:
        """With ``output_noise='residuals'``: refill the residual bank with the residuals of the decoder that samples
        (the weight average, when the model keeps one) on the first training sequences, each decoded from its
        posterior mean. The bank recorded while training holds the live decoder's residuals, made by other weights
        than the averaged decoder's means they are added to; refitted here, means and residuals come from one
        decoder, as the residual bootstrap has them. Called with every latent density fit; the random state is left
        as it was (resumed runs stay exact)."""
        decoder = self.sampling_decoder
        bank = getattr(decoder, "residual_noise", None)
        if bank is None:
            return
        data = self._training_dataset(data)
        if data is None:
            return
        first = range(min(len(data), bank.bank.shape[0]))
        targets, means = [], []
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with eval_mode(*self.modules()), torch.random.fork_rng(devices=cuda):  # generate draws noise: state kept
            for start in range(0, len(first), batch_size):  # batched by hand: a DataLoader draws a seed
                batch = default_collate([data[i] for i in first[start : start + batch_size]])
                batch = [batch] if isinstance(batch, torch.Tensor) else batch
                x = batch[0].to(self.device).float()
                y = batch[1].to(self.device).long() if self.conditional else None
                lengths = batch_lengths(batch)
                mu = self.encode_mean(x, y, lengths)
                targets.append(x)
                means.append(zero_padding(decoder.activate(decoder.generate(mu, x.shape[1], labels=y)[0]), lengths))
        bank.refill(torch.cat(targets), torch.cat(means))
        if decoder is not self.decoder:  # the average copies integer buffers from the live decoder at every update
            self.decoder.residual_noise.load_state_dict(bank.state_dict())

    def _training_dataset(self, data):
        """``data`` (a dataset, loader, tensor or tuple of tensors) as a dataset; None: the trainer's training set
        (None when the model is not inside a fit)."""
        if isinstance(data, (tuple, list)):
            return TensorDataset(*data)
        if isinstance(data, torch.Tensor):
            return TensorDataset(data)
        if data is None:
            data = getattr(getattr(li.attached_trainer(self), "train_dataloader", None), "dataset", None)
        return data.dataset if isinstance(data, DataLoader) else data

    def _fit_latent_density(self, data=None, batch_size: int = 256) -> None:
        """:meth:`LatentDensityMixin.fit_latent_density`, whose loop hands ``encode_mean`` the inputs alone; a
        conditional model encodes each sequence with its label, so its codes are gathered here from a labelled
        dataset or loader (default: the trainer's training set) or a pair of tensors (x, labels): the first
        ``latent_density.max_codes`` items (``train_codes`` in a training refit), every rank the same density,
        as the mixin does. Sequences of different lengths are encoded with their lengths (their batches' masks)
        here too."""
        if not (self.conditional or self.variable_length) or self.latent_density.kind == "standard":
            return super().fit_latent_density(data, batch_size)
        if isinstance(data, torch.Tensor) and self.conditional:
            raise ValueError("A conditional model encodes with labels: give fit_latent_density a pair (x, labels).")
        data = self._training_dataset(data)
        if data is None:
            raise ValueError("fit_latent_density() needs data when the model is not inside a fit.")
        trainer = li.attached_trainer(self)
        data = Subset(data, range(min(len(data), self._code_limit())))
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False, drop_last=world > 1)
        codes, labels = [], []
        with eval_mode(self):
            for batch in DataLoader(data, batch_size=batch_size, sampler=sampler):
                batch = [batch] if isinstance(batch, torch.Tensor) else batch
                y = batch[1].to(self.device).long() if self.conditional else None
                codes.append(self.encode_mean(batch[0].to(self.device), y, batch_lengths(batch)).float())
                labels.append(y)
        self.fit_density_to_codes(torch.cat(codes), torch.cat(labels) if self.conditional else None)

    @property
    def sampling_decoder(self) -> nn.Module:
        """The decoder ``sample`` runs (the R-VAE-GAN's weight average when it keeps one)."""
        return self.decoder

    @torch.no_grad()
    def sample(
        self,
        n: int,
        length: int | None = None,
        z: torch.Tensor | None = None,
        labels=None,
        prior: PriorKind | None = None,
        lengths=None,
    ) -> torch.Tensor:
        """``n`` sequences (n, length, D) in [0, 1] (binary rolls for piano rolls); any length works (the
        decoder runs autoregressively). z comes from the fitted latent density (``prior``: the configured
        kind; ``"standard"`` for N(0, I)) unless given; ``labels``: the classes of a conditional model (one per
        sequence, or one for all; default: drawn from the training labels). A model trained on sequences of
        different lengths makes sequences of ``lengths`` (n,) (default: drawn from the training length
        distribution, per class), zero-padded to the longest; ``length`` forces one length."""
        y = self.labels_for(n, labels)
        z = self.sample_latent(n, prior, y) if z is None else z.to(self.device)
        steps, lengths = self.generation_lengths(n, length, lengths, y)
        decoder = self.sampling_decoder
        with eval_mode(decoder):
            return zero_padding(decoder.generate(z, steps, binary=self.binary, labels=y)[1], lengths)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, length: int | None = None, labels=None, lengths=None) -> torch.Tensor:
        """Encode (B, T, D) (of ``lengths``, when they differ) to the posterior mean and decode it freely (no
        teacher forcing); steps past a length are zeros."""
        y = self.labels_for(x.shape[0], labels) if self.conditional and labels is not None else None
        if self.conditional and y is None:
            raise ValueError("A conditional model reconstructs sequences with their labels: give labels.")
        mu = self.encode_mean(x, y, lengths)
        return zero_padding(self.decoder.generate(mu, length or x.shape[1], binary=self.binary, labels=y)[1], lengths)


class RVAE(RecurrentVAEModel):
    """A recurrent VAE: recurrent encoder to z, recurrent decoder from z, one optimizer.

    Loss per sequence: ``-log p(x | z) + beta * KL(q(z | x) || N(0, I))``, with ``beta`` warmed up from 0 to
    ``kl_weight`` over ``kl_warmup_steps`` steps. The decoder reads the previous real step with probability
    ``teacher_forcing`` (per step and sequence) and its own output otherwise.

    Args:
        encoder: (B, T, D) to (mu, logvar), each (B, latent_dim) (e.g. ``RecurrentEncoder``).
        decoder: ``decoder(z, length, target, teacher_forcing)`` to raw outputs (B, T, D), with ``activate``
            (e.g. ``RecurrentDecoder``).
        optimizer: optimizer factory for encoder and decoder together.
        likelihood: ``gaussian`` for real-valued data, ``bernoulli`` for piano rolls.
        sigma: standard deviation of the Gaussian likelihood (data scaled to [0, 1]).
        teacher_forcing: probability of feeding the real previous step while training (0 ... 1).
        kl_weight: final weight of the KL term (beta).
        kl_warmup_steps: batches of the linear KL warm-up (0: none); a few hundred, well inside the
            1,000-3,000 batches of a few CPU-minutes.
        clip_grad_norm: if set, clip the gradient norm to this value before each step.
        latent_density: what ``sample`` draws z from (a density fitted to the training codes, Ghosh et al.
            2020), ``{kind, components, max_codes, train_components, train_codes}``
            (:class:`~lightning_gen.models.latent_density.LatentDensityConfig`).

    Class-conditional when encoder and decoder are built with ``num_classes`` (see :class:`RecurrentVAEModel`).
    Logs ``train/loss``, ``train/recon``, ``train/kl``, ``train/kl_weight``, ``train/grad_norm``; ``val/`` and
    ``test/`` ``recon``, ``kl``, ``elbo``, ``moment_gap``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        optimizer: OptimizerCallable = torch.optim.Adam,
        likelihood: Likelihood = "gaussian",
        sigma: float = 0.1,
        teacher_forcing: float = 0.5,
        kl_weight: float = 1.0,
        kl_warmup_steps: int = 200,
        clip_grad_norm: float | None = None,
        latent_density: LatentDensityConfig = LatentDensityConfig(),
    ) -> None:
        super().__init__()
        check_vae_parts(encoder, decoder, likelihood)
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}.")
        if sigma <= 0:
            raise ValueError(f"sigma (the Gaussian likelihood's standard deviation) must be > 0, got {sigma}.")
        check_at_least(0, kl_weight=kl_weight, kl_warmup_steps=kl_warmup_steps)
        save_plain_hyperparameters(self)
        self.init_sequence_model(decoder.data_dim, clip_grad_norm, encoder, decoder)
        self.encoder, self.decoder, self.optimizer = encoder, decoder, optimizer
        self.likelihood, self.sigma, self.teacher_forcing = likelihood, sigma, teacher_forcing
        self.kl_weight, self.kl_warmup_steps = kl_weight, kl_warmup_steps
        self.init_recurrent_vae(latent_density)

    def elbo_terms(self, x: torch.Tensor, teacher_forcing: float, labels: torch.Tensor | None = None, lengths=None):
        """Reconstruction NLL (B,), KL (B,) and the raw decoder outputs for a batch (B, T, D) (of ``lengths``:
        the encoder reads them packed, the NLL counts their real steps)."""
        mu, logvar = self.encode(x, labels, lengths)
        z = reparameterize(mu, logvar)
        raw, _ = self.decoder.generate(z, x.shape[1], x, teacher_forcing, self.binary, labels)  # (B, T, D)
        nll = sequence_nll(x, raw, self.decoder, self.likelihood, self.sigma, lengths)
        return nll, kl_normal(mu, logvar), raw

    # -- Lightning hooks ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer([*self.encoder.parameters(), *self.decoder.parameters()])

    def training_step(self, batch, batch_idx: int) -> None:
        x, labels = batch[0], self.batch_labels(batch)  # (B, T, D) in [0, 1]; (B,) or None
        lengths = batch_lengths(batch)  # (B,) for sequences of different lengths, else None
        opt = self.optimizers()
        with self.toggled_optimizer(opt):
            recon, kl, _ = self.elbo_terms(x, self.teacher_forcing, labels, lengths)
            beta = kl_warmup(batches_done(self), self.kl_weight, self.kl_warmup_steps)
            loss = (recon + beta * kl).mean()
            self.manual_backward(loss)
            norm = self.finish_step(opt)
        if not logs_this_step(self):  # only every log_every_n_steps-th value is written
            return
        self.log_dict(
            {
                "train/loss": loss.detach(),
                "train/recon": recon.detach().mean(),
                "train/kl": kl.detach().mean(),
                "train/kl_weight": beta,
                "train/grad_norm": norm,
            }
        )
        self.log("loss", loss.detach(), prog_bar=True, logger=False)

    def _evaluate(self, batch, prefix: str) -> None:
        x, labels, lengths = batch[0], self.batch_labels(batch), batch_lengths(batch)
        recon, kl, _ = self.elbo_terms(x, 0.0, labels, lengths)  # free-running reconstruction
        self.log_dict(
            {f"{prefix}/recon": recon.mean(), f"{prefix}/kl": kl.mean(), f"{prefix}/elbo": -(recon + kl).mean()},
            sync_dist=True,
        )
        fake = None if lengths is None else self.evaluation_fakes(x, labels, lengths)
        self.log_moment_gap(x, prefix, labels, lengths, fake)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")
