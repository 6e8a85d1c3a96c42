"""The reference set a metric compares generated samples with: every item of a datamodule's split, as the model
sees it. Shared by ``lightning-gen evaluate`` and the training-time :class:`~lightning_gen.metrics.TrainingMetric`."""

from __future__ import annotations

import torch

from lightning_gen.errors import UserError


def reference_split(datamodule, split: str, limit: int | None, seed: int) -> torch.Tensor:
    """Every item of a split, as the model sees it: images mapped to [0, 1], sequences in [0, 1]."""
    if split not in ("train", "val", "test"):
        raise UserError(f"--split must be train, val or test, got {split!r}.")
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
