"""Sines benchmark with TimeGAN's evaluation protocol for the sequence models (LSTM-GAN, R-VAE, R-VAE-GAN).

Each model is built from its shipped config (``configs/<model>/sines.yaml``), trained for a budget of
*process CPU time* (``time.process_time()``, torch on ``--threads`` threads; the machine may be shared, so
wall-clock would measure the neighbours), then sampled: as many generated sequences as real ones (10,000),
in the data's original scale, and scored as they are (in [0.5, 1], as TimeGAN's reference scores the
sines) with ``lightning_gen.metrics.timegan.sequence_scores``, the code path of ``lightning-gen evaluate``
(the discriminative score: post-hoc GRU classifier, hidden
D/2, 2,000 iterations, batch 128, 80/20 split, |accuracy - 0.5|) and the predictive score (GRU trained on
generated data to predict the last feature one step ahead, 5,000 iterations, MAE on the real data), mean
and std over ``--repeats``. The predictive score of the real data itself is measured as the reference.

    python benchmarks/bench_sines.py --models rvae_gan --budget-cpu-s 900 --snapshot-cpu-s 240 --repeats 3 \
        --out benchmarks/results/sines/rvae_gan_900cpu.json        # the leaderboard's rows: 4 and 15 CPU-minutes
    python benchmarks/bench_sines.py --budget-cpu-s 900 --repeats 10     # TimeGAN's 10 metric repeats
    python benchmarks/bench_sines.py --models rvae --from-checkpoints    # score a model trained earlier
    python benchmarks/bench_sines.py --table benchmarks/results/sines/*.json   # one table from several runs

Writes a JSON file (``--out``) and prints a Markdown table; checkpoints go to ``runs/bench_sines/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("lstm_gan", "rvae", "rvae_gan", "timegan")
PUBLISHED = {  # Yoon et al. 2019, Table 2 (Sines)
    "TimeGAN (published)": (".011 +- .008", ".093 +- .019"),
    "C-RNN-GAN (published)": (".229", ".127"),
    "Original data (published)": ("-", ".094"),
}


def cpu_budget_callback(budget_s: float, snapshots: dict[float, str] | None = None):
    """Stops training after ``budget_s`` CPU seconds; ``snapshots`` {CPU seconds: path} saves a checkpoint
    when the run first crosses each budget (training is deterministic, so a snapshot at 240 CPU s of a
    900-CPU-s run is the model a 240-CPU-s run ends with; its latent density is refitted before scoring)."""
    import pytorch_lightning as pl

    class CPUBudget(pl.Callback):
        """Stop training once this process has used ``budget_s`` seconds of CPU time."""

        def __init__(self) -> None:
            self.start = time.process_time()
            self.used = 0.0
            self.pending = dict(sorted((snapshots or {}).items()))
            self.snapshots: dict[float, dict] = {}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.used = time.process_time() - self.start
            for at in [a for a in self.pending if self.used >= a]:
                saving = time.process_time()
                trainer.save_checkpoint(self.pending.pop(at))
                batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
                self.snapshots[at] = {"cpu_s": round(self.used, 1), "batches": batches}
                self.start += time.process_time() - saving  # saving is not training time
            if self.used >= budget_s:
                trainer.should_stop = True

    return CPUBudget()


def train(name: str, budget_s: float, seed: int, cli_args: list[str] | None = None, tag: str = "", snapshots=()):
    """Build model and data from the shipped config (plus ``cli_args`` overrides, LightningCLI syntax) and
    train for ``budget_s`` CPU seconds."""
    import pytorch_lightning as pl

    from lightning_gen.cli import run_lightning_cli

    config = os.path.join(REPO, "configs", name, "sines.yaml")
    cli = run_lightning_cli(["--config", config, f"--seed_everything={seed}", *(cli_args or [])], run=False)
    snapshot_paths = {at: os.path.join(REPO, "runs", "bench_sines", f"{name}{tag}_at{at:g}.ckpt") for at in snapshots}
    os.makedirs(os.path.join(REPO, "runs", "bench_sines"), exist_ok=True)
    budget = cpu_budget_callback(budget_s, snapshot_paths)
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
    path = os.path.join(REPO, "runs", "bench_sines", f"{name}{tag}.ckpt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    trainer.save_checkpoint(path)
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return cli.model, {"cpu_s": round(budget.used, 1), "batches": batches, "epochs": trainer.current_epoch,
                       "batches_per_cpu_s": round(batches / max(budget.used, 1e-9), 2),
                       "cli_args": cli_args or [], "checkpoint": os.path.relpath(path, REPO),
                       "snapshots": {at: dict(info, checkpoint=os.path.relpath(snapshot_paths[at], REPO),
                                              batches_per_cpu_s=round(info["batches"] / info["cpu_s"], 2))
                                     for at, info in budget.snapshots.items()},
                       "datamodule": cli.datamodule}  # fmt: skip


@torch.no_grad()
def generate(model, n: int, length: int, batch: int = 1000, **kwargs) -> np.ndarray:
    """``n`` samples (n, length, D) in the data's original scale (``kwargs`` go to ``model.sample``)."""
    model.eval()
    chunks = [model.to_original(model.sample(min(batch, n - i), length=length, **kwargs)) for i in range(0, n, batch)]
    return torch.cat(chunks).cpu().numpy().astype(np.float32)


