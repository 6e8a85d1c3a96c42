"""A small CNN image classifier network: its penultimate features give a domain FID that works offline.

The network of :class:`lightning_gen.models.ImageClassifier` (the LightningModule that trains it on a dataset's
labels, ``configs/classifier/<dataset>.yaml``). A classifier trained on the dataset itself gives features that
separate its classes, the choice of several GAN papers for MNIST ("FID computed with a LeNet-style
classifier"); such a score ranks models of one dataset but is NOT comparable with published Inception FID
(Heusel et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Conv feature extractor + linear head for (B, C, H, W) images in [-1, 1].

    Two 3x3 conv blocks (conv, batch norm, ReLU), then ``downsample`` stages of a strided block and a plain
    one (1 suits 8x8 digits; 3 takes 28x28 MNIST to 4x4, so that the pooled features see whole digits),
    global average pooling, then a ``feature_dim`` ReLU layer: the penultimate features (``features(x)``)
    used for FID, and a linear layer to ``num_classes`` logits.

    Args:
        img_size: input height and width (any size >= 4).
        channels: 1 or 3.
        num_classes: number of labels.
        width: channels of the first stage (the second has twice as many).
        feature_dim: size of the penultimate features.
        dropout: dropout before the last layer (training only).
        downsample: number of stride-2 stages.
    """

    def __init__(
        self,
        img_size: int = 28,
        channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        feature_dim: int = 128,
        dropout: float = 0.3,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels={channels}: images must have 1 (grey) or 3 (RGB) channels.")
        if img_size < 4 or num_classes < 2 or width < 1 or feature_dim < 1 or downsample < 1:
            raise ValueError(
                f"SmallCNN needs img_size >= 4, num_classes >= 2, width >= 1, feature_dim >= 1, downsample >= 1; "
                f"got {img_size}, {num_classes}, {width}, {feature_dim}, {downsample}."
            )
        self.img_size, self.channels, self.num_classes, self.feature_dim = img_size, channels, num_classes, feature_dim

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        stages = [*block(channels, width, 1), *block(width, width, 1)]
        c_in = width
        for _ in range(downsample):  # each stage halves H and W: the receptive field has to cover a digit
            stages += [*block(c_in, 2 * width, 2), *block(2 * width, 2 * width, 1)]
            c_in = 2 * width
        self.body = nn.Sequential(
            *stages,
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, 2 * width)
            nn.Linear(2 * width, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, num_classes) logits
