"""Fidelity and diversity as separate numbers, and an FID with its sample-size bias removed.

- :func:`density_coverage`: density (fidelity) and coverage (diversity) of Naeem et al. 2020, "Reliable
  Fidelity and Diversity Metrics for Generative Models": each real item's ball reaches its k-th nearest real
  neighbour; density counts how many real balls hold each generated item (divided by k: about 1.0 for samples
  distributed like the data, above 1 for samples packed where the data is dense); coverage is the share of real
  balls that hold at least one generated item (1 - 2^-k expected for as many items drawn from the data itself;
  low when modes are missed).
  Unlike precision / recall, neither is inflated by an outlying real or generated item.
- :func:`fid_infinity`: FID extrapolated to infinitely many samples (Chong & Forsyth 2020, "Effectively Unbiased
  FID and Inception Score and where to find them"): FID is linear in 1 / N, so FID measured on subsets of
  several sizes is fitted by a line whose intercept at 1 / N = 0 is the bias-free value. Here both sets are
  subsampled by the same fraction, so the bias of a small reference set is extrapolated away too (the paper
  keeps the reference statistics fixed; its reference is large).
- :func:`precision_recall_knn`: improved precision / recall (Kynkaanniemi et al. 2019) with scikit-learn and
  scipy, for feature sets of any kind (e.g. sequences' post-hoc features).

Features are (N, D) arrays or tensors; every function works in float64 on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch


def _array(x) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be shaped (N, D), got {arr.shape}.")
    return arr


def knn_radii(real: np.ndarray, k: int) -> np.ndarray:
    """Distance of each real item to its k-th nearest other real item (scikit-learn NearestNeighbors)."""
    from sklearn.neighbors import NearestNeighbors

    if len(real) <= k:
        raise ValueError(f"k-nearest-neighbour balls with k={k} need more than {k} real items, got {len(real)}.")
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)
    return distances[:, k]  # column 0 is the item itself


def _ball_counts(centres: np.ndarray, radii: np.ndarray, points: np.ndarray, chunk: int = 1024):
    """For points in the balls around ``centres``: how many balls hold each point (len(points),) and whether each
    ball holds some point (len(centres),) bool; in row chunks, so memory stays at ``chunk`` x len(centres)."""
    from scipy.spatial.distance import cdist

    per_point = np.zeros(len(points), np.int64)
    per_ball = np.zeros(len(centres), bool)
    for i in range(0, len(points), chunk):
        inside = cdist(points[i : i + chunk], centres) <= radii[None, :]  # (chunk, len(centres))
        per_point[i : i + chunk] = inside.sum(axis=1)
        per_ball |= inside.any(axis=0)
    return per_point, per_ball


def density_coverage(real, fake, k: int = 5) -> dict:
    """Density and coverage (Naeem et al. 2020, k = 5 as in the paper) of ``fake`` against ``real`` features."""
    real, fake = _array(real), _array(fake)
    if len(fake) == 0:
        raise ValueError("density / coverage need at least one generated item.")
    per_fake, covered = _ball_counts(real, knn_radii(real, k), fake)
    return {"density": float(per_fake.sum() / (k * len(fake))), "coverage": float(covered.mean()), "k": k}


def precision_recall_knn(real, fake, k: int = 3) -> dict:
    """Improved precision (share of generated items inside some real item's k-NN ball) and recall (share of real
    items inside some generated item's k-NN ball), Kynkaanniemi et al. 2019."""
    real, fake = _array(real), _array(fake)
    precision = float((_ball_counts(real, knn_radii(real, k), fake)[0] > 0).mean())
    recall = float((_ball_counts(fake, knn_radii(fake, k), real)[0] > 0).mean())
    return {"precision": precision, "recall": recall}


def fid_infinity(real, fake, fractions=None, seed: int = 0, fid=None) -> dict:
    """FID extrapolated to infinitely many samples (Chong & Forsyth 2020): FID of random subsets of both sets at
    ``fractions`` of their sizes (default: 6 fractions from the smallest that keeps each subset at twice the
    feature dimension, or one half, up to 1), a least-squares line in 1 / (subset size), its intercept.

    Returns ``{"value": intercept, "slope", "points": [[real n, generated n, fid], ...]}``. Raises
    ``ValueError`` when the sets are too small for two subset sizes (under 2.5 x the feature dimension)."""
    from lightning_gen.metrics.image import fid_from_features

    fid = fid or fid_from_features
    real, fake = torch.as_tensor(_array(real)), torch.as_tensor(_array(fake))
    dim, smallest = real.shape[1], min(len(real), len(fake))
    if fractions is None:
        low = max(0.5, 2 * dim / smallest)
        if low > 0.8:
            raise ValueError(
                f"FID-infinity needs subsets of at least twice the {dim} feature dimensions at several sizes; the "
                f"sets hold {len(real)} real and {len(fake)} generated items (need {int(2.5 * dim)} or more each)."
            )
        fractions = np.linspace(low, 1.0, 6)
    gen = torch.Generator().manual_seed(seed)
    points = []
    for f in fractions:
        nr, nf = max(2, int(round(f * len(real)))), max(2, int(round(f * len(fake))))
        r = real[torch.randperm(len(real), generator=gen)[:nr]]
        g = fake[torch.randperm(len(fake), generator=gen)[:nf]]
        points.append([nr, nf, fid(r, g)])
    inverse = np.array([1.0 / p[1] for p in points])  # 1 / N of the generated set (the paper's axis)
    values = np.array([p[2] for p in points])
    slope, intercept = np.polyfit(inverse, values, 1)
    return {"value": float(intercept), "slope": float(slope), "points": [[a, b, round(c, 6)] for a, b, c in points]}