def from_checkpoint(name: str, tag: str = ""):
    """A model trained by an earlier run of this script (``runs/bench_sines/<name><tag>.ckpt``, e.g. a snapshot
    ``--tag _at240``) and its record. A VAE-type model's latent density is refitted on the training split
    first, as at the end of a run (a snapshot taken mid-epoch holds the density of the last epoch boundary;
    for a checkpoint written at the end of training the refit gives the density it already holds)."""
    from lightning_gen.checkpoints import load_checkpoint, load_model
    from lightning_gen.cli import run_lightning_cli

    path = os.path.join(REPO, "runs", "bench_sines", f"{name}{tag}.ckpt")
    loops = load_checkpoint(path).get("loops", {}).get("fit_loop", {})
    batches = loops.get("epoch_loop.batch_progress", {}).get("total", {}).get("completed")
    info = {"cpu_s": "budget", "batches": batches, "checkpoint": os.path.relpath(path, REPO), "from_checkpoint": True}
    model = load_model(path)
    if hasattr(model, "fit_latent_density"):
        cli = run_lightning_cli(["--config", os.path.join(REPO, "configs", name, "sines.yaml")], run=False)
        cli.datamodule.setup("fit")
        model.fit_latent_density(torch.from_numpy(cli.datamodule.splits["train"]))
    return model, info


def score(real: np.ndarray, fake: np.ndarray, args) -> dict:
    """TimeGAN's scores through ``lightning_gen.metrics.timegan.sequence_scores``, the code path of
    ``lightning-gen evaluate``: sines lie in [0, 1] and are scored as generated (TimeGAN's ``main.py``), not
    clipped; the share of generated values outside the real range is recorded."""
    from lightning_gen.metrics.timegan import sequence_scores

    t = time.process_time()
    scores, info = sequence_scores(
        real, fake, ("discriminative", "predictive"), args.disc_iterations, args.pred_iterations, args.repeats,
        args.seed, reference_predictive=False,
    )  # fmt: skip
    pair = lambda m: (scores[m]["value"], scores[m]["std"])  # noqa: E731
    return {"discriminative": pair("discriminative"), "predictive": pair("predictive"), **info,
            "metric_cpu_s": round(time.process_time() - t, 1)}  # fmt: skip


