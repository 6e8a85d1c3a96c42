"""Recurrent networks that write four voices: one pitch per voice and step, each voice drawn from a softmax given
the past and the voices above it in the same step.

Chorales as voices (``ChoralesDataModule(representation='voices')``) are one-hot pitches, (B, T, V * K): voice v's
pitch in columns ``v * K .. (v + 1) * K - 1``. A piano-roll network draws every column as an independent Bernoulli
variable, so a step can hold any number of notes per voice and the lines jump; these networks draw exactly one
pitch per voice from a categorical distribution, as DeepBach (Hadjeres et al. 2017) and Coconet (Huang et al.
2017) model each voice's pitch with a softmax. Voices drawn independently given the past still clash (the alto
moves to F while the soprano moves to E), so within a step the voices are drawn in order, soprano first, each
conditioned on those already drawn: the chain rule over a step's notes of RNN-NADE (Boulanger-Lewandowski et al.
2012), with a masked layer as MADE (Germain et al. 2015) so that teacher forcing needs one pass.

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

from lightning_gen.nets.recurrent import Cell, with_labels
from lightning_gen.nets.sequence import LSTMGenerator, RecurrentDecoder

__all__ = ["VoiceDecoder", "VoiceGenerator", "VoiceHead", "binary_logits", "sample_voice"]


def check_voices(voices: int, pitches: int, chord_size: int, temperature: float) -> None:
    if voices < 1 or pitches < 2 or chord_size < 0:
        raise ValueError(f"voices must be >= 1, pitches >= 2, chord_size >= 0; got {voices}, {pitches}, {chord_size}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (1: the model's own distribution), got {temperature}.")


def binary_logits(log_p: torch.Tensor) -> torch.Tensor:
    """``log p - log(1 - p)`` of log-probabilities: the logits whose sigmoid is ``p``."""
    return log_p - torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))  # log(1 - p), exact near p = 1


def sample_voice(log_p: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One-hot pitches (..., K) drawn from log-probabilities (..., K), sharpened by ``temperature`` < 1;
    straight-through (the probabilities' gradient) when gradients are on."""
    index = torch.distributions.Categorical(logits=log_p.detach() / temperature).sample()  # (...,)
    hard = F.one_hot(index, log_p.shape[-1]).to(log_p.dtype)  # (..., K)
    if not torch.is_grad_enabled():
        return hard
    p = log_p.exp()
    return hard + (p - p.detach())


