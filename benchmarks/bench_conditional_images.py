"""Class-conditional GAN and VAE (issue 14) against their unconditional configs, at equal process CPU time.

    python benchmarks/bench_conditional_images.py --dataset digits --models gan_cond gan --budget-cpu-s 180
    python benchmarks/bench_conditional_images.py --dataset mnist --models gan_cond --budget-cpu-s 600 \\
        --snapshot-cpu-s 240 --snapshot-out benchmarks/results/images_issue14/mnist240
    python benchmarks/bench_conditional_images.py --dataset digits --score   # scores of every model trained

Models: ``gan`` / ``vae`` train ``configs/<family>/<config>.yaml`` (``digits`` or ``mnist_cpu``), ``gan_cond`` /
``vae_cond`` its conditional twin ``<config>_cond.yaml``; data, split, CPU budget (``time.process_time()``, one
torch thread) and network-width overrides as ``benchmarks/bench_images.py``, whose pieces this script imports.
Each model writes under ``--out/<model>/``: ``config.yaml``, ``final.ckpt``, ``samples.npz`` (``samples`` in
[0, 1], ``labels``: the class asked for, the same number of each class) and ``result.json``, and a grid
``<model>_samples.png`` with one row per class for the conditional models.

``--score`` then rates each ``samples.npz`` in the features of a classifier trained on the training split
(``--classifier-ckpt``, by default the one of ``bench_images.py --fid`` for the dataset, trained here if
missing): the FID against the held-out split and, for conditional samples, the share the classifier assigns
to the class that was asked for (Classification Accuracy Score style, Ravuri & Vinyals 2019), in all and per
class. (A per-class FID is not computed: the held-out splits have 18 / 100 images a class, fewer than the
classifier's 64 / 128 feature dimensions.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_images import (  # noqa: E402
    CPUBudget,
    bench_config,
    data_config,
    make_datamodule,
    save_grid,
    split_images,
    train_classifier,
)

from lightning_gen.checkpoints import load_model  # noqa: E402
from lightning_gen.cli import run_lightning_cli  # noqa: E402
from lightning_gen.metrics.image import fid_from_features  # noqa: E402

MODELS = ("gan", "gan_cond", "vae", "vae_cond")
CLASSIFIERS = {  # trained by bench_images.py --fid on the same splits (benchmarks/README.md, issue 12)
    "digits": REPO / "benchmarks/results/images_issue12/digits180/classifier/final.ckpt",
    "mnist": REPO / "benchmarks/results/images_issue12/cpu600/classifier/final.ckpt",
}


def model_config(name: str, args) -> dict:
    family, conditional = name.split("_")[0], name.endswith("_cond")
    base = args.config
    args.config = f"{base}_cond" if conditional else base
    try:
        config = bench_config(family, args)  # reads configs/<family>/<args.config>.yaml
    finally:
        args.config = base
    config["data"] = data_config(args, labels=True)  # an unconditional model ignores the labels
    config["trainer"]["default_root_dir"] = str(Path(args.out) / name / "run")
    config["seed_everything"] = getattr(args, "train_seed", 0)  # the data split keeps its own seed, 0
    return config


@torch.no_grad()
def draw_balanced(model, n: int, num_classes: int | None, batch_size: int = 500):
    """``n`` samples in [-1, 1] and the classes asked for (the same number of each, in order 0, 1, ..., K-1,
    0, ...; None for an unconditional model)."""
    labels = torch.arange(n) % num_classes if num_classes else None
    chunks = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        if labels is None:
            chunks.append(model.sample(b).cpu())
        else:
            chunks.append(model.sample(b, labels=labels[start : start + b]).cpu())
    return torch.cat(chunks), labels


def report(name, trainer, model, budget, wall, root: Path, args) -> dict:
    """Checkpoint, balanced samples, grid (one row per class) and result.json under ``root/name``."""
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "final.ckpt"
    trainer.save_checkpoint(ckpt)
    batches = int(trainer.fit_loop.epoch_loop.batch_progress.total.completed)
    device, training = model.device, model.training
    model = model.cpu().eval()
    torch.manual_seed(0)
    samples, labels = draw_balanced(model, args.num_samples, model.num_classes)
    arrays = {"samples": ((samples.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32)}
    if labels is not None:
        arrays["labels"] = labels.numpy()
        k = model.num_classes  # grid: row c holds 10 samples of class c (samples are in class order 0..K-1, 0..)
        grid = samples[: 10 * k].view(10, k, *samples.shape[1:]).transpose(0, 1).flatten(0, 1)
        save_grid(grid, root / f"{name}_samples.png", nrow=10)
    else:
        save_grid(samples[:100], root / f"{name}_samples.png", nrow=10)
    np.savez_compressed(out / "samples.npz", **arrays)
    cpu = budget.used
    result = {
        "model": name,
        "class": type(model).__name__,
        "num_classes": model.num_classes,
        "train_cpu_s": round(cpu, 1),
        "stopped_by": budget.stopped_by,
        "train_wall_s": round(wall, 1),
        "train_batches": batches,
        "cpu_ms_per_batch": round(1000 * cpu / max(batches, 1), 1),
        "checkpoint": str(ckpt),
        "samples": str(out / "samples.npz"),
        "config": str(out / "config.yaml"),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    model.to(device).train(training)
    return result


def run_model(name: str, args) -> dict:
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.yaml"
    config_path.write_text(yaml.safe_dump(model_config(name, args), sort_keys=False))
    pl.seed_everything(getattr(args, "train_seed", 0), workers=True)
    cli = run_lightning_cli(["--config", str(config_path)], run=False)
    snapshot = None
    if args.snapshot_cpu_s is not None:  # the same run, also reported at an earlier CPU budget

        def write_snapshot(trainer, model, budget):
            rng, density = torch.get_rng_state(), getattr(model, "latent_density", None)
            kept = {k: v.clone() for k, v in density.state_dict().items()} if density is not None else None
            if density is not None:
                model.fit_latent_density()  # as at the end of a run stopped there
            report(name, trainer, model, budget, time.perf_counter() - wall, Path(args.snapshot_out), args)
            if density is not None:
                density.load_state_dict(kept)
            torch.set_rng_state(rng)

        snapshot = (args.snapshot_cpu_s, write_snapshot)
    budget = CPUBudget(args.budget_cpu_s, args.wall_limit_s, snapshot)
    cli.trainer.callbacks.append(budget)
    wall = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return report(name, cli.trainer, cli.model, budget, time.perf_counter() - wall, Path(args.out), args)


def classifier_ckpt(args) -> Path:
    if args.classifier_ckpt:
        return Path(args.classifier_ckpt)
    default = CLASSIFIERS[args.dataset]
    if default.exists():
        return default
    ckpt, accuracy = train_classifier(args)
    print(f"trained the classifier: held-out accuracy {accuracy}", flush=True)
    return ckpt


@torch.no_grad()
def score(args, paths: list[Path]) -> list[dict]:
    """FID, class-conditional accuracy and per-class FID of sample files, in the classifier's features."""
    ckpt = classifier_ckpt(args)
    classifier = load_model(ckpt).cpu().eval()
    dm = make_datamodule(args, labels=True)
    test = split_images(dm.test_set)  # (N, C, H, W) in [0, 1]
    test_labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])

    def features(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat([classifier.features(c * 2 - 1) for c in images.split(500)])  # [0, 1] -> [-1, 1]
        return feats.double(), classifier.network.head(feats).argmax(1)

    real_feats, real_pred = features(test)
    k = int(test_labels.max()) + 1
    rows = [
        {
            "samples": "held-out split",
            "n": len(test),
            "accuracy": round(float((real_pred == test_labels).float().mean()), 4),
        }
    ]
    for path in paths:
        data = np.load(path)
        images = torch.from_numpy(data["samples"]).float()
        feats, predicted = features(images)
        mix = torch.bincount(predicted, minlength=k).double() / len(predicted)
        real_mix = torch.bincount(test_labels, minlength=k).double() / len(test_labels)
        row = {
            "samples": str(path),
            "n": len(images),
            "fid": round(fid_from_features(real_feats, feats), 3),
            "class_tv": round(float(0.5 * (mix - real_mix).abs().sum()), 4),
        }
        if "labels" in data:
            labels = torch.from_numpy(data["labels"]).long()
            hit = (predicted == labels).float()
            row["accuracy"] = round(float(hit.mean()), 4)
            row["accuracy_per_class"] = [round(float(hit[labels == c].mean()), 3) for c in range(k)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    report_path = Path(args.out) / "scores.json"
    report_path.write_text(json.dumps({"classifier": str(ckpt), "rows": rows}, indent=2) + "\n")
    print(f"wrote {report_path}")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("mnist", "digits"), default="digits")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist-t10k" / "mnist_t10k.npz"))
    p.add_argument("--models", nargs="+", default=["gan_cond"], choices=MODELS)
    p.add_argument("--budget-cpu-s", type=float, default=180.0, help="process CPU seconds of training per model")
    p.add_argument("--wall-limit-s", type=float, default=None, help="safety: also stop after this wall time")
    p.add_argument("--snapshot-cpu-s", type=float, default=None, help="also report the run at this CPU budget")
    p.add_argument("--snapshot-out", default=None, help="where the snapshot's report goes (a second --out)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--train-seed", type=int, default=0, help="seed of training (initialisation, noise, batch order)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--config", default=None, help="configs/<family>/<CONFIG>[_cond].yaml (default: by dataset)")
    p.add_argument("--latent-dim", type=int, default=None, help="override the configs' latent size")
    p.add_argument("--base-channels", type=int, default=None, help="override the configs' network widths")
    p.add_argument("--kl-warmup-steps", type=int, default=None)
    p.add_argument("--set", action="append", help="MODEL.key=value on the model's init_args (MODEL: gan, vae)")
    p.add_argument("--num-samples", type=int, default=None, help="default: 2,000 (digits) or 10,000 (mnist)")
    p.add_argument("--out", default=None, help="default: benchmarks/results/images_issue14/<dataset>")
    p.add_argument("--score", nargs="*", help="instead of training: score these samples.npz (default: every model's)")
    p.add_argument("--classifier-ckpt", default=None)
    p.add_argument("--classifier-epochs", type=int, default=3, help="if a classifier must be trained")
    args = p.parse_args()
    args.config = args.config or ("digits" if args.dataset == "digits" else "mnist_cpu")
    args.num_samples = args.num_samples or (2000 if args.dataset == "digits" else 10_000)
    args.out = args.out or str(REPO / "benchmarks" / "results" / "images_issue14" / args.dataset)
    if args.dataset == "mnist" and not os.path.isfile(args.data):
        sys.exit(f"error: {args.data} not found (the MNIST t10k array file; see ../shared/data/mnist-t10k/README.md)")
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.score is not None:
        paths = [Path(s) for s in args.score] or [
            Path(args.out) / m / "samples.npz" for m in MODELS if (Path(args.out) / m / "samples.npz").exists()
        ]
        score(args, paths)
        return
    for name in args.models:
        run_model(name, args)


if __name__ == "__main__":
    main()
