"""Quick LSTM-GAN ablations on sines: the shipped config plus LightningCLI overrides, trained for a budget of
process CPU time, scored with TimeGAN's discriminative score (one repeat unless ``--repeats``) on 10,000
samples in the data's original scale, optionally also at earlier CPU times (``--checkpoints``; the scoring
time is not counted as training). For iterating, not for the recorded protocol figures (bench_sines.py).

    python benchmarks/ablate_lstm_gan.py --budget 120 --checkpoints 30 60                       # shipped config
    python benchmarks/ablate_lstm_gan.py --budget 60 --model.init_args.moment_matching=0       # without TimeGAN's term

Unknown arguments are LightningCLI overrides of ``configs/lstm_gan/sines.yaml``. Prints one ``RESULT`` JSON
line per scoring.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sines import REPO, cpu_budget_callback, generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import pytorch_lightning as pl

    from lightning_gen.cli import run_lightning_cli
    from lightning_gen.data.sines import make_sines
    from lightning_gen.metrics.timegan import sequence_scores

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=60.0, help="training CPU seconds")
    p.add_argument("--config", default=os.path.join(REPO, "configs", "lstm_gan", "sines.yaml"))
    p.add_argument("--checkpoints", nargs="*", type=float, default=[], help="also score at these CPU seconds")
    p.add_argument("--n", type=int, default=10000, help="generated samples (and real ones)")
    p.add_argument("--disc-iter", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tag", default="")
    args, overrides = p.parse_known_args(argv)
    torch.set_num_threads(1)
    cli = run_lightning_cli(["--config", args.config, "--seed_everything=0", *overrides], run=False)
    budget = cpu_budget_callback(args.budget)
    real = make_sines(10000, 24, 5, seed=0)[: args.n]

    def score(model, trainer) -> None:
        start = time.process_time()
        fake = generate(model, args.n, real.shape[1])
        model.train()
        scores, info = sequence_scores(real, fake, ("discriminative",), args.disc_iter, repeats=args.repeats)
        row = {
            "tag": args.tag, "overrides": overrides, "cpu_s": round(budget.used, 1),
            "batches": trainer.fit_loop.epoch_loop.batch_progress.total.completed,
            "discriminative": round(scores["discriminative"]["value"], 4),
            "std": round(scores["discriminative"]["std"], 4),
            "fake_std_over_samples": round(float(fake.std(0).mean()), 4), "real": round(float(real.std(0).mean()), 4),
            "out_of_range_share": round(info["out_of_range_share"], 4),
        }  # fmt: skip
        print("RESULT", json.dumps(row), flush=True)
        budget.start += time.process_time() - start  # scoring is not training time

    class Probe(pl.Callback):
        def __init__(self) -> None:
            self.todo = sorted(args.checkpoints)

        def on_train_batch_end(self, trainer, pl_module, *unused) -> None:
            if self.todo and budget.used >= self.todo[0]:
                self.todo.pop(0)
                score(pl_module, trainer)

    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=100_000, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[budget, Probe()],
    )  # fmt: skip
    trainer.fit(cli.model, cli.datamodule)
    score(cli.model, trainer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
