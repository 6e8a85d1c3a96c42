"""The base of the sequence DataModules: splitting, windowing, min-max scaling, loaders, and class labels.

Every module yields float32 sequences shaped (B, T, D) and scaled to [0, 1]: ``(x,)`` batches, or ``(x, y)``
batches with ``y`` int64 class labels (one per sequence) when the module was asked for a condition. Sequences of
different lengths are zero-padded to the longest and every batch ends with their mask: ``(x, mask)`` or
``(x, y, mask)``, ``mask`` bool (B, T), True on the real steps (a step-validity mask, as Keras' masking and the
sequence lengths TimeGAN's reference code passes to its recurrent networks, ``extract_time`` in ``utils.py``).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.data.resumable import resumable_train_loader
from lightning_gen.errors import check_split_args
from lightning_gen.scaling import EPS, min_max_scale


def sliding_windows(series: np.ndarray, window_length: int, stride: int = 1, name: str = "the series") -> np.ndarray:
    """Cut a series (L, ...) into windows (N, window_length, ...), every ``stride`` steps."""
    if window_length < 1 or stride < 1:
        raise ValueError(f"window_length and stride must be >= 1, got {window_length} and {stride}.")
    if window_length > len(series):
        raise ValueError(
            f"window_length={window_length} is longer than {name} ({len(series)} steps): use a shorter window."
        )
    starts = np.arange(0, len(series) - window_length + 1, stride)
    return np.stack([series[s : s + window_length] for s in starts])  # (N, window_length, ...)


def check_sequence_list(sequences, source: str, first_row=None, names=None) -> list[np.ndarray]:
    """Variable-length sequences as a list of float64 (T_i, D) arrays, each checked: at least one step, the same
    number of features as the first, no NaN / infinity. Errors name the sequence (``names[i]``, default
    ``sequence i``) and, when ``first_row`` gives each sequence's first row in the file, the row."""
    out = []
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq, dtype=np.float64)
        where = (names[i] if names is not None else f"sequence {i}") + (
            f" (from row {first_row[i]})" if first_row is not None else ""
        )
        if seq.ndim != 2:
            raise ValueError(f"{source}: {where} has shape {seq.shape}; each sequence must be (steps, features).")
        if len(seq) == 0:
            raise ValueError(f"{source}: {where} is empty (0 steps); drop it or give it at least one step.")
        if out and seq.shape[1] != out[0].shape[1]:
            raise ValueError(f"{source}: {where} has {seq.shape[1]} features, sequence 0 has {out[0].shape[1]}.")
        bad = ~np.isfinite(seq)
        if bad.any():
            step, feature = np.argwhere(bad)[0].tolist()
            row = f", row {first_row[i] + step}" if first_row is not None else ""
            raise ValueError(
                f"{source}: {where} has a NaN / infinite value at step {step}, feature {feature}{row}; fill or drop "
                "it before training."
            )
        out.append(seq)
    if not out:
        raise ValueError(f"{source} holds no sequences.")
    return out


