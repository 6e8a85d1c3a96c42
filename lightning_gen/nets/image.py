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

from lightning_gen.nets.conditioning import (
    ClassHead,
    ConditionalBatchNorm2d,
    Conditioning,
    LabelledSequential,
    check_net_labels,
    check_num_classes,
    discriminator_head,
    label_embedding,
    with_label_embedding,
)

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


def _check_net_args(channels: int, num_classes: int | None, latent_dim: int | None = None, **widths: int) -> None:
    """``channels`` is 1 or 3, ``num_classes`` None or at least 2, ``latent_dim`` (a generator's or an encoder's)
    at least 1, and each named layer width (``base_channels``, ``hidden``) at least 1."""
    check_num_classes(num_classes)
    if latent_dim is not None and latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
    if channels not in (1, 3):
        raise ValueError(f"channels={channels}: images must have 1 (grey) or 3 (RGB) channels.")
    for name, width in widths.items():
        if width < 1:
            raise ValueError(
                f"{name}={width}: a layer needs at least 1 unit (typical values: 16-64); set a positive {name} "
                "in the generator / discriminator init_args."
            )


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


def _generator_norm(kind: Norm, num_channels: int, num_classes: int | None) -> nn.Module:
    """Conditional batch norm in a conditional generator with batch norm, else the plain layer."""
    if num_classes is not None and kind == "batch":
        return ConditionalBatchNorm2d(num_channels, num_classes)
    return _norm_2d(kind, num_channels)


