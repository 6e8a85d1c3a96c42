"""The run folder of a fit: reserved atomically before training, and a resume of a finished run refused."""

from __future__ import annotations

import os

import pytorch_lightning as pl

from lightning_gen import lightning_internals as li


def checkpoint_progress(ckpt: dict) -> tuple[int, int]:
    """(epochs whose training finished, global step) recorded in a Lightning checkpoint; -1 where it has none."""
    try:
        steps = int(ckpt.get("global_step", -1))
    except (TypeError, ValueError):
        steps = -1
    return li.fit_epochs_finished(ckpt), steps


def finished_run_message(trainer: pl.Trainer, path: str, epochs: int, steps: int) -> str | None:
    """The message for ``--ckpt_path`` of a run that already trained ``max_epochs`` epochs or ``max_steps``
    steps (Lightning would stop at once, after making a new, near-empty ``version_N``), else None."""
    if trainer.max_steps is not None and trainer.max_steps >= 0 and steps >= trainer.max_steps:
        limit, more = f"max_steps={trainer.max_steps}: {steps} steps trained", f"--trainer.max_steps={2 * steps}"
    elif trainer.max_epochs is not None and trainer.max_epochs >= 0 and epochs >= trainer.max_epochs:
        limit, more = (
            f"max_epochs={trainer.max_epochs}: {epochs} epochs trained",
            f"--trainer.max_epochs={2 * epochs}",
        )
    else:
        return None
    return (
        f"Nothing to do: the run of {path} is finished (it reached {limit}); nothing was trained or written.\n"
        f"To train it further, run the same command with a higher limit, e.g. add {more}."
    )


def reserve_run_folder(trainer: pl.Trainer) -> list[str]:
    """Create the CSV / TensorBoard logger's ``version_N`` folder with ``os.mkdir`` (atomic: it fails when another
    process made it first) and pin the logger to it. Returns the folders created, deepest first."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if any(int(os.environ.get(var, "0") or 0) != 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK")):
        return []  # rank 0 names the folder; the others never write into it
    for logger in trainer.loggers:
        if isinstance(logger, (CSVLogger, TensorBoardLogger)) and not li.logger_version_pinned(logger):
            root = logger.root_dir
            created, missing = [], root
            while missing and not os.path.isdir(missing):  # the folders this run makes, deepest first
                created.append(missing)
                missing = os.path.dirname(missing)
            os.makedirs(root, exist_ok=True)
            version = li.next_logger_version(logger)
            while True:
                folder = os.path.join(root, f"version_{version}")
                try:
                    os.mkdir(folder)
                    break
                except FileExistsError:
                    version += 1
            li.pin_logger_version(logger, version)
            return [folder, *created]
    return []
