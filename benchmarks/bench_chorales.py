"""What generated chorales look like: note statistics of samples next to real chorale windows.

Trains a sequence model from its shipped chorales config (``configs/<model>/chorales.yaml``) for a budget
of process CPU time, draws ``--num-samples`` piano rolls of ``--length`` eighth notes, and compares
C-RNN-GAN's music statistics (``lightning_gen.metrics.sequence.compare_music_statistics``: polyphony,
scale consistency, repetitions, tone span, notes per step, empty rolls, pitch-histogram distance) with the
same statistics of real test-split windows, plus how often a roll drones (one pitch held through at least
3/4 of the roll, ``lightning_gen.music.drone_statistics``). The rolls are what ``model.sample`` returns: for
the R-VAE / R-VAE-GAN binary rolls sampled step by step (each step's Bernoulli draw fed back), so the
statistics and the MIDI files are those of sampled rolls, not of thresholded probabilities. Writes MIDI files
and a piano-roll PNG of a few samples (and of real windows, for comparison).

    python benchmarks/bench_chorales.py --model rvae_gan --budget-cpu-s 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sines import REPO, cpu_budget_callback  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="rvae_gan", choices=("lstm_gan", "rvae", "rvae_gan"))
    p.add_argument("--budget-cpu-s", type=float, default=300.0)
    p.add_argument("--num-samples", type=int, default=200)
    p.add_argument("--length", type=int, default=32, help="frames (eighth notes) per generated roll")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    p.add_argument("--cli-arg", action="append", default=[], metavar="ARG", help="LightningCLI override")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import pytorch_lightning as pl

    from lightning_gen.cli import run_lightning_cli
    from lightning_gen.metrics.sequence import compare_music_statistics
    from lightning_gen.music import drone_statistics, piano_roll_image, write_roll_samples

    config = os.path.join(REPO, "configs", args.model, "chorales.yaml")
    cli = run_lightning_cli(["--config", config, *args.cli_arg], run=False)
    budget = cpu_budget_callback(args.budget_cpu_s)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=100_000, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, callbacks=[budget])  # fmt: skip
    start = time.process_time()
    trainer.fit(cli.model, cli.datamodule)
    model, dm = cli.model.eval(), cli.datamodule
    with torch.no_grad():
        probabilities = model.sample(args.num_samples, length=args.length).cpu().numpy()  # (N, L, P)
    real = dm.splits["test"][: args.num_samples]  # (n, T, P) binary
    stats = compare_music_statistics(real, probabilities, pitch_low=dm.pitch_low)
    for name, value in drone_statistics(probabilities).items():
        stats[name] = {"generated": value, "real": drone_statistics(real)[name]}
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"chorales_{args.model}{args.tag}")
    written = write_roll_samples(probabilities[:8], f"{stem}.npz", dm.pitch_low, dm.step, max_files=4)
    written["real piano roll"] = piano_roll_image(real[:8], dm.pitch_low, f"{stem}_real.png", dm.step, label="real")
    result = {
        "command": "python benchmarks/bench_chorales.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": args.model,
        "train_cpu_s": round(budget.used, 1),
        "batches": trainer.fit_loop.epoch_loop.batch_progress.total.completed,
        "batches_per_cpu_s": round(trainer.fit_loop.epoch_loop.batch_progress.total.completed / budget.used, 2),
        "cli_args": args.cli_arg,
        "binary_samples": bool(((probabilities == 0) | (probabilities == 1)).all()),
        "total_cpu_s": round(time.process_time() - start, 1),
        "mean_probability": float(probabilities.mean()),
        "statistics": stats,
        "files": written,
    }
    with open(f"{stem}.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"| statistic | generated ({args.model}) | real (test windows) |\n|---|---|---|")
    for name, pair in stats.items():
        print(f"| {name} | {pair['generated']:.3f} | {pair['real']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
