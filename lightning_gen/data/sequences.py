"""Sequence LightningDataModules: TimeGAN sines, Bach chorales (music21 corpus) and user arrays.

Every module yields ``(x,)`` batches of float32 sequences shaped (B, T, D) and scaled to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.data.resumable import resumable_train_loader
from lightning_gen.io import read_numpy
from lightning_gen.music import load_chorale_notes, notes_to_roll


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
    if n < 1 or seq_len < 1 or dim < 1:
        raise ValueError(f"make_sines needs n, seq_len and dim >= 1, got n={n}, seq_len={seq_len}, dim={dim}.")
    rs = np.random.RandomState(seed)
    draws = rs.uniform(0.0, 0.1, size=(n, dim, 2))  # same draw order as the reference's nested loops
    freq, phase = draws[..., 0], draws[..., 1]  # (n, dim) each
    t = np.arange(seq_len, dtype=np.float64)
    x = np.sin(freq[:, None, :] * t[None, :, None] + phase[:, None, :])  # (n, seq_len, dim)
    return ((x + 1.0) * 0.5).astype(np.float32)


class SequenceScale(nn.Module):
    """What a model must know to return samples in the data's original scale, kept as buffers so it is
    saved in every checkpoint: per-feature ``data_min`` / ``data_max`` (D,) of the min-max scaling, and for
    piano rolls ``pitch_low`` (MIDI pitch of column 0; -1 for other data) and ``step`` (quarter notes per
    frame), and ``seq_len``, the training window length (the default length of samples; 0 until set). Models
    set it from the DataModule in ``setup`` (:meth:`copy_from`).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("data_min", torch.zeros(dim))
        self.register_buffer("data_max", torch.ones(dim))
        self.register_buffer("pitch_low", torch.tensor(-1, dtype=torch.long))
        self.register_buffer("step", torch.tensor(0.5))
        self.register_buffer("seq_len", torch.tensor(0, dtype=torch.long))

    @property
    def is_piano_roll(self) -> bool:
        return int(self.pitch_low) >= 0

    def copy_from(self, datamodule) -> None:
        """Take the scaling (and piano-roll layout) of a :class:`SequenceDataModule` after its setup."""
        data_min = torch.as_tensor(datamodule.data_min, dtype=torch.float32)
        if data_min.shape != self.data_min.shape:
            raise ValueError(
                f"The data has {data_min.numel()} features per step but the model's networks use "
                f"{self.data_min.numel()}: set the networks' data_dim to {data_min.numel()}."
            )
        self.data_min.copy_(data_min)
        self.data_max.copy_(torch.as_tensor(datamodule.data_max, dtype=torch.float32))
        pitch_low = getattr(datamodule, "pitch_low", None)
        self.pitch_low.fill_(-1 if pitch_low is None else int(pitch_low))
        self.step.fill_(float(getattr(datamodule, "step", 0.5)))
        self.seq_len.fill_(int(datamodule.seq_len))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled (B, T, D) in [0, 1] back to the original scale (the inverse of :func:`min_max_scale`)."""
        return x * (self.data_max - self.data_min + EPS).to(x) + self.data_min.to(x)


EPS = 1e-7  # TimeGAN's MinMaxScaler adds the same to the denominator, so constant features do not divide by 0


def min_max_scale(x: np.ndarray, data_min: np.ndarray, data_max: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min + 1e-7) per feature, as TimeGAN's reference ``MinMaxScaler``."""
    return ((x - data_min) / (data_max - data_min + EPS)).astype(np.float32)


def sliding_windows(series: np.ndarray, window_length: int, stride: int = 1, name: str = "the series") -> np.ndarray:
    """Cut a series (L, D) into windows (N, window_length, D), every ``stride`` steps."""
    if window_length < 1 or stride < 1:
        raise ValueError(f"window_length and stride must be >= 1, got {window_length} and {stride}.")
    if window_length > len(series):
        raise ValueError(
            f"window_length={window_length} is longer than {name} ({len(series)} steps): use a shorter window."
        )
    starts = np.arange(0, len(series) - window_length + 1, stride)
    return np.stack([series[s : s + window_length] for s in starts])  # (N, window_length, D)


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if test_fraction > 0:
        n_test = max(n_test, 1)
    if n - n_val - n_test < 1:
        raise ValueError(
            f"{n} items cannot be split into train / val / test with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: use more data or smaller fractions."
        )
    return n - n_val - n_test, n_val, n_test


class SequenceDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load()`` returning (train, val, test) float arrays (N, T, D) in the
    data's original scale. Batches are ``(x,)`` with x (B, T, D) float32, min-max scaled per feature with the
    training split's minimum and maximum (TimeGAN's scaling); ``data_min`` / ``data_max`` hold them.

    Args:
        batch_size: per-device batch size.
        val_fraction: share of the data (of the chorales, for chorales) used for validation.
        test_fraction: share held out for testing.
        num_workers: DataLoader worker processes.
        seed: seed of the split.
    """

    pitch_low: int | None = None  # set by piano-roll data
    step: float = 0.5
    scale_data = True  # piano rolls are already binary: no scaling

    def __init__(
        self,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.splits: dict[str, np.ndarray] | None = None  # scaled float32 (N, T, D) per split
        self.data_min = self.data_max = None

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _random_split(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Split items (sequences or windows) at random with ``seed``."""
        n_train, n_val, _ = _split_counts(len(data), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(data))
        return data[order[:n_train]], data[order[n_train : n_train + n_val]], data[order[n_train + n_val :]]

    def prepare_data(self) -> None:
        # Load (parse, validate) before any logger creates a run folder: bad data fails before anything
        # is written.
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        train, val, test = (np.asarray(a, dtype=np.float32) for a in self.load())
        d = train.shape[-1]
        if self.scale_data:
            self.data_min, self.data_max = train.min(axis=(0, 1)), train.max(axis=(0, 1))  # (D,) each
        else:
            self.data_min, self.data_max = np.zeros(d, np.float32), np.ones(d, np.float32) - EPS
        scale = (lambda a: min_max_scale(a, self.data_min, self.data_max)) if self.scale_data else (lambda a: a)
        self.splits = {"train": scale(train), "val": scale(val), "test": scale(test)}
        if len(train) < self.batch_size:
            raise ValueError(
                f"The training split has {len(train)} sequences, fewer than batch_size={self.batch_size}: lower "
                "data.batch_size or use more data."
            )

    @property
    def dims(self) -> tuple[int, int]:
        """(T, D) of the training sequences."""
        self.setup()
        return tuple(self.splits["train"].shape[1:])

    @property
    def data_dim(self) -> int:
        return self.dims[1]

    @property
    def seq_len(self) -> int:
        return self.dims[0]

    def inverse_scale(self, x: np.ndarray) -> np.ndarray:
        """Scaled (..., D) back to the original scale."""
        return x * (self.data_max - self.data_min + EPS) + self.data_min

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            TensorDataset(torch.from_numpy(self.splits[split])),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.splits[split]) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # same order and position after a resume, one shard per rank under DDP (lightning_gen.data.resumable)
        self.setup()
        return resumable_train_loader(
            self,
            TensorDataset(torch.from_numpy(self.splits["train"])),
            self.batch_size,
            seed=self.seed,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SinesDataModule(SequenceDataModule):
    """TimeGAN's Sines benchmark (:func:`make_sines`), generated on the fly (a few milliseconds).

    Args:
        num_sequences: how many sequences (10,000 in TimeGAN).
        seq_len: steps per sequence (24).
        dim: features (5).
        data_seed: seed of the generated data (the split uses ``seed``).
        **kwargs: see :class:`SequenceDataModule`.
    """

    def __init__(
        self,
        num_sequences: int = 10000,
        seq_len: int = 24,
        dim: int = 5,
        data_seed: int = 0,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        self.save_hyperparameters()
        self.num_sequences, self.length, self.dim, self.data_seed = num_sequences, seq_len, dim, data_seed

    def load(self):
        return self._random_split(make_sines(self.num_sequences, self.length, self.dim, self.data_seed))


class ChoralesDataModule(SequenceDataModule):
    """J. S. Bach's chorales from the corpus inside ``music21`` (371 chorales, no download) as piano rolls.

    Parsed once (tens of seconds, with a progress bar) into note lists cached under
    ``<data_dir>/chorales/``; later runs read the cache in well under a second. Each chorale becomes a
    binary roll (T, pitch_high - pitch_low + 1) with one frame per ``step`` quarter notes (0.5: an eighth
    note), all voices in one roll. The split is by chorale (seeded), then each chorale is cut into windows of
    ``window_length`` frames every ``stride`` frames; chorales shorter than a window are left out.

    Args:
        data_dir: cache folder.
        window_length: frames per training sequence (32 eighths: four 4/4 bars).
        stride: frames between window starts.
        step: quarter notes per frame.
        pitch_low: MIDI pitch of the lowest column (36 = C2, the lowest note of the corpus).
        pitch_high: MIDI pitch of the highest column (88 = E6; the four voices stay within 36..81, a few
            chorales with an instrumental descant reach 88).
        max_chorales: parse only the first N chorales (None: all); for quick tests.
        progress: show a progress bar while parsing.
        **kwargs: see :class:`SequenceDataModule`.
    """

    scale_data = False

    def __init__(
        self,
        data_dir: str = "data",
        window_length: int = 32,
        stride: int = 8,
        step: float = 0.5,
        pitch_low: int = 36,
        pitch_high: int = 88,
        max_chorales: int | None = None,
        progress: bool = True,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        if max_chorales is not None and max_chorales < 1:
            raise ValueError(f"max_chorales must be >= 1 (or null for all), got {max_chorales}.")
        if step <= 0:
            raise ValueError(f"step must be > 0 quarter notes, got {step}.")
        self.save_hyperparameters()
        self.data_dir, self.window_length, self.stride, self.step = data_dir, window_length, stride, step
        self.pitch_low, self.pitch_high, self.max_chorales, self.progress = (
            pitch_low,
            pitch_high,
            max_chorales,
            progress,
        )
        self.names: dict[str, list[str]] = {}

    def rolls(self) -> tuple[list[str], list[np.ndarray]]:
        """Names and piano rolls (T_i, P) uint8 of every chorale asked for."""
        names, notes = load_chorale_notes(self.data_dir, self.max_chorales, self.progress)
        rolls = [notes_to_roll(n, self.pitch_low, self.pitch_high, self.step, name=k) for k, n in zip(names, notes)]
        return names, rolls

    def load(self):
        names, rolls = self.rolls()
        n_train, n_val, _ = _split_counts(len(rolls), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(rolls))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        out = []
        for split, idx in parts.items():
            self.names[split] = [names[i] for i in idx]
            windows = [
                sliding_windows(rolls[i], self.window_length, self.stride, names[i])
                for i in idx
                if len(rolls[i]) >= self.window_length
            ]
            if not windows and len(idx):
                raise ValueError(
                    f"No {split} chorale is as long as window_length={self.window_length} frames: use a shorter window."
                )
            p = self.pitch_high - self.pitch_low + 1
            out.append(np.concatenate(windows) if windows else np.zeros((0, self.window_length, p), np.float32))
        return tuple(out)


def read_csv(path: Path) -> np.ndarray:
    """A CSV of numbers, comma-separated, one time step per row, optionally one header row: (L, D) float64.

    Refused with the row, column and text: a cell that is not a number, rows of different lengths, another
    separator (``;``, tab), an empty file. An empty cell is a missing value (NaN, refused later with its index).
    """
    import csv

    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path} is not a readable text CSV file ({type(err).__name__}: {err}).") from None
    if not rows:
        raise ValueError(f"{path} holds no rows.")

    if all(_csv_number(cell) is None for cell in rows[0]) and len(rows) > 1:  # a header row
        rows = rows[1:]
    width = len(rows[0])
    if width == 1 and any(sep in rows[0][0] for sep in (";", "\t", "|")):
        raise ValueError(f"{path}: columns must be separated by commas (the first row reads {rows[0][0]!r}).")
    return np.array([_csv_row(path, i, row, width) for i, row in enumerate(rows)], dtype=np.float64).reshape(-1, width)


def _csv_number(cell: str) -> float | None:
    try:
        return float(cell) if cell.strip() else float("nan")  # an empty cell: a missing value
    except ValueError:
        return None


def _csv_row(path: Path, i: int, row: list[str], width: int) -> list[float]:
    if len(row) != width:
        raise ValueError(f"{path}: data row {i + 1} has {len(row)} columns, the first row {width}.")
    values = [_csv_number(cell) for cell in row]
    for j, value in enumerate(values):
        if value is None:
            raise ValueError(
                f"{path}: data row {i + 1}, column {j + 1} holds {row[j].strip()[:40]!r}, not a number. Every column "
                "must be numeric (drop text columns such as dates or labels; one header row is allowed)."
            )
    return values


class ArraySequenceDataModule(SequenceDataModule):
    """Any time series from a ``.npy`` / ``.npz`` / ``.csv`` file.

    Either sequences (N, T, D) or one long series (L, D) (a CSV is always a series: rows are steps, columns
    features; a first row that is not numeric is taken as a header). A series is cut into windows of
    ``window_length`` steps every ``stride`` steps, as TimeGAN does for its stock and energy data; the
    windows (or sequences) are then split at random. Overlapping windows share steps across splits. Values
    are min-max scaled per feature; ``data_min`` / ``data_max`` go into the model's checkpoint so samples
    come back in the original scale.

    Args:
        path: the file.
        key: the array's name inside an ``.npz`` (default: its only array, or ``data``).
        window_length: steps per window for a series (required for (L, D) data).
        stride: steps between window starts.
        **kwargs: see :class:`SequenceDataModule`.
    """

    def __init__(
        self,
        path: str,
        key: str | None = None,
        window_length: int | None = None,
        stride: int = 1,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        self.save_hyperparameters()
        self.path, self.key, self.window_length, self.stride = path, key, window_length, stride

    def read(self) -> np.ndarray:
        """The raw array of the file, float64, checked for rank and NaNs."""
        path = Path(self.path)
        if not path.is_file():
            raise FileNotFoundError(f"Array file {path} does not exist (give a .npy, .npz or .csv file).")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            data = read_csv(path)
        elif suffix in (".npy", ".npz"):
            data = read_numpy(path, lambda p: self._read_numpy(p, suffix))
        else:
            raise ValueError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz or .csv.")
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise ValueError(f"{path} holds {data.dtype} values, not real numbers.")
        if data.size == 0:
            raise ValueError(f"{path} holds no values (shape {data.shape}).")
        data = np.asarray(data, dtype=np.float64)
        if data.ndim not in (2, 3):
            raise ValueError(
                f"{path} holds an array of shape {data.shape}: expected sequences (N, T, D) or one series (L, D) "
                "(a univariate series needs shape (L, 1))."
            )
        bad = ~np.isfinite(data)
        if bad.any():
            where = np.argwhere(bad)[0].tolist()
            raise ValueError(
                f"{path} has {int(bad.sum())} NaN / infinite values (first at index {where}); fill or drop them "
                "before training."
            )
        return data

    def _read_numpy(self, path: Path, suffix: str) -> np.ndarray:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            key = self.key or (keys[0] if len(keys) == 1 else "data")
            if key not in keys:
                raise KeyError(f"{path} has arrays {keys}; say which one with data.key.")
            return f[key]

    def load(self):
        data = self.read()
        if data.ndim == 2:
            if self.window_length is None:
                raise ValueError(
                    f"{self.path} holds one series of shape {data.shape} (L, D): set data.window_length to cut it "
                    "into windows."
                )
            data = sliding_windows(data, self.window_length, self.stride, f"the series in {self.path}")
        elif self.window_length is not None and self.window_length != data.shape[1]:
            raise ValueError(
                f"{self.path} already holds sequences of length {data.shape[1]}; leave window_length unset."
            )
        return self._random_split(data)
