"""TimeGAN's real benchmarks, stocks and energy, for any sequence model config at a CPU-second budget.

A model is built from any config (``--config``, stacked like ``lightning-gen fit --config A --config B``; the data
must be :class:`~lightning_gen.data.StocksDataModule` or :class:`~lightning_gen.data.EnergyDataModule`), trained for
``--budget-cpu-s`` seconds of *process CPU time* on ``--threads`` torch threads (the machine may be shared), then
sampled: as many windows as the real data has (TimeGAN's protocol: every window of the file, 3,661 for stocks,
19,711 for energy), scored against all of them in TimeGAN's scaled space (min-max over the whole file) through
``lightning_gen.metrics.timegan.sequence_scores``, the code path of ``lightning-gen evaluate``: the published
discriminative and predictive scores (Yoon et al. 2019) and, beside them, the scores of
:mod:`lightning_gen.metrics.sequence_scores` (a stronger post-hoc discriminator, Context-FID, the correlational
score). ``--real`` scores the real data against itself instead (one half of the windows against the other, and the
time-shuffled windows against the real ones): the floor every row is read against.

    python benchmarks/bench_timegan_data.py --config configs/rvae_gan/stocks.yaml --budget-cpu-s 300 --repeats 3
    python benchmarks/bench_timegan_data.py --config configs/rvae/energy.yaml --real --repeats 3
    python benchmarks/bench_timegan_data.py --leaderboard benchmarks/results/leaderboard/timegan_data.json \\
        benchmarks/results/timegan_data/*.json     # one leaderboard file from several runs, and its table

``--leaderboard`` merges the runs of one model, config and budget into one row: the metrics of files of one training
seed are joined (e.g. a run and a later ``--checkpoint`` scoring of the same model with other metrics), and over
several training seeds each metric is the mean, its spread the standard deviation over the seeds (``spread_over``
says which spread a row has; one seed: over the metric repeats).

Writes a JSON file (``--out``, default ``benchmarks/results/timegan_data/<model>_<dataset>[_real].json``) holding a
leaderboard row; checkpoints go to ``runs/bench_timegan_data/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = {  # discriminative / predictive; Yoon et al. 2019 Table 2, Yuan and Qiao (Diffusion-TS) 2024 Table 1
    "stocks": {"TimeGAN": (".102 +- .021", ".038 +- .001"), "Diffusion-TS": (".067 +- .015", ".036")},
    "energy": {"TimeGAN": (".236 +- .012", ".273 +- .004"), "Diffusion-TS": (".122 +- .003", ".250")},
}
TIMEGAN_METRICS = ("discriminative", "predictive")
EXTRA_METRICS = ("strong_discriminative", "context_fid", "correlational")


def build(configs: list[str], seed: int, cli_args: list[str]):
    """The model and DataModule of the stacked configs (LightningCLI syntax for ``cli_args``)."""
    from lightning_gen.cli import run_lightning_cli

    stacked = [a for c in configs for a in ("--config", c)]
    cli = run_lightning_cli([*stacked, f"--seed_everything={seed}", *cli_args], run=False)
    if not hasattr(cli.datamodule, "all_windows"):
        raise SystemExit(f"{configs}: the data is {type(cli.datamodule).__name__}, not StocksDataModule / Energy...")
    return cli.model, cli.datamodule


def train(model, datamodule, budget_s: float, name: str, snapshots: list[float] = ()):
    """Train for ``budget_s`` CPU seconds (validation off: the scores below are the evaluation); a checkpoint is
    also saved when the run first crosses each of ``snapshots`` CPU seconds (``<name>_at<s>.ckpt``: the model a
    run of that budget ends with, training being deterministic; score it with ``--checkpoint``)."""
    import pytorch_lightning as pl
    from bench_sines import cpu_budget_callback

    folder = os.path.join(REPO, "runs", "bench_timegan_data")
    os.makedirs(folder, exist_ok=True)
    budget = cpu_budget_callback(budget_s, {at: os.path.join(folder, f"{name}_at{at:g}.ckpt") for at in snapshots})
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=100_000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[budget],
    )
    trainer.fit(model, datamodule)
    path = os.path.join(folder, f"{name}.ckpt")
    trainer.save_checkpoint(path)
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return {"cpu_s": round(budget.used, 1), "batches": batches, "epochs": trainer.current_epoch,
            "checkpoint": os.path.relpath(path, REPO), "snapshots": budget.snapshots}  # fmt: skip


def trained(path: str, datamodule):
    """A model saved by an earlier run (``--checkpoint``, e.g. a snapshot) and its record."""
    from lightning_gen.checkpoints import load_checkpoint, load_model

    loops = load_checkpoint(path).get("loops", {}).get("fit_loop", {})
    batches = loops.get("epoch_loop.batch_progress", {}).get("total", {}).get("completed")
    datamodule.setup("fit")
    return load_model(path), {"batches": batches, "checkpoint": os.path.relpath(os.path.abspath(path), REPO)}


def score(real: np.ndarray, fake: np.ndarray, datamodule, metrics, args) -> tuple[dict, dict]:
    """Every score of ``fake`` against ``real`` (both in the file's units), in TimeGAN's scaled space."""
    from lightning_gen.metrics.sequence_scores import extra_sequence_scores
    from lightning_gen.metrics.timegan import scoring_space, sequence_scores

    published = [m for m in metrics if m in TIMEGAN_METRICS]
    out, info = sequence_scores(
        real, fake, published, args.disc_iterations, args.pred_iterations, args.repeats, args.seed,
        data_min=datamodule.data_min, data_max=datamodule.data_max, reference_predictive=False,
    )  # fmt: skip
    extra = [m for m in metrics if m in EXTRA_METRICS]
    if extra:
        real_s, fake_s, _ = scoring_space(real, fake, datamodule.data_min, datamodule.data_max)
        out.update(extra_sequence_scores(real_s, fake_s, extra, repeats=args.repeats, seed=args.seed))
    info["scaling"] = datamodule.scaling_note  # data_min / data_max are the whole file's: TimeGAN's scaled space
    return out, info


def time_shuffled(windows: np.ndarray, seed: int) -> np.ndarray:
    """Real windows with their time steps permuted (each window its own permutation): right marginals, no dynamics."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random(windows.shape[:2]), axis=1)  # (N, T)
    return np.take_along_axis(windows, order[..., None], axis=1)


def row(values: dict) -> dict:
    return {m: {"value": v["value"], "spread": v.get("std")} for m, v in values.items()}


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", action="append", default=[], help="model config (repeat to stack overlays)")
    p.add_argument("--cli-arg", action="append", default=[], metavar="ARG", help="LightningCLI override")
    p.add_argument("--name", default=None, help="model name in the results (default: the first config's folder)")
    p.add_argument("--budget-cpu-s", type=float, default=300.0, help="training budget, CPU seconds")
    p.add_argument("--real", action="store_true", help="score the real data against itself instead of training")
    p.add_argument("--skip-shuffled", action="store_true", help="with --real: not the time-shuffled windows")
    p.add_argument("--metrics", default=",".join(TIMEGAN_METRICS + EXTRA_METRICS))
    p.add_argument("--repeats", type=int, default=3, help="metric repeats (TimeGAN: 10)")
    p.add_argument("--disc-iterations", type=int, default=2000)
    p.add_argument("--pred-iterations", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="training seed (and the metrics')")
    p.add_argument("--snapshots", default="", help="also save checkpoints at these CPU seconds, e.g. 180,480")
    p.add_argument("--checkpoint", default=None, help="score this checkpoint of --config instead of training")
    p.add_argument("--out", default=None)
    p.add_argument("--leaderboard", default=None, metavar="JSON", help="merge result files (positional) into JSON")
    p.add_argument("results", nargs="*", help="with --leaderboard: result files to merge")
    args = p.parse_args(argv)
    if args.leaderboard:
        return merge(args.leaderboard, args.results)
    if not args.config:
        p.error("give --config (a stocks or energy config), or --leaderboard")
    torch.set_num_threads(args.threads)
    metrics = [m for m in args.metrics.split(",") if m]
    command = "python benchmarks/bench_timegan_data.py " + " ".join(sys.argv[1:] if argv is None else argv)
    model, datamodule = build(args.config, args.seed, args.cli_arg)
    dataset = type(datamodule).__name__.removesuffix("DataModule").lower()
    name = args.name or os.path.basename(os.path.dirname(os.path.abspath(args.config[0])))
    real = datamodule.inverse_scale(datamodule.all_windows())  # every window, in the file's units
    out = args.out or os.path.join(REPO, "benchmarks", "results", "timegan_data",
                                   f"{'real' if args.real else name}_{dataset}.json")  # fmt: skip
    result = {"model": "real data" if args.real else name, "config": args.config, "cli_args": args.cli_arg,
              "dataset": dataset, "budget_cpu_s": None if args.real else args.budget_cpu_s, "seeds": 1,
              "seed": args.seed, "num_real": len(real), "repeats": args.repeats, "command": command,
              "commit": commit()}  # fmt: skip
    if args.real:  # one half of the windows against the other, and against the other half time-shuffled
        from lightning_gen.metrics.sequence_scores import real_halves

        a, b = real_halves(real, args.seed)
        values, info = score(a, b, datamodule, metrics, args)
        result.update(metrics=row(values), scaling=info["scaling"])
        if not args.skip_shuffled:
            shuffled, _ = score(a, time_shuffled(b, args.seed), datamodule, metrics, args)
            result["time_shuffled"] = row(shuffled)
    else:
        if args.checkpoint:
            model, result["training"] = trained(args.checkpoint, datamodule)
        else:
            snapshots = [float(s) for s in args.snapshots.split(",") if s]
            run = f"{name}_{dataset}_s{args.seed}"
            result["training"] = train(model, datamodule, args.budget_cpu_s, run, snapshots)
        if hasattr(model, "fit_latent_density"):  # as at the end of an epoch: the density of the last codes
            model.fit_latent_density(torch.from_numpy(datamodule.splits["train"]))
        from bench_sines import generate

        fake = generate(model, len(real), real.shape[1])
        t = time.process_time()
        values, info = score(real, fake, datamodule, metrics, args)
        result.update(metrics=row(values), metric_cpu_s=round(time.process_time() - t, 1), **info)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2, default=float)
    print(json.dumps(result, indent=2, default=float))
    return 0


