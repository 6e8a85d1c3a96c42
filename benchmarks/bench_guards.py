"""Cost of the safety callbacks (DivergenceGuard + ExactResume) per training batch of the digits GAN.

Trains the quickstart GAN (configs/gan/digits.yaml networks, batch 64) for a fixed number of batches with and
without the callbacks, alternating the two settings, and reports process CPU seconds per batch (one thread;
the machine is shared, so CPU time, not wall-clock).

    python benchmarks/bench_guards.py --batches 150 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch

from lightning_gen.data import DigitsDataModule
from lightning_gen.guards import DivergenceGuard, ExactResume
from lightning_gen.models import GAN
from lightning_gen.nets import DCGANDiscriminator, DCGANGenerator


def cpu_seconds_per_batch(with_guards: bool, batches: int) -> float:
    pl.seed_everything(0, verbose=False)
    g = DCGANGenerator(latent_dim=32, img_size=8, channels=1, base_channels=64, min_size=2)
    d = DCGANDiscriminator(img_size=8, channels=1, base_channels=64, min_size=2)
    model = GAN(g, d, ema_decay=0.995)
    callbacks = [DivergenceGuard(), ExactResume()] if with_guards else []
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=batches * (1 if with_guards else 2),  # without ExactResume, Lightning counts 2 steps a batch
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    clock = _TrainClock()
    trainer.callbacks.append(clock)
    trainer.fit(model, DigitsDataModule(batch_size=64))
    done = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    assert done == batches, (done, batches)
    return clock.seconds / batches


class _TrainClock(pl.Callback):
    """Process CPU time from the first to the last training batch (setup and data loading excluded)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.process_time()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.process_time() - self.start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {False: [], True: []}
    for _ in range(args.repeats):
        for flag in (False, True):
            results[flag].append(cpu_seconds_per_batch(flag, args.batches))
    base, guarded = statistics.median(results[False]), statistics.median(results[True])
    print(f"without callbacks: {base * 1000:.1f} CPU-ms/batch (runs: {[round(x * 1000, 1) for x in results[False]]})")
    print(f"with guard+resume: {guarded * 1000:.1f} CPU-ms/batch (runs: {[round(x * 1000, 1) for x in results[True]]})")
    print(f"overhead: {100 * (guarded / base - 1):+.1f}%")


if __name__ == "__main__":
    main()
