"""TimeGAN's five networks (Yoon, Jarrett & van der Schaar 2019, "Time-series Generative Adversarial
Networks", NeurIPS, sec. 4; reference code github.com/jsyoon0823/TimeGAN, ``timegan.py``): embedder, recovery,
generator, supervisor and discriminator, each a stack of recurrent layers and a per-step linear layer."""

from __future__ import annotations

import torch
from torch import nn

from lightning_gen.nets.recurrent import Cell, Output, _activate, _check_output, make_rnn

__all__ = ["StepRNN", "TimeGANNetworks"]


class StepRNN(nn.Module):
    """A stacked recurrent network and a linear layer applied at every step: (B, T, input_size) to
    (B, T, output_size), through a sigmoid or not. Each of TimeGAN's networks is one (reference ``timegan.py``:
    ``tf.nn.dynamic_rnn`` over ``MultiRNNCell`` of ``num_layers`` cells, then ``tf.contrib.layers.fully_connected``).

    Args:
        input_size: features per input step.
        output_size: features per output step.
        hidden_size: recurrent width.
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        output: ``sigmoid`` (values in (0, 1)) or ``identity`` (logits).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 24,
        num_layers: int = 3,
        cell: Cell = "gru",
        output: Output = "sigmoid",
    ) -> None:
        super().__init__()
        _check_output(output)
        self.rnn = make_rnn(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, output_size)
        self.input_size, self.output_size, self.output = input_size, output_size, output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} wants (B, T, {self.input_size}), got {tuple(x.shape)}.")
        h, _ = self.rnn(x)  # (B, T, hidden_size)
        return _activate(self.output, self.head(h))  # (B, T, output_size)


class TimeGANNetworks(nn.Module):
    """TimeGAN's five networks, built from one set of sizes (the reference's ``hidden_dim``, ``num_layer`` and
    ``module``), so that a config or a sweep changes them together:

    - ``embedder`` e: data (B, T, D) to latent codes H (B, T, hidden_size), sigmoid (paper eq. 1);
    - ``recovery`` r: codes to data X~ (B, T, D), sigmoid: the data are min-max scaled to [0, 1] (eq. 2);
    - ``generator`` g: noise Z (B, T, noise_dim) to synthetic codes E^ (B, T, hidden_size), sigmoid (eq. 3);
    - ``supervisor`` s: codes to the next step's codes (B, T, hidden_size), sigmoid, ``num_layers - 1`` layers as in
      the reference (at least one);
    - ``discriminator`` d: codes to one logit per step (B, T) (eq. 4; the reference's ``d`` is unidirectional).

    The discriminator judges codes, never data, so its input is the latent space.

    Args:
        data_dim: features per step (D).
        hidden_size: width of every recurrent layer and of the latent codes (reference ``hidden_dim``: 24).
        num_layers: recurrent layers per network (reference ``num_layer``: 3).
        cell: ``gru`` (reference default), ``lstm`` or ``rnn``.
        noise_dim: features of the per-step noise (default: ``data_dim``, as the reference's ``z_dim = dim``).
    """

    def __init__(
        self,
        data_dim: int,
        hidden_size: int = 24,
        num_layers: int = 3,
        cell: Cell = "gru",
        noise_dim: int | None = None,
    ) -> None:
        super().__init__()
        if data_dim < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                f"data_dim, hidden_size and num_layers must be >= 1, got {data_dim}, {hidden_size}, {num_layers}."
            )
        noise_dim = data_dim if noise_dim is None else noise_dim
        if noise_dim < 1:
            raise ValueError(f"noise_dim must be >= 1 (or unset: data_dim), got {noise_dim}.")
        h, n = hidden_size, num_layers
        self.embedder = StepRNN(data_dim, h, h, n, cell, "sigmoid")
        self.recovery = StepRNN(h, data_dim, h, n, cell, "sigmoid")
        self.generator = StepRNN(noise_dim, h, h, n, cell, "sigmoid")
        self.supervisor = StepRNN(h, h, h, max(n - 1, 1), cell, "sigmoid")
        self.discriminator = StepRNN(h, 1, h, n, cell, "identity")
        self.data_dim, self.hidden_size, self.noise_dim = data_dim, hidden_size, noise_dim

    def noise(self, n: int, length: int, device=None) -> torch.Tensor:
        """Per-step noise (n, length, noise_dim), uniform on [0, 1) as the reference's ``random_generator``."""
        return torch.rand(n, length, self.noise_dim, device=device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Noise (B, T, noise_dim) to data (B, T, D): recovery(supervisor(generator(z)))."""
        return self.recovery(self.supervisor(self.generator(z)))

    def discriminate(self, h: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, hidden_size) to logits (B, T)."""
        return self.discriminator(h).squeeze(-1)  # (B, T, 1) -> (B, T)
