"""Image LightningDataModules. Every one yields ``(image, label)`` batches with images in [-1, 1].

Images are held as compact tensors (uint8 where the source is 8-bit) and scaled to [-1, 1] in
``on_after_batch_transfer``, i.e. on the device, so CIFAR-10 costs 150 MB of host memory, not 600 MB.
Labels are -1 where a source has none (folders without class sub-folders, unlabelled arrays). Every module
says how many classes its labels have (``num_classes``, None without labels) and how often each occurs in the
training split (``label_counts()``): what a class-conditional model checks and stores.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset, random_split

from lightning_gen.data.resumable import resumable_train_loader
from lightning_gen.errors import check_folder, check_split_args
from lightning_gen.io import read_numpy

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] or float in [0, 1] -> float in [-1, 1]."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x * 2.0 - 1.0


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or images.shape[-1] == size and images.shape[-2] == size:
        return images
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(images, [size, size], antialias=True)  # (N, C, size, size), dtype kept


class ImageDataModule(pl.LightningDataModule):
    """Base class: subclasses implement ``load()`` returning ``(train_images, train_labels, test)``.

    ``test`` is ``None`` when the source has no official test split; then ``test_fraction`` of the data
    is held out. ``val_fraction`` of the (remaining) training data is the validation split. Splits are
    drawn with ``seed`` and are the same on every rank and every run.

    Args:
        data_dir: where datasets are downloaded or cached.
        batch_size: per-device batch size (the effective batch is this times the number of devices).
        val_fraction: share of the training data used for validation.
        test_fraction: share held out for testing when the source has no test split.
        num_workers: DataLoader worker processes.
        seed: seed of the split.
        img_size: resize images to this square size (None keeps the source size).
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        img_size: int | None = None,
    ) -> None:
        super().__init__()
        check_split_args(batch_size, val_fraction, test_fraction)
        check_folder("data_dir", data_dir)  # before any download or read, not when the first file is written
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self._loaded: tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None] | None = None
        self.train_set = self.val_set = self.test_set = None

    known_classes: int | None = None  # a source with a fixed class list (MNIST, CIFAR-10, ...)

    # -- to implement ---------------------------------------------------------------------------
    def load(self) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Return (images (N, C, H, W) uint8 or float in [0, 1], labels (N,) int64, optional test pair)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------
    def _data(self):
        if self._loaded is None:
            images, labels, test = self.load()
            images = _resize(images, self.hparams.img_size)
            if test is not None:
                test = (_resize(test[0], self.hparams.img_size), test[1])
            self._loaded = (images, labels, test)
        return self._loaded

    @property
    def dims(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model receives."""
        return tuple(self._data()[0].shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the labels (labels are 0 ... num_classes - 1), or None when the data has no
        labels (every label -1). Fixed for datasets with a class list, else the largest label + 1."""
        if self.known_classes is not None:
            return self.known_classes
        labels = self._data()[1]
        labelled = labels[labels >= 0]
        return int(labelled.max()) + 1 if len(labelled) else None

    def label_counts(self) -> torch.Tensor:
        """How many training-split images have each label: (num_classes,) int64 (empty without labels).
        Items without a label (-1) are not counted."""
        self.setup("fit")
        num_classes = self.num_classes
        if num_classes is None:
            return torch.zeros(0, dtype=torch.int64)
        labels = self.train_set.dataset.tensors[1][torch.as_tensor(self.train_set.indices)]
        return torch.bincount(labels[labels >= 0], minlength=num_classes)

    def prepare_data(self) -> None:
        # Load (download, decode, validate) before any logger creates a run folder, so bad data fails
        # fast and leaves no half-written run behind.
        self._data()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels, test = self._data()
        full = TensorDataset(images, labels)
        gen = torch.Generator().manual_seed(self.hparams.seed)
        n = len(full)
        n_test = 0 if test is not None else int(round(n * self.hparams.test_fraction))
        n_val = int(round((n - n_test) * self.hparams.val_fraction))
        train, val, held_out = random_split(full, [n - n_val - n_test, n_val, n_test], generator=gen)
        self.train_set, self.val_set = train, val
        self.test_set = TensorDataset(*test) if test is not None else held_out
        if len(self.train_set) < self.batch_size:
            raise ValueError(
                f"The training split has {len(self.train_set)} images, fewer than batch_size="
                f"{self.batch_size}; lower data.batch_size or use more data."
            )

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        # same order and position after a resume, one shard per rank under DDP (lightning_gen.data.resumable)
        return resumable_train_loader(
            self,
            self.train_set,
            self.batch_size,
            seed=self.hparams.seed,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        return to_model_range(images), labels


class DigitsDataModule(ImageDataModule):
    """scikit-learn's bundled 1,797 real 8x8 handwritten digits (UCI optdigits test set): no download."""

    known_classes = 10

    def load(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
        labels = torch.from_numpy(digits.target.astype(np.int64))
        return images, labels, None


def _torchvision_split(name: str, root: str, train: bool, download: bool):
    import torchvision

    cls = getattr(torchvision.datasets, name)
    try:
        ds = cls(root, train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True ..."
        raise FileNotFoundError(
            f"{name} was not found under {os.path.abspath(root)} and could not be downloaded ({err}). "
            f"Either pass `--data.download=true` on a machine with network access, or copy the files "
            f"torchvision expects ({_expected_files(name, root)}) there."
        ) from err
    except OSError as err:  # URLError and friends: no network
        raise FileNotFoundError(
            f"Downloading {name} into {os.path.abspath(root)} failed ({err}). With no network, copy the "
            f"files torchvision expects ({_expected_files(name, root)}) there and run again."
        ) from err
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # (N, C, H, W) uint8
    return images.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)


def _expected_files(name: str, root: str) -> str:
    if name == "CIFAR10":
        return os.path.join(root, "cifar-10-batches-py", "{data_batch_1..5,test_batch,batches.meta}")
    return os.path.join(root, name, "raw", "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")


class _TorchvisionDataModule(ImageDataModule):
    dataset_name = ""
    known_classes = 10  # MNIST, Fashion-MNIST and CIFAR-10 all have ten

    def __init__(self, *args, download: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.download = download

    def load(self):
        images, labels = _torchvision_split(self.dataset_name, self.data_dir, True, self.download)
        test = _torchvision_split(self.dataset_name, self.data_dir, False, self.download)
        return images, labels, test


class MNISTDataModule(_TorchvisionDataModule):
    """MNIST (28x28 grey) through torchvision, downloaded into ``data_dir`` (``download=true``)."""

    dataset_name = "MNIST"


class FashionMNISTDataModule(_TorchvisionDataModule):
    """Fashion-MNIST (28x28 grey) through torchvision."""

    dataset_name = "FashionMNIST"


class CIFAR10DataModule(_TorchvisionDataModule):
    """CIFAR-10 (32x32 RGB) through torchvision."""

    dataset_name = "CIFAR10"


class ImageFolderDataModule(ImageDataModule):
    """Every image file under ``path`` (recursively). Class sub-folders, if any, become labels (in sorted
    order: ``num_classes`` is their number; files directly under ``path`` get -1; no sub-folders: None).

    Args:
        path: folder of images.
        channels: 1 converts to grey, 3 to RGB.
        img_size: images are resized to this square size (required: folders mix sizes).
    """

    def __init__(self, path: str, channels: int = 3, img_size: int = 32, **kwargs) -> None:
        super().__init__(img_size=img_size, **kwargs)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}.")
        self.path, self.channels = path, channels

    def load(self):
        from PIL import Image, UnidentifiedImageError

        root = Path(self.path)
        if not root.is_dir():
            raise FileNotFoundError(f"Image folder {root} does not exist.")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"No image files ({', '.join(IMAGE_SUFFIXES)}) found under {root}.")
        classes = sorted({p.parent.relative_to(root).as_posix() for p in files} - {"."})
        size = self.hparams.img_size
        images, labels = [], []
        for f in files:
            try:
                with warnings.catch_warnings():
                    # an image over PIL's pixel limit (a decompression bomb) is refused, not decoded
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(f) as im:
                        im = im.convert("L" if self.channels == 1 else "RGB").resize((size, size), Image.BICUBIC)
                        arr = np.asarray(im, dtype=np.uint8)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
                raise ValueError(
                    f"Cannot read image file {f}: it is larger than PIL's limit of {Image.MAX_IMAGE_PIXELS} pixels "
                    f"(a decompression bomb?): {err}. Remove it, or resize it first."
                ) from None
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
                raise ValueError(f"Cannot read image file {f}: {err}. Remove or replace it.") from err
            images.append(arr.reshape(size, size, self.channels))
            rel = f.parent.relative_to(root).as_posix()
            labels.append(classes.index(rel) if rel in classes else -1)
        images_t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
        return images_t, torch.tensor(labels, dtype=torch.int64), None


class ArrayImageDataModule(ImageDataModule):
    """Images from a ``.npy`` or ``.npz`` file: uint8 in [0, 255] or float in [0, 1], shaped (N, H, W) or
    (N, C, H, W) with C in {1, 3}.

    Args:
        path: the file.
        key: array name inside a ``.npz`` (default: ``images``, ``x``, ``x_test`` or the only array).
        labels_key: optional array of integer labels inside a ``.npz`` (0 ... K-1: ``num_classes`` is the
            largest + 1; -1 marks an unlabelled image). Without it ``num_classes`` is None.
    """

    def __init__(self, path: str, key: str | None = None, labels_key: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path, self.key, self.labels_key = path, key, labels_key

    def _read(self) -> tuple[np.ndarray, np.ndarray | None]:
        path = Path(self.path)
        if not path.is_file():
            raise FileNotFoundError(f"Array file {path} does not exist.")
        if path.suffix not in (".npy", ".npz"):
            raise ValueError(f"Array file {path} must end in .npy or .npz.")
        return read_numpy(path, self._read_arrays)

    def _read_arrays(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys())
            key = self.key or next((k for k in ("images", "x", "x_test", "x_train") if k in names), None)
            if key is None and len(names) == 1:
                key = names[0]
            if key not in names:
                raise KeyError(f"{path} holds arrays {names}; choose one with `data.key`.")
            labels = None
            if self.labels_key is not None:
                if self.labels_key not in names:
                    raise KeyError(f"{path} has no array {self.labels_key!r} (it holds {names}).")
                labels = z[self.labels_key]
            return z[key], labels

    def load(self):
        arr, labels = self._read()
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise ValueError(
                f"{self.path}: array of shape {arr.shape} is not an image array; expected (N, H, W) or "
                "(N, C, H, W) with C = 1 or 3 (channels first)."
            )
        if arr.dtype == np.uint8:
            images = torch.from_numpy(np.ascontiguousarray(arr))
        elif np.issubdtype(arr.dtype, np.floating):
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            if not np.isfinite(arr).all() or lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{self.path}: float images must be finite and in [0, 1]; found range [{lo}, {hi}]. "
                    "Scale them, or save uint8 in [0, 255]."
                )
            images = torch.from_numpy(arr.astype(np.float32))
        else:
            raise ValueError(f"{self.path}: dtype {arr.dtype} is not supported; use uint8 or float.")
        if labels is None:
            labels_t = torch.full((len(images),), -1, dtype=torch.int64)
        else:
            labels_t = self._check_labels(labels, len(images))
        return images, labels_t, None

    def _check_labels(self, labels: np.ndarray, n: int) -> torch.Tensor:
        if labels.shape != (n,) or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
            raise ValueError(
                f"{self.path}: labels {self.labels_key!r} must be integers, one per image (shape ({n},)); got "
                f"dtype {labels.dtype} and shape {labels.shape}."
            )
        if n and labels.min() < -1:
            raise ValueError(f"{self.path}: labels must be 0 ... K-1 (or -1 for none), found {int(labels.min())}.")
        return torch.as_tensor(labels, dtype=torch.int64)
