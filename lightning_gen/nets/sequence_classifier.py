"""A recurrent sequence classifier: the auxiliary classifier a class-conditional recurrent GAN can train beside its
discriminator (AC-GAN, Odena et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from lightning_gen.nets.recurrent import Cell, make_rnn, run_rnn


class RecurrentClassifier(nn.Module):
    """Sequence (B, T, D) to class logits (B, num_classes), reading sequences of different lengths packed.

    The final hidden states of every layer and direction (at each sequence's last real step) are concatenated
    and mapped linearly, as :class:`~lightning_gen.nets.sequence.RecurrentEncoder` summarises a sequence. It
    never reads a label: it is the class judge that an auxiliary-classifier GAN trains on real and generated
    sequences and whose cross-entropy the generator lowers (Odena et al. 2017, sec. 3).

    Args:
        data_dim: features per step.
        num_classes: classes (>= 2).
        hidden_size: recurrent width (per direction).
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        bidirectional: read the sequence both ways.
    """

    def __init__(
        self,
        data_dim: int = 5,
        num_classes: int = 2,
        hidden_size: int = 32,
        num_layers: int = 1,
        cell: Cell = "gru",
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
        self.data_dim, self.num_classes, self.cell = data_dim, num_classes, cell
        self.rnn = make_rnn(cell, data_dim, hidden_size, num_layers, bidirectional)
        self.head = nn.Linear(hidden_size * num_layers * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (B, num_classes) of ``x`` (B, T, D) of ``lengths`` (B,) (None: all T steps)."""
        if x.dim() != 3 or x.shape[-1] != self.data_dim:
            raise ValueError(f"RecurrentClassifier wants (B, T, {self.data_dim}), got {tuple(x.shape)}.")
        _, state = run_rnn(self.rnn, x, lengths)
        h = state[0] if self.cell == "lstm" else state  # (layers * directions, B, H)
        return self.head(h.transpose(0, 1).reshape(x.shape[0], -1))  # (B, C)
