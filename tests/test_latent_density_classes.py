"""The class-conditional ex-post latent density (one mixture per class, q(z | y))."""

from __future__ import annotations

import pytest
import torch

from lightning_gen.models.latent_density import LatentDensity


def _codes(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(n // 3 + 1)[:n]
    centres = torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    return centres[labels] + 0.3 * torch.randn(n, 2, generator=g), labels


@pytest.mark.parametrize("kind", ["gmm", "gaussian"])
def test_codes_come_from_their_class(kind):
    codes, labels = _codes()
    density = LatentDensity(2, kind, components=2, num_classes=3)
    density.fit(codes, labels=labels)
    asked = torch.tensor([0, 1, 2]).repeat(100)
    z = density.sample(300, labels=asked, generator=torch.Generator().manual_seed(1))
    centres = torch.stack([codes[labels == c].mean(0) for c in range(3)])
    nearest = torch.cdist(z, centres).argmin(1)
    assert (nearest == asked).float().mean() > 0.99
    # one density over all codes draws each class about a third of the time: the per-class fit is what matters
    pooled = LatentDensity(2, kind, components=2)
    pooled.fit(codes)
    assert (torch.cdist(pooled.sample(300), centres).argmin(1) == asked).float().mean() < 0.6


def test_class_density_needs_labels_and_round_trips():
    codes, labels = _codes()
    density = LatentDensity(2, "gmm", components=2, num_classes=3)
    with pytest.raises(ValueError, match="one label per code"):
        density.fit(codes)
    density.fit(codes, labels=labels)
    with pytest.raises(ValueError, match="for given labels"):
        density.sample(5)
    copy = LatentDensity(2, "gmm", components=2, num_classes=3)
    copy.load_state_dict(density.state_dict())
    asked = torch.tensor([2, 0, 1])
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(copy.sample(3, labels=asked, generator=g()), density.sample(3, labels=asked, generator=g()))


def test_a_class_without_codes_falls_back_to_all_codes():
    codes, labels = _codes()
    density = LatentDensity(2, "gaussian", num_classes=4)  # class 3 never occurs
    density.fit(codes, labels=labels)
    assert torch.allclose(density.means[3, 0].float(), codes.mean(0), atol=1e-4)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_a_fit_with_fewer_components_leaves_the_other_slots_unused(num_classes):
    """A training refit fits ``components`` < K; the other slots get zero weight and are never drawn."""
    codes, labels = _codes()
    density = LatentDensity(2, "gmm", components=5, num_classes=num_classes)
    fit_labels = None if num_classes is None else labels
    density.fit(codes, labels=fit_labels, components=3)
    assert not bool(density.final)
    assert (density.weights[..., 3:] == 0).all() and torch.allclose(density.weights.sum(-1).float(), torch.tensor(1.0))
    asked = None if num_classes is None else torch.tensor([0, 1, 2]).repeat(100)
    z = density.sample(300, labels=asked, generator=torch.Generator().manual_seed(1))
    assert torch.cdist(z, codes).min(1).values.max() < 2.0  # every code near the data: no unit-Gaussian slot drawn
    density.fit(codes, labels=fit_labels)
    assert bool(density.final) and (density.weights > 0).all()
    with pytest.raises(ValueError, match=r"components must be in \[1, 5\]"):
        density.fit(codes, labels=fit_labels, components=6)
