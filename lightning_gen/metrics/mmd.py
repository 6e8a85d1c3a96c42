"""Maximum mean discrepancy between two sets of samples (sequences, images or feature vectors)."""

from __future__ import annotations

import numpy as np
import torch


def mmd_rbf(x, y, gamma: float | None = None) -> float:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel ``exp(-gamma * ||a - b||^2)``.

    The biased (V-statistic) estimate of Gretton et al. 2012, eq. 5, so it is exactly 0 for identical sets
    and never negative. Sequences (N, T, D) are flattened to vectors of T * D. ``gamma`` defaults to the
    median heuristic, ``1 / median(||a - b||^2)`` over the pooled set.
    """
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

    a, b = _as_vectors(x, "x"), _as_vectors(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same size per sample, got {a.shape[1:]} and {b.shape[1:]}.")
    if gamma is None:
        pooled = np.concatenate([a, b]).astype(np.float64)
        sq = euclidean_distances(pooled, squared=True)
        median = float(np.median(sq[np.triu_indices(len(pooled), k=1)]))
        gamma = 1.0 / median if median > 0 else 1.0
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}.")
    k_xx, k_yy, k_xy = rbf_kernel(a, a, gamma=gamma), rbf_kernel(b, b, gamma=gamma), rbf_kernel(a, b, gamma=gamma)
    return float(max(k_xx.mean() + k_yy.mean() - 2.0 * k_xy.mean(), 0.0))


def _as_vectors(x, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim < 2 or len(arr) < 1:
        raise ValueError(f"{name}: expected a batch of samples (N, ...), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values.")
    return arr.reshape(len(arr), -1)