class VoiceHead(nn.Module):
    """Hidden state (..., H) to each voice's pitch distribution, voice v given the state and the step's voices
    before it (``chord_size`` > 0; 0: the voices are independent given the state).

    ``forward(h, x)`` scores a step's voices ``x`` (..., V * K) (teacher forcing: each voice's distribution given the
    real voices above it) and returns per-column logits ``logit(p)`` (:func:`binary_logits`); :meth:`sample` draws
    the voices in order and returns the logits of the distributions they were drawn from and the one-hot voices.

    Voice v's logits are ``A_v h + B_v relu(C_v h + D_v x_{<v})``: a masked layer (MADE, Germain et al. 2015)
    whose block for voice v reads only voices 0..v-1, so a pitch pair's fit (an interval) and whether a voice
    moves with those above it are learnt.
    """

    def __init__(self, hidden_size: int, voices: int = 4, pitches: int = 58, chord_size: int = 64) -> None:
        super().__init__()
        self.voices, self.pitches, self.chord_size = voices, pitches, chord_size
        self.direct = nn.Linear(hidden_size, voices * pitches)
        if chord_size:
            self.context = nn.Linear(hidden_size, voices * chord_size)
            self.within = nn.Linear(voices * pitches, voices * chord_size, bias=False)
            above = torch.arange(voices)[:, None] > torch.arange(voices)[None, :]  # (V out, V in): v reads v' < v
            mask = above.repeat_interleave(chord_size, 0).repeat_interleave(pitches, 1)  # (V * C, V * K)
            self.register_buffer("mask", mask.float(), persistent=False)
            self.out = nn.Parameter(torch.randn(voices, chord_size, pitches) / chord_size**0.5)  # (V, C, K)

    def _log_p(self, h: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """Log-probabilities (..., V, K) of every voice given ``h`` and the step's voices ``x`` (only voices before
        each one are read)."""
        logits = self.direct(h).unflatten(-1, (self.voices, self.pitches))  # (..., V, K)
        if self.chord_size:
            inner = self.context(h)
            if x is not None:
                inner = inner + F.linear(x, self.within.weight * self.mask)  # (..., V * C)
            inner = torch.relu(inner).unflatten(-1, (self.voices, self.chord_size))  # (..., V, C)
            logits = logits + torch.einsum("...vc,vck->...vk", inner, self.out)
        return logits.log_softmax(-1)

    def forward(self, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return binary_logits(self._log_p(h, x)).flatten(-2)  # (..., V * K)

    def sample(self, h: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-column logits and one-hot voices (..., V * K), the voices drawn one after the other."""
        if not self.chord_size:  # independent given h: all at once
            log_p = self._log_p(h, None)  # (..., V, K)
            return binary_logits(log_p).flatten(-2), sample_voice(log_p, temperature).flatten(-2)
        x = h.new_zeros(*h.shape[:-1], self.voices * self.pitches)  # voices not drawn yet are masked out anyway
        drawn, k = [], self.pitches
        for v in range(self.voices):
            log_p = self._log_p(h, x)  # (..., V, K)
            one_hot = sample_voice(log_p[..., v, :], temperature)  # (..., K)
            drawn.append(one_hot)
            x = torch.cat([*drawn, x[..., (v + 1) * k :]], dim=-1)  # voices 0..v drawn, the rest zero
        return binary_logits(log_p).flatten(-2), x


class VoiceDecoder(RecurrentDecoder):
    """:class:`~lightning_gen.nets.sequence.RecurrentDecoder` that writes ``voices`` one-hot pitches per step
    (``data_dim = voices * pitches``) with a :class:`VoiceHead`; with ``binary=True`` (the models' Bernoulli
    likelihood) each step's values are one pitch per voice, drawn voice by voice and fed back. With a target and
    teacher forcing, the logits score the real voices (each given the real voices above it): the likelihood.

    Args:
        latent_dim: size of z.
        voices: voices per step (4: soprano, alto, tenor, bass).
        pitches: pitches per voice (K, ``pitch_high - pitch_low + 1`` of the data).
        hidden_size, num_layers, cell, num_classes, label_dim, step_noise_dim: as for ``RecurrentDecoder``.
        chord_size: width of the layer through which a voice reads the voices above it in the same step
            (0: voices independent given the past).
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
        chord_size: int = 64,
        temperature: float = 1.0,
    ) -> None:
        check_voices(voices, pitches, chord_size, temperature)
        super().__init__(
            latent_dim=latent_dim, data_dim=voices * pitches, hidden_size=hidden_size, num_layers=num_layers,
            cell=cell, output="sigmoid", feed_previous=True, num_classes=num_classes, label_dim=label_dim,
            step_noise_dim=step_noise_dim,
        )  # fmt: skip
        self.voices, self.pitches, self.temperature = voices, pitches, temperature
        self.head = VoiceHead(hidden_size, voices, pitches, chord_size)

    def _outputs(self, h: torch.Tensor, target: torch.Tensor | None, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-column logits (of the real voices ``target`` where given: the likelihood) and the decoder's own
        values: one-hot voices drawn voice by voice when ``binary``, else the probabilities they were drawn from."""
        raw, one_hot = self.head.sample(h, 1.0 if self.training else self.temperature)
        values = one_hot if binary else torch.sigmoid(raw)
        return (raw if target is None else self.head(h, target)), values


class VoiceGenerator(LSTMGenerator):
    """:class:`~lightning_gen.nets.sequence.LSTMGenerator` (C-RNN-GAN style, fed back its previous output) that
    writes ``voices`` one-hot pitches per step (``data_dim = voices * pitches``) with a :class:`VoiceHead`, drawn
    voice by voice and fed back; its teacher-forced ``next_step_loss`` is the voices' likelihood (each voice given
    the past and the real voices above it).

    Args:
        latent_dim: per-step noise size.
        voices: voices per step (4: soprano, alto, tenor, bass).
        pitches: pitches per voice (K, ``pitch_high - pitch_low + 1`` of the data).
        hidden_size, num_layers, cell, sequence_latent_dim, num_classes, label_dim: as for ``LSTMGenerator``.
        chord_size: width of the layer through which a voice reads the voices above it (0: independent voices).
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
        chord_size: int = 64,
        temperature: float = 1.0,
    ) -> None:
        check_voices(voices, pitches, chord_size, temperature)
        super().__init__(
            latent_dim=latent_dim, data_dim=voices * pitches, hidden_size=hidden_size, num_layers=num_layers,
            cell=cell, feed_previous=True, output="bernoulli", sequence_latent_dim=sequence_latent_dim,
            num_classes=num_classes, label_dim=label_dim,
        )  # fmt: skip
        self.voices, self.pitches, self.temperature = voices, pitches, temperature
        self.head = VoiceHead(hidden_size, voices, pitches, chord_size)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self._check(z)
        state, inputs = self._state(z), with_labels(self, z, labels)  # (B, T, noise_dim [+ label_dim])
        prev, outputs = z.new_zeros(z.shape[0], 1, self.data_dim), []  # (B, 1, D)
        temperature = 1.0 if self.training else self.temperature
        for t in range(z.shape[1]):
            h, state = self.rnn(torch.cat([inputs[:, t : t + 1], prev], dim=-1), state)  # h: (B, 1, H)
            prev = self.head.sample(h, temperature)[1]  # (B, 1, D): one-hot voices, fed back as drawn
            outputs.append(prev)
        return torch.cat(outputs, dim=1)  # (B, T, D)

    def next_step_prediction(
        self, z: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced one-call pass: step t reads the real ``target[:, t - 1]`` and scores the real voices of
        step t (each given the real voices above it). Returns per-column logits (B, T, D)."""
        self._check(z)
        prev = torch.cat([target.new_zeros(target.shape[0], 1, self.data_dim), target[:, :-1]], dim=1)  # (B, T, D)
        inputs = torch.cat([with_labels(self, z, labels), prev], dim=-1)
        return self.head(self.rnn(inputs, self._state(z))[0], target)  # (B, T, D)
