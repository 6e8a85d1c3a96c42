"""The pieces the recurrent networks of ``nets/sequence.py`` are built from: recurrent layers (with a CPU
autocast-safe LSTM), output activations, straight-through Bernoulli samples, and the class-label embedding
that conditional networks read at every step."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from lightning_gen.nets.conditioning import check_net_labels

Cell = Literal["gru", "lstm", "rnn"]
Output = Literal["sigmoid", "identity"]
GeneratorOutput = Literal["sigmoid", "identity", "bernoulli"]


class CPUAutocastSafeLSTM(nn.LSTM):
    """``nn.LSTM`` that runs in float32 under CPU autocast (same parameters and state-dict keys).

    torch's CPU LSTM kernel has no bf16 path under autocast ("could not create a primitive descriptor for the
    LSTM forward propagation primitive", torch 2.14): so ``precision=bf16-mixed`` on CPU runs the LSTM itself
    in float32. On CUDA, cuDNN's bf16 LSTM is used as usual.
    """

    def forward(self, input, hx=None):
        device = input.data.device if isinstance(input, PackedSequence) else input.device
        if device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                hx = tuple(h.float() for h in hx) if isinstance(hx, tuple) else hx
                return super().forward(input.float(), hx)
        return super().forward(input, hx)


_CELLS = {"gru": nn.GRU, "lstm": CPUAutocastSafeLSTM, "rnn": nn.RNN}


def make_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool = False):
    """A batch-first ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` (tanh), with a clear error for other names."""
    if cell not in _CELLS:
        raise ValueError(f"Unknown cell type {cell!r}: choose one of {sorted(_CELLS)}.")
    if min(input_size, hidden_size, num_layers) < 1:
        raise ValueError(
            f"input_size, hidden_size and num_layers must be >= 1, got {input_size}, {hidden_size}, {num_layers}."
        )
    return _CELLS[cell](input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)


def run_rnn(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None = None, state=None):
    """``rnn(x, state)`` on padded sequences (B, T, F) of ``lengths`` (B,) (None: all T steps): packed
    (``pack_padded_sequence``), so that no step past a sequence's length reaches the recurrence, its final state
    is that at the sequence's last real step and a backward direction starts there, as TimeGAN's reference code
    passes ``sequence_length`` to every ``dynamic_rnn``. Outputs past a length are zeros (B, T, H)."""
    if lengths is None:
        return rnn(x, state)
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must be (B,) = ({x.shape[0]},), got {tuple(lengths.shape)}.")
    packed = pack_padded_sequence(x, lengths.detach().cpu().long(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, H)
    return out, state


def step_mask(lengths: torch.Tensor | None, steps: int, like: torch.Tensor) -> torch.Tensor | None:
    """Float mask (B, T, 1) of the real steps (None when ``lengths`` is None)."""
    if lengths is None:
        return None
    return (torch.arange(steps, device=like.device) < lengths.to(like.device)[:, None]).to(like.dtype).unsqueeze(-1)


def _activate(kind: str, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) if kind == "sigmoid" else x


def _check_output(kind: str) -> None:
    if kind not in ("sigmoid", "identity"):
        raise ValueError(f"output={kind!r}: choose 'sigmoid' (data in [0, 1]) or 'identity'.")


def _init_state(cell: str, h0: torch.Tensor):
    """(num_layers, B, H) initial hidden state; an LSTM also gets a zero cell state."""
    return (h0, torch.zeros_like(h0)) if cell == "lstm" else h0


def _straight_through_bernoulli(logits: torch.Tensor) -> torch.Tensor:
    """Binary samples b ~ Bernoulli(sigmoid(logits)) whose gradient is that of the probabilities: the
    straight-through estimator (Bengio, Leonard & Courville 2013, "Estimating or propagating gradients
    through stochastic neurons", sec. 4). D sees binary rolls like the real ones, so soft values are no cue."""
    p = torch.sigmoid(logits)
    hard = torch.bernoulli(p.detach())
    return hard + (p - p.detach()) if torch.is_grad_enabled() else hard  # values exactly binary either way


class StepLabels(nn.Module):
    """A class label per sequence as an embedding fed at every step (the conditional GAN's "y fed to both G and
    D", Mirza & Osindero 2014; the conditional VAE's encoder and decoder, Sohn et al. 2015): a network
    concatenates ``embed(labels, steps)`` (B, T, dim) to its per-step input.

    Args:
        num_classes: classes (>= 2).
        dim: size of the embedding.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an int >= 2 (or unset for an unconditional network), got {num_classes!r}."
            )
        if dim < 1:
            raise ValueError(f"label_dim must be >= 1, got {dim}.")
        self.num_classes, self.dim = num_classes, dim
        self.embedding = nn.Embedding(num_classes, dim)

    def forward(self, labels: torch.Tensor, steps: int) -> torch.Tensor:
        return self.embedding(labels).unsqueeze(1).expand(-1, steps, -1)  # (B, T, dim)


def make_step_labels(num_classes: int | None, dim: int) -> StepLabels | None:
    """The label embedding of a conditional network (None for an unconditional one)."""
    return None if num_classes is None else StepLabels(num_classes, dim)


def with_labels(net: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """``x`` (B, T, F) with the label embedding of ``net.label_embedding`` concatenated at every step (B, T, F + E);
    ``x`` itself for an unconditional network. A clear error for labels a network cannot take (the image networks'
    :func:`~lightning_gen.nets.conditioning.check_net_labels`, plus the range: an embedding lookup out of range
    would fail without saying which labels)."""
    check_net_labels(net, labels, x.shape[0])
    embed = net.label_embedding
    if embed is None:
        return x
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= embed.num_classes):
        name = type(net).__name__
        raise ValueError(f"{name}: labels must be in [0, {embed.num_classes}), got {labels.unique()[:5].tolist()}.")
    return torch.cat([x, embed(labels.long(), x.shape[1]).to(x.dtype)], dim=-1)
