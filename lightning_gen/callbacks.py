"""Callbacks that work with any logger: sample grids, sequence plots and the run's loss curves, written to the run
folder and sent to the loggers that show images."""

from __future__ import annotations

import contextlib
import os

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn
from torchvision.utils import make_grid, save_image


def run_dir(trainer: pl.Trainer) -> str:
    """The folder of this run: the first logger's versioned folder, else ``default_root_dir``.

    The same as ``trainer.log_dir`` without its broadcast: that is a collective call under DDP, which hangs
    (or crashes the run) when made from rank-zero-only code such as the sample writers here.
    """
    from pytorch_lightning.loggers import CSVLogger

    if not trainer.loggers:
        return trainer.default_root_dir
    logger = trainer.loggers[0]
    path = logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir
    return path or trainer.default_root_dir


def upscale_small(images: torch.Tensor, min_side: int = 64) -> torch.Tensor:
    """Enlarge images (B, C, H, W) smaller than ``min_side`` by a whole factor, nearest neighbour (each pixel
    becomes a k x k block, nothing is smoothed), so that the 8x8 digits grid is readable as a PNG (73x73 px
    for 64 digits before, 521x521 now) and 28x28 digits show as 84x84."""
    k = -(-min_side // min(images.shape[-2:]))  # ceil
    if k <= 1:
        return images
    return images.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)  # (B, C, k*H, k*W)


def image_grid(images: torch.Tensor, nrow: int = 8, min_side: int = 64) -> torch.Tensor:
    """Images in [-1, 1] (B, C, H, W) -> one (3, H', W') grid in [0, 1], small images enlarged first
    (:func:`upscale_small`), one white pixel between images."""
    return make_grid(upscale_small((images.clamp(-1, 1) + 1) / 2, min_side), nrow=nrow, padding=1, pad_value=1.0)


