"""User time series from ``.npy`` / ``.npz`` / ``.csv`` files, optionally with a class label per sequence
(a label column, or a second array)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, sliding_windows
from lightning_gen.io import read_numpy


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

    Class labels (batches ``(x, y)``, for conditional models), integers 0 ... K - 1, one per sequence: either
    ``label_column``, a column of the data (taken out of the features; constant within each sequence), or a
    second file ``labels_path`` (``labels_key`` inside an ``.npz``) with one label per sequence (N,), or per
    step of a series (L,). A window of a series takes the label of its steps; windows across a change of
    label are left out.

    Args:
        path: the file.
        key: the array's name inside an ``.npz`` (default: its only array, or ``data``).
        window_length: steps per window for a series (required for (L, D) data).
        stride: steps between window starts.
        label_column: index of the column (last axis) holding class labels (None: no label column).
        labels_path: a ``.npy`` / ``.npz`` / ``.csv`` file of class labels (None: none).
        labels_key: the labels' array name inside an ``.npz`` ``labels_path``.
        **kwargs: see :class:`SequenceDataModule`.
    """

    def __init__(
        self,
        path: str,
        key: str | None = None,
        window_length: int | None = None,
        stride: int = 1,
        label_column: int | None = None,
        labels_path: str | None = None,
        labels_key: str | None = None,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        if label_column is not None and labels_path is not None:
            raise ValueError("Give the labels one way: label_column (a column of the data) or labels_path, not both.")
        self.save_hyperparameters()
        self.path, self.key, self.window_length, self.stride = path, key, window_length, stride
        self.label_column, self.labels_path, self.labels_key = label_column, labels_path, labels_key
        self.labelled = label_column is not None or labels_path is not None

    def read(self, path: str | None = None, key: str | None = None, ranks: tuple[int, ...] = (2, 3)) -> np.ndarray:
        """The raw array of the file (default: the data file), float64, checked for rank and NaNs."""
        path, key = Path(path or self.path), key if path else self.key
        if not path.is_file():
            raise FileNotFoundError(f"Array file {path} does not exist (give a .npy, .npz or .csv file).")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            data = read_csv(path)
        elif suffix in (".npy", ".npz"):
            data = read_numpy(path, lambda p: _read_numpy(p, suffix, key))
        else:
            raise ValueError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz or .csv.")
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise ValueError(f"{path} holds {data.dtype} values, not real numbers.")
        if data.size == 0:
            raise ValueError(f"{path} holds no values (shape {data.shape}).")
        data = np.asarray(data, dtype=np.float64)
        if data.ndim not in ranks:
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

    def load(self):
        data = self.read()
        steps = data.shape[:-1]  # (N, T) or (L,)
        labels = None
        if self.label_column is not None:
            labels, data = self._take_label_column(data)
        elif self.labels_path is not None:
            labels = self._read_labels(steps)
        if data.ndim == 2:
            if self.window_length is None:
                raise ValueError(
                    f"{self.path} holds one series of shape {data.shape} (L, D): set data.window_length to cut it "
                    "into windows."
                )
            data = sliding_windows(data, self.window_length, self.stride, f"the series in {self.path}")
            if labels is not None:
                labels = sliding_windows(labels, self.window_length, self.stride)  # (N, window_length)
        elif self.window_length is not None and self.window_length != data.shape[1]:
            raise ValueError(
                f"{self.path} already holds sequences of length {data.shape[1]}; leave window_length unset."
            )
        if labels is None:
            return self._random_split(data)
        data, labels = self._one_label_per_sequence(data, labels)
        return self._random_split(data, labels)

    def _take_label_column(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = data.shape[-1]
        if not -d <= self.label_column < d or d < 2:
            raise ValueError(
                f"label_column={self.label_column} but {self.path} has {d} columns: the label column must be one "
                "of them, and at least one feature column must remain."
            )
        column = self.label_column % d
        return data[..., column], np.delete(data, column, axis=-1)

    def _read_labels(self, steps: tuple[int, ...]) -> np.ndarray:
        labels = self.read(self.labels_path, self.labels_key, ranks=(1, 2))
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != steps[:1]:
            kind = "one per sequence" if len(steps) == 2 else "one per step of the series"
            raise ValueError(
                f"{self.labels_path} holds labels of shape {labels.shape}, but {self.path} needs {steps[0]} labels "
                f"({kind})."
            )
        if len(steps) == 2:
            labels = np.repeat(labels[:, None], steps[1], axis=1)  # (N, T): the same check as a label column
        return labels

    def _one_label_per_sequence(self, data: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-step labels (N, T) to one label per sequence (N,) int64, checked; windows of a series that cross
        a change of label are dropped."""
        source = self.labels_path or f"column {self.label_column} of {self.path}"
        if (labels != np.round(labels)).any() or labels.min() < 0:
            bad = labels[(labels != np.round(labels)) | (labels < 0)][:5].tolist()
            raise ValueError(f"Class labels must be integers 0, 1, ..., K - 1; {source} holds {bad}.")
        constant = (labels == labels[:, :1]).all(axis=1)
        if self.window_length is None and not constant.all():
            raise ValueError(
                f"The label in {source} changes within sequence {int(np.argmin(constant))}: a sequence has one "
                "class label."
            )
        if not constant.any():
            raise ValueError(
                f"Every window of length {self.window_length} crosses a change of label in {source}: use shorter "
                "windows."
            )
        data, labels = data[constant], labels[constant, 0].astype(np.int64)
        self.class_count = int(labels.max()) + 1
        if self.class_count < 2:
            raise ValueError(f"{source} holds one class only ({labels.max()}): a class condition needs two or more.")
        return data, labels


def _read_numpy(path: Path, suffix: str, key: str | None) -> np.ndarray:
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.keys())
        key = key or (keys[0] if len(keys) == 1 else "data")
        if key not in keys:
            raise KeyError(f"{path} has arrays {keys}; say which one with data.key (data.labels_key for labels).")
        return f[key]
