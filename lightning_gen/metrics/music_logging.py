"""Voice-leading statistics of generated piano rolls in the validation logs, beside the validation split's own."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from lightning_gen.metrics.music import compare_voice_leading


class MusicStatistics(pl.Callback):
    """Log how generated piano rolls move, every ``every_n_epochs`` validation epochs: for each statistic of
    :func:`lightning_gen.metrics.music.compare_voice_leading` (top and bass motion, notes per step, note length,
    share of notes in key, drones, pitch-class distance) ``val/music/<name>`` for ``num_samples`` rolls drawn
    with a fixed seed and ``val/music/<name>_real`` for the validation split (for the pitch-class distance:
    one half of the split against the other), so the curves show the gap to close. Cheap (numpy on a few
    hundred rolls); TimeGAN's discriminative score is the ``TrainingMetric`` callback's.

    Needs piano-roll data: a DataModule with ``pitch_low`` and ``splits`` (``ChoralesDataModule``); one that
    writes chorales as voices gives its ``to_rolls``, and both real and generated voices are compared as rolls.

    Args:
        every_n_epochs: how often (epochs ``N - 1, 2N - 1, ...``).
        num_samples: generated rolls per evaluation.
        num_reference: validation windows compared with (at most; the first ones).
        seed: seed of the generated rolls (the training RNG is left as it was).
    """

    def __init__(self, every_n_epochs: int = 1, num_samples: int = 256, num_reference: int = 1000, seed: int = 0):
        super().__init__()
        if every_n_epochs < 1 or num_samples < 2 or num_reference < 2:
            raise ValueError(
                f"every_n_epochs must be >= 1 and num_samples, num_reference >= 2; got {every_n_epochs}, "
                f"{num_samples}, {num_reference}."
            )
        self.every_n_epochs, self.num_samples = every_n_epochs, num_samples
        self.num_reference, self.seed = num_reference, seed

    def _reference(self, trainer: pl.Trainer) -> tuple[np.ndarray, int]:
        datamodule = trainer.datamodule
        pitch_low = getattr(datamodule, "pitch_low", None)
        if pitch_low is None or not hasattr(datamodule, "splits"):
            raise ValueError(
                "MusicStatistics needs piano-roll data (a DataModule with `pitch_low` and `splits`, e.g. "
                "ChoralesDataModule); remove the callback for other data."
            )
        split = datamodule.splits["val"]
        x = split[0] if isinstance(split, tuple) else split  # labelled splits are (x, y)
        return np.asarray(x[: self.num_reference]), int(pitch_low)

    @staticmethod
    def _rolls(trainer: pl.Trainer, x: np.ndarray) -> np.ndarray:
        """Piano rolls of the data module's layout (chorales as voices: the four pitches of each frame)."""
        to_rolls = getattr(trainer.datamodule, "to_rolls", None)
        return to_rolls(x) if to_rolls is not None else x

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not trainer.fast_dev_run:
            return
        real, pitch_low = self._reference(trainer)
        if len(real) < 2:
            return  # no validation windows to compare with
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # fixed samples, training RNG untouched
            torch.manual_seed(self.seed)
            fake = pl_module.sample(self.num_samples, length=real.shape[1]).float().cpu().numpy()  # (n, T, P)
        values = {}
        real, fake = self._rolls(trainer, real), self._rolls(trainer, fake)  # (n, T, P) each
        for name, pair in compare_voice_leading(real, fake, pitch_low).items():
            values[f"val/music/{name}"] = float(pair["generated"])
            values[f"val/music/{name}_real"] = float(pair["real"])
        pl_module.log_dict(values, sync_dist=False, rank_zero_only=False)
