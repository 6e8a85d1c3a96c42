"""The reference set a metric compares generated samples with: every item of a datamodule's split, as the model
sees it. Shared by ``lightning-gen evaluate`` and the training-time :class:`~lightning_gen.metrics.TrainingMetric`.

Splits: ``train``, ``val``, ``test``, and ``held_out``: the validation and test splits together, every item the
model never trained on (:func:`split_items`). :func:`choose_reference` picks the default reference of the evaluate
job: the test split when it holds enough items for the feature dimension, else ``held_out``, the training split
only when nothing else exists (and then says so).
"""

from __future__ import annotations

import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset

from lightning_gen.errors import UserError

SPLITS = ("train", "val", "test", "held_out")
#: a reference set below this many items per feature dimension gives a biased FID (its covariance estimate is poor)
MIN_ITEMS_PER_FEATURE = 4


def reference_split(datamodule, split: str, limit: int | None, seed: int) -> torch.Tensor:
    """Every item of a split, as the model sees it: images mapped to [0, 1], sequences in [0, 1]."""
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}.")
    if split in ("train", "held_out"):
        x = split_items(datamodule, split)[0]
        return x[:limit] if limit else x
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "val") else "test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batches = [datamodule.on_after_batch_transfer(b, 0)[0] for b in getattr(datamodule, f"{split}_dataloader")()]
    if not batches:
        raise UserError(f"The {split} split of {type(datamodule).__name__} is empty; choose another --split.")
    x = torch.cat(batches).float()
    if x.dim() == 4:  # images come in [-1, 1]
        x = (x + 1) / 2
    return x[:limit] if limit else x


def _dataset(datamodule, split: str):
    if hasattr(datamodule, "splits"):  # sequence datamodules
        return datamodule.dataset(split)
    return getattr(datamodule, f"{split}_set")


def split_len(datamodule, split: str) -> int:
    """How many items a split holds (``held_out``: validation and test together)."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    if split == "held_out":
        return split_len(datamodule, "val") + split_len(datamodule, "test")
    dataset = _dataset(datamodule, split)
    return 0 if dataset is None else len(dataset)


def split_items(datamodule, split: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every item of ``split`` (the first ``limit`` when given) in its stored order (not shuffled, none dropped) as
    the model sees it (images in [0, 1]), and its labels (None when the batches carry none)."""
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}.")
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    parts = ("val", "test") if split == "held_out" else (split,)
    dataset = ConcatDataset([d for d in (_dataset(datamodule, p) for p in parts) if d is not None and len(d)])
    if len(dataset) == 0:
        raise UserError(f"The {split} split of {type(datamodule).__name__} is empty; choose another --split.")
    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=getattr(datamodule, "batch_size", 256) or 256, shuffle=False):
        batch = datamodule.on_after_batch_transfer(batch, 0)
        xs.append(batch[0])
        if isinstance(batch, (list, tuple)) and len(batch) > 1 and batch[1].dim() == 1:
            ys.append(torch.as_tensor(batch[1]).long())
    x = torch.cat(xs).float()
    if x.dim() == 4:  # images come in [-1, 1]
        x = (x + 1) / 2
    y = torch.cat(ys) if len(ys) == len(xs) else None
    return x, y


def choose_reference(datamodule, feature_dim: int | None) -> tuple[str, str]:
    """The default reference split, and why: ``test`` when it holds at least ``MIN_ITEMS_PER_FEATURE`` items per
    feature dimension (sequences: when it is not empty), else ``held_out`` (validation and test: neither trained
    on) when that is larger, else the training split, which the model has seen (a note says so)."""
    need = MIN_ITEMS_PER_FEATURE * feature_dim if feature_dim else 1
    test, val = split_len(datamodule, "test"), split_len(datamodule, "val")
    if test >= need:
        return "test", f"the test split ({test:,} items, never trained on)"
    if test + val > 0 and val > 0:
        return "held_out", (
            f"the validation and test splits together ({test + val:,} items, never trained on): the test split "
            f"alone holds {test:,}, under {MIN_ITEMS_PER_FEATURE} x {feature_dim} feature dimensions"
        )
    if test > 0:
        return "test", f"the test split ({test:,} items, never trained on)"
    return "train", "THE TRAINING SPLIT: the data has no validation or test split; the model was trained on these items"