def fmt(pair) -> str:
    return f"{pair[0]:.3f} +- {pair[1]:.3f}".replace("0.", ".")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    p.add_argument("--budget-cpu-s", type=float, default=300.0, help="training budget per model, CPU seconds")
    p.add_argument("--repeats", type=int, default=3, help="metric repeats (TimeGAN: 10)")
    p.add_argument("--disc-iterations", type=int, default=2000)
    p.add_argument("--pred-iterations", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-real", action="store_true", help="skip the real-data predictive reference")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "sines", "result.json"))
    p.add_argument("--from-checkpoints", action="store_true", help="score models saved by an earlier run")
    p.add_argument("--table", nargs="+", metavar="JSON", help="only print the table of earlier result files")
    p.add_argument(
        "--cli-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="LightningCLI override for every trained model, e.g. --cli-arg=--model.init_args.gamma=2",
    )
    p.add_argument("--tag", default="", help="suffix of the checkpoint names (runs/bench_sines/<model><tag>.ckpt)")
    p.add_argument(
        "--snapshot-cpu-s",
        type=float,
        nargs="*",
        default=[],
        help="also score the model as it was after these CPU seconds (e.g. 240 in a 900 run)",
    )
    p.add_argument(
        "--prior",
        choices=("gmm", "gaussian", "standard"),
        default=None,
        help="VAE-type models: sample from this prior instead of the model's own",
    )
    args = p.parse_args(argv)
    if args.table:
        merged: dict = {"models": {}}
        for path in args.table:
            with open(path) as f:
                part = json.load(f)
            merged["models"].update(part["models"])
            merged.setdefault("real_predictive", part.get("real_predictive"))
            merged["real_predictive"] = merged["real_predictive"] or part.get("real_predictive")
        print_table(merged)
        return 0
    torch.set_num_threads(args.threads)

    from lightning_gen.data.sines import make_sines

    real = make_sines(10000, 24, 5, seed=0)  # the SinesDataModule's data (data_seed 0), all 10,000 as in TimeGAN
    results = {
        "command": "python benchmarks/bench_sines.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{args.threads}, torch {torch.__version__}",
        "protocol": {
            "disc_iterations": args.disc_iterations,
            "pred_iterations": args.pred_iterations,
            "repeats": args.repeats,
            "budget_cpu_s": args.budget_cpu_s,
        },  # fmt: skip
        "models": {},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    if not args.skip_real:
        from lightning_gen.metrics.timegan import sequence_scores

        scores, _ = sequence_scores(  # the same code path as the models' scores (see `score`)
            real, real, ("predictive",), pred_iterations=args.pred_iterations, repeats=args.repeats, seed=args.seed,
            reference_predictive=False,
        )  # fmt: skip
        results["real_predictive"] = (scores["predictive"]["value"], scores["predictive"]["std"])
        print("real data predictive", fmt(results["real_predictive"]), flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    for name in args.models:
        if args.from_checkpoints:
            model, info = from_checkpoint(name, args.tag)
        else:
            model, info = train(name, args.budget_cpu_s, args.seed, args.cli_arg, args.tag, args.snapshot_cpu_s)
        kwargs = {"prior": args.prior} if args.prior else {}
        datamodule, snapshots = info.pop("datamodule", None), info.pop("snapshots", {})
        for at, snap in snapshots.items():  # the shorter budgets first, from their snapshots
            from lightning_gen.checkpoints import load_model

            early = load_model(os.path.join(REPO, snap["checkpoint"]))
            if hasattr(early, "fit_latent_density"):  # as at the end of a run stopped there
                early.fit_latent_density(torch.from_numpy(datamodule.splits["train"]))
            snap.update(score(real, generate(early, len(real), real.shape[1], **kwargs), args))
            results["models"][f"{name}@{at:g}"] = snap
            print(f"{name}@{at:g}", snap, flush=True)
            with open(args.out, "w") as f:
                json.dump(results, f, indent=2)
        info.update(score(real, generate(model, len(real), real.shape[1], **kwargs), args))
        results["models"][name] = info
        print(name, info, flush=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    print("\n| model | discriminative | predictive | training |\n|---|---|---|---|")
    for name, info in results["models"].items():
        print(f"| {name} | {fmt(info['discriminative'])} | {fmt(info['predictive'])} | {info['cpu_s']} CPU s, "
              f"{info['batches']} batches |")  # fmt: skip
    if results.get("real_predictive"):
        print(f"| real data | - | {fmt(results['real_predictive'])} | - |")
    for name, (d, pr) in PUBLISHED.items():
        print(f"| {name} | {d} | {pr} | - |")


if __name__ == "__main__":
    sys.exit(main())
