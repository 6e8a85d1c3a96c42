"""Ex-post density of a VAE's aggregate posterior: what every VAE-type model samples its codes from.

A VAE trained for a few CPU-minutes leaves its codes far from N(0, I) (the "prior hole"), so decoding
z ~ N(0, I) gives poor samples while decoding codes of the kind the encoder actually produces gives good
ones. Following Ghosh et al. 2020 ("From Variational to Deterministic Autoencoders", sec. 4: ex-post density
estimation with a full-covariance Gaussian or a 10-component GMM) and Dai & Wipf 2019 ("Diagnosing and
Enhancing VAE Models", a second-stage density on the codes), a density is fitted to the posterior means of
the training data after training, stored in the checkpoint as buffers (restored exactly on resume) and used
by ``sample()``. ``prior="standard"`` keeps N(0, I).

While training the density is refitted at every epoch end; a model may make those refits cheap (fewer
components on fewer codes: ``train_components`` / ``train_codes``) and keep the rich fit for the end of
training, where ``sample()`` needs it: a GMM's fit grows with components x codes, so a full fit on every code at
each epoch end can cost as much as the epoch itself.

One component for the R-VAE, R-VAE-GAN, VAE and VAE-GAN: the models mix in :class:`LatentDensityMixin` and take
its options as one :class:`LatentDensityConfig` (the ``latent_density:`` mapping of a config). A
class-conditional model gets one mixture per class (q(z | y), fitted to each class's codes): its codes keep much
of the class, so codes of another class would fight the label they are decoded with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from lightning_gen import lightning_internals as li
from lightning_gen.models.common import OptionGroup, eval_mode

PriorKind = Literal["gmm", "gaussian", "standard"]
PRIOR_KINDS = ("gmm", "gaussian", "standard")


@dataclass(frozen=True)
class LatentDensityConfig(OptionGroup):
    """The options of a VAE-type model's ex-post latent density, one nested mapping in a config (the same keys
    for the VAE, VAE-GAN, R-VAE and R-VAE-GAN)::

        latent_density: {kind: gmm, components: 10, max_codes: 10000, train_components: 4, train_codes: 2000}

    Attributes:
        kind: what ``sample`` draws codes from: ``gmm`` (a full-covariance GMM fitted to the training codes,
            Ghosh et al. 2020), ``gaussian`` (one full-covariance Gaussian) or ``standard`` (N(0, I), no fit).
        components: mixture components for ``gmm`` (Ghosh et al. use 10).
        max_codes: training items encoded for the final fit (the first ones of the training set).
        train_components: components of the cheap refits while training (null: all); the final fit, at the end
            of training, has all of them.
        train_codes: training items encoded for the refits while training (null: ``max_codes``).
    """

    key = "latent_density"

    kind: PriorKind = "gmm"
    components: int = 10
    max_codes: int = 10000
    train_components: int | None = None
    train_codes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"latent_density.kind={self.kind!r}: choose one of {PRIOR_KINDS}.")
        if self.components < 1:
            raise ValueError(f"latent_density.components must be >= 1, got {self.components}.")
        if self.max_codes < 1:
            raise ValueError(f"latent_density.max_codes must be >= 1, got {self.max_codes}.")
        if self.train_components is not None and not 1 <= self.train_components <= self.components:
            raise ValueError(
                f"latent_density.train_components must be in [1, latent_density.components={self.components}] "
                f"(or null: all of them), got {self.train_components}."
            )
        if self.train_codes is not None and self.train_codes < 1:
            raise ValueError(
                f"latent_density.train_codes must be >= 1 (or null: latent_density.max_codes), got {self.train_codes}."
            )


class LatentDensity(nn.Module):
    """A Gaussian mixture over codes (K components, full covariances), held in buffers.

    ``kind="gaussian"`` is the one-component case, ``kind="standard"`` is N(0, I) and is never fitted. Until
    :meth:`fit` runs, :meth:`sample` draws from N(0, I) (``fitted`` is False).

    Args:
        latent_dim: size of z.
        kind: ``gmm`` (Ghosh et al. 2020's GMM), ``gaussian`` (full-covariance Gaussian) or ``standard``.
        components: mixture components for ``gmm`` (Ghosh et al. use 10).
    """

    def __init__(
        self, latent_dim: int, kind: PriorKind = "gmm", components: int = 10, num_classes: int | None = None
    ) -> None:
        super().__init__()
        if kind not in PRIOR_KINDS:
            raise ValueError(f"prior={kind!r}: choose one of {PRIOR_KINDS}.")
        if components < 1:
            raise ValueError(f"latent_density.components must be >= 1, got {components}.")
        k = components if kind == "gmm" else 1
        self.kind, self.latent_dim, self.num_classes = kind, latent_dim, num_classes
        lead = () if num_classes is None else (num_classes,)  # a class-conditional density: one mixture per class
        self.register_buffer("weights", torch.full((*lead, k), 1.0 / k))
        self.register_buffer("means", torch.zeros(*lead, k, latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim).repeat(*lead, k, 1, 1))  # ([C,] K, d, d)
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("fitted_at", torch.tensor(-1))  # training batches done when it was fitted
        self.register_buffer("final", torch.tensor(False))  # fitted with every component (not a training refit)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected, errors):
        # Checkpoints written before the density existed load as "not fitted" instead of failing strict loading.
        for name, buf in self.named_buffers(recurse=False):
            state_dict.setdefault(prefix + name, buf.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected, errors)

    @torch.no_grad()
    def fit(
        self,
        codes: torch.Tensor,
        step: int = -1,
        seed: int = 0,
        labels: torch.Tensor | None = None,
        components: int | None = None,
    ) -> None:
        """Fit the density to codes (N, latent_dim), per class of ``labels`` (N,) for a class-conditional density;
        deterministic for given codes and seed. ``components`` (<= K): fit that many and leave the other slots
        with zero weight (a cheap training refit; the buffers keep their shapes)."""
        k = self.weights.shape[-1]
        components = k if components is None else components
        if not 1 <= components <= k:
            raise ValueError(f"components must be in [1, {k}] (the density's slots), got {components}.")
        if self.kind == "standard":
            return
        codes = codes.detach().double().cpu()
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(f"Expected codes of shape (N, {self.latent_dim}), got {tuple(codes.shape)}.")
        if not torch.isfinite(codes).all():
            raise ValueError("The encoder produced non-finite codes; the latent density cannot be fitted.")
        if self.num_classes is None:
            fitted = [self._fit_mixture(codes, seed, components)]
        else:
            if labels is None or labels.shape != codes.shape[:1]:
                raise ValueError("A class-conditional latent density is fitted to codes with one label per code.")
            labels = labels.detach().long().cpu()
            # a class without codes of its own (a rare class in a small fit) gets the density of all codes
            fitted = [self._fit_mixture(codes[labels == c] if (labels == c).sum() > 1 else codes, seed, components)
                      for c in range(self.num_classes)]  # fmt: skip
        weights, means, covs = (torch.stack(parts) for parts in zip(*fitted))
        if components < k:  # the unused slots: zero weight (never drawn), unit Gaussians
            pad = k - components
            lead = weights.shape[:-1]
            weights = torch.cat([weights, weights.new_zeros(*lead, pad)], -1)
            means = torch.cat([means, means.new_zeros(*lead, pad, self.latent_dim)], -2)
            eye = torch.eye(self.latent_dim, dtype=covs.dtype).expand(*lead, pad, -1, -1)
            covs = torch.cat([covs, eye], -3)
        if self.num_classes is None:
            weights, means, covs = weights[0], means[0], covs[0]
        eye = torch.eye(self.latent_dim, dtype=torch.float64)
        self.weights.copy_(weights / weights.sum(-1, keepdim=True))
        self.means.copy_(means)
        self.scale_tril.copy_(torch.linalg.cholesky(covs + 1e-6 * eye))
        self.fitted.fill_(True)
        self.fitted_at.fill_(int(step))
        self.final.fill_(components == k)

    def _fit_mixture(self, codes: torch.Tensor, seed: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weights (k,), means (k, d) and covariances (k, d, d) of a k-component GMM fitted to codes (N, d)."""
        eye = torch.eye(self.latent_dim, dtype=torch.float64)
        if k == 1 or codes.shape[0] < 2 * k:
            mean = codes.mean(0)
            cov = torch.cov(codes.T).reshape(self.latent_dim, self.latent_dim) if codes.shape[0] > 1 else eye
            weights, means, covs = torch.ones(1, dtype=torch.float64), mean[None], (cov + 1e-6 * eye)[None]
            if k > 1:  # too few codes for a mixture: the same Gaussian in every component
                weights, means, covs = torch.full((k,), 1.0 / k), means.repeat(k, 1), covs.repeat(k, 1, 1)
            return weights.double(), means, covs
        from sklearn.mixture import GaussianMixture  # imported here: only fitting needs scikit-learn

        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed, max_iter=200)
        gmm.fit(codes.numpy())
        weights = torch.from_numpy(np.asarray(gmm.weights_))
        return weights, torch.from_numpy(gmm.means_), torch.from_numpy(gmm.covariances_)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        kind: str | None = None,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` codes (n, latent_dim): from the fitted density (of each code's class in ``labels`` (n,) for a
        class-conditional one), or N(0, I) for ``kind="standard"`` or when nothing has been fitted yet."""
        kind = kind or self.kind
        if kind not in PRIOR_KINDS:
            raise ValueError(f"prior={kind!r}: choose one of {PRIOR_KINDS}.")
        device = self.means.device
        eps = torch.randn(n, self.latent_dim, device=device, generator=generator)
        if kind == "standard" or not bool(self.fitted):
            return eps
        weights, means, tril = self.weights, self.means, self.scale_tril
        if self.num_classes is not None:
            if labels is None or labels.shape != (n,):
                raise ValueError("A class-conditional latent density samples codes for given labels, one per code.")
            labels = labels.to(device)
            weights, means, tril = weights[labels], means[labels], tril[labels]  # (n, K), (n, K, d), (n, K, d, d)
        if kind == "gaussian" and self.weights.shape[-1] > 1:  # the mixture's own mean and covariance
            mean, scale_tril = self.moment_matched(weights, means, tril)
            return mean + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)  # (n, d)
        if self.num_classes is None:
            comp = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
            return means[comp] + (tril[comp] @ eps.unsqueeze(-1)).squeeze(-1)  # (n, d)
        comp = torch.multinomial(weights, 1, generator=generator)[:, 0]  # (n,): a component of each code's class
        rows = torch.arange(n, device=device)
        return means[rows, comp] + (tril[rows, comp] @ eps.unsqueeze(-1)).squeeze(-1)  # (n, d)

    def moment_matched(self, weights=None, means=None, scale_tril=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ([n,] d) and Cholesky factor ([n,] d, d) of the full Gaussian with the mixture's mean and covariance
        (of the given rows of a class-conditional density): what ``prior="gaussian"`` samples from after a GMM was
        fitted (at EM's fixed point these are the codes' own mean and covariance, up to ``reg_covar``)."""
        w = (self.weights if weights is None else weights).double()
        means = (self.means if means is None else means).double()
        tril = (self.scale_tril if scale_tril is None else scale_tril).double()
        mean = (w[..., None] * means).sum(-2)  # ([n,] d)
        centred = means - mean[..., None, :]  # ([n,] K, d)
        outer = tril @ tril.transpose(-1, -2) + centred[..., :, None] * centred[..., None, :]
        cov = (w[..., None, None] * outer).sum(-3)
        return mean.to(self.means.dtype), torch.linalg.cholesky(cov).to(self.means.dtype)


class _Features(Dataset):
    """Only the model input of each item (items may be (x,), (x, y) or x)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return item[0] if isinstance(item, (tuple, list)) else item


class LatentDensityMixin:
    """Gives a VAE-type LightningModule an ex-post latent density (``self.latent_density``).

    The model calls :meth:`init_latent_density` in ``__init__`` with its :class:`LatentDensityConfig` and implements
    ``encode_mean(x)`` (posterior means (B, latent_dim) of a batch of data); a model that trains on codes of its
    density also calls :meth:`init_training_density`. The density is refitted on up to ``train_codes`` training
    items with ``train_components`` components whenever the trainer validates or ends an epoch while fitting (before
    the checkpoint of that epoch is written, so ``last.ckpt`` holds the density of its own weights), and at the end
    of training with every component on up to ``max_codes`` items (the final fit, which ``sample`` uses: made by the
    last refit before the checkpoint when the run ends at ``max_steps`` / ``max_epochs`` or is asked to stop, else
    at ``on_train_end``). Codes are gathered across DDP ranks, so every rank fits the same density. Every fit starts
    afresh (deterministic for given weights), so a stopped and resumed run refits what an uninterrupted one does.
    """

    def init_latent_density(self, latent_dim: int, config: LatentDensityConfig | Mapping | None = None) -> None:
        """Build ``self.latent_density`` from ``config`` (:class:`LatentDensityConfig`; a mapping of its keys, as
        hyperparameters store it, works too)."""
        config = LatentDensityConfig.of(config)
        self.latent_density_config = config
        # a conditional model (init_conditional first) gets one density per class: q(z | y), see the module doc
        num_classes = getattr(self, "num_classes", None)
        self.latent_density = LatentDensity(latent_dim, config.kind, config.components, num_classes)
        self.prior_max_codes = config.max_codes
        slots = self.latent_density.weights.shape[-1]  # 1 for kind="gaussian"
        self.prior_train_components = min(config.train_components or slots, slots)
        self.prior_train_codes = min(config.train_codes or config.max_codes, config.max_codes)
        self._final_density_fit = True  # what fit_latent_density does outside the training refits
        self.training_density = None

    def init_training_density(self) -> None:
        """Give the model ``self.training_density``: the density its adversarial codes come from while training
        (the VAE-GAN's and R-VAE-GAN's prior samples). It is a copy of the latent density taken at the first
        batch of each epoch (its epoch saved with it, in the checkpoint), never by the final refit of a run
        stopped mid-epoch, so a resumed run draws what an uninterrupted one drew. N(0, I) until the first fit."""
        density = self.latent_density
        self.training_density = LatentDensity(density.latent_dim, density.kind, self.latent_density_config.components,
                                              density.num_classes)  # fmt: skip
        self.training_density.register_buffer("epoch", torch.tensor(-1))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        density = self.training_density
        if density is None:  # a model that trains on no codes of its density
            return
        epoch = self.trainer.current_epoch
        if int(density.epoch) != epoch:
            density.load_state_dict(self.training_density_state())  # keeps its own ``epoch``
            density.epoch.fill_(epoch)

    @property
    def cheap_training_refits(self) -> bool:
        """Whether the training refits use fewer components or codes than the final fit."""
        slots = self.latent_density.weights.shape[-1]
        return self.prior_train_components < slots or self.prior_train_codes < self.prior_max_codes

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - each model implements it
        raise NotImplementedError

    def sample_latent(self, n: int, prior: str | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` codes from the model's prior (``prior`` overrides the configured kind), of the classes ``labels``
        for a conditional model."""
        return self.latent_density.sample(n, prior, labels=labels).to(self.device)

    @torch.no_grad()
    def fit_latent_density(
        self, data: Dataset | DataLoader | torch.Tensor | None = None, batch_size: int = 256
    ) -> None:
        """Fit the latent density to the posterior means of ``data`` (a dataset, loader or tensor of inputs;
        by default the trainer's training set), at most ``latent_density.max_codes`` items (the first ones: no random
        state is consumed, so resumed runs stay exact), every component (the training refits: fewer)."""
        if self.latent_density.kind == "standard":
            return
        loader = self._code_loader(data, batch_size)
        # every submodule's own mode restored (parents first), so a part kept in eval mode (an EMA copy) stays so
        codes, labels = [], []
        with eval_mode(*self.modules()):
            for x in loader:  # streamed: only the codes are kept; a conditional model's batches carry ``.labels``
                x = x.to(self.device)
                codes.append(self.encode_mean(x).float())
                labels.append(getattr(x, "labels", None))
        conditional = self.latent_density.num_classes is not None
        self.fit_density_to_codes(torch.cat(codes), torch.cat(labels) if conditional else None)

    def fit_density_to_codes(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Fit the latent density to this rank's codes (N, d) (and their labels (N,)), gathered over DDP ranks."""
        trainer = li.attached_trainer(self)
        if trainer is not None and trainer.world_size > 1:
            codes = self.all_gather(codes).reshape(-1, codes.shape[-1])  # (world * N, d)
            labels = None if labels is None else self.all_gather(labels).reshape(-1)
        step = li.batches_completed(trainer) if trainer is not None else -1
        components = None if self._final_density_fit else self.prior_train_components
        self.latent_density.fit(codes, step=step, labels=labels, components=components)

    def _code_limit(self) -> int:
        return self.prior_max_codes if self._final_density_fit else self.prior_train_codes

    def _code_loader(self, data, batch_size: int):
        limit = self._code_limit()
        if isinstance(data, DataLoader):
            return (b[0] if isinstance(b, (tuple, list)) else b for b in data)
        if isinstance(data, torch.Tensor):
            return data[:limit].split(batch_size)
        if data is None:
            trainer = li.attached_trainer(self)
            loader = trainer.train_dataloader if trainer is not None else None
            data = getattr(loader, "dataset", None)
            if data is None:
                raise ValueError("fit_latent_density() needs data when the model is not inside a fit.")
        trainer = li.attached_trainer(self)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        data = Subset(data, range(min(len(data), limit)))
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False, drop_last=world > 1)
        return DataLoader(_Features(data), batch_size=batch_size, sampler=sampler)

    def _fit_for_training(self) -> None:
        """A training refit (``train_components`` on ``train_codes``; the final settings when no cheaper ones
        are set, and then it counts as final)."""
        self._final_density_fit = not self.cheap_training_refits
        try:
            self.fit_latent_density()
        finally:
            self._final_density_fit = True

    def training_density_state(self) -> dict[str, torch.Tensor]:
        """The state of the density the training refits give for the current weights: what a model that trains
        on codes of its density (the VAE-GAN's and R-VAE-GAN's adversarial codes) copies at an epoch's start.
        After a final fit at this very step (a run stopped and resumed at an epoch's end) the training refit is
        made again, with the random state kept, so the resumed run copies what an uninterrupted one copied."""
        density, trainer = self.latent_density, li.attached_trainer(self)
        done = li.batches_completed(trainer) if trainer is not None else -1
        if self.cheap_training_refits and bool(density.final) and int(density.fitted_at) == done and done > 0:
            with torch.random.fork_rng(devices=[]):
                self._fit_for_training()
        return density.state_dict()

    def _refit_latent_density(self, final: bool = False) -> None:
        trainer = li.attached_trainer(self)
        if trainer is None or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        done = li.batches_completed(trainer)
        if done == 0:
            return
        # the last refit is the final fit, made before last.ckpt is written
        final = final or li.fit_ends_after_this_batch(trainer)
        if int(self.latent_density.fitted_at) == done and (bool(self.latent_density.final) or not final):
            return
        if final:
            self.fit_latent_density()
        else:
            self._fit_for_training()

    # Lightning hooks: validation runs before the epoch's checkpoint is written, the epoch end before the
    # checkpoint of a run without validation; the end of training catches a run stopped mid-epoch (its fit is
    # not in a checkpoint written before: that of a stop at max_steps or max_epochs is).
    def on_validation_epoch_start(self) -> None:
        self._refit_latent_density()

    def on_train_epoch_end(self) -> None:
        self._refit_latent_density()

    def on_train_end(self) -> None:
        self._refit_latent_density(final=True)
