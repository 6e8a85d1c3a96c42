"""Class conditions for every model family: one contract, written once.

A model is conditional when its networks are built with ``num_classes`` (an int >= 2); it is unconditional
(``num_classes = None``, the default) otherwise. A conditional model:

- reads labels from the batch's second element (``(x, y)`` batches, ``y`` int64 in ``[0, num_classes)``),
- stores the training label distribution (``label_counts``, a buffer, so it is in every checkpoint) from the
  datamodule's ``label_counts()`` at ``setup("fit")``,
- samples with ``labels`` given, or drawn from ``label_counts`` when not given.

Every wrong use raises a ``ValueError`` that says what was wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def net_num_classes(*nets: nn.Module | None) -> int | None:
    """The ``num_classes`` the networks were built with (None: unconditional); they must all agree."""
    found = {type(n).__name__: getattr(n, "num_classes", None) for n in nets if n is not None}
    values = set(found.values())
    if len(values) > 1:
        raise ValueError(
            f"The networks disagree on num_classes: {found}. Give every network the same `num_classes` "
            "(an int >= 2 for a conditional model, or leave it unset everywhere for an unconditional one)."
        )
    value = values.pop() if values else None
    if value is not None and (not isinstance(value, int) or value < 2):
        raise ValueError(f"num_classes must be an int >= 2 (or unset), got {value!r}.")
    return value


def call_with_labels(net: nn.Module, x: torch.Tensor, labels: torch.Tensor | None):
    """``net(x)`` for an unconditional model (so networks without a ``labels`` keyword still work), else
    ``net(x, labels=labels)``."""
    return net(x) if labels is None else net(x, labels=labels)


class Conditional:
    """Mix into a LightningModule (before ``pl.LightningModule``); call :meth:`init_conditional` in
    ``__init__`` after ``super().__init__()`` and :meth:`store_label_distribution` from ``setup``."""

    num_classes: int | None = None  # until init_conditional: unconditional

    def init_conditional(self, *nets: nn.Module | None) -> None:
        self.num_classes = net_num_classes(*nets)
        if self.num_classes is not None:
            self.register_buffer("label_counts", torch.zeros(self.num_classes))

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    # -- data ---------------------------------------------------------------------------------------
    def store_label_distribution(self, datamodule) -> None:
        """Check the data fits the model and keep the training label counts (call from ``setup``)."""
        data_classes = getattr(datamodule, "num_classes", None) if datamodule is not None else None
        if not self.conditional:
            return
        if datamodule is None:
            return  # a plain Trainer with bare dataloaders: batch_labels checks every batch instead
        if data_classes is None:
            raise ValueError(
                f"This model is conditional (num_classes={self.num_classes}) but {type(datamodule).__name__} "
                "gives no labels. Use a labelled dataset (and its label option, e.g. the sequence data's "
                "`condition`), or build the networks without `num_classes` for an unconditional model."
            )
        if data_classes != self.num_classes:
            raise ValueError(
                f"The data has {data_classes} classes but the model's networks were built with num_classes="
                f"{self.num_classes}; set the networks' `num_classes` to {data_classes}."
            )
        counts = getattr(datamodule, "label_counts", None)
        if callable(counts):
            counts = torch.as_tensor(counts(), dtype=torch.float32).flatten()
            if counts.numel() == self.num_classes and counts.sum() > 0:
                self.label_counts.copy_(counts.to(self.label_counts.device))

    def batch_labels(self, batch) -> torch.Tensor | None:
        """The labels of a training / validation batch (None for an unconditional model)."""
        if not self.conditional:
            return None
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError(
                f"This model is conditional (num_classes={self.num_classes}) but the batches carry no labels: "
                "give it a dataset that yields (x, label) pairs."
            )
        return self.check_labels(batch[1], batch[0].shape[0])

    def log_class_diversity(self, prefix: str, fake: torch.Tensor, real: torch.Tensor, labels) -> None:
        """Log ``<prefix>/class_diversity_pixels``: the within-class diversity of a validation batch's samples (drawn
        with its labels) against its real images, in pixel space
        (:func:`batch_class_diversity`), so a generator that draws one image per
        class shows while training, without a classifier (``ClassAccuracyMetric`` logs the feature-space figure).
        Unconditional models and batches without two items of a class log nothing; each rank logs its own
        batches' mean (no collective: a rank may have nothing to log)."""
        if labels is None or fake.dim() != 4:
            return

        value = batch_class_diversity(fake, real, labels)
        if value is not None:
            self.log(f"{prefix}/class_diversity_pixels", value, batch_size=len(labels), rank_zero_only=False)

    # -- sampling -----------------------------------------------------------------------------------
    def check_labels(self, labels, n: int) -> torch.Tensor:
        """``labels`` as an int64 tensor of shape (n,) on the model's device; a single label is repeated."""
        y = torch.as_tensor(labels, device=self.device)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"Labels must be integers in [0, {self.num_classes}), got dtype {y.dtype}.")
        y = y.long().flatten()
        if y.numel() == 1 and n != 1:
            y = y.expand(n)
        if y.numel() != n:
            raise ValueError(f"Got {y.numel()} labels for {n} samples: give one label per sample (or one for all).")
        if n and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            bad = y[(y < 0) | (y >= self.num_classes)][:5].tolist()
            raise ValueError(
                f"Labels must be in [0, {self.num_classes}) for this model, got {bad} (a -1 label means the "
                "source had none for that item)."
            )
        return y

    def labels_for(self, n: int, labels: torch.Tensor | Sequence[int] | int | None = None) -> torch.Tensor | None:
        """Labels for ``n`` samples: the given ones (checked), else drawn from the stored training label
        distribution; None for an unconditional model (which refuses labels)."""
        if not self.conditional:
            if labels is not None:
                raise ValueError(
                    "Labels were given but this model is unconditional (its networks have no num_classes): drop "
                    "the labels, or train a conditional model (a config with `num_classes`)."
                )
            return None
        if labels is not None:
            return self.check_labels(labels, n)
        if float(self.label_counts.sum()) <= 0:
            raise ValueError(
                f"This model is conditional (num_classes={self.num_classes}) and its checkpoint stores no label "
                "distribution to draw from: give the labels (e.g. `lightning-gen sample --labels 0,1,2`)."
            )
        return torch.multinomial(self.label_counts, n, replacement=True)


def batch_class_diversity(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """The within-class diversity of one validation batch in pixel space, on the device (per class, the mean
    pairwise distance of the generated items over that of the real ones, as
    :func:`lightning_gen.metrics.diversity.within_class_diversity` computes on features): ``fake`` drawn with the
    batch's own ``labels`` against the batch's ``real`` items (both (B, ...)). Needs no classifier, so every
    conditional model can log it; noisier and cruder than the feature-space figure, it still reads near 0 for a
    generator that draws one item per class. Classes with fewer than 2 items (or identical real items) in the batch
    are left out; None when no class is left."""
    fake, real = fake.detach().flatten(1).float(), real.detach().flatten(1).float()  # (B, P)
    ratios = []
    for c in labels.unique():
        mask = labels == c
        if int(mask.sum()) < 2:
            continue
        real_spread = torch.pdist(real[mask]).mean()
        if real_spread > 0:
            ratios.append(torch.pdist(fake[mask]).mean() / real_spread)
    return torch.stack(ratios).mean() if ratios else None
