"""A training DataLoader whose order and position survive a checkpoint, on one device or under DDP.

Lightning resumes a plain ``DataLoader`` mid-epoch by starting a fresh shuffle, so a resumed run sees other
batches than the run it continues. Here the order of epoch ``e`` is a pure function of (seed, e), as in
``DistributedSampler`` (so Lightning keeps this sampler under DDP instead of injecting its own), and the
loader implements Lightning's ``state_dict`` / ``load_state_dict`` interface: the checkpoint records the
epoch and how many batches of it were trained, and the resumed loader skips exactly those.

Data modules call :func:`resumable_train_loader` in ``train_dataloader``.
"""

from __future__ import annotations

import os

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_gen.lightning_internals import batches_processed_this_epoch


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (order from ``seed + epoch``, one shard per rank) that can skip a prefix once.

    With a ``trainer``, the epoch is the trainer's ``current_epoch``: the number Lightning passes to
    ``set_epoch`` (its epoch progress' ``processed`` count) is one ahead after resuming from a checkpoint
    written when ``max_steps`` ended an epoch early.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0, trainer=None
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.skip = 0
        self.trainer = trainer

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(self.trainer.current_epoch if self.trainer is not None else epoch)

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` that records its position in Lightning checkpoints."""

    def __init__(self, *args, trainer=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trainer = trainer

    def _batches_done(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return 0
        # `processed` counts the batches of this epoch whose training step ran (the checkpoint may be written
        # in on_train_batch_end, before `completed` moves, or after the batch, e.g. on SIGTERM).
        return batches_processed_this_epoch(trainer)

    def state_dict(self) -> dict:
        epoch, done = self.sampler.epoch, self._batches_done()
        total = self.trainer.num_training_batches if self.trainer is not None else len(self)
        if done >= total:  # saved at the end of an epoch: the next run starts the next one
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches_done": done, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.sampler.seed) != self.sampler.seed:
            raise ValueError(
                f"The checkpoint's data order was drawn with seed {state['seed']}, this run uses "
                f"{self.sampler.seed}: resume with the same seed_everything and data.seed."
            )
        super(ResumableSampler, self.sampler).set_epoch(int(state["epoch"]))
        self.sampler.skip = int(state["batches_done"]) * self.batch_size


def resumable_train_loader(datamodule, dataset: Dataset, batch_size: int, seed: int = 0, **loader_kwargs):
    """A shuffled training loader (``drop_last``) that resumes exactly; shards across ranks under DDP.

    The order depends on ``seed`` plus ``seed_everything``'s seed (``PL_GLOBAL_SEED``), the same on every
    rank, never on the global random state.
    """
    trainer = getattr(datamodule, "trainer", None)
    world_size = trainer.world_size if trainer is not None else 1
    rank = trainer.global_rank if trainer is not None else 0
    seed = int(seed) + int(os.environ.get("PL_GLOBAL_SEED", 0))
    sampler = ResumableSampler(dataset, world_size, rank, shuffle=True, seed=seed, trainer=trainer)
    return ResumableDataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=True, trainer=trainer, **loader_kwargs
    )
