"""Do generated chorales move like chorales? Voice-leading statistics and a discriminative score on piano rolls.

Trains a sequence model from a chorales config (``configs/<model>/<config>.yaml``) for a budget of process CPU
time, draws ``--num-samples`` piano rolls of ``--length`` eighth notes, and compares them with the windows of
every chorale in music21's corpus (as written, not transposed): C-RNN-GAN's music statistics and the
voice-leading table of ``lightning_gen.metrics.music.compare_music_statistics`` (top and bass motion, notes per
step, note length, share of notes in the window's key, drones, pitch-class distance with the real windows' own
figure, one half against the other) and TimeGAN's discriminative score on the binary rolls
(``roll_discriminative_score``: generated against as many real windows, and one half of the real windows
against the other). A model trained on chorales moved into C major / A minor (``transpose: true``) has each
sample moved into the key of a training chorale drawn at random (``ChoralesDataModule.to_written_keys``), so
the keys come out as often as in the corpus. The rolls are what ``model.sample`` returns (binary rolls sampled
step by step); a model of chorales as voices (``representation: voices``) returns one-hot voices, scored as the
rolls of their four pitches (``ChoralesDataModule.to_rolls``) against the same real windows.
Writes every sample's roll (.npz), MIDI files, WAV files and a piano-roll PNG of a few samples and of real
windows, a JSON of all figures, and with
``--leaderboard`` a row of the leaderboard file (replacing the row of the same model, config and budget).

    python benchmarks/bench_chorales.py --model rvae_gan --config chorales_transposed --budget-cpu-s 300 \\
        --leaderboard benchmarks/results/leaderboard/chorales_voice_leading.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sines import REPO, cpu_budget_callback  # noqa: E402

# The targets: name -> (kind, bound): "max" a ceiling on the value, "rel" the largest relative gap to
# the real windows' figure.
TARGETS = {
    "discriminative": ("max", 0.25),
    "top_motion": ("rel", 0.5),
    "bass_motion": ("rel", 0.5),
    "pitch_class_distance": ("max", 0.05),
    "notes_per_step": ("rel", 0.15),
    "note_length": ("rel", 0.15),
    "drone_share": ("max", 0.0),
}


# The leaderboard's columns: the targets and the share of notes in key (every figure is in the JSON).
LEADERBOARD = (*TARGETS, "in_key_share")


def real_windows(dm) -> np.ndarray:
    """Windows of every chorale (all splits) as written, on the pitch columns of ``dm``: (N, T, P)."""
    from lightning_gen.data import ChoralesDataModule

    written = ChoralesDataModule(
        data_dir=dm.data_dir, window_length=dm.window_length, stride=dm.stride, step=dm.step,
        pitch_low=dm.pitch_low, pitch_high=dm.pitch_high, max_chorales=dm.max_chorales, progress=False,
    )  # fmt: skip
    written.setup()
    splits = [written.splits[k] for k in ("train", "val", "test")]
    return np.concatenate([s[0] if isinstance(s, tuple) else s for s in splits]).astype(np.float32)


def meets(name: str, value: float, real: float) -> bool | None:
    """Whether a figure meets the issue's target (None: no target for it)."""
    if name not in TARGETS:
        return None
    kind, bound = TARGETS[name]
    if kind == "max":
        return bool(value <= bound)
    return bool(abs(value - real) <= bound * abs(real))


def discriminative(real: np.ndarray, rolls: np.ndarray, args) -> dict:
    """``roll_discriminative_score`` of the samples; the real halves' figure depends on the real windows only,
    so it is computed once per setting and kept in ``<out>/real_discriminative_<setting>.json``."""
    from lightning_gen.metrics.music import roll_discriminative_score

    setting = f"{real.shape[0]}x{real.shape[1]}x{real.shape[2]}_{args.disc_iterations}it_{args.disc_repeats}rep"
    cache = os.path.join(args.out, f"real_discriminative_{setting}.json")
    if os.path.exists(cache):
        with open(cache) as f:
            floor = json.load(f)
        from lightning_gen.metrics.timegan import discriminative_score

        drawn = (real[np.random.default_rng(0).permutation(len(real))[: len(rolls)]] > 0.5).astype(np.float32)
        gen, gen_std = discriminative_score(drawn, rolls, args.disc_iterations, 128, args.disc_repeats, 0)
        return {"discriminative": {"generated": gen, "generated_std": gen_std, **floor}}
    out = roll_discriminative_score(real, rolls, args.disc_iterations, args.disc_repeats, seed=0)
    with open(cache, "w") as f:
        json.dump({k: out["discriminative"][k] for k in ("real", "real_std")}, f)
    return out


def leaderboard_row(args, result: dict) -> dict:
    stats = {k: v for k, v in result["statistics"].items() if k in LEADERBOARD}
    metrics = {k: {"value": v["generated"], "spread": v.get("generated_std")} for k, v in stats.items()}
    return {
        "model": args.model,
        "config": f"configs/{args.model}/{args.config}.yaml",
        "dataset": "chorales (music21 corpus, every chorale's 32-eighth windows as written)",
        "budget_cpu_s": args.budget_cpu_s,
        "metrics": metrics,
        "real_data": {k: v["real"] for k, v in stats.items()},
        "seeds": 1,
        "command": result["command"],
        "commit": result["commit"],
    }


