"""User time series from ``.npy`` / ``.npz`` / ``.csv`` / ``.ts`` files, optionally with a class label per sequence
(a label column, or a second array), of one length or of different lengths (a padded array with its lengths, a
long CSV with a sequence-id column, a UEA / UCR ``.ts`` file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightning_gen.data.sequence_base import (
    SequenceDataModule,
    check_condition,
    check_sequence_list,
    sliding_windows,
)
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

    Sequences of different lengths (batches then end with a mask of the real steps, see
    :class:`SequenceDataModule`), three ways:

    - an ``.npz`` holding the zero-padded sequences (N, T, D) and their ``lengths`` (N,) (``lengths_key``);
      values past a sequence's length are ignored (they may be NaN);
    - a long-format CSV (or (L, D) array), one row per step, with a sequence-id column ``sequence_column``: the
      rows of a sequence are contiguous and in time order (the layout of ydata-synthetic's and DoppelGANger's
      users);
    - a UEA / UCR ``.ts`` file (:mod:`lightning_gen.data.ts_format`), whose class labels are used with
      ``condition: class``.

    Bad input is refused with the sequence (and row) named: an empty sequence, a length longer than the padded
    array, lengths whose count disagrees with the labels, a sequence id that is not contiguous, NaN.

    Args:
        path: the file.
        key: the array's name inside an ``.npz`` (default: its only array, or ``data``).
        window_length: steps per window for a series (required for (L, D) data).
        stride: steps between window starts.
        label_column: index of the column (last axis) holding class labels (None: no label column).
        labels_path: a ``.npy`` / ``.npz`` / ``.csv`` file of class labels (None: none).
        labels_key: the labels' array name inside an ``.npz`` ``labels_path``.
        lengths_key: the sequence lengths' array name inside the ``.npz`` (default: ``lengths`` when it holds one).
        sequence_column: index of the sequence-id column of a long CSV / (L, D) array (None: none).
        condition: ``class`` for a ``.ts`` file's class labels (classes numbered in ``@classLabel`` order).
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
        lengths_key: str | None = None,
        sequence_column: int | None = None,
        condition: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)  # batch_size, val_fraction, test_fraction, num_workers, seed
        if label_column is not None and labels_path is not None:
            raise ValueError("Give the labels one way: label_column (a column of the data) or labels_path, not both.")
        self.save_hyperparameters()
        self.path, self.key, self.window_length, self.stride = path, key, window_length, stride
        self.label_column, self.labels_path, self.labels_key = label_column, labels_path, labels_key
        self.lengths_key, self.sequence_column, self.condition = lengths_key, sequence_column, condition
        is_ts = str(path).lower().endswith(".ts")
        check_condition(type(self).__name__, condition, ("class",) if is_ts else ())
        if is_ts and (label_column is not None or labels_path is not None or sequence_column is not None):
            raise ValueError("A .ts file carries its own class labels (condition: class) and one series a line.")
        if sequence_column is not None and window_length is not None:
            raise ValueError("Give sequence_column (sequences of their own lengths) or window_length, not both.")
        self.labelled = label_column is not None or labels_path is not None or condition is not None

    def read(
        self, path: str | None = None, key: str | None = None, ranks: tuple[int, ...] = (2, 3), finite: bool = True
    ) -> np.ndarray:
        """The raw array of the file (default: the data file), float64, checked for rank and (``finite``) NaNs."""
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
        if finite and bad.any():
            where = np.argwhere(bad)[0].tolist()
            raise ValueError(
                f"{path} has {int(bad.sum())} NaN / infinite values (first at index {where}); fill or drop them "
                "before training."
            )
        return data

    def load(self):
        if str(self.path).lower().endswith(".ts"):
            return self._load_ts()
        if self.sequence_column is not None:
            return self._load_long(self.read(finite=False))
        lengths = self._read_lengths()
        if lengths is not None:
            return self._load_padded(self.read(finite=False, ranks=(3,)), lengths)
        return self._load_fixed()

    def _load_fixed(self):
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

    # -- sequences of different lengths -------------------------------------------------------------------
    def _load_ts(self):
        from lightning_gen.data.ts_format import read_ts

        ts = read_ts(self.path)
        names = [f"the series on line {n}" for n in ts.lines]
        sequences = check_sequence_list(ts.sequences, str(self.path), names=names)
        if self.condition is None:
            return self._random_split(sequences)
        if ts.labels is None:
            raise ValueError(f"{self.path} has no class labels (@classLabel false): leave data.condition unset.")
        labels = np.array([ts.class_names.index(v) for v in ts.labels], dtype=np.int64)
        return self._labelled_sequences(sequences, labels, str(self.path))

    def _read_lengths(self) -> np.ndarray | None:
        """The ``lengths`` array of an ``.npz`` (None: the file has none, the sequences share one length)."""
        path = Path(self.path)
        if path.suffix.lower() != ".npz" or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as f:
            key = self.lengths_key or ("lengths" if "lengths" in f.files else None)
            if key is None:
                return None
            if key not in f.files:
                raise KeyError(f"{path} has arrays {f.files}; data.lengths_key={key!r} is not one of them.")
            if self.key is None and len(f.files) == 2:  # the data array is the other one
                self.key = next(k for k in f.files if k != key)
            lengths = np.asarray(f[key])
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{path}: `{key}` must be one integer length per sequence (N,), got {lengths.dtype} "
                             f"{lengths.shape}.")  # fmt: skip
        return lengths.astype(np.int64)

    def _load_padded(self, data: np.ndarray, lengths: np.ndarray):
        n, t = data.shape[:2]
        if len(lengths) != n:
            raise ValueError(f"{self.path} holds {n} sequences but {len(lengths)} lengths: give one per sequence.")
        for i, length in enumerate(lengths):
            if length < 1:
                raise ValueError(f"{self.path}: sequence {i} is empty (length {length}); drop it.")
            if length > t:
                raise ValueError(
                    f"{self.path}: sequence {i} has length {length}, longer than the padded array ({t} steps)."
                )
        labels = None
        if self.label_column is not None:
            labels, data = self._take_label_column(data)
            labels = _constant_per_sequence(labels, lengths, f"column {self.label_column} of {self.path}")
        sequences = check_sequence_list([data[i, :length] for i, length in enumerate(lengths)], str(self.path))
        if self.labels_path is not None:
            labels = self._sequence_labels(n)
        return self._random_split(sequences) if labels is None else self._labelled_sequences(sequences, labels)

    def _sequence_labels(self, n: int) -> np.ndarray:
        labels = self.read(self.labels_path, self.labels_key, ranks=(1, 2))
        labels = labels[:, 0] if labels.ndim == 2 and labels.shape[1] == 1 else labels
        if labels.shape != (n,):
            raise ValueError(
                f"{self.labels_path} holds labels of shape {labels.shape}, but {self.path} holds {n} sequences (by "
                "their lengths / sequence ids): give one label per sequence."
            )
        return labels

    def _load_long(self, data: np.ndarray):
        if data.ndim != 2:
            raise ValueError(f"sequence_column needs a long table (rows, columns); {self.path} has shape {data.shape}.")
        d = data.shape[1]
        taken = [c % d for c in (self.sequence_column, self.label_column) if c is not None]
        if (
            not all(-d <= c < d for c in (self.sequence_column, self.label_column) if c is not None)
            or d - len(taken) < 1
            or len(set(taken)) < len(taken)
        ):
            raise ValueError(
                f"sequence_column={self.sequence_column}, label_column={self.label_column}: {self.path} has {d} "
                "columns; each must be a different one of them, and at least one feature column must remain."
            )
        ids = data[:, taken[0]]
        if not np.isfinite(ids).all():
            raise ValueError(f"{self.path}: data row {int(np.argmin(np.isfinite(ids))) + 1} has no sequence id.")
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])  # first row of each run of one id
        seen: dict[float, int] = {}
        for s in starts:
            if ids[s] in seen:
                raise ValueError(
                    f"{self.path}: sequence id {ids[s]:g} starts at data row {seen[ids[s]] + 1} and again at data "
                    f"row {s + 1}: the rows of a sequence must be contiguous (sort the file by id, then time)."
                )
            seen[ids[s]] = s
        features = np.delete(data, taken, axis=1)
        bounds = [*starts[1:], len(data)]
        names = [f"sequence id {ids[s]:g}" for s in starts]
        rows = [int(s) + 1 for s in starts]
        sequences = check_sequence_list([features[a:b] for a, b in zip(starts, bounds)], str(self.path), rows, names)
        if self.label_column is not None:
            column = data[:, self.label_column % d]
            labels = _constant_per_sequence(
                [column[a:b] for a, b in zip(starts, bounds)], None, f"column {self.label_column} of {self.path}", names
            )
            return self._labelled_sequences(sequences, labels)
        if self.labels_path is not None:
            return self._labelled_sequences(sequences, self._sequence_labels(len(sequences)))
        return self._random_split(sequences)

    def _labelled_sequences(self, sequences: list[np.ndarray], labels: np.ndarray, source: str | None = None):
        source = source or self.labels_path or f"column {self.label_column} of {self.path}"
        if (labels != np.round(labels)).any() or labels.min() < 0:
            bad = labels[(labels != np.round(labels)) | (labels < 0)][:5].tolist()
            raise ValueError(f"Class labels must be integers 0, 1, ..., K - 1; {source} holds {bad}.")
        labels = labels.astype(np.int64)
        self.class_count = int(labels.max()) + 1
        if self.class_count < 2:
            raise ValueError(f"{source} holds one class only ({labels.max()}): a class condition needs two or more.")
        return self._random_split(sequences, labels)


def _constant_per_sequence(labels, lengths, source: str, names=None) -> np.ndarray:
    """One label per sequence from per-step labels (a padded (N, T) array with ``lengths``, or a list of (T_i,)
    arrays); a label that changes within a sequence (or is missing) is refused with the sequence named."""
    rows = labels if lengths is None else [labels[i, :length] for i, length in enumerate(lengths)]
    out = []
    for i, row in enumerate(rows):
        name = names[i] if names is not None else f"sequence {i}"
        if not np.isfinite(row).all() or (row != row[0]).any():
            raise ValueError(f"The label in {source} changes within {name} (or is missing): one label per sequence.")
        out.append(row[0])
    return np.array(out)


def _read_numpy(path: Path, suffix: str, key: str | None) -> np.ndarray:
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as f:
        keys = list(f.keys())
        key = key or (keys[0] if len(keys) == 1 else "data")
        if key not in keys:
            raise KeyError(f"{path} has arrays {keys}; say which one with data.key (data.labels_key for labels).")
        return f[key]