def pad_sequences(sequences: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A list of (T_i, D) arrays to a zero-padded float32 array (N, T, D), T = ``length`` or the longest, and
    the lengths (N,) int64."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    t = int(lengths.max()) if length is None else int(length)
    out = np.zeros((len(sequences), t, sequences[0].shape[-1]), dtype=np.float32)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = seq
    return out, lengths


def length_mask(lengths, steps: int):
    """Bool mask (N, steps), True on the first ``lengths[i]`` steps; numpy in, numpy out, torch in, torch out."""
    if isinstance(lengths, torch.Tensor):
        return torch.arange(steps, device=lengths.device) < lengths[:, None]
    return np.arange(steps) < np.asarray(lengths)[:, None]


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


def check_condition(owner: str, condition: str | None, known: tuple[str, ...]) -> None:
    """A clear error for a condition the data cannot provide."""
    if condition is None or condition in known:
        return
    offer = f"one of {list(known)}" if known else "none (this data has no class condition; leave it unset)"
    raise ValueError(f"{owner} cannot condition on {condition!r}: the conditions it provides are {offer}.")


class SequenceDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load()`` returning (train, val, test), each a float array (N, T, D)
    in the data's original scale, or a list of (T_i, D) arrays for sequences of different lengths, or a pair
    (sequences, labels (N,) int64) for labelled data. Sequences of different lengths are zero-padded to the
    longest of all splits (``seq_len``), ``lengths`` holds each split's lengths (None when all sequences share
    one length: then nothing changes) and batches end with a bool mask (B, T) of the real steps. Batches are
    ``(x,)`` with x (B, T, D) float32, min-max scaled per feature with the training split's minimum and
    maximum (TimeGAN's scaling; ``data_min`` / ``data_max`` hold them), and ``(x, y)`` when labelled.

    Labelled modules set ``num_classes`` (an int; None when they yield no labels) and give the training
    split's ``label_counts()``: what a conditional model (``lightning_gen.models.conditional``) reads.

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
        check_split_args(batch_size, val_fraction, test_fraction)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.splits: dict[str, np.ndarray] | None = None  # scaled float32 (N, T, D) per split
        self.labels: dict[str, np.ndarray] | None = None  # int64 (N,) per split, for labelled data
        self.lengths: dict[str, np.ndarray] | None = None  # int64 (N,) per split, for variable-length data
        self.data_min = self.data_max = None
        self.labelled = False  # subclasses that yield labels set it (before setup) and set class_count
        self.class_count: int | None = None

    def load(self) -> tuple:
        raise NotImplementedError

    # -- labels -------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int | None:
        """Number of classes of the labels the batches carry (None: the batches carry no labels)."""
        if not self.labelled:
            return None
        if self.class_count is None:
            self.setup()
        return self.class_count

    def label_counts(self) -> np.ndarray:
        """How many training sequences each class has (num_classes,)."""
        if not self.labelled:
            raise ValueError(f"{type(self).__name__} yields no labels: set its `condition` (or labels) option.")
        self.setup()
        return np.bincount(self.labels["train"], minlength=self.num_classes)

    @property
    def variable_length(self) -> bool:
        """Whether the sequences differ in length (batches then end with a mask)."""
        self.setup()
        return self.lengths is not None

    def length_counts(self) -> np.ndarray:
        """How many training sequences have each length: (seq_len + 1,), or (num_classes, seq_len + 1) for labelled
        data (the per-class length distributions a model samples lengths from)."""
        self.setup()
        n = len(self.splits["train"])
        lengths = self.lengths["train"] if self.lengths is not None else np.full(n, self.seq_len)
        if not self.labelled:
            return np.bincount(lengths, minlength=self.seq_len + 1)
        counts = np.zeros((self.num_classes, self.seq_len + 1), dtype=np.int64)
        np.add.at(counts, (self.labels["train"], lengths), 1)
        return counts

    def _random_split(self, data, labels: np.ndarray | None = None) -> tuple:
        """Split items (sequences or windows; an array or a list of variable-length arrays), with their labels
        when given, at random with ``seed``."""
        n_train, n_val, _ = _split_counts(len(data), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(data))
        parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        take = (lambda i: [data[j] for j in i]) if isinstance(data, list) else (lambda i: data[i])
        return tuple(take(i) if labels is None else (take(i), labels[i]) for i in parts)

    # -- Lightning hooks ----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        # Load (parse, validate) before any logger creates a run folder: bad data fails before anything
        # is written.
        self.setup()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        loaded = self.load()
        if self.labelled:
            self.labels = dict(zip(("train", "val", "test"), (np.asarray(y, dtype=np.int64) for _, y in loaded)))
            loaded = [a for a, _ in loaded]
        train, val, test = arrays = self._pad_splits(loaded)
        d = train.shape[-1]
        if self.scale_data:  # the real steps' minimum and maximum: padding is no data
            steps = train[length_mask(self.lengths["train"], train.shape[1])] if self.lengths else train.reshape(-1, d)
            self.data_min, self.data_max = steps.min(axis=0), steps.max(axis=0)  # (D,) each
        else:
            self.data_min, self.data_max = np.zeros(d, np.float32), np.ones(d, np.float32) - EPS
        scale = (lambda a: min_max_scale(a, self.data_min, self.data_max)) if self.scale_data else (lambda a: a)
        self.splits = {}
        for name, a in zip(("train", "val", "test"), arrays):
            a = scale(a)
            if self.lengths is not None:  # padding stays zero in the scaled space
                a[~length_mask(self.lengths[name], a.shape[1])] = 0.0
            self.splits[name] = a
        if len(train) < self.batch_size:
            raise ValueError(
                f"The training split has {len(train)} sequences, fewer than batch_size={self.batch_size}: lower "
                "data.batch_size or use more data."
            )

    def _pad_splits(self, loaded) -> list[np.ndarray]:
        """Arrays (N, T, D) as they are; lists of variable-length sequences padded to the longest of all splits,
        with their lengths in ``self.lengths`` (left None when every sequence has the same length)."""
        if not any(isinstance(a, list) for a in loaded):
            return [np.asarray(a, dtype=np.float32) for a in loaded]
        seqs = [list(a) if isinstance(a, list) else [np.asarray(s) for s in a] for a in loaded]
        longest = max(len(s) for split in seqs for s in split)
        padded = [pad_sequences(split, longest) if split else (np.zeros((0, longest, seqs[0][0].shape[-1]), np.float32),
                  np.zeros(0, np.int64)) for split in seqs]  # fmt: skip
        lengths = dict(zip(("train", "val", "test"), (n for _, n in padded)))
        if any((n != longest).any() for n in lengths.values()):
            self.lengths = lengths
        return [a for a, _ in padded]

    @property
    def dims(self) -> tuple[int, int]:
        """(T, D) of the training sequences (T: the longest, for sequences of different lengths)."""
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

    def dataset(self, split: str) -> TensorDataset:
        """The split's sequences (and labels, for labelled data) as a dataset."""
        self.setup()
        tensors = [torch.from_numpy(self.splits[split])]
        if self.labelled:
            tensors.append(torch.from_numpy(self.labels[split]))
        if self.lengths is not None:
            tensors.append(torch.from_numpy(length_mask(self.lengths[split], self.seq_len)))  # (N, T) bool
        return TensorDataset(*tensors)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.splits[split]) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        # same order and position after a resume, one shard per rank under DDP (lightning_gen.data.resumable)
        return resumable_train_loader(
            self,
            self.dataset("train"),
            self.batch_size,
            seed=self.seed,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