def _seed(result: dict) -> int:
    """The training seed of a result file (files written before the field existed: from their command)."""
    if "seed" in result:
        return int(result["seed"])
    found = re.search(r"--seed[= ](\d+)", result.get("command", ""))
    return int(found.group(1)) if found else 0


def combine(results: list[dict]) -> dict:
    """One row from the result files of one model, config and budget (see the module's docstring)."""
    by_seed: dict[int, dict] = {}
    for x in results:  # files of one seed: metrics joined, the one with more metric repeats kept on a clash
        have = by_seed.setdefault(_seed(x), {})
        for m, v in x["metrics"].items():
            if m not in have or x.get("repeats", 1) > have[m][1]:
                have[m] = (v, x.get("repeats", 1))
    metrics, per_seed = {}, {}
    names = [m for x in results for m in x["metrics"]]
    for m in dict.fromkeys(names):
        got = [(seed, have[m][0]) for seed, have in sorted(by_seed.items()) if m in have]
        values = [v["value"] for _, v in got]
        if len(got) == 1:
            metrics[m] = got[0][1]
        else:
            metrics[m] = {"value": float(np.mean(values)), "spread": float(np.std(values, ddof=1))}
        per_seed[m] = {str(seed): v["value"] for seed, v in got}
    seeds = len(by_seed)
    commands = list(dict.fromkeys(x["command"] for x in sorted(results, key=_seed)))
    commits = sorted({x["commit"] for x in results})
    first = results[0]
    row = {k: first[k] for k in ("model", "config", "dataset", "budget_cpu_s")}
    return row | {
        "metrics": metrics,
        "seeds": seeds,
        "spread_over": "training seeds" if seeds > 1 else "metric repeats",
        "per_seed": per_seed,
        "metric_repeats": max(x.get("repeats", 1) for x in results),
        "command": " && ".join(commands),
        "commit": ", ".join(commits),
    }