def log_image(trainer: pl.Trainer, key: str, grid: torch.Tensor, step: int) -> None:
    """Send a (3, H, W) image in [0, 1] to every logger that can show images; others are skipped."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step)
        # CSVLogger and others have no image channel: the PNG in the run folder is the record.


def save_and_log(trainer: pl.Trainer, key: str, image: torch.Tensor, path: str) -> str:
    """Write a (3, H, W) image in [0, 1] to ``path`` (folders made) and send it to the loggers under ``key``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_image(image, path)
    log_image(trainer, key, image, trainer.global_step)
    return path


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
        num_classes = getattr(pl_module, "num_classes", None)  # a conditional model: row r shows class r mod K
        labels = None if num_classes is None else (torch.arange(self.num_samples) // self.nrow) % num_classes
        density = getattr(pl_module, "latent_density", None)  # VAE-type models: codes from the ex-post density
        if density is not None:
            generator = torch.Generator(device=density.means.device).manual_seed(self.seed)
            on = None if labels is None else labels.to(density.means.device)
            z = density.sample(self.num_samples, generator=generator, labels=on)
        else:
            z = torch.randn(self.num_samples, pl_module.latent_dim, generator=torch.Generator().manual_seed(self.seed))
        extra = {} if labels is None else {"labels": labels.to(pl_module.device)}
        return [pl_module.sample(self.num_samples, z=z.to(pl_module.device), **extra)]

    @rank_zero_only
    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tag: str) -> str:
        images = torch.cat([r.detach().float().cpu() for r in self.rows(pl_module)])
        grid = image_grid(images, nrow=self.nrow)
        self.last_path = save_and_log(trainer, "samples", grid, os.path.join(run_dir(trainer), "samples", f"{tag}.png"))
        return self.last_path

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 or trainer.fast_dev_run:
            self.write(trainer, pl_module, f"epoch={trainer.current_epoch:04d}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, "final")


class ReconstructionGrid(ImageSampleGrid):
    """:class:`ImageSampleGrid` for models with an encoder (``reconstruct`` / ``interpolate``: VAE, VAE-GAN).

    The grid shows, top to bottom: pairs of (input, reconstruction) side by side for a fixed batch of
    validation images (the first validation batch; the first training batch if there is no validation),
    one interpolation row between the posterior means of the first two of them, then the samples from
    fixed noise.

    Args:
        num_reconstructions: inputs shown with their reconstructions (the grid holds twice as many images).
        every_n_epochs, num_samples, nrow, seed: as in :class:`ImageSampleGrid`.
    """

    def __init__(self, num_reconstructions: int = 16, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_reconstructions < 2:
            raise ValueError(
                f"num_reconstructions must be >= 2 (the interpolation needs two), got {num_reconstructions}."
            )
        self.num_reconstructions = num_reconstructions
        self.inputs: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None  # the inputs' labels, for a conditional model
        self.inputs_from: str | None = None

    def _keep(self, batch, source: str) -> None:
        self.inputs = batch[0][: self.num_reconstructions].detach().cpu().clone()  # (n, C, H, W) in [-1, 1]
        has_labels = isinstance(batch, (list, tuple)) and len(batch) > 1
        self.labels = batch[1][: self.num_reconstructions].detach().cpu().clone() if has_labels else None
        self.inputs_from = source

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.inputs_from != "val" and batch_idx == 0 and len(batch[0]) >= 2:
            self._keep(batch, "val")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.inputs is None and len(batch[0]) >= 2:
            self._keep(batch, "train")

    def rows(self, pl_module: pl.LightningModule) -> list[torch.Tensor]:
        samples = super().rows(pl_module)
        if self.inputs is None:
            return samples
        x = self.inputs.to(pl_module.device)
        y = None  # a conditional model reconstructs with the images' labels; an unconditional one takes none
        if getattr(pl_module, "num_classes", None) is not None and self.labels is not None:
            y = self.labels.to(pl_module.device)
        recon = pl_module.reconstruct(x) if y is None else pl_module.reconstruct(x, labels=y)
        pairs = torch.stack([x, recon], dim=1).flatten(0, 1)  # (2n, C, H, W): input, reconstruction, ...
        ends = {} if y is None else {"labels_a": y[:1], "labels_b": y[1:2]}
        line = pl_module.interpolate(x[0], x[1], steps=self.nrow, **ends)[0]  # (nrow, C, H, W)
        return [pairs, line, *samples]


class SequencePlot(pl.Callback):
    """Every ``every_n_epochs`` epochs, plot generated sequences under real ones, for sequence models.

    Real-valued data: one panel per sequence, a line per feature (real on the top row, generated below).
    Piano rolls: rolls as images. The PNG goes to ``<run dir>/samples/sequences_<tag>.png`` and to every
    logger that shows images. Samples are drawn with a fixed seed (the global RNG state is restored after).

    Args:
        every_n_epochs: how often to plot.
        num_sequences: sequences per row.
        length: length of the generated sequences (default: the real ones'; longer shows extrapolation).
        seed: seed of the generated samples.
    """

    def __init__(self, every_n_epochs: int = 1, num_sequences: int = 4, length: int | None = None, seed: int = 0):
        super().__init__()
        if every_n_epochs < 1 or num_sequences < 1:
            raise ValueError(f"every_n_epochs and num_sequences must be >= 1, got {every_n_epochs}, {num_sequences}.")
        self.every_n_epochs, self.num_sequences, self.length, self.seed = every_n_epochs, num_sequences, length, seed
        self.last_path: str | None = None

    def _real(self, trainer: pl.Trainer) -> torch.Tensor:
        splits = getattr(trainer.datamodule, "splits", None) or {}
        for name in ("val", "train"):
            if name in splits and len(splits[name]):
                return torch.as_tensor(splits[name][: self.num_sequences])  # (n, T, D) in [0, 1]
        raise ValueError("SequencePlot needs a sequence DataModule (with `splits`), e.g. SinesDataModule.")

    @rank_zero_only
    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, tag: str) -> str:
        from lightning_gen.plotting import figure_pixels, sequence_figure

        real = self._real(trainer)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            lengths = getattr(trainer.datamodule, "lengths", None)  # sequences of different lengths: no padding shown
            if lengths is not None and self.length is None:
                from lightning_gen.plotting import trim

                split = "val" if len(lengths["val"]) else "train"  # the split _real reads
                drawn = pl_module.sample_lengths(len(real)).cpu()
                fake = trim(pl_module.sample(len(real), lengths=drawn).float().cpu().numpy(), drawn.numpy())
                real = trim(real.numpy(), lengths[split][: len(real)])
            else:
                fake = pl_module.sample(len(real), length=self.length or real.shape[1]).float().cpu()
        info = getattr(pl_module, "data_info", None)
        roll = bool(getattr(info, "is_piano_roll", False))
        as_array = lambda x: x.numpy() if isinstance(x, torch.Tensor) else x  # noqa: E731  (trimmed: object arrays)
        rows = [(as_array(real), "real"), (as_array(fake), "generated")]
        if roll:  # pitch and time axes: MIDI pitches from pitch_low, frames of `step` quarter notes
            pitch_low, step = int(getattr(info, "pitch_low", 0)), float(getattr(info, "step", 0)) or None
            fig = sequence_figure(rows, roll=True, pitch_low=pitch_low, step=step)
        else:
            fig = sequence_figure(rows, ylim=(-0.05, 1.05))  # the model's [0, 1] scale
        pixels = figure_pixels(fig)  # (H, W, 3) uint8
        image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0  # (3, H, W) in [0, 1]
        path = os.path.join(run_dir(trainer), "samples", f"sequences_{tag}.png")
        self.last_path = save_and_log(trainer, "sequences", image, path)
        return self.last_path

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 and not trainer.fast_dev_run:
            self.write(trainer, pl_module, f"epoch={trainer.current_epoch:04d}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, "final")  # the only plot of a fast_dev_run


class LossCurves(pl.Callback):
    """At the end of every fit, ``<run dir>/loss_curves.png``: one panel per logged metric (``train/x`` and ``val/x``
    together) against the step, spanning the resumed parts of the run, and the same picture to every logger that
    shows images.

    The values come from the run's ``metrics.csv`` when a CSVLogger writes one (the default logger), else from the
    metrics this callback records itself (every ``log_every_n_steps`` batches and after every validation), so the
    picture exists with any logger. A resumed run starts a new ``version_N``: the earlier parts' ``metrics.csv`` are
    found through the checkpoint, which carries the folders of every earlier part (this callback's state), and,
    for a checkpoint written before this callback existed, the ``--ckpt_path``'s own run folder. Dashed lines mark
    where the run was resumed. ``lightning-gen fit`` adds it (``--loss_curves.enabled=false`` turns it off).

    Args:
        enabled: draw the picture.
        filename: its name inside the run folder.
        max_panels: at most this many metrics, losses first.
    """

    def __init__(self, enabled: bool = True, filename: str = "loss_curves.png", max_panels: int = 16) -> None:
        super().__init__()
        self.enabled, self.filename, self.max_panels = enabled, filename, max_panels
        self.earlier_runs: list[str] = []  # run folders of the parts before this one, oldest first
        self.folder: str | None = None
        self.recorded: dict[str, list[tuple[float, float]]] = {}
        self.last_path: str | None = None

    # -- the parts of a run ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        parts = [*self.earlier_runs, *([self.folder] if self.folder else [])]
        return {"run_folders": parts}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier_runs = [str(p) for p in state_dict.get("run_folders", []) if isinstance(p, str)]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the checkpoint's state is restored; before any checkpoint of this part is written. Rank 0 only: it
        # writes the checkpoints and the picture, and another rank's logger would guess a version number of its own
        if not trainer.is_global_zero:
            return
        self.folder = os.path.abspath(run_dir(trainer))
        ckpt_path = getattr(trainer, "ckpt_path", None)
        if ckpt_path and os.path.isfile(ckpt_path):  # version_N/checkpoints/x.ckpt -> version_N
            own = os.path.dirname(os.path.dirname(os.path.abspath(ckpt_path)))
            if own not in self.earlier_runs and own != self.folder:
                self.earlier_runs.append(own)
        self.earlier_runs = [p for p in self.earlier_runs if p != self.folder]

    # -- values for loggers without a metrics.csv -----------------------------------------------------------------
    def _record(self, trainer: pl.Trainer, prefix: str) -> None:
        if not self.enabled or _csv_logger(trainer) is not None:
            return
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix) and isinstance(value, torch.Tensor) and value.numel() == 1:
                self.recorded.setdefault(key, []).append((float(trainer.global_step), float(value)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % max(1, trainer.log_every_n_steps) == 0:
            self._record(trainer, "train/")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val/")

    # -- the picture ----------------------------------------------------------------------------------------------
    def series(self, trainer: pl.Trainer):
        """(joined metrics of every part, steps where resumed parts start)."""
        from lightning_gen.plotting import join_parts, read_metrics_csv

        logger = _csv_logger(trainer)
        if logger is not None:
            logger.save()  # flush what is still buffered
            current = read_metrics_csv(os.path.join(logger.log_dir, "metrics.csv"))
        else:
            current = self.recorded
        earlier = [read_metrics_csv(os.path.join(folder, "metrics.csv")) for folder in self.earlier_runs]
        return join_parts([*earlier, current])

    @rank_zero_only
    def write(self, trainer: pl.Trainer) -> str | None:
        from lightning_gen.plotting import figure_pixels, loss_curve_figure

        series, resumes = self.series(trainer)
        parts = f", {len(resumes) + 1} parts (resumed)" if resumes else ""
        fig = loss_curve_figure(series, resumes, f"{os.path.basename(self.folder or '')}{parts}", self.max_panels)
        if fig is None:
            return None
        image = torch.from_numpy(figure_pixels(fig)).permute(2, 0, 1).float() / 255.0  # (3, H, W) in [0, 1]
        path = os.path.join(run_dir(trainer), self.filename)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            save_image(image, path)
        except (OSError, ValueError) as err:  # the run itself is done and saved: a missing picture must not fail it
            rank_zero_warn(f"LossCurves: could not write {path}: {err}")
            return None
        log_image(trainer, "loss_curves", image, trainer.global_step)
        self.last_path = path
        return path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and not trainer.fast_dev_run:  # fast_dev_run logs nothing and writes no run folder
            self.write(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A diverged run (the divergence guard stopped it) gets its picture too: the curves up to the divergence
        are what to look at. Drawing never replaces the exception the run stops with."""
        from lightning_gen.guards import DivergenceError

        if self.enabled and isinstance(exception, DivergenceError) and not trainer.fast_dev_run:
            with contextlib.suppress(Exception):
                self.write(trainer)


def _csv_logger(trainer: pl.Trainer):
    from pytorch_lightning.loggers import CSVLogger

    return next((logger for logger in trainer.loggers if isinstance(logger, CSVLogger)), None)
