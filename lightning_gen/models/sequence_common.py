"""What the three sequence models (LSTM-GAN, R-VAE, R-VAE-GAN) share: the data's scale kept in the
checkpoint, the default sample length, the training length distribution generated sequences draw their lengths
from, the optimizer step of :class:`ManualSteps`, the class condition of :class:`Conditional`, and a cheap
validation statistic comparing generated with real sequences."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_gen import lightning_internals as li
from lightning_gen.models.common import ManualSteps
from lightning_gen.models.conditional import Conditional
from lightning_gen.scaling import SequenceScale


def masked_moments(x: torch.Tensor, lengths: torch.Tensor | None, unbiased: bool = True):
    """Per-(step, feature) variance and mean over the batch (T, D) each, of the sequences still running at each
    step (those whose length exceeds it): padding never enters a moment."""
    if lengths is None:
        return torch.var_mean(x, dim=0, unbiased=unbiased)
    mask = (torch.arange(x.shape[1], device=x.device) < lengths.to(x.device)[:, None]).to(x.dtype).unsqueeze(-1)
    count = mask.sum(0)  # (T, 1)
    mean = (x * mask).sum(0) / count.clamp(min=1)
    var = ((x - mean).pow(2) * mask).sum(0) / (count - (1 if unbiased else 0)).clamp(min=1)
    return var, mean


def moment_gap(real: torch.Tensor, fake: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute gap between the per-(step, feature) means and standard deviations of two batches
    (B, T, D): 0 when generated sequences match the real ones' first two moments at every step. With
    ``lengths`` (B,), shared by both batches, only the real steps count."""
    t = min(real.shape[1], fake.shape[1])
    real, fake = real[:, :t], fake[:, :t]
    (real_var, real_mean), (fake_var, fake_mean) = masked_moments(real, lengths), masked_moments(fake, lengths)
    mean_gap = (real_mean - fake_mean).abs().mean()
    std_gap = (real_var.sqrt() - fake_var.sqrt()).abs().mean()
    return mean_gap + std_gap


def batch_lengths(batch) -> torch.Tensor | None:
    """The lengths (B,) of a variable-length batch, whose last item is the bool mask (B, T) of the real steps
    (:class:`~lightning_gen.data.sequence_base.SequenceDataModule`); None for fixed-length batches."""
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        mask = batch[-1]
        if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.dim() == 2:
            lengths = mask.sum(1)
            if bool((lengths < 1).any()):
                raise ValueError("A batch holds an empty sequence (its mask has no real step).")
            return lengths
    return None


