"""Conditional sines: does a class-conditional sequence model make sines of the frequency band asked for?

Each model is built from its shipped config ``configs/<model>/sines.yaml`` + ``sines_cond.yaml`` (TimeGAN's sines
with each sequence's frequency band, one of 3 bands of [0, 0.1), as its class), trained for a budget of *process
CPU time* (the CPU-budget callback of ``bench_sines.py``, one torch thread), then asked for ``--samples``
sequences, the same number of each band. A post-hoc classifier trained on the real labelled training sequences
(logistic regression on per-feature DFT magnitudes: ``lightning_gen.metrics.conditional.sequence_class_accuracy``,
the code path of ``lightning-gen evaluate``) says which band each generated sequence is in; the score is the
share classified as the band requested. The same classifier's accuracy on the real
test split is the reference. With ``--discriminative``, TimeGAN's discriminative score (post-hoc GRU,
|accuracy - 0.5|, lower is better, one repeat) of the conditional model against the real labelled
sines, and of the unconditional model (``configs/<model>/sines.yaml``) trained for the same budget against
TimeGAN's sines.

    python benchmarks/bench_conditional_sines.py --models rvae_gan --budget-cpu-s 300
    python benchmarks/bench_conditional_sines.py --models rvae_gan rvae lstm_gan --budget-cpu-s 240 --discriminative

Writes a JSON file (``--out``) after every model and prints a Markdown table; checkpoints go to
``runs/bench_conditional_sines/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import pytorch_lightning as pl
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks")]
from bench_sines import cpu_budget_callback, generate  # noqa: E402  (the CPU budget and sampling, reused)

from lightning_gen.checkpoints import load_checkpoint, load_model  # noqa: E402
from lightning_gen.cli import run_lightning_cli  # noqa: E402
from lightning_gen.data.sines import make_sines  # noqa: E402
from lightning_gen.lightning_cli.parser import config_stack  # noqa: E402
from lightning_gen.metrics.conditional import sequence_class_accuracy  # noqa: E402  (the evaluate job's classifier)
from lightning_gen.metrics.timegan import sequence_scores  # noqa: E402

MODELS = ("rvae_gan", "rvae", "lstm_gan")
RUNS = os.path.join(REPO, "runs", "bench_conditional_sines")


def config_args(name: str, config: str) -> list[str]:
    """``--config`` arguments of ``configs/<name>/<config>.yaml``: a conditional overlay after its twin."""
    return [a for path in config_stack(f"configs/{name}/{config}.yaml") for a in ("--config", os.path.join(REPO, path))]


def train(name: str, config: str, budget_s: float, seed: int, tag: str):
    """Build model and data from ``configs/<name>/<config>.yaml`` (a ``_cond`` overlay on its twin) and train for
    ``budget_s`` CPU seconds."""
    cli = run_lightning_cli([*config_args(name, config), f"--seed_everything={seed}"], run=False)
    budget = cpu_budget_callback(budget_s)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=100_000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,  # the whole budget goes to training; the scores below are the evaluation
        num_sanity_val_steps=0,
        callbacks=[budget],
    )
    trainer.fit(cli.model, cli.datamodule)
    os.makedirs(RUNS, exist_ok=True)
    path = os.path.join(RUNS, f"{name}_{config}{tag}.ckpt")
    trainer.save_checkpoint(path)
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    info = {"cpu_s": round(budget.used, 1), "batches": batches, "checkpoint": os.path.relpath(path, REPO)}
    return cli.model, cli.datamodule, info


def from_checkpoint(name: str, tag: str):
    """A conditional model saved by an earlier run (``runs/bench_conditional_sines/<name>_sines_cond<tag>.ckpt``,
    its latent density as fitted at the end of that run) and its data."""
    path = os.path.join(RUNS, f"{name}_sines_cond{tag}.ckpt")
    datamodule = run_lightning_cli(config_args(name, "sines_cond"), run=False).datamodule
    datamodule.setup("fit")
    batches = load_checkpoint(path)["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"]
    return (
        load_model(path),
        datamodule,
        {"cpu_s": "budget", "batches": batches, "checkpoint": os.path.relpath(path, REPO)},
    )


@torch.no_grad()
def generate_labelled(model, labels: np.ndarray, length: int, batch: int = 1000) -> np.ndarray:
    """One generated sequence (original scale) per requested label."""
    model.eval()
    chunks = []
    for i in range(0, len(labels), batch):
        y = torch.as_tensor(labels[i : i + batch])
        chunks.append(model.to_original(model.sample(len(y), length=length, labels=y)))
    return torch.cat(chunks).cpu().numpy().astype(np.float32)


def split_original(datamodule, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's sequences in the data's original scale and their labels."""
    return datamodule.inverse_scale(datamodule.splits[split]), datamodule.labels[split]


def discriminative(real: np.ndarray, fake: np.ndarray, iterations: int, seed: int) -> tuple[float, float]:
    """TimeGAN's discriminative score (``lightning-gen evaluate``'s code path, as bench_sines.py scores)."""
    scores, _ = sequence_scores(real, fake, ("discriminative",), iterations, 1, 1, seed, reference_predictive=False)
    return scores["discriminative"]["value"], scores["discriminative"]["std"]


