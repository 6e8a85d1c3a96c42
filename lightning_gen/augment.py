"""Differentiable augmentation of the images a discriminator sees (DiffAugment, Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training"): the same random transformations are applied to real and generated
images before D, in D's and G's steps, so D cannot memorise a small training set while G still learns the
un-augmented distribution (the transformations are differentiable, so G's gradient passes through them).

Policies as in the paper's code: ``translation`` shifts each image by up to 1/8 of its size (zero padding),
``cutout`` zeroes a random square of half its size. A policy string names them joined by commas,
e.g. ``"translation,cutout"`` (the paper's choice for small data sets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _grid(*sizes: int, device) -> tuple[torch.Tensor, ...]:
    return torch.meshgrid(*(torch.arange(n, device=device) for n in sizes), indexing="ij")


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by a random whole number of pixels, up to ``ratio`` of H and W."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gb, gx, gy = _grid(b, h, w, device=x.device)
    gx = (gx + tx + 1).clamp(0, h + 1)  # index into the image padded by one zero pixel on each side
    gy = (gy + ty + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (B, H + 2, W + 2, C)
    return padded[gb, gx, gy].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ``ratio`` x (H, W) in each image of (B, C, H, W) (DeVries & Taylor 2017)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gb, gx, gy = _grid(b, ch, cw, device=x.device)
    gx = (gx + ox - ch // 2).clamp(0, h - 1)
    gy = (gy + oy - cw // 2).clamp(0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


AUGMENTATIONS = {"translation": translation, "cutout": cutout}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ("translation", "cutout"); None or "" -> (). Unknown names raise."""
    if policy is None:
        return ()
    if not isinstance(policy, str):
        raise ValueError(f"augment={policy!r}: give a string such as 'translation,cutout' (or None).")
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"augment={policy!r}: unknown augmentation {unknown}; choose from {sorted(AUGMENTATIONS)}, joined by "
            "commas (e.g. 'translation,cutout')."
        )
    return names


def diff_augment(x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """Apply the augmentations ``names`` (from :func:`parse_policy`) to a batch of images, in order."""
    for name in names:
        x = AUGMENTATIONS[name](x)
    return x
