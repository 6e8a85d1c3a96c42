"""Recurrent networks that write four voices: one pitch per voice and step, drawn from a softmax per voice.

Chorales as voices (``ChoralesDataModule(representation='voices')``) are one-hot pitches, (B, T, V * K): voice v's
pitch in columns ``v * K .. (v + 1) * K - 1``. A piano-roll network draws every column as an independent Bernoulli
variable, so a step can hold any number of notes per voice and the lines jump; these networks draw exactly one
pitch per voice from a categorical distribution, as DeepBach (Hadjeres et al. 2017) and Coconet (Huang et al.
2017) model each voice's pitch with a softmax.

They plug into the models written for piano rolls unchanged. The head returns, for every column, the logit of
the softmax probability, ``log p - log(1 - p)``, so ``sigmoid(raw)`` is the softmax and the models' Bernoulli
likelihood (binary cross-entropy on these logits) becomes ``-sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)]``: the
categorical cross-entropy plus a term on the wrong pitches, a sum of proper scoring rules whose minimum is still the
true distribution (each term is minimal at ``p = q``, which sums to one). "Binary" samples are one-hot draws per
voice, straight-through (Bengio et al. 2013) under gradients, so a discriminator sees one-hot voices like the real
ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_gen.nets.recurrent import Cell
from lightning_gen.nets.sequence import LSTMGenerator, RecurrentDecoder

__all__ = ["VoiceDecoder", "VoiceGenerator", "VoiceHead", "sample_voices"]


def check_voices(voices: int, pitches: int, temperature: float) -> None:
    if voices < 1 or pitches < 2:
        raise ValueError(f"voices must be >= 1 and pitches >= 2, got {voices} and {pitches}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (1: the model's own distribution), got {temperature}.")


class VoiceHead(nn.Module):
    """Hidden state (..., H) to per-column logits of a softmax per voice (..., voices * pitches): ``logit(p)``,
    so that ``sigmoid`` of the output is each voice's pitch distribution."""

    def __init__(self, hidden_size: int, voices: int = 4, pitches: int = 58) -> None:
        super().__init__()
        self.voices, self.pitches = voices, pitches
        self.linear = nn.Linear(hidden_size, voices * pitches)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        log_p = self.linear(h).unflatten(-1, (self.voices, self.pitches)).log_softmax(-1)  # (..., V, K)
        log_not_p = torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))  # log(1 - p), exact near p = 1
        return (log_p - log_not_p).flatten(-2)  # (..., V * K)


def sample_voices(raw: torch.Tensor, voices: int, temperature: float = 1.0) -> torch.Tensor:
    """One-hot pitches (..., voices * K), one per voice, drawn from the distributions whose per-column logits are
    ``raw`` (:class:`VoiceHead`), sharpened by ``temperature`` < 1; straight-through under gradients."""
    log_p = F.logsigmoid(raw).unflatten(-1, (voices, -1))  # (..., V, K): log p of each voice's pitches
    index = torch.distributions.Categorical(logits=log_p.detach() / temperature).sample()  # (..., V)
    hard = F.one_hot(index, log_p.shape[-1]).to(raw.dtype).flatten(-2)  # (..., V * K)
    if not torch.is_grad_enabled():
        return hard
    p = log_p.softmax(-1).flatten(-2)  # renormalised: the head's sigmoid sums to 1 up to rounding
    return hard + (p - p.detach())


class VoiceDecoder(RecurrentDecoder):
    """:class:`~lightning_gen.nets.sequence.RecurrentDecoder` that writes ``voices`` one-hot pitches per step
    (``data_dim = voices * pitches``): a softmax per voice (:class:`VoiceHead`); with ``binary=True`` (the models'
    Bernoulli likelihood) each step's values are one pitch per voice drawn from it and fed back.

    Args:
        latent_dim: size of z.
        voices: voices per step (4: soprano, alto, tenor, bass).
        pitches: pitches per voice (K, ``pitch_high - pitch_low + 1`` of the data).
        hidden_size, num_layers, cell, num_classes, label_dim, step_noise_dim: as for ``RecurrentDecoder``.
        temperature: sharpens (< 1) or flattens (> 1) the pitch distributions when sampling in eval mode
            (training always draws at 1).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        voices: int = 4,
        pitches: int = 58,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: Cell = "gru",
        num_classes: int | None = None,
        label_dim: int = 8,
        step_noise_dim: int = 0,
        temperature: float = 1.0,
    ) -> None:
        check_voices(voices, pitches, temperature)
        super().__init__(
            latent_dim=latent_dim, data_dim=voices * pitches, hidden_size=hidden_size, num_layers=num_layers,
            cell=cell, output="sigmoid", feed_previous=True, num_classes=num_classes, label_dim=label_dim,
            step_noise_dim=step_noise_dim,
        )  # fmt: skip
        self.voices, self.pitches, self.temperature = voices, pitches, temperature
        self.head = VoiceHead(hidden_size, voices, pitches)

    def values(self, raw: torch.Tensor, binary: bool = False) -> torch.Tensor:
        """One-hot pitches drawn per voice when ``binary``, else each voice's pitch probabilities."""
        if not binary:
            return self.activate(raw)
        return sample_voices(raw, self.voices, 1.0 if self.training else self.temperature)


class VoiceGenerator(LSTMGenerator):
    """:class:`~lightning_gen.nets.sequence.LSTMGenerator` (C-RNN-GAN style, fed back its previous output) that
    writes ``voices`` one-hot pitches per step (``data_dim = voices * pitches``), drawn from a softmax per voice
    (:class:`VoiceHead`) and fed back; its teacher-forced ``next_step_loss`` is the per-voice likelihood.

    Args:
        latent_dim: per-step noise size.
        voices: voices per step (4: soprano, alto, tenor, bass).
        pitches: pitches per voice (K, ``pitch_high - pitch_low + 1`` of the data).
        hidden_size, num_layers, cell, sequence_latent_dim, num_classes, label_dim: as for ``LSTMGenerator``.
        temperature: sharpens (< 1) or flattens (> 1) the pitch distributions when sampling in eval mode.
    """

    def __init__(
        self,
        latent_dim: int = 8,
        voices: int = 4,
        pitches: int = 58,
        hidden_size: int = 64,
        num_layers: int = 2,
        cell: Cell = "lstm",
        sequence_latent_dim: int = 0,
        num_classes: int | None = None,
        label_dim: int = 8,
        temperature: float = 1.0,
    ) -> None:
        check_voices(voices, pitches, temperature)
        super().__init__(
            latent_dim=latent_dim, data_dim=voices * pitches, hidden_size=hidden_size, num_layers=num_layers,
            cell=cell, feed_previous=True, output="bernoulli", sequence_latent_dim=sequence_latent_dim,
            num_classes=num_classes, label_dim=label_dim,
        )  # fmt: skip
        self.voices, self.pitches, self.temperature = voices, pitches, temperature
        self.head = VoiceHead(hidden_size, voices, pitches)

    def _emit(self, raw: torch.Tensor) -> torch.Tensor:
        return sample_voices(raw, self.voices, 1.0 if self.training else self.temperature)
