"""Class conditions inside image networks: conditional batch norm for generators, and the projection /
auxiliary-classifier heads of conditional discriminators.

A network is conditional when built with ``num_classes`` (an int >= 2) and then takes ``labels`` (int64,
shape (B,)) as a keyword in its forward; built without (``num_classes=None``) it is the unconditional network,
parameter names and behaviour unchanged. See ``lightning_gen.models.conditional`` for the models' side.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Conditioning = Literal["projection", "auxiliary"]


def check_num_classes(num_classes: int | None) -> None:
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(
            f"num_classes must be an int >= 2 (or None for an unconditional network), got {num_classes!r}."
        )


def check_net_labels(net: nn.Module, labels: torch.Tensor | None, batch_size: int) -> None:
    """Raise a clear error when ``labels`` do not fit the network: labels given to an unconditional network,
    none given to a conditional one, or not one integer label per sample. (The range [0, num_classes) is
    checked by the models, ``Conditional.check_labels``: here it would cost a device sync per forward.)"""
    num_classes = getattr(net, "num_classes", None)
    name = type(net).__name__
    if num_classes is None:
        if labels is not None:
            raise ValueError(
                f"{name} is unconditional (built without num_classes) but was given labels: drop the labels, or "
                "build the network with `num_classes`."
            )
        return
    if labels is None:
        raise ValueError(f"{name} was built with num_classes={num_classes}: give `labels` (int64, one per sample).")
    if labels.dtype not in (torch.int64, torch.int32) or labels.shape != (batch_size,):
        raise ValueError(
            f"{name} needs labels as an int64 tensor of shape ({batch_size},), got dtype {labels.dtype} and "
            f"shape {tuple(labels.shape)}."
        )


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without its own affine transform, then a per-class gain and bias looked up from the label
    (conditional batch norm: de Vries et al. 2017; Miyato & Koyama 2018, "cGANs with Projection
    Discriminator", sec. 5, for the generator; Brock et al. 2019, BigGAN). Gains start at 1, biases at 0, so
    at initialisation it is the plain batch norm of the unconditional network."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)  # (B, C, H, W)
        return out * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class LabelledSequential(nn.Sequential):
    """``nn.Sequential`` that hands the labels to its conditional layers. Its parameter names are those of
    ``nn.Sequential``, so an unconditional network built with it loads the checkpoints of one built without."""

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for module in self:
            x = module(x, labels) if isinstance(module, ConditionalBatchNorm2d) else module(x)
        return x


class ClassHead(nn.Module):
    """What a conditional discriminator adds to its unconditional output ``psi(phi(x))``.

    - ``projection`` (Miyato & Koyama 2018, eq. 3): ``logit = psi(phi(x)) + <embed(y), phi(x)>``, a learned
      class embedding in D's feature space; no class logits.
    - ``auxiliary`` (AC-GAN, Odena et al. 2017, sec. 3): the logit is the unconditional one, and a linear
      classifier on ``phi(x)`` gives class logits, trained by the model with a cross-entropy on real and
      generated images.

    Args:
        features: size of the flattened ``phi(x)``.
        num_classes: number of classes.
        conditioning: ``projection`` or ``auxiliary``.
    """

    def __init__(self, features: int, num_classes: int, conditioning: Conditioning = "projection") -> None:
        super().__init__()
        if conditioning not in ("projection", "auxiliary"):
            raise ValueError(f"conditioning={conditioning!r}: choose 'projection' or 'auxiliary'.")
        self.conditioning = conditioning
        if conditioning == "projection":
            self.embed = nn.Embedding(num_classes, features)
            nn.init.xavier_uniform_(self.embed.weight)  # as the authors' code (chainer EmbedID, GlorotUniform)
        else:
            self.classify = nn.Linear(features, num_classes)

    def forward(
        self, phi: torch.Tensor, logit: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``phi`` (B, F) flattened features, ``logit`` (B,) the unconditional output -> (logit (B,), class
        logits (B, num_classes) or None)."""
        if self.conditioning == "projection":
            return logit + (self.embed(labels) * phi).sum(1), None
        return logit, self.classify(phi)


def discriminator_head(features: int, num_classes: int | None, conditioning: Conditioning) -> ClassHead | None:
    """The class head of a discriminator with ``features`` flattened features (None when unconditional)."""
    if conditioning not in ("projection", "auxiliary"):
        raise ValueError(f"conditioning={conditioning!r}: choose 'projection' or 'auxiliary'.")
    return ClassHead(features, num_classes, conditioning) if num_classes is not None else None


def label_embedding(num_classes: int | None, dim: int) -> nn.Embedding | None:
    """A label embedding concatenated to the noise (generators without batch norm: Mirza & Osindero 2014's
    conditional GAN feeds y beside z), or None for an unconditional network."""
    return nn.Embedding(num_classes, dim) if num_classes is not None else None


def with_label_embedding(z: torch.Tensor, embed: nn.Embedding | None, labels: torch.Tensor | None) -> torch.Tensor:
    return z if embed is None else torch.cat([z, embed(labels)], dim=1)  # (B, Z + E)
