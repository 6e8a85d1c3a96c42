"""Min-max scaling of sequence data, and the scale a sequence model keeps in its checkpoint.

The lowest module of the package (it imports only torch and numpy): the DataModules scale with it, the
metrics put generated data through the same scaling, and the models keep a :class:`SequenceScale`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

EPS = 1e-7  # TimeGAN's MinMaxScaler adds the same to the denominator, so constant features do not divide by 0


def min_max_scale(x: np.ndarray, data_min: np.ndarray, data_max: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min + 1e-7) per feature, as TimeGAN's reference ``MinMaxScaler``."""
    return ((x - data_min) / (data_max - data_min + EPS)).astype(np.float32)


class SequenceScale(nn.Module):
    """What a model must know to return samples in the data's original scale, kept as buffers so it is
    saved in every checkpoint: per-feature ``data_min`` / ``data_max`` (D,) of the min-max scaling, and for
    piano rolls ``pitch_low`` (MIDI pitch of column 0; -1 for other data) and ``step`` (quarter notes per
    frame), and ``seq_len``, the training window length (the default length of samples; 0 until set). Models
    set it from the DataModule in ``setup`` (:meth:`copy_from`).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("data_min", torch.zeros(dim))
        self.register_buffer("data_max", torch.ones(dim))
        self.register_buffer("pitch_low", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("step", torch.tensor(0.5))
        self.register_buffer("seq_len", torch.tensor(0, dtype=torch.long))

    @property
    def is_piano_roll(self) -> bool:
        return int(self.pitch_low) >= 0

    def copy_from(self, datamodule) -> None:
        """Take the scaling (and piano-roll layout) of a :class:`SequenceDataModule` after its setup."""
        data_min = torch.as_tensor(datamodule.data_min, dtype=torch.float32)
        if data_min.shape != self.data_min.shape:
            raise ValueError(
                f"The data has {data_min.numel()} features per step but the model's networks use "
                f"{self.data_min.numel()}: set the networks' data_dim to {data_min.numel()}."
            )
        self.data_min.copy_(data_min)
        self.data_max.copy_(torch.as_tensor(datamodule.data_max, dtype=torch.float32))
        pitch_low = getattr(datamodule, "pitch_low", None)
        self.pitch_low.fill_(-1 if pitch_low is None else int(pitch_low))
        self.step.fill_(float(getattr(datamodule, "step", 0.5)))
        self.seq_len.fill_(int(datamodule.seq_len))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled (B, T, D) in [0, 1] back to the original scale (the inverse of :func:`min_max_scale`)."""
        return x * (self.data_max - self.data_min + EPS).to(x) + self.data_min.to(x)
