"""Recurrent networks for sequences shaped (B, T, D): generator, discriminator, encoder, decoder.

Every network states its sizes as constructor arguments and exposes them as attributes (``data_dim``,
``latent_dim``, ``hidden_size``), so a model can check that its parts fit together. Generators and decoders
are causal (step t never sees inputs after t) and run step by step when they feed back their own output,
so they can make sequences of any length, longer than the training windows.

Built with ``num_classes`` (an int >= 2), a network is class-conditional: it takes ``labels`` (B,) int64 and
reads an embedding of the label (``label_dim`` features) beside its input at every step
(:class:`~lightning_gen.nets.recurrent.StepLabels`). Without it (the default) nothing changes.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lightning_gen.nets.recurrent import (
    Cell,
    CPUAutocastSafeLSTM,
    GeneratorOutput,
    Output,
    _activate,
    _check_output,
    _init_state,
    _straight_through_bernoulli,
    make_rnn,
    make_step_labels,
    run_rnn,
    step_mask,
    with_labels,
)

__all__ = [
    "CPUAutocastSafeLSTM",
    "LSTMGenerator",
    "RecurrentDecoder",
    "RecurrentDiscriminator",
    "RecurrentEncoder",
    "ResidualNoise",
]

OutputNoise = Literal["none", "residuals"]


class LSTMGenerator(nn.Module):
    """Noise to data sequence (B, T, data_dim), C-RNN-GAN style (Mogren 2016), with a per-sequence latent.

    The noise (B, T, noise_dim) holds fresh per-step noise (``latent_dim`` features) and, when
    ``sequence_latent_dim > 0``, a per-sequence latent repeated at every step (last features; make it with
    :meth:`noise`). The per-sequence latent also sets the initial hidden state, as z does in a recurrent VAE
    decoder (Bowman et al. 2016, sec. 3): a sequence's global traits (a sine's frequency and phase, a chorale's
    key) come from one draw instead of being rebuilt from independent per-step noise, which at initialisation
    barely reaches the output (a sines model's first samples were nearly constant). RCGAN and TimeGAN feed
    per-step noise only; QuantGAN / the recurrent VAE decoders use the global code.

    With ``feed_previous`` the generator also reads its own previous output (Mogren 2016, sec. 3: "each cell
    ... receives a random vector concatenated with the output of the previous cell"), which needs a step-by-step
    loop; without it the whole sequence runs in one call. Only a feed-back generator can be teacher-forced
    (:meth:`next_step_prediction`: the supervised next-step loss and the maximum-likelihood pretraining).

    Args:
        latent_dim: per-step noise size.
        data_dim: features per step (D).
        hidden_size: recurrent width.
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        feed_previous: also feed the previous output (zeros at t = 0) as input.
        output: ``identity`` (real values, no saturation), ``sigmoid`` (values in [0, 1]; it can saturate:
            an adversarially trained generator's outputs collapsed towards 0 on sines) or ``bernoulli`` (binary
            data such as piano rolls: a binary sample at every step, fed back when ``feed_previous``,
            straight-through gradients).
        sequence_latent_dim: size of the per-sequence latent (0: none).
        num_classes: classes of a conditional generator (None: unconditional).
        label_dim: size of the label embedding read at every step (conditional only).
    """

    def __init__(
        self,
        latent_dim: int = 8,
        data_dim: int = 5,
        hidden_size: int = 64,
        num_layers: int = 2,
        cell: Cell = "lstm",
        feed_previous: bool = True,
        output: GeneratorOutput = "sigmoid",
        sequence_latent_dim: int = 0,
        num_classes: int | None = None,
        label_dim: int = 8,
    ) -> None:
        super().__init__()
        if output not in ("sigmoid", "identity", "bernoulli"):
            raise ValueError(f"output={output!r}: choose 'identity', 'sigmoid' (data in [0, 1]) or 'bernoulli'.")
        if latent_dim < 0 or sequence_latent_dim < 0 or latent_dim + sequence_latent_dim < 1:
            raise ValueError(
                f"latent_dim and sequence_latent_dim must be >= 0 and not both 0, got {latent_dim}, "
                f"{sequence_latent_dim}."
            )
        self.latent_dim, self.data_dim, self.hidden_size = latent_dim, data_dim, hidden_size
        self.sequence_latent_dim, self.noise_dim = sequence_latent_dim, latent_dim + sequence_latent_dim
        self.cell, self.num_layers, self.feed_previous, self.output = cell, num_layers, feed_previous, output
        self.num_classes, self.label_embedding = num_classes, make_step_labels(num_classes, label_dim)
        step_input = self.noise_dim + (label_dim if num_classes else 0) + (data_dim if feed_previous else 0)
        self.rnn = make_rnn(cell, step_input, hidden_size, num_layers)
        self.init_hidden = nn.Linear(sequence_latent_dim, hidden_size * num_layers) if sequence_latent_dim else None
        self.head = nn.Linear(hidden_size, data_dim)

    def noise(self, n: int, length: int, device=None) -> torch.Tensor:
        """(n, length, noise_dim): fresh N(0, I) per step, then the per-sequence latent repeated over steps."""
        per_step = torch.randn(n, length, self.latent_dim, device=device)
        per_sequence = torch.randn(n, 1, self.sequence_latent_dim, device=device).expand(-1, length, -1)
        return torch.cat([per_step, per_sequence], dim=-1)

    def _state(self, z: torch.Tensor):
        if self.init_hidden is None:
            return None
        b = z.shape[0]
        h0 = torch.tanh(self.init_hidden(z[:, 0, self.latent_dim :]))  # (B, L * H)
        h0 = h0.view(b, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()  # (L, B, H)
        return _init_state(self.cell, h0)

    def _emit(self, raw: torch.Tensor) -> torch.Tensor:
        if self.output == "bernoulli":
            return _straight_through_bernoulli(raw)
        return _activate(self.output, raw)

    def _check(self, z: torch.Tensor) -> None:
        if z.dim() != 3 or z.shape[-1] != self.noise_dim:
            raise ValueError(f"LSTMGenerator wants noise (B, T, {self.noise_dim}), got {tuple(z.shape)}.")

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self._check(z)
        state, inputs = self._state(z), with_labels(self, z, labels)  # (B, T, noise_dim [+ label_dim])
        if not self.feed_previous:
            return self._emit(self.head(self.rnn(inputs, state)[0]))  # (B, T, D)
        prev = z.new_zeros(z.shape[0], 1, self.data_dim)  # (B, 1, D)
        outputs = []
        for t in range(z.shape[1]):
            h, state = self.rnn(torch.cat([inputs[:, t : t + 1], prev], dim=-1), state)  # h: (B, 1, H)
            prev = self._emit(self.head(h))  # (B, 1, D); binary samples are fed back as sampled
            outputs.append(prev)
        return torch.cat(outputs, dim=1)  # (B, T, D)

    def next_step_prediction(
        self, z: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced one-call pass: step t reads the real ``target[:, t - 1]`` (zeros at t = 0) and
        predicts step t. Returns the raw outputs (B, T, D): logits for ``bernoulli``, else pre-activation."""
        self._check(z)
        if not self.feed_previous:
            raise ValueError("next_step_prediction needs a generator with feed_previous=True (it reads x_{t-1}).")
        prev = torch.cat([target.new_zeros(target.shape[0], 1, self.data_dim), target[:, :-1]], dim=1)  # (B, T, D)
        inputs = torch.cat([with_labels(self, z, labels), prev], dim=-1)
        return self.head(self.rnn(inputs, self._state(z))[0])  # (B, T, D)

    def next_step_loss(
        self, z: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None, lengths=None
    ) -> torch.Tensor:
        """Negative log-likelihood of real sequences under teacher forcing, per value: binary cross-entropy
        for ``bernoulli``, squared error (Gaussian, fixed variance) otherwise; over the real steps of sequences
        of ``lengths`` (B,) (None: every step)."""
        raw = self.next_step_prediction(z, target, labels)
        if self.output == "bernoulli":
            values = nn.functional.binary_cross_entropy_with_logits(raw, target, reduction="none")
        else:
            values = (_activate(self.output, raw) - target).pow(2)
        mask = step_mask(lengths, target.shape[1], values)
        return values.mean() if mask is None else (values * mask).sum() / (mask.sum() * values.shape[-1])


class RecurrentDiscriminator(nn.Module):
    """Sequence (B, T, D) to logits: per step (B, T) or one per sequence (B,); bidirectional by default.

    C-RNN-GAN's discriminator is a bidirectional LSTM deciding at every step (Mogren 2016, sec. 3); with
    ``per_step=False`` the last forward and first backward hidden states decide for the whole sequence.
    ``features(x)`` returns the top layer's hidden states (B, T, H * directions): used for feature matching
    (Salimans et al. 2016, sec. 3.1) and for the VAE-GAN's feature-wise reconstruction (Larsen et al. 2016).

    Args:
        data_dim: features per step.
        hidden_size: recurrent width (per direction).
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        bidirectional: read the sequence both ways.
        per_step: one logit per step (True) or per sequence (False).
        num_classes: classes of a conditional discriminator (None: unconditional): the label's embedding is
            read beside x at every step, so D judges whether x is real *for that class*.
        label_dim: size of the label embedding (conditional only).
    """

    def __init__(
        self,
        data_dim: int = 5,
        hidden_size: int = 64,
        num_layers: int = 2,
        cell: Cell = "lstm",
        bidirectional: bool = True,
        per_step: bool = True,
        num_classes: int | None = None,
        label_dim: int = 8,
    ) -> None:
        super().__init__()
        self.data_dim, self.hidden_size, self.per_step = data_dim, hidden_size, per_step
        self.bidirectional = bidirectional
        self.num_classes, self.label_embedding = num_classes, make_step_labels(num_classes, label_dim)
        self.rnn = make_rnn(cell, data_dim + (label_dim if num_classes else 0), hidden_size, num_layers, bidirectional)
        self.feature_dim = hidden_size * (2 if bidirectional else 1)
        self.head = nn.Linear(self.feature_dim, 1)

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> torch.Tensor:
        """Top-layer hidden states (B, T, H * directions); with ``lengths`` (B,) the sequences are packed (padding
        never enters the recurrence) and the states past each length are zeros."""
        if x.dim() != 3 or x.shape[-1] != self.data_dim:
            raise ValueError(f"RecurrentDiscriminator wants (B, T, {self.data_dim}), got {tuple(x.shape)}.")
        return run_rnn(self.rnn, with_labels(self, x, labels), lengths)[0]  # (B, T, H * directions)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None) -> torch.Tensor:
        return self.classify(self.features(x, labels, lengths), lengths)

    def classify(self, h: torch.Tensor, lengths=None) -> torch.Tensor:
        """Logits from ``features(x)`` (B, T, F): a model that needs both runs the recurrent layers once. Per
        step, the logits past a sequence's length are meaningless: a model keeps the real steps' only."""
        if self.per_step:
            return self.head(h).squeeze(-1)  # (B, T)
        last_step = h[:, -1] if lengths is None else h[torch.arange(h.shape[0]), lengths.to(h.device).long() - 1]
        if self.bidirectional:  # last real step of the forward pass, first step of the backward pass
            last = torch.cat([last_step[:, : self.hidden_size], h[:, 0, self.hidden_size :]], dim=-1)  # (B, F)
        else:
            last = last_step  # (B, F)
        return self.head(last).squeeze(-1)  # (B,)


class RecurrentEncoder(nn.Module):
    """Sequence (B, T, D) to the mean and log-variance of q(z | x), each (B, latent_dim).

    The final hidden states of every layer and direction are concatenated and mapped linearly (Bowman et al.
    2016, "Generating Sentences from a Continuous Space", sec. 3; Fabius & van Amersfoort 2015).

    Args:
        data_dim: features per step.
        latent_dim: size of z.
        hidden_size: recurrent width (per direction).
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        bidirectional: read the sequence both ways.
        num_classes: classes of a conditional encoder q(z | x, y) (None: unconditional).
        label_dim: size of the label embedding read beside x at every step (conditional only).
    """

    def __init__(
        self,
        data_dim: int = 5,
        latent_dim: int = 16,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: Cell = "gru",
        bidirectional: bool = True,
        num_classes: int | None = None,
        label_dim: int = 8,
    ) -> None:
        super().__init__()
        self.data_dim, self.latent_dim, self.hidden_size, self.cell = data_dim, latent_dim, hidden_size, cell
        self.num_classes, self.label_embedding = num_classes, make_step_labels(num_classes, label_dim)
        self.rnn = make_rnn(cell, data_dim + (label_dim if num_classes else 0), hidden_size, num_layers, bidirectional)
        summary = hidden_size * num_layers * (2 if bidirectional else 1)
        self.to_stats = nn.Linear(summary, 2 * latent_dim)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, lengths=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar); with ``lengths`` (B,) the sequences are packed: the final states are those at each
        sequence's last real step."""
        if x.dim() != 3 or x.shape[-1] != self.data_dim:
            raise ValueError(f"RecurrentEncoder wants (B, T, {self.data_dim}), got {tuple(x.shape)}.")
        _, state = run_rnn(self.rnn, with_labels(self, x, labels), lengths)
        h = state[0] if self.cell == "lstm" else state  # (layers * directions, B, H)
        h = h.transpose(0, 1).reshape(x.shape[0], -1)  # (B, layers * directions * H)
        mu, logvar = self.to_stats(h).chunk(2, dim=-1)  # (B, Z) each
        return mu, logvar


class RecurrentDecoder(nn.Module):
    """Latent z (B, latent_dim) to a sequence of any length, autoregressively.

    z sets the initial hidden state of every layer and is also an input at every step, beside the previous
    step's value (Bowman et al. 2016, sec. 3; Fabius & van Amersfoort 2015). During training the previous
    value is the real one with probability ``teacher_forcing`` per step (Williams & Zipser 1989; "scheduled
    sampling", Bengio et al. 2015), else the decoder's own output. ``forward`` returns the raw outputs
    (logits for ``output='sigmoid'``); ``activate`` maps them to data values; :meth:`generate` returns both
    the raw outputs and the values the decoder produced (and fed back).

    Binary data (piano rolls, ``binary=True``): the value of a step is a Bernoulli sample of its probability,
    and that sample is what the next step reads, as when a roll is sampled note by note
    (Boulanger-Lewandowski et al. 2012): feeding back probabilities and thresholding them at 0.5 holds notes
    and never starts new ones (drones). With gradients on, the sample is straight-through
    (Bengio et al. 2013), so a discriminator sees binary rolls like the real ones.

    Args:
        latent_dim: size of z.
        data_dim: features per step.
        hidden_size: recurrent width.
        num_layers: stacked recurrent layers.
        cell: ``gru``, ``lstm`` or ``rnn``.
        output: ``sigmoid`` (data in [0, 1], Bernoulli or Gaussian likelihood) or ``identity``.
        feed_previous: read the previous step's value (autoregressive). ``False``: z alone drives every step,
            the whole sequence runs in one call (several times faster on CPU), and teacher forcing does not
            apply; for smooth real-valued data such as sines (TimeVAE, Desai et al. 2021, decodes without
            feedback too).
        num_classes: classes of a conditional decoder p(x | z, y) (None: unconditional); the label's
            embedding is read beside z at every step.
        label_dim: size of the label embedding (conditional only).
        step_noise_dim: size of a fresh N(0, I) vector read beside z at every step (0: none), as the generators
            of C-RNN-GAN (Mogren 2016) and TimeGAN (Yoon et al. 2019) read per-step noise. Drawn in training too
            (the posterior code plus noise in the reconstruction pass); a likelihood alone teaches the decoder to
            ignore it (noise only adds error to a mean), an adversary can teach it to use it.
        output_noise: ``none`` (values are the decoder's means) or ``residuals``: every value the decoder
            produces (``generate``'s second output) gets residuals drawn from the decoder's own training
            residuals (:class:`ResidualNoise`). ``forward`` / the raw outputs stay the means, so the
            reconstruction loss is unchanged; samples, and what a discriminator sees, get the noise the means
            cannot make (white-noise features, day-to-day jitter).
        residual_bank_size: stretches of residuals kept for ``output_noise='residuals'``.
        residual_window: steps per stretch of residuals (1: each step draws its own residual vector; the
            training windows' length: a generated window gets the time structure of one real window's residuals).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        data_dim: int = 5,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: Cell = "gru",
        output: Output = "sigmoid",
        feed_previous: bool = True,
        num_classes: int | None = None,
        label_dim: int = 8,
        step_noise_dim: int = 0,
        output_noise: OutputNoise = "none",
        residual_bank_size: int = 4096,
        residual_window: int = 1,
    ) -> None:
        super().__init__()
        _check_output(output)
        if step_noise_dim < 0:
            raise ValueError(f"step_noise_dim must be >= 0 (0: no per-step noise), got {step_noise_dim}.")
        if output_noise not in ("none", "residuals"):
            raise ValueError(f"output_noise={output_noise!r}: choose 'none' or 'residuals'.")
        self.latent_dim, self.data_dim, self.hidden_size = latent_dim, data_dim, hidden_size
        self.cell, self.num_layers, self.output, self.feed_previous = cell, num_layers, output, feed_previous
        self.num_classes, self.label_embedding = num_classes, make_step_labels(num_classes, label_dim)
        self.step_noise_dim = step_noise_dim
        self.residual_noise = (
            ResidualNoise(data_dim, residual_bank_size, residual_window) if output_noise == "residuals" else None
        )
        step_input = (
            latent_dim + step_noise_dim + (label_dim if num_classes else 0) + (data_dim if feed_previous else 0)
        )
        self.rnn = make_rnn(cell, step_input, hidden_size, num_layers)
        self.init_hidden = nn.Linear(latent_dim, hidden_size * num_layers)
        self.head = nn.Linear(hidden_size, data_dim)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        return _activate(self.output, raw)

    def values(self, raw: torch.Tensor, binary: bool = False) -> torch.Tensor:
        """Data values of raw outputs: Bernoulli samples (straight-through under grad) when ``binary``; with
        ``output_noise='residuals'``, the means plus residuals of the bank (clipped to [0, 1] for ``sigmoid``)."""
        if binary:
            if self.output != "sigmoid":
                raise ValueError("binary=True needs output='sigmoid' (the raw outputs are logits).")
            if self.residual_noise is not None:
                raise ValueError("binary=True samples Bernoulli values: build the decoder with output_noise='none'.")
            return _straight_through_bernoulli(raw)
        if self.residual_noise is None:
            return self.activate(raw)
        noisy = self.residual_noise(self.activate(raw))
        return noisy.clamp(0.0, 1.0) if self.output == "sigmoid" else noisy

    def _step_inputs(self, z: torch.Tensor, length: int, labels: torch.Tensor | None) -> torch.Tensor:
        """What every step reads besides the previous value: z [, the label embedding] [, fresh noise]."""
        b = z.shape[0]
        inputs = with_labels(self, z.unsqueeze(1), labels).expand(b, length, -1)  # (B, T, Z [+ label_dim])
        if not self.step_noise_dim:
            return inputs
        noise = torch.randn(b, length, self.step_noise_dim, device=z.device, dtype=inputs.dtype)
        return torch.cat([inputs, noise], dim=-1)  # (B, T, Z [+ label_dim] + step_noise_dim)

    def forward(
        self,
        z: torch.Tensor,
        length: int,
        target: torch.Tensor | None = None,
        teacher_forcing: float = 0.0,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.generate(z, length, target, teacher_forcing, labels=labels)[0]

    def generate(
        self,
        z: torch.Tensor,
        length: int,
        target: torch.Tensor | None = None,
        teacher_forcing: float = 0.0,
        binary: bool = False,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs (B, T, D) and the decoder's own values (B, T, D): ``activate(raw)``, or Bernoulli samples
        when ``binary`` (each one fed back as the next input, unless teacher forcing replaces it)."""
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__} wants z (B, {self.latent_dim}), got {tuple(z.shape)}.")
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}.")
        b = z.shape[0]
        h0 = torch.tanh(self.init_hidden(z)).view(b, self.num_layers, self.hidden_size).transpose(0, 1)  # (L, B, H)
        state = _init_state(self.cell, h0.contiguous())
        z_step = self._step_inputs(z, length, labels)  # (B, T, Z [+ label_dim] [+ step_noise_dim])
        if not self.feed_previous:  # z at every step: one call, no loop
            raw = self.head(self.rnn(z_step, state)[0])  # (B, T, D)
            return self._recorded(raw, target), self.values(raw, binary)
        if target is not None and teacher_forcing >= 1.0:  # all steps teacher-forced: one call, no loop
            prev = torch.cat([target.new_zeros(b, 1, self.data_dim), target[:, : length - 1]], dim=1)  # (B, T, D)
            h, _ = self.rnn(torch.cat([z_step, prev], dim=-1), state)
            raw, values = self._outputs(h, target[:, :length], binary)  # (B, T, D) each
            return self._recorded(raw, target), values
        prev, raws, values = z.new_zeros(b, 1, self.data_dim), [], []
        for t in range(length):
            h, state = self.rnn(torch.cat([z_step[:, t : t + 1], prev], dim=-1), state)  # h: (B, 1, H)
            raw, prev = self._outputs(h, None if target is None else target[:, t : t + 1], binary)  # (B, 1, D) each
            raws.append(raw)
            values.append(prev)
            if target is not None and teacher_forcing > 0.0:
                use_real = torch.rand(b, 1, 1, device=z.device) < teacher_forcing  # per sequence and step
                prev = torch.where(use_real, target[:, t : t + 1], prev)
        return self._recorded(torch.cat(raws, dim=1), target), torch.cat(values, dim=1)  # (B, T, D) each

    def _outputs(self, h: torch.Tensor, target: torch.Tensor | None, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs and the decoder's own values of hidden states ``h`` (B, T, H); ``target``: the real steps at
        ``h`` (unused here; a head that scores the real steps apart from what it draws, as the voice decoder's,
        reads them)."""
        raw = self.head(h)
        return raw, self.values(raw, binary)

    def _recorded(self, raw: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """``raw``, after adding this training batch's residuals ``target - mean`` to the residual bank."""
        if self.residual_noise is not None and self.training and target is not None:
            self.residual_noise.record(target[:, : raw.shape[1]], self.activate(raw))
        return raw


class ResidualNoise(nn.Module):
    """Output noise of a decoder that predicts means: residuals ``x - mean`` of its recent training steps, kept in
    a ring buffer as stretches of ``window`` steps, drawn at random and added to the means of generated sequences.

    A decoder trained with a fixed-variance Gaussian likelihood (squared error) learns conditional means;
    drawing its samples as ``mean`` alone leaves out everything the code cannot predict (a feature that is
    white noise, the jitter of daily prices), and a post-hoc discriminator tells such smooth samples from real
    sequences at once. Sampling ``mean + residual`` draws from the decoder's empirical noise distribution
    instead of a Gaussian: the residual bootstrap (Efron 1979; Efron & Tibshirani 1993, sec. 9.5), with the
    noise's scale, shape (bounded or skewed marginals) and dependence between features estimated from the
    data, as the sigma-VAE sets its decoder's variance to the residuals' (Rybkin et al. 2021, "Simple and
    Effective VAE Training with Calibrated Decoders"). With ``window`` 1 each step draws its own residual vector
    (white noise in time); a longer ``window`` keeps stretches of consecutive residuals, which are correlated in
    time when the means are smoother than the data (the moving-block bootstrap, Kunsch 1989): a sequence longer
    than a window gets several stretches end to end.

    The bank is stored as integers (steps of ``2 ** -20``), so a weight average of the decoder
    (:class:`~lightning_gen.models.common.GeneratorEMA` copies integer buffers, averages float ones) samples the
    same residuals as the live decoder; it is a buffer, saved in checkpoints. Stretches that hold a step whose
    target is all zeros (the padding of sequences of different lengths) are not recorded.

    Args:
        data_dim: features per step.
        size: stretches kept (the newest ``size``).
        window: steps per stretch (at most the training sequences' length).
    """

    resolution = 2.0**-20

    def __init__(self, data_dim: int, size: int = 4096, window: int = 1) -> None:
        super().__init__()
        if size < 1 or window < 1:
            raise ValueError(f"residual_bank_size and residual_window must be >= 1, got {size} and {window}.")
        self.window = window
        self.register_buffer("bank", torch.zeros(size, window, data_dim, dtype=torch.int32))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def record(self, target: torch.Tensor, mean: torch.Tensor) -> None:
        """Keep up to an eighth of the bank of the residuals ``target - mean`` (both (B, T, D)): stretches of
        ``window`` steps at random places."""
        size, w = self.bank.shape[0], self.window
        if target.shape[1] < w:
            raise ValueError(
                f"residual_window={w} is longer than the training sequences ({target.shape[1]} steps): set it to "
                f"at most {target.shape[1]}."
            )
        stretches = (target - mean).float().unfold(1, w, 1).permute(0, 1, 3, 2).flatten(0, 1)  # (B * (T - w + 1), w, D)
        real = (target.abs().sum(-1) > 0).float().unfold(1, w, 1).amin(-1).flatten() > 0  # no padding step in it
        stretches = stretches[real]
        n = min(len(stretches), max(1, size // 8))
        if n == 0:
            return
        stretches = stretches[torch.randperm(len(stretches), device=stretches.device)[:n]]
        rows = (self.position + torch.arange(n, device=self.bank.device)) % size
        self.bank[rows] = torch.round(stretches / self.resolution).to(torch.int32)
        self.position.copy_((self.position + n) % size)
        self.filled.copy_(torch.clamp(self.filled + n, max=size))

    @torch.no_grad()
    def refill(self, target: torch.Tensor, mean: torch.Tensor) -> None:
        """Replace the bank with the residuals ``target - mean`` (both (B, T, D)): stretches spread evenly over all
        of them (no random state used), padding left out."""
        size, w = self.bank.shape[0], self.window
        stretches = (target - mean).float().unfold(1, w, 1).permute(0, 1, 3, 2).flatten(0, 1)  # (B * (T - w + 1), w, D)
        real = (target.abs().sum(-1) > 0).float().unfold(1, w, 1).amin(-1).flatten() > 0
        stretches = stretches[real]
        if len(stretches) == 0:
            return
        n = min(len(stretches), size)
        stretches = stretches[torch.linspace(0, len(stretches) - 1, n, device=stretches.device).round().long()]
        self.bank[:n] = torch.round(stretches / self.resolution).to(torch.int32)
        self.filled.fill_(n)
        self.position.fill_(n % size)

    def forward(self, mean: torch.Tensor) -> torch.Tensor:
        """``mean`` (B, T, D) plus stretches of the bank end to end (``mean`` itself while it is empty)."""
        filled = int(self.filled)
        if filled == 0:
            return mean
        b, steps, w = mean.shape[0], mean.shape[1], self.window
        rows = torch.randint(filled, (b, -(-steps // w)), device=mean.device)  # (B, ceil(T / w))
        noise = self.bank[rows].flatten(1, 2)[:, :steps]  # (B, T, D)
        return mean + noise.to(mean.dtype) * self.resolution
