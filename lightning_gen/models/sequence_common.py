"""What the three sequence models (LSTM-GAN, R-VAE, R-VAE-GAN) share: the data's scale kept in the
checkpoint, the default sample length, the optimizer step of :class:`ManualSteps`, the class condition of
:class:`Conditional`, and a cheap validation statistic comparing generated with real sequences."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from lightning_gen import lightning_internals as li
from lightning_gen.models.common import ManualSteps
from lightning_gen.models.conditional import Conditional
from lightning_gen.scaling import SequenceScale


def moment_gap(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean absolute gap between the per-(step, feature) means and standard deviations of two batches
    (B, T, D): 0 when generated sequences match the real ones' first two moments at every step."""
    t = min(real.shape[1], fake.shape[1])
    real, fake = real[:, :t], fake[:, :t]
    mean_gap = (real.mean(0) - fake.mean(0)).abs().mean()
    std_gap = (real.std(0) - fake.std(0)).abs().mean()
    return mean_gap + std_gap


class SequenceModel(Conditional, ManualSteps, pl.LightningModule):
    """Base of the sequence models: ``data_kind = "sequence"`` (the sample job writes sequences, and MIDI
    for piano rolls), and ``data_info`` (a :class:`SequenceScale`) set from the DataModule in ``setup``, so
    that a checkpoint alone can return samples in the data's original scale at the training length.

    A model is class-conditional when its networks are built with ``num_classes`` (``Conditional``): its
    batches are ``(x, y)``, one label per sequence, and ``sample(n, labels=...)`` makes sequences of the
    given classes (drawn from the training label counts when not given)."""

    data_kind = "sequence"

    def init_sequence_model(self, data_dim: int, clip_grad_norm: float | None, *nets) -> None:
        """Call in ``__init__`` after ``super().__init__()`` with every network (they must agree on
        ``num_classes``)."""
        self.init_conditional(*nets)
        self.automatic_optimization = False
        self.data_info = SequenceScale(data_dim)
        self.data_dim, self.clip_grad_norm = data_dim, clip_grad_norm

    def setup(self, stage: str) -> None:
        datamodule = getattr(li.attached_trainer(self), "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "data_min"):
            datamodule.setup(stage)
            self.data_info.copy_from(datamodule)
        self.store_label_distribution(datamodule)

    def sample_length(self, length: int | None) -> int:
        length = int(self.data_info.seq_len) if length is None else int(length)
        if length < 1:
            raise ValueError(
                "Give the sample length (length=L >= 1): this model has not been trained on data yet, so it has "
                "no default length."
            )
        return length

    def to_original(self, x: torch.Tensor) -> torch.Tensor:
        """Samples (B, T, D) in the model's [0, 1] scale back to the data's original scale."""
        return self.data_info.inverse(x)

    def log_moment_gap(self, real: torch.Tensor, prefix: str, labels: torch.Tensor | None = None) -> None:
        fake = self.sample(real.shape[0], length=real.shape[1], labels=labels)
        self.log(f"{prefix}/moment_gap", moment_gap(real, fake), sync_dist=True, prog_bar=prefix == "val")