def band_accuracy(train_x, train_y, fake, requested, test_x, test_y, seed: int = 0) -> dict:
    """Share of generated sequences that a classifier of the real training sequences puts in their requested
    band, and its accuracy on the real test split (``reference_value``)."""
    return sequence_class_accuracy(train_x, train_y, fake, requested, test_x, test_y, seed=seed)


def band_frequencies(x: np.ndarray, num_bands: int) -> dict:
    """Each feature's frequency read off sines (N, T, D) in the original scale [0.5, 1]: the mean step of
    arcsin(2x - 1) over the first 4 steps (where f t + phase < pi / 2), as tests/test_conditional_sequences.py
    does; a stricter check than the classifier (is the frequency inside the band?) and a view of the spread."""
    angle = np.arcsin(np.clip(2 * x[:, :4].astype(np.float64) - 1, -1, 1))
    f = np.diff(angle, axis=1).mean(1)  # (N, D)
    band = np.clip(np.floor(f.mean(1) / (0.1 / num_bands)), 0, num_bands - 1).astype(np.int64)
    return {"band": band, "spread": float(f.std(1).mean())}


def frequency_check(fake: np.ndarray, requested: np.ndarray, real: np.ndarray, real_y: np.ndarray, k: int) -> dict:
    """Share of generated sequences whose mean read-off frequency lies in the requested band, the same share
    for real sequences, and the mean spread of the frequencies within a sequence (real vs generated)."""
    gen, ref = band_frequencies(fake, k), band_frequencies(real, k)
    per_band = {str(c): round(float((gen["band"][requested == c] == c).mean()), 4) for c in range(k)}
    return {"in_band": float((gen["band"] == requested).mean()), "in_band_real": float((ref["band"] == real_y).mean()),
            "per_band": per_band, "spread": gen["spread"], "spread_real": ref["spread"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=["rvae_gan"], choices=MODELS)
    p.add_argument("--budget-cpu-s", type=float, default=300.0, help="training budget per model, CPU seconds")
    p.add_argument("--samples", type=int, default=3000, help="generated sequences, as many of each band")
    p.add_argument("--discriminative", action="store_true", help="also TimeGAN's discriminative score, cond. vs not")
    p.add_argument("--disc-iterations", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the checkpoint names")
    p.add_argument("--from-checkpoints", action="store_true", help="score the models an earlier run saved")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "conditional_sines", "result.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {
        "command": "python benchmarks/bench_conditional_sines.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{args.threads}, torch {torch.__version__}",
        "budget_cpu_s": args.budget_cpu_s,
        "models": {},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    for name in args.models:
        if args.from_checkpoints:
            model, datamodule, info = from_checkpoint(name, args.tag)
        else:
            model, datamodule, info = train(name, "sines_cond", args.budget_cpu_s, args.seed, args.tag)
        train_x, train_y = split_original(datamodule, "train")
        test_x, test_y = split_original(datamodule, "test")
        k = datamodule.num_classes
        requested = np.arange(args.samples) % k  # as many of each band
        fake = generate_labelled(model, requested, datamodule.seq_len)
        t = time.process_time()
        entry = band_accuracy(train_x, train_y, fake, requested, test_x, test_y, seed=args.seed)
        info["band_accuracy"] = entry
        info["metric_cpu_s"] = round(time.process_time() - t, 1)
        info["frequency_check"] = frequency_check(fake, requested, test_x, test_y, k)
        print(name, "band accuracy", round(entry["value"], 4), "real test", round(entry["reference_value"], 4),
              entry["per_class"], info, flush=True)  # fmt: skip
        with open(args.out, "w") as f:  # written now too: the discriminative scores below take long
            json.dump({**results, "models": {**results["models"], name: info}}, f, indent=2, default=str)
        if args.discriminative:
            real_cond = np.concatenate([train_x, split_original(datamodule, "val")[0], test_x])
            drawn = generate(model, len(real_cond), datamodule.seq_len)  # labels drawn from the training counts
            info["discriminative_conditional"] = discriminative(real_cond, drawn, args.disc_iterations, args.seed)
            plain, _, plain_info = train(name, "sines", args.budget_cpu_s, args.seed, args.tag)
            real = make_sines(10000, 24, 5, seed=0)  # the unconditional SinesDataModule's data
            fake_plain = generate(plain, len(real), 24)
            plain_info["discriminative"] = discriminative(real, fake_plain, args.disc_iterations, args.seed)
            info["unconditional"] = plain_info
            print(name, "discriminative cond / uncond", info["discriminative_conditional"],
                  plain_info["discriminative"], flush=True)  # fmt: skip
        results["models"][name] = info
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=str)
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    print("\n| model | band accuracy of samples | real test sequences | discriminative cond. / uncond. | training |")
    print("|---|---|---|---|---|")
    for name, info in results["models"].items():
        acc = info["band_accuracy"]
        disc = "-"
        if "discriminative_conditional" in info:
            disc = f"{info['discriminative_conditional'][0]:.3f} / {info['unconditional']['discriminative'][0]:.3f}"
        band = f"{acc['value']:.3f} +- {acc.get('std', 0):.3f} (per band {acc['per_class']})"
        print(f"| {name} | {band} | {acc['reference_value']:.3f} | {disc} | {info['cpu_s']} CPU s, "
              f"{info['batches']} batches |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
