"""Sequence LightningDataModules: TimeGAN sines, Bach chorales (music21 corpus) and user arrays.

Every module yields ``(x,)`` batches of float32 sequences shaped (B, T, D) and scaled to [0, 1].
"""

from __future__ import annotations

import numpy as np


def make_sines(n: int = 10000, seq_len: int = 24, dim: int = 5, seed: int = 0) -> np.ndarray:
    """The TimeGAN "Sines" benchmark (Yoon et al., NeurIPS 2019), as its reference code makes it.

    For each sequence and each feature, ``freq ~ U(0, 0.1)`` and ``phase ~ U(0, 0.1)`` are drawn (in that
    order, sequence by sequence, feature by feature), ``x_t = sin(freq * t + phase)`` for ``t = 0..seq_len-1``,
    then ``(x + 1) / 2``. With ``np.random.seed(seed)`` the reference ``sine_data_generation(n, seq_len, dim)``
    returns exactly these values.

    Returns:
        float32 array (n, seq_len, dim) in [0.5, 1) (sin of arguments in [0, 0.1 * seq_len]).
    """
    if n < 1 or seq_len < 1 or dim < 1:
        raise ValueError(f"make_sines needs n, seq_len and dim >= 1, got n={n}, seq_len={seq_len}, dim={dim}.")
    rs = np.random.RandomState(seed)
    draws = rs.uniform(0.0, 0.1, size=(n, dim, 2))  # same draw order as the reference's nested loops
    freq, phase = draws[..., 0], draws[..., 1]  # (n, dim) each
    t = np.arange(seq_len, dtype=np.float64)
    x = np.sin(freq[:, None, :] * t[None, :, None] + phase[:, None, :])  # (n, seq_len, dim)
    return ((x + 1.0) * 0.5).astype(np.float32)