def real_steps(logits: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """A discriminator's logits without those of padding: per-step logits (B, T) to the real steps' (sum of
    lengths,), per-sequence logits (B,) as they are."""
    if lengths is None or logits.dim() < 2:
        return logits
    return logits[torch.arange(logits.shape[1], device=logits.device) < lengths.to(logits.device)[:, None]]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Steps past each sequence's length set to 0 (B, T, D), as the data's padding."""
    if lengths is None:
        return x
    return x * (torch.arange(x.shape[1], device=x.device) < lengths.to(x.device)[:, None]).to(x.dtype).unsqueeze(-1)


class LengthDistribution(nn.Module):
    """The training sequences' length distribution, per class for a conditional model, kept as buffers so that a
    checkpoint alone generates sequences of the data's lengths: ``counts`` (rows, capacity), how many training
    sequences have a length in each bin of ``bin_width`` steps (one step a bin, exact, up to ``capacity - 1``
    steps; longer data gets wider bins, and a length is then drawn uniformly inside its bin). ``bin_width`` 0:
    fixed-length data, the model generates its training length. Fixed shapes, so a checkpoint's weights always fit
    the model its config builds.

    A generated sequence's length is drawn from it before the sequence is generated, as TimeGAN's reference code
    does (``timegan.py``: ``T`` of the generated batch is the real data's lengths, ``extract_time`` in ``utils.py``);
    an end-of-sequence signal would be the other way (not built here).

    Args:
        rows: 1, or the number of classes of a conditional model (a distribution per class).
        capacity: bins kept.
    """

    def __init__(self, rows: int = 1, capacity: int = 512) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(rows, capacity))
        self.register_buffer("bin_width", torch.tensor(0, dtype=torch.long))

    @property
    def variable(self) -> bool:
        return int(self.bin_width) > 0

    def set(self, counts) -> None:
        """From counts per length (longest + 1,) or (rows, longest + 1) (index: the length)."""
        counts = torch.as_tensor(counts, dtype=torch.float32).reshape(-1, np.shape(counts)[-1])
        rows, capacity = self.counts.shape
        if counts.shape[0] not in (1, rows):
            raise ValueError(f"Length counts for {counts.shape[0]} classes, the model has {rows}.")
        width = -(-counts.shape[1] // capacity)  # ceil
        padded = torch.nn.functional.pad(counts, (0, width * capacity - counts.shape[1]))
        binned = padded.view(counts.shape[0], capacity, width).sum(-1)  # (rows, capacity)
        self.counts.copy_(binned.expand(rows, -1).to(self.counts))
        self.bin_width.fill_(width)

    def sample(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` lengths (n,) int64 >= 1: of each label's class for a per-class distribution, else of all sequences."""
        counts = self.counts
        if labels is None or counts.shape[0] == 1:
            bins = torch.multinomial(counts.sum(0), n, replacement=True)
        else:
            rows = counts[labels.to(counts.device).long()]  # (n, capacity)
            empty = rows.sum(1) == 0  # a class without training sequences: the pooled distribution
            rows[empty] = counts.sum(0)
            bins = torch.multinomial(rows, 1).squeeze(1)
        width = int(self.bin_width)
        offset = torch.randint(0, width, (n,), device=bins.device) if width > 1 else 0
        return (bins * width + offset).clamp(min=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "bin_width" not in state_dict:  # a checkpoint written before lengths were kept: fixed-length
            state_dict = {**state_dict, prefix + "counts": self.counts, prefix + "bin_width": self.bin_width}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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
        self.length_distribution = LengthDistribution(self.num_classes or 1)
        self.data_dim, self.clip_grad_norm = data_dim, clip_grad_norm

    def setup(self, stage: str) -> None:
        datamodule = getattr(li.attached_trainer(self), "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "data_min"):
            datamodule.setup(stage)
            self.data_info.copy_from(datamodule)
            if getattr(datamodule, "variable_length", False):
                counts = datamodule.length_counts()  # (classes, longest + 1) for labelled data
                pooled = counts.reshape(-1, counts.shape[-1]).sum(0)
                self.length_distribution.set(counts if self.conditional else pooled)
        self.store_label_distribution(datamodule)

    def optional_state_keys(self) -> tuple[str, ...]:
        """State a checkpoint written before lengths were kept lacks: it loads as a fixed-length model."""
        return ("length_distribution.counts", "length_distribution.bin_width")

    @property
    def variable_length(self) -> bool:
        """Whether the model was trained on sequences of different lengths (it then generates such sequences)."""
        return self.length_distribution.variable

    def sample_lengths(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` lengths drawn from the training length distribution (of each label's class for a conditional
        model); the training length for a model trained on fixed-length data."""
        if not self.variable_length:
            return torch.full((n,), self.sample_length(None), dtype=torch.long, device=self.device)
        return self.length_distribution.sample(n, labels).to(self.device)

    def generation_lengths(self, n: int, length, lengths, labels) -> tuple[int, torch.Tensor | None]:
        """The steps to generate and the lengths of the sequences (None: all of the steps): ``length`` forces
        one length; else ``lengths`` (n,), given or, for a model trained on sequences of different lengths,
        drawn from the training length distribution."""
        if length is not None or (lengths is None and not self.variable_length):
            return self.sample_length(length), None
        lengths = self.sample_lengths(n, labels) if lengths is None else torch.as_tensor(lengths, device=self.device)
        if lengths.shape != (n,) or bool((lengths < 1).any()):
            raise ValueError(f"lengths must be {n} integers >= 1, got shape {tuple(lengths.shape)}.")
        return int(lengths.max()), lengths.long()

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

    def log_moment_gap(
        self, real: torch.Tensor, prefix: str, labels: torch.Tensor | None = None, lengths=None, fake=None
    ) -> None:
        if fake is None:
            fake = self.sample(real.shape[0], length=real.shape[1], labels=labels)
        self.log(f"{prefix}/moment_gap", moment_gap(real, fake, lengths), sync_dist=True, prog_bar=prefix == "val")

    def evaluation_fakes(self, real: torch.Tensor, labels, lengths) -> torch.Tensor:
        """Generated sequences for a validation batch: its length, or its sequences' lengths (padding zeroed)."""
        if lengths is None:
            return self.sample(real.shape[0], length=real.shape[1], labels=labels)
        fake = self.sample(real.shape[0], labels=labels, lengths=lengths)  # (B, max(lengths), D)
        return torch.nn.functional.pad(fake, (0, 0, 0, real.shape[1] - fake.shape[1]))  # (B, T, D)