def write_leaderboard(path: str, row: dict) -> None:
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            key = ("model", "config", "budget_cpu_s")
            rows = [r for r in json.load(f) if [r[k] for k in key] != [row[k] for k in key]]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows + [row], f, indent=2)


def train_and_sample(args) -> tuple:
    """Train the config for the budget; its data module, ``--num-samples`` binary rolls as written, and run facts."""
    import pytorch_lightning as pl

    from lightning_gen.cli import run_lightning_cli

    config = os.path.join(REPO, "configs", args.model, f"{args.config}.yaml")
    cli = run_lightning_cli(["--config", config, *args.cli_arg], run=False)
    budget = cpu_budget_callback(args.budget_cpu_s)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=100_000, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, callbacks=[budget])  # fmt: skip
    trainer.fit(cli.model, cli.datamodule)
    model, dm = cli.model.eval(), cli.datamodule
    with torch.no_grad():
        own_key = model.sample(args.num_samples, length=args.length).cpu().numpy()  # (N, L, P)
    own_key = dm.to_rolls((own_key > 0.5).astype(np.float32))  # voices: the four pitches of each frame as a roll
    rolls = dm.to_written_keys(own_key, seed=0)  # as written (unchanged without transpose)
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return dm, rolls, {"train_cpu_s": round(budget.used, 1), "batches": batches}


def real_voice_rolls(args) -> tuple:
    """``--num-samples`` real windows (every chorale, as written) written as four voices and back as rolls: what a
    perfect model of the voice representation would score (it holds rests and leaves instrument parts out)."""
    from lightning_gen.data import ChoralesDataModule

    dm = ChoralesDataModule(window_length=args.length, stride=8, pitch_low=31, pitch_high=88, progress=False,
                            representation="voices")  # fmt: skip
    dm.setup()
    voices = np.concatenate([dm.to_rolls(dm.splits[k]) for k in ("train", "val", "test")]).astype(np.float32)
    return dm, voices[np.random.default_rng(1).permutation(len(voices))[: args.num_samples]], {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="rvae_gan", choices=("lstm_gan", "rvae", "rvae_gan"))
    p.add_argument("--config", default="chorales", help="config file stem in configs/<model>/")
    p.add_argument("--budget-cpu-s", type=float, default=300.0)
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--length", type=int, default=32, help="frames (eighth notes) per generated roll")
    p.add_argument("--disc-iterations", type=int, default=2000, help="post-hoc GRU steps (TimeGAN: 2,000)")
    p.add_argument("--disc-repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "chorales_voice"))
    p.add_argument("--leaderboard", default=None, help="leaderboard JSON file to write this run's row into")
    p.add_argument("--cli-arg", action="append", default=[], metavar="ARG", help="LightningCLI override")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument(
        "--real-voices",
        action="store_true",
        help="score real windows written as four voices (rests held, instrument parts left out) instead of a model's "
        "samples: the voice representation's own floor",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lightning_gen.metrics.music import compare_music_statistics
    from lightning_gen.music import piano_roll_image, write_roll_samples

    start = time.process_time()
    dm, rolls, run = real_voice_rolls(args) if args.real_voices else train_and_sample(args)
    real = real_windows(dm)  # (n, T, P) binary
    stats = compare_music_statistics(real, rolls, pitch_low=dm.pitch_low)
    drawn = real[np.random.default_rng(0).permutation(len(real))[: 2 * len(rolls)]]  # halves as big as the samples
    os.makedirs(args.out, exist_ok=True)
    stats.update(discriminative(drawn, rolls, args))
    name = "real_voices" if args.real_voices else f"{args.model}_{args.config}"
    stem = os.path.join(args.out, f"chorales_{name}{args.tag}")
    written = write_roll_samples(rolls, f"{stem}.npz", dm.pitch_low, dm.step, max_files=4, max_audio_files=2)
    written["real piano roll"] = piano_roll_image(real[:8], dm.pitch_low, f"{stem}_real.png", dm.step, label="real")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {
        "command": "python benchmarks/bench_chorales.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": commit.stdout.strip(),
        "model": None if args.real_voices else args.model,
        "config": None if args.real_voices else args.config,
        **run,
        "cli_args": args.cli_arg,
        "total_cpu_s": round(time.process_time() - start, 1),
        "real_windows": len(real),
        "statistics": stats,
        "meets_target": {k: meets(k, v["generated"], v["real"]) for k, v in stats.items() if k in TARGETS},
        "files": written,
    }
    with open(f"{stem}.json", "w") as f:
        json.dump(result, f, indent=2)
    if args.leaderboard and not args.real_voices:
        write_leaderboard(args.leaderboard, leaderboard_row(args, result))
    print(f"| statistic | generated ({name}) | real windows | target met |\n|---|---|---|---|")
    for name, pair in stats.items():
        ok = result["meets_target"].get(name)
        print(f"| {name} | {pair['generated']:.3f} | {pair['real']:.3f} | {'' if ok is None else ok} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