class _BlockDiscriminator(nn.Module):
    """What the image discriminators share: ``blocks`` whose activations are D's features (the VAE-GAN's
    feature-wise reconstruction reads them), a linear ``head`` on the last one, and an optional ``class_head``
    (projection or auxiliary classifier)."""

    blocks: nn.ModuleList
    head: nn.Linear
    class_head: ClassHead | None

    @property
    def num_feature_layers(self) -> int:
        return len(self.blocks)

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """Activations after each block: a list of (B, C_i, H_i, W_i) (or (B, F_i)); only the first ``depth``
        blocks run when it is given (a feature-wise reconstruction in an early layer need not run the rest)."""
        feats = []
        for block in self.blocks[:depth]:
            x = block(x)
            feats.append(x)
        return feats

    def logits_and_classes(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """(logits (B,), class logits (B, num_classes) for ``conditioning="auxiliary"``, else None)."""
        check_net_labels(self, labels, x.shape[0])
        phi = self.features(x)[-1].flatten(1)  # (B, F)
        logit = self.head(phi).squeeze(1)  # (B,)
        return (logit, None) if self.class_head is None else self.class_head(phi, logit, labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_and_classes(x, labels)[0]  # (B,)


class DCGANGenerator(nn.Module):
    """Maps a latent vector to an image in [-1, 1] with transposed convolutions.

    Args:
        latent_dim: size of z.
        img_size: output height and width (8 ... 64, see :func:`upsampling_plan`).
        channels: 1 or 3.
        base_channels: width of the last feature map; earlier maps double per upsampling.
        norm: normalisation after each transposed convolution.
        min_size: smallest feature map (see :func:`upsampling_plan`); 2 suits 8x8 images.
        num_classes: build a class-conditional generator (``forward(z, labels)``): a ``latent_dim``-sized label
            embedding is concatenated to z (Mirza & Osindero 2014; BigGAN's shared embedding also enters the
            first layer), and with ``norm="batch"`` every batch norm becomes a conditional batch norm (per-class
            gain and bias, Miyato & Koyama 2018). None: unconditional. (Conditional batch norm alone learned the
            classes too slowly on MNIST: the embedding gives the first layer the class as well.)
    """

    def __init__(
        self,
        latent_dim: int = 64,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        min_size: int = 4,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        _check_net_args(channels, num_classes, latent_dim, base_channels=base_channels)
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.num_classes = num_classes
        self.start_size, n_up = upsampling_plan(img_size, min_size)
        widths = [base_channels * 2 ** (n_up - i) for i in range(n_up + 1)]  # e.g. 512, 256, 128, 64
        self.start_channels = widths[0]
        self.embed = label_embedding(num_classes, latent_dim)
        z_in = latent_dim + (latent_dim if self.embed is not None else 0)
        self.project = LabelledSequential(
            nn.Linear(z_in, widths[0] * self.start_size**2, bias=False),
            nn.Unflatten(1, (widths[0], self.start_size, self.start_size)),  # (B, C0, s0, s0)
            _generator_norm(norm, widths[0], num_classes),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),  # doubles H, W
                _generator_norm(norm, c_out, num_classes),
                nn.ReLU(inplace=True),
            ]
        self.blocks = LabelledSequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_net_labels(self, labels, z.shape[0])
        h = self.project(with_label_embedding(z, self.embed, labels), labels)
        return self.to_image(self.blocks(h, labels))  # (B, C, H, W)


class DCGANDiscriminator(_BlockDiscriminator):
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
        num_classes: build a class-conditional discriminator (``forward(x, labels)``). None: unconditional.
        conditioning: how a conditional D uses the label (:class:`~lightning_gen.nets.conditioning.ClassHead`):
            ``projection`` (Miyato & Koyama 2018, the default) or ``auxiliary`` (AC-GAN, Odena et al. 2017:
            ``logits_and_classes`` also gives class logits).
    """

    def __init__(
        self,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        dropout: float = 0.0,
        min_size: int = 4,
        num_classes: int | None = None,
        conditioning: Conditioning = "projection",
    ) -> None:
        super().__init__()
        _check_net_args(channels, num_classes, base_channels=base_channels)
        self.img_size, self.channels = img_size, channels
        self.num_classes, self.conditioning = num_classes, conditioning
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
        self.class_head: ClassHead | None = discriminator_head(widths[-1] * end_size**2, num_classes, conditioning)


class MLPGenerator(nn.Module):
    """A small fully connected generator, for tiny tests and toy data; with ``num_classes``, a
    ``latent_dim``-sized label embedding is concatenated to z (Mirza & Osindero 2014)."""

    def __init__(
        self,
        latent_dim: int = 16,
        img_size: int = 8,
        channels: int = 1,
        hidden: int = 64,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        _check_net_args(channels, num_classes, latent_dim, hidden=hidden)
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.num_classes = num_classes
        self.embed = label_embedding(num_classes, latent_dim)
        self.net = nn.Sequential(
            nn.Linear(latent_dim * (1 if num_classes is None else 2), hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, channels * img_size * img_size),
            nn.Tanh(),
            nn.Unflatten(1, (channels, img_size, img_size)),  # (B, C, H, W)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_net_labels(self, labels, z.shape[0])
        return self.net(with_label_embedding(z, self.embed, labels))


class MLPDiscriminator(_BlockDiscriminator):
    """A small fully connected discriminator; ``features`` gives both hidden layers. ``num_classes`` and
    ``conditioning`` as :class:`DCGANDiscriminator`'s."""

    def __init__(
        self,
        img_size: int = 8,
        channels: int = 1,
        hidden: int = 64,
        num_classes: int | None = None,
        conditioning: Conditioning = "projection",
    ) -> None:
        super().__init__()
        _check_net_args(channels, num_classes, hidden=hidden)
        self.img_size, self.channels = img_size, channels
        self.num_classes, self.conditioning = num_classes, conditioning
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Flatten(), nn.Linear(channels * img_size * img_size, hidden), nn.LeakyReLU(0.2)),
                nn.Sequential(nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)),
            ]
        )
        self.head = nn.Linear(hidden, 1)
        self.class_head: ClassHead | None = discriminator_head(hidden, num_classes, conditioning)


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
        num_classes: build the encoder of a conditional VAE, q(z|x, y) (Sohn et al. 2015; ``forward(x,
            labels)``): the one-hot label joins the flattened features at the linear layer. None: unconditional.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        img_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        norm: Norm = "batch",
        min_size: int = 4,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        _check_net_args(channels, num_classes, latent_dim, base_channels=base_channels)
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.num_classes = num_classes
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
        n_in = widths[-1] * end_size**2 + (num_classes or 0)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 2 * latent_dim))  # (B, 2Z)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mu, logvar)``, each (B, latent_dim)."""
        check_net_labels(self, labels, x.shape[0])
        h = self.blocks(x).flatten(1)  # (B, F)
        if self.num_classes is not None:
            h = torch.cat([h, nn.functional.one_hot(labels.long(), self.num_classes).to(h.dtype)], dim=1)  # (B, F + K)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, 2Z) -> 2 x (B, Z)
        return mu, logvar


__all__ = [
    "ConvEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "upsampling_plan",
]
