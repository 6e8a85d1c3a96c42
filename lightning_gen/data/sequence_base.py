"""The base of the sequence DataModules: splitting, windowing, min-max scaling, loaders, and class labels.

Every module yields float32 sequences shaped (B, T, D) and scaled to [0, 1]: ``(x,)`` batches, or ``(x, y)``
batches with ``y`` int64 class labels (one per sequence) when the module was asked for a condition.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.data.resumable import resumable_train_loader
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
    in the data's original scale, or a pair (array, labels (N,) int64) for labelled data. Batches are
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
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.splits: dict[str, np.ndarray] | None = None  # scaled float32 (N, T, D) per split
        self.labels: dict[str, np.ndarray] | None = None  # int64 (N,) per split, for labelled data
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

    def _random_split(self, data: np.ndarray, labels: np.ndarray | None = None) -> tuple:
        """Split items (sequences or windows), with their labels when given, at random with ``seed``."""
        n_train, n_val, _ = _split_counts(len(data), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(data))
        parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        return tuple(data[i] if labels is None else (data[i], labels[i]) for i in parts)

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
            arrays = [np.asarray(a, dtype=np.float32) for a, _ in loaded]
            self.labels = dict(zip(("train", "val", "test"), (np.asarray(y, dtype=np.int64) for _, y in loaded)))
        else:
            arrays = [np.asarray(a, dtype=np.float32) for a in loaded]
        train, val, test = arrays
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

    def dataset(self, split: str) -> TensorDataset:
        """The split's sequences (and labels, for labelled data) as a dataset."""
        self.setup()
        tensors = [torch.from_numpy(self.splits[split])]
        if self.labelled:
            tensors.append(torch.from_numpy(self.labels[split]))
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