def merge(path: str, results: list[str]) -> int:
    """One leaderboard file (a list of rows, each with the real data's own scores of its dataset) and its table."""
    loaded = []
    for r in results:
        with open(r) as f:
            loaded.append(json.load(f))
    real = {x["dataset"]: x for x in loaded if x["model"] == "real data"}
    groups: dict[tuple, list[dict]] = {}
    for x in loaded:
        if x["model"] != "real data":
            key = (x["model"], x["dataset"], x["budget_cpu_s"], tuple(x["config"]), tuple(x.get("cli_args", [])))
            groups.setdefault(key, []).append(x)
    rows = []
    for group in groups.values():
        own = real.get(group[0]["dataset"], {}).get("metrics", {})
        rows.append(combine(group) | {"real_data": {m: v["value"] for m, v in own.items()}})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    shown = list(real.values()) + rows
    names = sorted({m for r in shown for m in r.get("metrics", {})}, key=lambda m: (m not in TIMEGAN_METRICS, m))
    fmt = lambda v: "-" if v is None else f"{v['value']:.3f}" + (f" +- {v['spread']:.3f}" if v.get("spread") else "")  # noqa: E731
    print("| dataset | model | CPU s | seeds | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 4))
    order = lambda r: (r["dataset"], r["model"] != "real data", r["model"], r.get("budget_cpu_s") or 0)  # noqa: E731
    for r in sorted(shown, key=order):
        print(f"| {r['dataset']} | {r['model']} | {r.get('budget_cpu_s') or '-'} | {r.get('seeds', 1)} | "
              + " | ".join(fmt(r["metrics"].get(m)) for m in names) + " |")  # fmt: skip
        if "time_shuffled" in r:
            print(f"| {r['dataset']} | real, time-shuffled | - | - | "
                  + " | ".join(fmt(r["time_shuffled"].get(m)) for m in names) + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
