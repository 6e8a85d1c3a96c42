"""Maximum mean discrepancy between two sets of samples (sequences, images or feature vectors)."""

from __future__ import annotations

import numpy as np
import torch


def mmd_rbf(x, y, gamma: float | None = None, x_lengths=None, y_lengths=None) -> float:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel ``exp(-gamma * ||a - b||^2)``.

    The biased (V-statistic) estimate of Gretton et al. 2012, eq. 5, so it is exactly 0 for identical sets
    and never negative. Sequences (N, T, D) are flattened to vectors of T * D. ``gamma`` defaults to the
    median heuristic, ``1 / median(||a - b||^2)`` over the pooled set.

    Sequences of different lengths (``x_lengths`` / ``y_lengths``, (N,) each): every step past a sequence's
    length is set to 0 and the shorter set is zero-padded to the longer T, the padded layout TimeGAN's reference
    code scores; whatever a model wrote past a length never counts, and a length mismatch does.
    """
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

    x, y = _padded(x, x_lengths), _padded(y, y_lengths)
    if x_lengths is not None or y_lengths is not None:
        t = max(x.shape[1], y.shape[1])
        x, y = (np.pad(v, ((0, 0), (0, t - v.shape[1]), (0, 0))) for v in (x, y))
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


def _padded(x, lengths) -> np.ndarray:
    """``x`` as an array, steps past ``lengths`` (N,) zeroed (as it is without lengths)."""
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if lengths is None:
        return arr
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, torch.Tensor) else lengths)
    if arr.ndim != 3 or lengths.shape != (len(arr),):
        raise ValueError(f"lengths {lengths.shape} need sequences (N, T, D) with one length each, got {arr.shape}.")
    return np.where((np.arange(arr.shape[1])[None] < lengths[:, None])[..., None], arr, 0.0)


def _as_vectors(x, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim < 2 or len(arr) < 1:
        raise ValueError(f"{name}: expected a batch of samples (N, ...), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values.")
    return arr.reshape(len(arr), -1)
