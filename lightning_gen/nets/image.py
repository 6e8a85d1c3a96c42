"""Image networks: DCGAN-style conv generator / discriminator and a tiny MLP pair.

Every network states its geometry as constructor arguments (``img_size``, ``channels``, ``latent_dim``)
and exposes them as attributes, so a model can check at construction time that its parts fit together.
DCGAN layout after Radford et al. 2016 ("Unsupervised Representation Learning with Deep Convolutional
GANs", sec. 3): strided transposed convolutions in G, strided convolutions with LeakyReLU(0.2) in D.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "instance", "layer", "none"]


def upsampling_plan(img_size: int, min_size: int = 4) -> tuple[int, int]:
    """Split ``img_size`` into ``base * 2**n_up`` with ``min_size <= base < 2 * min_size`` (or an odd
    base up to ``2 * min_size``) and ``n_up >= 1``.

    With min_size 4: 8 -> (4, 1), 16 -> (4, 2), 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).
    With min_size 2: 8 -> (2, 2), which gives 8x8 networks two resolution steps instead of one.
    """
    base, n_up = img_size, 0
    while base % 2 == 0 and base // 2 >= min_size:
        base //= 2
        n_up += 1
    if n_up < 1 or base > 2 * min_size or img_size > 256 or min_size < 1:
        raise ValueError(
            f"img_size={img_size} is not supported with min_size={min_size}: it must be base * 2**k with "
            f"{min_size} <= base <= {2 * min_size}, k >= 1, and at most 256 (with min_size 4: 8, 16, 24, 28, "
            "32, 48, 64, ...). Resize the data with `data.img_size`."
        )
    return base, n_up


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: images must have 1 (grey) or 3 (RGB) channels.")


def _norm_2d(kind: Norm, num_channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(num_channels)
    if kind == "instance":
        return nn.InstanceNorm2d(num_channels, affine=True)
    if kind == "layer":
        # GroupNorm with one group normalises over (C, H, W) per sample: layer norm for conv maps, the
        # choice of Gulrajani et al. 2017 (WGAN-GP, sec. 4) for critics that must not use batch norm.
        return nn.GroupNorm(1, num_channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm={kind!r} is not one of 'batch', 'instance', 'layer', 'none'.")


class DCGANGenerator(nn.Module):
    """Maps a latent vector to an image in [-1, 1] with transposed convolutions.

    Args:
        latent_dim: size of z.
        img_size: output height and width (8 ... 64, see :func:`upsampling_plan`).
        channels: 1 or 3.
        base_channels: width of the last feature map; earlier maps double per upsampling.
        norm: normalisation after each transposed convolution.
        min_size: smallest feature map (see :func:`upsampling_plan`); 2 suits 8x8 images.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        min_size: int = 4,
    ) -> None:
        super().__init__()
        _check_channels(channels)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.start_size, n_up = upsampling_plan(img_size, min_size)
        widths = [base_channels * 2 ** (n_up - i) for i in range(n_up + 1)]  # e.g. 512, 256, 128, 64
        self.start_channels = widths[0]
        self.project = nn.Sequential(
            nn.Linear(latent_dim, widths[0] * self.start_size**2, bias=False),
            nn.Unflatten(1, (widths[0], self.start_size, self.start_size)),  # (B, C0, s0, s0)
            _norm_2d(norm, widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),  # doubles H, W
                _norm_2d(norm, c_out),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_image(self.blocks(self.project(z)))  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """Maps an image to one real-valued logit (or critic value) per sample.

    ``features(x)`` returns the activation after every downsampling block, so hybrids can measure a
    reconstruction in D's feature space (Larsen et al. 2016, sec. 2.2).

    Args:
        img_size: input height and width.
        channels: 1 or 3.
        base_channels: width of the first feature map; later maps double per downsampling.
        norm: normalisation after every block but the first (DCGAN, sec. 3). Use "layer" or "none" for a
            Wasserstein critic with gradient penalty.
        dropout: dropout after each block (0 disables).
        min_size: smallest feature map (see :func:`upsampling_plan`); 2 suits 8x8 images.
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        dropout: float = 0.0,
        min_size: int = 4,
    ) -> None:
        super().__init__()
        _check_channels(channels)
        self.img_size, self.channels = img_size, channels
        end_size, n_down = upsampling_plan(img_size, min_size)
        widths = [base_channels * 2**i for i in range(n_down)]  # e.g. 64, 128, 256
        blocks = []
        c_in = channels
        for i, c_out in enumerate(widths):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=norm == "none" or i == 0),  # halves H, W
                    nn.Identity() if i == 0 else _norm_2d(norm, c_out),
                    nn.LeakyReLU(0.2, inplace=True),
                    nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * end_size**2, 1))  # (B, 1)

    @property
    def num_feature_layers(self) -> int:
        return len(self.blocks)

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """Activations after each block: a list of (B, C_i, H_i, W_i); only the first ``depth`` blocks run
        when it is given (a feature-wise reconstruction in an early layer need not run the rest)."""
        feats = []
        for block in self.blocks[:depth]:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1]).squeeze(1)  # (B,)


class MLPGenerator(nn.Module):
    """A small fully connected generator, for tiny tests and toy data."""

    def __init__(self, latent_dim: int = 16, img_size: int = 8, channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        _check_channels(channels)
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, channels * img_size * img_size),
            nn.Tanh(),
            nn.Unflatten(1, (channels, img_size, img_size)),  # (B, C, H, W)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """A small fully connected discriminator; ``features`` gives both hidden layers."""

    def __init__(self, img_size: int = 8, channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        _check_channels(channels)
        self.img_size, self.channels = img_size, channels
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Flatten(), nn.Linear(channels * img_size * img_size, hidden), nn.LeakyReLU(0.2)),
                nn.Sequential(nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)),
            ]
        )
        self.head = nn.Linear(hidden, 1)

    @property
    def num_feature_layers(self) -> int:
        return len(self.blocks)

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks[:depth]:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1]).squeeze(1)  # (B,)


class ConvEncoder(nn.Module):
    """Maps an image to the mean and log-variance of a diagonal Gaussian q(z|x) (Kingma & Welling 2014).

    The layout mirrors :class:`DCGANDiscriminator` (strided convolutions, LeakyReLU(0.2)), so the encoder is
    as deep as the decoder it pairs with; a linear layer gives both statistics (Larsen et al. 2016, sec. 4).

    Args:
        latent_dim: size of z (must equal the decoder's ``latent_dim``).
        img_size: input height and width (see :func:`upsampling_plan`).
        channels: 1 or 3.
        base_channels: width of the first feature map; later maps double per downsampling.
        norm: normalisation after every block but the first.
        min_size: smallest feature map (see :func:`upsampling_plan`); 2 suits 8x8 images.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        min_size: int = 4,
    ) -> None:
        super().__init__()
        _check_channels(channels)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        end_size, n_down = upsampling_plan(img_size, min_size)
        widths = [base_channels * 2**i for i in range(n_down)]  # e.g. 64, 128, 256
        layers: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate(widths):
            layers += [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=norm == "none" or i == 0),  # halves H, W
                nn.Identity() if i == 0 else _norm_2d(norm, c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * end_size**2, 2 * latent_dim))  # (B, 2Z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mu, logvar)``, each (B, latent_dim)."""
        mu, logvar = self.head(self.blocks(x)).chunk(2, dim=1)  # (B, 2Z) -> 2 x (B, Z)
        return mu, logvar


__all__ = [
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "upsampling_plan",
]
