"""Small variable-length sequence files for the tests (a fresh clone has no real Japanese Vowels files)."""

from __future__ import annotations

import os

import numpy as np

from lightning_gen.data.ts_format import write_ts


def random_sequences(n: int, dim: int, low: int = 3, high: int = 9, seed: int = 0) -> list[np.ndarray]:
    """``n`` random walks (T_i, dim), T_i in [low, high]."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(t), dim)).cumsum(0) for t in rng.integers(low, high + 1, size=n)]


def write_fake_vowels(folder: str, n_train: int = 27, n_test: int = 27, dim: int = 12) -> str:
    """Japanese-Vowels-shaped ``.ts`` files (12 features, 9 speakers, lengths 3-9) under the archive's names."""
    os.makedirs(folder, exist_ok=True)
    for name, n, seed in (("TRAIN", n_train, 0), ("TEST", n_test, 1)):
        sequences = random_sequences(n, dim, seed=seed)
        labels = [str(1 + i % 9) for i in range(n)]
        write_ts(os.path.join(folder, f"JapaneseVowels_{name}.ts"), sequences, labels, [str(c) for c in range(1, 10)])
    return folder
