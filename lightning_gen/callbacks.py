"""Callbacks that work with any logger: sample grids written to the run folder and sent to the loggers."""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image


def run_dir(trainer: pl.Trainer) -> str:
    """The folder of this run: the first logger's versioned folder, else ``default_root_dir``."""
    return trainer.log_dir or trainer.default_root_dir


def log_image(trainer: pl.Trainer, key: str, grid: torch.Tensor, step: int) -> None:
    """Send a (3, H, W) image in [0, 1] to every logger that can show images; others are skipped."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step)
        # CSVLogger and others have no image channel: the PNG in the run folder is the record.


class ImageSampleGrid(pl.Callback):
    """Every ``every_n_epochs`` epochs, draw samples from fixed noise and save a PNG grid.

    The grid goes to ``<run dir>/samples/epoch=NNNN.png`` and to the configured loggers. The noise is fixed
    (seeded) so successive grids show the same latent points as training goes on.

    Args:
        every_n_epochs: how often to draw.
        num_samples: images in the grid.
        nrow: images per row.
        seed: seed of the fixed noise.
    """

    def __init__(self, every_n_epochs: int = 1, num_samples: int = 64, nrow: int = 8, seed: int = 0) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs, self.num_samples, self.nrow, self.seed = every_n_epochs, num_samples, nrow, seed
        self.last_path: str | None = None

    def rows(self, pl_module: pl.LightningModule) -> list[torch.Tensor]:
        """Image batches in [-1, 1] to stack in the grid; models with more to show add rows."""
        z = torch.randn(self.num_samples, pl_module.latent_dim, generator=torch.Generator().manual_seed(self.seed))
        return [pl_module.sample(self.num_samples, z=z.to(pl_module.device))]

    @rank_zero_only
    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tag: str) -> str:
        images = torch.cat([r.detach().float().cpu() for r in self.rows(pl_module)])
        grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=self.nrow, padding=1, pad_value=1.0)
        path = os.path.join(run_dir(trainer), "samples", f"{tag}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_image(grid, path)
        log_image(trainer, "samples", grid, trainer.global_step)
        self.last_path = path
        return path

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 or trainer.fast_dev_run:
            self.write(trainer, pl_module, f"epoch={trainer.current_epoch:04d}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, "final")
