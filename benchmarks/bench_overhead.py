"""Lightning Trainer vs. a plain PyTorch loop: per-step time of the same GAN, batch and steps.

    python benchmarks/bench_overhead.py --img-size 8 --steps 200 --repeats 3
    python benchmarks/bench_overhead.py --img-size 32 --steps 60 --repeats 3

Both sides train the same DCGAN (same networks, losses, optimizers, data loader, data scaling) for the
same number of batches; each batch is one D step and one G step. The first ``--warmup`` batches are not
timed. Runs alternate (Lightning, plain, Lightning, ...) so that machine noise hits both, and the ratio
is taken per pair. Timing uses wall-clock and process CPU time (the latter is steadier on a shared box).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch

from lightning_gen.data import DigitsDataModule
from lightning_gen.data.images import to_model_range
from lightning_gen.losses import d_loss_ns, g_loss_ns
from lightning_gen.models import GAN
from lightning_gen.nets import DCGANDiscriminator, DCGANGenerator

LOG_EVERY = 50  # Lightning's default log_every_n_steps; the plain loop reads its metrics as often


def make_nets(img_size: int, seed: int = 0):
    torch.manual_seed(seed)
    min_size = 2 if img_size == 8 else 4
    g = DCGANGenerator(latent_dim=32, img_size=img_size, channels=1, base_channels=64, min_size=min_size)
    d = DCGANDiscriminator(img_size=img_size, channels=1, base_channels=64, min_size=min_size)
    return g, d


def make_data(img_size: int, batch_size: int):
    dm = DigitsDataModule(batch_size=batch_size, img_size=None if img_size == 8 else img_size)
    dm.setup("fit")
    return dm


def adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class _Clock(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.batches = warmup, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.batches == self.warmup:  # batch_idx restarts every epoch; count across epochs
            self.start = (time.perf_counter(), time.process_time())
        self.batches += 1

    def on_train_end(self, trainer, pl_module):
        self.end = (time.perf_counter(), time.process_time())


def run_lightning(img_size: int, batch_size: int, steps: int, warmup: int) -> tuple[float, float]:
    g, d = make_nets(img_size)
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, loss="ns")
    clock = _Clock(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1000,
        max_steps=2 * (steps + warmup),  # global_step counts optimizer steps: two per batch
        limit_val_batches=0,
        logger=pl.loggers.CSVLogger("/tmp/lightning_gen_bench", name="overhead"),
        log_every_n_steps=LOG_EVERY,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.fit(model, make_data(img_size, batch_size))
    assert trainer.global_step == 2 * (steps + warmup), trainer.global_step
    return ((clock.end[0] - clock.start[0]) / steps, (clock.end[1] - clock.start[1]) / steps)


def run_plain(img_size: int, batch_size: int, steps: int, warmup: int) -> tuple[float, float]:
    g, d = make_nets(img_size)
    opt_g, opt_d = adam(g.parameters()), adam(d.parameters())
    dm = make_data(img_size, batch_size)
    done, start = 0, None
    while done < steps + warmup:
        for images, _ in dm.train_dataloader():
            if done == warmup:
                start = (time.perf_counter(), time.process_time())
            if done == steps + warmup:
                break
            real = to_model_range(images)
            z = torch.randn(real.shape[0], g.latent_dim)
            with torch.no_grad():
                fake = g(z)
            d_loss = d_loss_ns(d(real), d(fake))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            log_now = (done + 1) % LOG_EVERY == 0  # a plain loop also reads its numbers every few steps
            if log_now:
                stats = [torch.nn.utils.clip_grad_norm_(d.parameters(), float("inf")), d_loss.item()]
            opt_d.step()
            d.requires_grad_(False)
            g_loss = g_loss_ns(d(g(torch.randn(real.shape[0], g.latent_dim))))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            if log_now:
                stats += [torch.nn.utils.clip_grad_norm_(g.parameters(), float("inf")), g_loss.item()]
            opt_g.step()
            d.requires_grad_(True)
            done += 1
    end = (time.perf_counter(), time.process_time())
    return ((end[0] - start[0]) / steps, (end[1] - start[1]) / steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--img-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    wall, cpu = [], []
    for r in range(args.repeats):
        lw, lc = run_lightning(args.img_size, args.batch_size, args.steps, args.warmup)
        pw, pc = run_plain(args.img_size, args.batch_size, args.steps, args.warmup)
        wall.append(lw / pw)
        cpu.append(lc / pc)
        print(
            f"repeat {r}: lightning {lw * 1e3:.2f} ms/step wall ({lc * 1e3:.2f} cpu), "
            f"plain {pw * 1e3:.2f} ms/step wall ({pc * 1e3:.2f} cpu), ratio wall {lw / pw:.3f} cpu {lc / pc:.3f}"
        )
    print(
        f"img_size={args.img_size} batch={args.batch_size} steps={args.steps} threads={args.threads}: "
        f"median ratio Lightning/plain: wall {statistics.median(wall):.3f}, cpu {statistics.median(cpu):.3f}"
    )


if __name__ == "__main__":
    main()
