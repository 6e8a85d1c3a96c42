"""TimeGAN's sines (Yoon et al. 2019), unconditional as the benchmark makes them, or with a frequency band
per sequence as a class label."""

from __future__ import annotations

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, check_condition

MAX_FREQUENCY = 0.1  # TimeGAN draws every frequency (and phase) from U(0, 0.1)


def make_sines(n: int = 10000, seq_len: int = 24, dim: int = 5, seed: int = 0) -> np.ndarray:
    """The TimeGAN "Sines" benchmark (Yoon et al., NeurIPS 2019), as its reference code makes it.

    For each sequence and each feature, ``freq ~ U(0, 0.1)`` and ``phase ~ U(0, 0.1)`` are drawn (in that
    order, sequence by sequence, feature by feature), ``x_t = sin(freq * t + phase)`` for ``t = 0..seq_len-1``,
    then ``(x + 1) / 2``. With ``np.random.seed(seed)`` the reference ``sine_data_generation(n, seq_len, dim)``
    returns exactly these values.

    Returns:
        float32 array (n, seq_len, dim) in [0.5, 1] (sin of arguments in [0, 0.1 * seq_len] stays >= 0 up to
        seq_len 31).
    """
    _check_sizes(n, seq_len, dim)
    rs = np.random.RandomState(seed)
    draws = rs.uniform(0.0, MAX_FREQUENCY, size=(n, dim, 2))  # same draw order as the reference's nested loops
    return _sines(draws[..., 0], draws[..., 1], seq_len)


def make_band_sines(
    n: int = 10000, seq_len: int = 24, dim: int = 5, num_bands: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """TimeGAN's sines with a class per sequence: its frequency band.

    TimeGAN's frequency range [0, 0.1) is cut into ``num_bands`` equal bands; each sequence draws a band
    ``b ~ U{0, ..., num_bands - 1}``, then every feature's frequency uniformly within that band,
    ``freq ~ U(0.1 b / K, 0.1 (b + 1) / K)``, and its phase ``~ U(0, 0.1)`` as in :func:`make_sines`. Over
    the bands the frequencies are TimeGAN's U(0, 0.1); within a sequence they share a band.

    Returns:
        sequences float32 (n, seq_len, dim) in [0.5, 1] and their bands int64 (n,).
    """
    _check_sizes(n, seq_len, dim)
    if num_bands < 2:
        raise ValueError(f"num_bands must be >= 2 (classes), got {num_bands}.")
    rs = np.random.RandomState(seed)
    bands = rs.randint(num_bands, size=n)  # (n,)
    draws = rs.uniform(0.0, 1.0, size=(n, dim, 2))
    freq = (bands[:, None] + draws[..., 0]) * (MAX_FREQUENCY / num_bands)  # (n, dim), within the band
    return _sines(freq, draws[..., 1] * MAX_FREQUENCY, seq_len), bands.astype(np.int64)


def _check_sizes(n: int, seq_len: int, dim: int) -> None:
    if n < 1 or seq_len < 1 or dim < 1:
        raise ValueError(f"Sines need n, seq_len and dim >= 1, got n={n}, seq_len={seq_len}, dim={dim}.")


def _sines(freq: np.ndarray, phase: np.ndarray, seq_len: int) -> np.ndarray:
    """``(sin(freq * t + phase) + 1) / 2`` for frequencies and phases (n, dim): (n, seq_len, dim) float32."""
    t = np.arange(seq_len, dtype=np.float64)
    x = np.sin(freq[:, None, :] * t[None, :, None] + phase[:, None, :])  # (n, seq_len, dim)
    return ((x + 1.0) * 0.5).astype(np.float32)


class SinesDataModule(SequenceDataModule):
    """TimeGAN's Sines benchmark (:func:`make_sines`), generated on the fly (a few milliseconds).

    With ``condition: frequency_band`` the sequences come from :func:`make_band_sines` and the batches are
    ``(x, band)``: a class-conditional model can be asked for slow, middle or fast sines.

    Args:
        num_sequences: how many sequences (10,000 in TimeGAN).
        seq_len: steps per sequence (24).
        dim: features (5).
        data_seed: seed of the generated data (the split uses ``seed``).
        condition: ``frequency_band`` for labelled sines; None (default): TimeGAN's unlabelled sines.
        num_bands: frequency bands (classes) with ``condition: frequency_band``.
        **kwargs: see :class:`SequenceDataModule`.
    """

    conditions = ("frequency_band",)

    def __init__(
        self,
        num_sequences: int = 10000,
        seq_len: int = 24,
        dim: int = 5,
        data_seed: int = 0,
        condition: str | None = None,
        num_bands: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)  # batch_size, val_fraction, test_fraction, num_workers, seed
        check_condition(type(self).__name__, condition, self.conditions)
        if condition is not None and num_bands < 2:
            raise ValueError(f"num_bands must be >= 2 (classes), got {num_bands}.")
        self.save_hyperparameters()
        self.num_sequences, self.length, self.dim, self.data_seed = num_sequences, seq_len, dim, data_seed
        self.condition, self.num_bands = condition, num_bands
        self.labelled = condition is not None
        self.class_count = num_bands if self.labelled else None

    def load(self):
        if self.condition is None:
            return self._random_split(make_sines(self.num_sequences, self.length, self.dim, self.data_seed))
        x, bands = make_band_sines(self.num_sequences, self.length, self.dim, self.num_bands, self.data_seed)
        return self._random_split(x, bands)
