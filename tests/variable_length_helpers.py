"""Small variable-length sequence files for the tests (a fresh clone has no real Japanese Vowels files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


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


def write_ts(path: str | Path, sequences, labels=None, class_names=None, name: str = "data") -> None:
    """Write (T_i, D) sequences (and their class labels) as a ``.ts`` file ``data.ts_format.read_ts`` reads."""
    dims = np.asarray(sequences[0]).shape[-1]
    equal = len({len(s) for s in sequences}) == 1
    head = [f"@problemName {name}", "@timeStamps false", "@missing false", f"@univariate {str(dims == 1).lower()}",
            f"@dimensions {dims}", f"@equalLength {str(equal).lower()}"]  # fmt: skip
    if labels is not None:
        names = class_names or sorted({str(v) for v in labels})
        head.append("@classLabel true " + " ".join(str(c) for c in names))
    else:
        head.append("@classLabel false")
    rows = []
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq)
        row = ":".join(",".join(repr(float(v)) for v in seq[:, d]) for d in range(dims))
        rows.append(row + (f":{labels[i]}" if labels is not None else ""))
    Path(path).write_text("\n".join([*head, "@data", *rows]) + "\n")
