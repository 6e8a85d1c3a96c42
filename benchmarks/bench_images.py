"""GAN vs. VAE vs. VAE-GAN on real MNIST digits, each trained for the same budget of process CPU time.

    nice -n 10 python benchmarks/bench_images.py --budget-cpu-s 240            # 4 CPU-minutes per model
    python benchmarks/bench_images.py --budget-cpu-s 600 --threads 2            # 10 CPU-minutes per model

The data is ``../shared/data/mnist-t10k/mnist_t10k.npz`` (the 10,000 MNIST test digits) through
``ArrayImageDataModule``: 10% held out (``test`` split, used for the reconstruction error), 5% of the rest
for validation, the remainder for training. The three models share their networks: the same
``DCGANGenerator`` (decoder), ``DCGANDiscriminator`` and, for the two VAEs, the same ``ConvEncoder``; each
starts from ``configs/<model>/mnist.yaml`` with the data and network widths below.

Training is stopped once the training process has used ``--budget-cpu-s`` seconds of CPU time
(``time.process_time()``, with ``torch.set_num_threads(--threads)``), not wall-clock, because the machine
is shared. For each model the script writes under ``--out``:

- ``<model>/config.yaml``: the exact config trained (``lightning-gen fit --config`` runs it);
- ``<model>/final.ckpt`` and ``<model>/samples.npz`` (``samples`` float32 (N, 1, 28, 28) in [0, 1], the
  format of ``lightning-gen sample``): large, git-ignored;
- ``<model>_samples.png`` (64 samples) and, for the VAEs, ``<model>_reconstructions.png`` (held-out
  inputs beside their reconstructions, then an interpolation row);
- ``<model>/result.json`` and, over all models run so far, ``results.json``: CPU seconds, training
  images seen, samples per second, reconstruction error.

Then ``--fid`` trains ``configs/classifier/mnist.yaml``'s small CNN on the same training split and runs
``lightning-gen evaluate`` on each saved ``samples.npz`` (and on real training images, the floor): FID on
the classifier's features against the held-out split, written to ``fid.json``.
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
from torchvision.utils import save_image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lightning_gen.callbacks import image_grid  # noqa: E402
from lightning_gen.cli import run_lightning_cli  # noqa: E402
from lightning_gen.jobs.sample import draw  # noqa: E402

MODELS = ("gan", "vae", "vae_gan")


class CPUBudget(pl.Callback):
    """Stop training once this process has used ``budget_s`` seconds of CPU time since training started, or,
    as a safety on a crowded machine, once ``wall_limit_s`` wall-clock seconds have passed (``stopped_by``
    says which; the CPU seconds actually used are reported either way)."""

    def __init__(self, budget_s: float, wall_limit_s: float | None = None, snapshot=None) -> None:
        self.budget_s, self.wall_limit_s = budget_s, wall_limit_s
        self.start = self.wall_start = 0.0
        self.batches, self.images, self.stopped_by = 0, 0, "max_epochs"
        self.snapshot = snapshot  # (cpu_s, fn(trainer, model, budget)): called once, its CPU time not counted

    def on_train_start(self, trainer, pl_module) -> None:
        self.start, self.wall_start = time.process_time(), time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.images += len(batch[0])
        if self.snapshot is not None and self.used >= self.snapshot[0]:
            at, fn = self.snapshot
            self.snapshot, began = None, time.process_time()
            fn(trainer, pl_module, self)
            self.start += time.process_time() - began  # the snapshot's own work is not training
        if time.process_time() - self.start >= self.budget_s:
            trainer.should_stop, self.stopped_by = True, "cpu_budget"
        elif self.wall_limit_s is not None and time.perf_counter() - self.wall_start >= self.wall_limit_s:
            trainer.should_stop, self.stopped_by = True, "wall_limit"

    @property
    def used(self) -> float:
        return time.process_time() - self.start


def bench_config(model: str, args) -> dict:
    """``configs/<model>/<--config>.yaml`` with the array data and no callbacks (network widths, the VAE's
    warm-up and any ``--set model.key=value`` overridden only when given)."""
    with open(REPO / "configs" / model / f"{args.config}.yaml") as f:
        config = yaml.safe_load(f)
    init = config["model"]["init_args"]
    if args.base_channels is not None or args.latent_dim is not None:
        for key in ("encoder", "decoder", "generator", "discriminator"):
            if key in init:
                net = init[key]["init_args"]
                if args.base_channels is not None:
                    net["base_channels"] = args.base_channels
                if args.latent_dim is not None and key != "discriminator":
                    net["latent_dim"] = args.latent_dim
    if model == "vae" and args.kl_warmup_steps is not None:
        init["kl_warmup_steps"] = args.kl_warmup_steps
    for item in args.set or []:
        target, value = item.split("=", 1)
        name, key = target.split(".", 1)
        if name == model:
            node = init
            *path, last = key.split(".")
            for part in path:
                node = node[part]
            node[last] = yaml.safe_load(value)
    config["trainer"] = {
        "max_epochs": 10_000,  # the CPU budget stops training
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 25,
        "limit_val_batches": 2,
        "default_root_dir": str(Path(args.out) / model / "run"),
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [],
    }
    config["data"] = data_config(args)
    return config


def data_config(args, labels: bool = False) -> dict:
    """MNIST t10k through ArrayImageDataModule (1,000 held out, 5% of the rest for validation), or
    scikit-learn's 8x8 digits with the split of ``configs/*/digits.yaml`` (10% validation, 10% held out)."""
    if args.dataset == "digits":
        init = {"batch_size": args.batch_size, "val_fraction": 0.1, "test_fraction": 0.1, "seed": 0}
        return {"class_path": "lightning_gen.data.DigitsDataModule", "init_args": init}
    init = {"path": str(Path(args.data).resolve()), "batch_size": args.batch_size, "val_fraction": 0.05,
            "test_fraction": 0.1, "num_workers": 0, "seed": 0}  # fmt: skip
    if labels:
        init["labels_key"] = "labels"
    return {"class_path": "lightning_gen.data.ArrayImageDataModule", "init_args": init}


def make_datamodule(args, labels: bool = False):
    import importlib

    config = data_config(args, labels)
    module, name = config["class_path"].rsplit(".", 1)
    dm = getattr(importlib.import_module(module), name)(**config["init_args"])
    dm.setup("fit")
    return dm


def split_images(dataset) -> torch.Tensor:
    """Every image of a split in [0, 1] (the datasets hold uint8 or [0, 1] floats)."""
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Images in [-1, 1] -> a PNG grid, small images enlarged (nearest) as in the training callbacks."""
    save_image(image_grid(images, nrow=nrow), path)


@torch.no_grad()
def reconstruction_error(model, images: torch.Tensor, batch_size: int = 250) -> float:
    """Mean squared error per pixel, in [0, 1] intensity units, of ``reconstruct`` on ``images``."""
    total = 0.0
    for chunk in images.split(batch_size):
        recon = model.reconstruct(chunk).cpu()
        total += float((((recon.clamp(-1, 1) + 1) / 2 - (chunk + 1) / 2) ** 2).sum())
    return total / images.numel()


def run_model(model_name: str, args) -> dict:
    out = Path(args.out) / model_name
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.yaml"
    with open(config_path, "w") as f:
        yaml.safe_dump(bench_config(model_name, args), f, sort_keys=False)
    pl.seed_everything(0, workers=True)
    cli = run_lightning_cli(["--config", str(config_path)], run=False)
    snapshot = None
    if args.snapshot_cpu_s is not None:  # the same run, also reported at an earlier CPU budget

        def write_snapshot(trainer, model, budget):
            # the continued run must not notice: keep the RNG state and the latent density as they were
            rng, density = torch.get_rng_state(), getattr(model, "latent_density", None)
            kept = {k: v.clone() for k, v in density.state_dict().items()} if density is not None else None
            if density is not None:
                model.fit_latent_density()  # as at the end of a run stopped there
            report(model_name, trainer, model, cli.datamodule, budget, time.perf_counter() - wall,
                   Path(args.snapshot_out), args, str(config_path))  # fmt: skip
            model.train()
            if density is not None:
                density.load_state_dict(kept)
            torch.set_rng_state(rng)

        snapshot = (args.snapshot_cpu_s, write_snapshot)
    budget = CPUBudget(args.budget_cpu_s, args.wall_limit_s, snapshot)
    cli.trainer.callbacks.append(budget)
    wall = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=args.resume)
    return report(model_name, cli.trainer, cli.model, cli.datamodule, budget, time.perf_counter() - wall,
                  Path(args.out), args, str(config_path))  # fmt: skip


def report(model_name, trainer, model, datamodule, budget, wall, root: Path, args, config_path: str) -> dict:
    """Checkpoint, samples, grids and result.json of a model under ``root`` (the run's end or a snapshot)."""
    out = root / model_name
    out.mkdir(parents=True, exist_ok=True)
    cpu = budget.used + args.resumed_cpu_s  # a resumed run: the CPU time before the checkpoint counts too
    batches = int(trainer.fit_loop.epoch_loop.batch_progress.total.completed)  # all of the run's batches
    ckpt = out / "final.ckpt"
    trainer.save_checkpoint(ckpt)
    device = model.device
    model = model.cpu().eval()
    torch.manual_seed(0)
    start = time.process_time()
    samples = draw(model, args.num_samples, batch_size=500)  # (N, 1, 28, 28) in [-1, 1]
    sample_cpu = time.process_time() - start
    np.savez_compressed(out / "samples.npz", samples=((samples.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32))
    save_grid(samples[:64], root / f"{model_name}_samples.png")
    result = {
        "model": model_name,
        "class": type(model).__name__,
        "train_cpu_s": round(cpu, 1),
        "stopped_by": budget.stopped_by,
        "train_wall_s": round(wall, 1),
        "train_batches": batches,
        "cpu_ms_per_batch": round(1000 * cpu / max(batches, 1), 1),
        "resumed_from": args.resume,
        "train_images": batches * args.batch_size,
        "epochs": round(batches * args.batch_size / len(datamodule.train_set), 2),
        "samples_per_s": round(args.num_samples / sample_cpu, 1),
        "checkpoint": str(ckpt),
        "samples": str(out / "samples.npz"),
        "sample_grid": str(root / f"{model_name}_samples.png"),
        "config": config_path,
    }
    if hasattr(model, "reconstruct"):
        held_out = split_images(datamodule.test_set) * 2 - 1  # [0, 1] -> [-1, 1], as on_after_batch_transfer does
        result["recon_mse"] = round(reconstruction_error(model, held_out), 5)
        recon = torch.cat([model.reconstruct(c) for c in held_out.split(250)])  # (N, 1, 28, 28) in [-1, 1]
        np.savez_compressed(out / "reconstructions.npz", samples=((recon.clamp(-1, 1) + 1) / 2).numpy())
        x = held_out[:16]
        pairs = torch.stack([x, model.reconstruct(x)], dim=1).flatten(0, 1)  # (32, 1, 28, 28)
        line = model.interpolate(x[0], x[1], steps=8)[0]  # (8, 1, 28, 28)
        save_grid(torch.cat([pairs, line]), root / f"{model_name}_reconstructions.png")
        result["reconstruction_grid"] = str(root / f"{model_name}_reconstructions.png")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    model.to(device)
    return result


def mean_image_baseline(args) -> float:
    """Reconstruction error of predicting the mean training image for every held-out image (a yardstick)."""
    dm = make_datamodule(args)
    train, test = split_images(dm.train_set), split_images(dm.test_set)
    return round(float(((test - train.mean(0)) ** 2).mean()), 5)


def train_classifier(args) -> tuple[Path, float]:
    """The FID feature extractor: ``configs/classifier/mnist.yaml``'s SmallCNN trained on the benchmark's own
    training split (with labels), for at most ``--classifier-epochs`` epochs or ``--budget-cpu-s`` CPU seconds.
    Returns the checkpoint and its accuracy on the held-out split."""
    out = Path(args.out) / "classifier"
    out.mkdir(parents=True, exist_ok=True)
    with open(REPO / "configs" / "classifier" / f"{args.dataset}.yaml") as f:
        config = yaml.safe_load(f)
    bench = bench_config("vae", args)
    config["trainer"] = {**bench["trainer"], "max_epochs": args.classifier_epochs, "default_root_dir": str(out / "run")}
    config["data"] = data_config(args, labels=True)
    config_path = out / "config.yaml"
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    pl.seed_everything(0, workers=True)
    cli = run_lightning_cli(["--config", str(config_path)], run=False)
    cli.trainer.callbacks.append(CPUBudget(args.budget_cpu_s, args.wall_limit_s))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = out / "final.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    test = cli.datamodule.test_set
    images = split_images(test) * 2 - 1
    labels = torch.stack([test[i][1] for i in range(len(test))])
    model = cli.model.cpu().eval()
    with torch.no_grad():
        accuracy = float((model(images).argmax(1) == labels).float().mean())
    return ckpt, round(accuracy, 4)


@torch.no_grad()
def reconstruction_accuracy(args, classifier_ckpt: Path) -> dict:
    """The FID classifier's accuracy on each VAE's reconstructions of the held-out digits (their labels from
    the same split with ``labels_key``): does a reconstruction keep its digit's class?"""
    from lightning_gen.checkpoints import load_model

    dm = make_datamodule(args, labels=True)
    labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])
    classifier = load_model(classifier_ckpt).cpu().eval()
    accuracy = {}
    for name in MODELS:
        npz = Path(args.out) / name / "reconstructions.npz"
        if npz.exists():
            recon = torch.from_numpy(np.load(npz)["samples"]) * 2 - 1  # [0, 1] -> [-1, 1]
            predicted = torch.cat([classifier(c).argmax(1) for c in recon.split(500)])
            accuracy[name] = round(float((predicted == labels).float().mean()), 4)
    return accuracy


def refitted_density_samples(args) -> dict[str, Path]:
    """``--density-components K``: for each VAE-type checkpoint, the ex-post density fitted again after
    training with K components on every training code (not the config's components and first
    ``prior_max_codes`` codes), and samples decoded from it: what a richer density is worth on the same
    weights. The fit's CPU seconds are written beside the samples (``density_gmm<K>.json``)."""
    from lightning_gen.checkpoints import load_model
    from lightning_gen.models.latent_density import LatentDensity

    found, k = {}, args.density_components
    train = None
    for name in ("vae", "vae_gan"):
        ckpt = Path(args.out) / name / "final.ckpt"
        if not ckpt.exists():
            continue
        npz = Path(args.out) / name / f"samples_gmm{k}.npz"
        if not npz.exists():
            if train is None:
                train = split_images(make_datamodule(args).train_set) * 2 - 1  # [0, 1] -> [-1, 1]
            model = load_model(ckpt).cpu().eval()
            model.latent_density, model.prior_max_codes = LatentDensity(model.latent_dim, "gmm", k), len(train)
            start = time.process_time()
            model.fit_latent_density(train)
            fit_s = time.process_time() - start
            torch.manual_seed(0)
            samples = draw(model, args.num_samples, batch_size=500)
            np.savez_compressed(npz, samples=((samples.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32))
            save_grid(samples[:64], Path(args.out) / f"{name}_gmm{k}_samples.png")
            info = {"components": k, "codes": len(train), "fit_cpu_s": round(fit_s, 1)}
            (Path(args.out) / name / f"density_gmm{k}.json").write_text(json.dumps(info) + "\n")
        found[f"{name}_gmm{k}"] = npz
    return found


def standard_prior_samples(args) -> dict[str, Path]:
    """For each VAE-type checkpoint: samples decoded from z ~ N(0, I) (``prior="standard"``) instead of the
    fitted ex-post density, to measure what the density is worth on the same weights."""
    from lightning_gen.checkpoints import load_model

    found = {}
    for name in ("vae", "vae_gan"):
        ckpt = Path(args.out) / name / "final.ckpt"
        if not ckpt.exists():
            continue
        npz = Path(args.out) / name / "samples_standard.npz"
        if not npz.exists():
            model = load_model(ckpt).cpu().eval()
            torch.manual_seed(0)
            samples = draw(model, args.num_samples, batch_size=500, prior="standard")
            np.savez_compressed(npz, samples=((samples.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32))
        found[f"{name}_standard_prior"] = npz
    return found


@torch.no_grad()
def sample_statistics(args, classifier_ckpt: Path, sources: dict[str, Path]) -> dict:
    """Two checks beside the FID, per sample set (and for the held-out digits themselves):

    - ``class_tv``: total variation distance between the classes the FID classifier gives the samples and
      the held-out labels' class frequencies (0: the same mix of digits; a model that favours some digits
      pays for it in the FID too, this says how much of its FID may be that);
    - ``pixel_w1``: the 1-D Wasserstein distance between the samples' pixel intensities and the held-out
      digits' (mean absolute difference of 1,001 quantiles, in [0, 1] intensity units), with
      ``gray_fraction``, the share of inked pixels (> 0.1) that are mid-grey (< 0.9; real MNIST strokes are
      mostly saturated): sensitive to blur, which the classifier's pooled features can average away.
    """
    from lightning_gen.checkpoints import load_model

    dm = make_datamodule(args, labels=True)
    test = split_images(dm.test_set)  # (N, 1, H, W) in [0, 1]
    labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])
    real_mix = torch.bincount(labels, minlength=10).double() / len(labels)
    classifier = load_model(classifier_ckpt).cpu().eval()
    quantiles = torch.linspace(0, 1, 1001, dtype=torch.float64)
    real_q = torch.quantile(test.flatten().double(), quantiles)

    def stats(images: torch.Tensor) -> dict:
        predicted = torch.cat([classifier(c * 2 - 1).argmax(1) for c in images.split(500)])
        mix = torch.bincount(predicted, minlength=10).double() / len(predicted)
        pixels = images.flatten().double()
        inked = pixels > 0.1
        return {
            "class_tv": round(float(0.5 * (mix - real_mix).abs().sum()), 4),
            "pixel_w1": round(float((torch.quantile(pixels, quantiles) - real_q).abs().mean()), 4),
            "gray_fraction": round(float((inked & (pixels < 0.9)).sum() / inked.sum().clamp(min=1)), 4),
        }

    found = {"held_out": stats(test)}
    for name, npz in sources.items():
        if npz.exists():
            found[name] = stats(torch.from_numpy(np.load(npz)["samples"]).float())
    return found


@torch.no_grad()
def score_stage(args) -> list[dict]:
    """``--score NPZ ...``: the FID of each sample file against the held-out split in the features of
    ``--classifier-ckpt`` (the number ``--fid`` gets through ``lightning-gen evaluate``, without its report
    files: for quick probes), with :func:`sample_statistics` and, for a ``reconstructions.npz`` of the
    held-out split, the classifier's accuracy on it."""
    from lightning_gen.checkpoints import load_model
    from lightning_gen.metrics.image import fid_from_features

    ckpt = Path(args.classifier_ckpt)
    classifier = load_model(ckpt).cpu().eval()
    dm = make_datamodule(args, labels=True)
    test = split_images(dm.test_set)
    labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])

    def features(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat([classifier.features(c * 2 - 1) for c in images.split(500)])  # [0, 1] -> [-1, 1]
        return feats.double(), classifier.network.head(feats).argmax(1)

    real_feats, _ = features(test)
    paths = {p: Path(p) for p in args.score}
    stats = sample_statistics(args, ckpt, paths)
    scores = []
    for name, path in paths.items():
        images = torch.from_numpy(np.load(path)["samples"]).float()
        feats, predicted = features(images)
        row = {"samples": str(path), "n": len(images), "fid": round(fid_from_features(real_feats, feats), 3)}
        row.update(stats[name])
        if len(images) == len(labels):  # reconstructions of the held-out digits: do they keep the class?
            row["accuracy"] = round(float((predicted == labels).float().mean()), 4)
        scores.append(row)
        print(json.dumps(row), flush=True)
    return scores


def fid_stage(args) -> dict:
    """FID on the classifier's features of each model's 10,000 samples against the held-out split, with
    ``lightning-gen evaluate``; plus the same score for real training images (the floor)."""
    from lightning_gen.jobs import evaluate

    out = Path(args.out)
    ckpt, accuracy_file = out / "classifier" / "final.ckpt", out / "classifier" / "accuracy.json"
    if ckpt.exists() and accuracy_file.exists():  # trained by an earlier --fid run: reuse it
        accuracy = json.loads(accuracy_file.read_text())["test_accuracy"]
    else:
        ckpt, accuracy = train_classifier(args)
        accuracy_file.write_text(json.dumps({"test_accuracy": accuracy}) + "\n")
    real_npz = out / "real_train.npz"
    dm_config = out / "classifier" / "config.yaml"
    dm = make_datamodule(args)
    real = split_images(dm.train_set)[: args.num_samples]  # (n, 1, H, W) in [0, 1]
    np.savez_compressed(real_npz, samples=real.numpy())
    fids = {"classifier_test_accuracy": accuracy, "classifier": str(ckpt)}
    sources = {"real_train": real_npz, **{m: out / m / "samples.npz" for m in MODELS}}
    sources.update(standard_prior_samples(args))
    if args.density_components:
        sources.update(refitted_density_samples(args))
    for name, npz in sources.items():
        if not npz.exists():
            continue
        report_path = out / f"fid_{name}.json"
        code = evaluate.main(
            [str(npz), "--data", str(dm_config), "--split", "test", "--features", "classifier", "--classifier",
             str(ckpt), "--threads", str(args.threads), "--cache-dir", str(out / "metric_cache"), "--output",
             str(report_path)]
        )  # fmt: skip
        if code == 0:
            value = json.loads(report_path.read_text())["metrics"]["fid"]
            fids[name] = value.get("value", value) if isinstance(value, dict) else value
    fids["recon_accuracy"] = reconstruction_accuracy(args, ckpt)
    if args.dataset == "mnist":
        fids["sample_statistics"] = sample_statistics(args, ckpt, sources)
    (out / "fid.json").write_text(json.dumps(fids, indent=2) + "\n")
    print(json.dumps(fids), flush=True)
    return fids


def step_cost(args) -> dict:
    """``--step-cost``: CPU milliseconds of one training step (forward, backward, optimizer steps) of each
    model, on one fixed batch, the models' steps interleaved in rounds in this one process, so that the load
    of a shared machine weighs on all alike (the per-batch figures of training runs also hold validation, data
    loading and density refits, and runs made at different times see different loads)."""
    models = {}
    for name in args.models:
        pl.seed_everything(0, workers=True)
        config = bench_config(name, args)
        config["trainer"].update(max_steps=1, limit_val_batches=0, logger=False)
        path = Path(args.out) / f"step_cost_{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cli = run_lightning_cli(["--config", str(path)], run=False)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)  # attaches trainer and optimizers (one step)
        batch = next(iter(cli.datamodule.train_dataloader()))
        batch = cli.datamodule.on_after_batch_transfer(batch, 0)
        cli.model.log = cli.model.log_dict = lambda *a, **k: None  # no loop collects metrics outside a fit
        models[name] = (cli.model, batch)
    steps, used = 10, dict.fromkeys(models, 0.0)

    def run(name: str) -> None:
        model, batch = models[name]
        if model.automatic_optimization:  # the VAE: one loss, one optimizer
            opt = model.optimizers()
            loss = model.training_step(batch, 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            model.training_step(batch, 0)

    for round_ in range(args.step_cost_rounds + 1):  # round 0 warms up
        for name in models:
            start = time.process_time()
            for _ in range(steps):
                run(name)
            if round_ > 0:
                used[name] += time.process_time() - start
    ms = {k: round(1000 * v / (steps * args.step_cost_rounds), 1) for k, v in used.items()}
    first = next(iter(ms))
    result = {"cpu_ms_per_step": ms, f"ratio_to_{first}": {k: round(v / ms[first], 2) for k, v in ms.items()}}
    (Path(args.out) / "step_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist", help="mnist: MNIST t10k (--data)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist-t10k" / "mnist_t10k.npz"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--budget-cpu-s", type=float, default=240.0, help="process CPU seconds of training per model")
    p.add_argument("--wall-limit-s", type=float, default=None, help="safety: also stop after this wall time")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--snapshot-cpu-s", type=float, default=None, help="also report the run at this CPU budget")
    p.add_argument("--resume", default=None, help="continue this bench checkpoint (one model; exact resume)")
    p.add_argument("--resumed-cpu-s", type=float, default=0.0, help="training CPU seconds already in --resume")
    p.add_argument("--snapshot-out", default=None, help="where the snapshot's report goes (a second --out)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--config", default="mnist_cpu", help="configs/<model>/<CONFIG>.yaml to start from")
    p.add_argument("--latent-dim", type=int, default=None, help="override the config's latent size")
    p.add_argument("--base-channels", type=int, default=None, help="override the config's network widths")
    p.add_argument("--kl-warmup-steps", type=int, default=None, help="override the VAE's KL warm-up")
    p.add_argument("--set", action="append", help="MODEL.key=value on the model's init_args, e.g. vae_gan.gamma=5")
    p.add_argument("--num-samples", type=int, default=10_000)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "images"))
    p.add_argument("--fid", action="store_true", help="instead of training the models: FID of their saved samples")
    p.add_argument(
        "--density-components",
        type=int,
        default=None,
        help="also score samples from a K-component GMM refitted on every training code (with --fid, or alone "
        "with --classifier-ckpt)",
    )
    p.add_argument("--classifier-epochs", type=int, default=3, help="epochs of the FID classifier (with --fid)")
    p.add_argument("--step-cost", action="store_true", help="instead of training: CPU ms per step of --models")
    p.add_argument("--step-cost-rounds", type=int, default=5, help="rounds of 10 steps per model (--step-cost)")
    p.add_argument("--score", nargs="+", help="instead of training: FID and statistics of these samples.npz files")
    p.add_argument("--classifier-ckpt", help="with --score: the FID classifier (a --fid run's classifier/final.ckpt)")
    args = p.parse_args()
    if args.dataset == "digits" and args.config == "mnist_cpu":
        args.config = "digits"
    if args.dataset == "mnist" and not os.path.isfile(args.data):
        sys.exit(f"error: {args.data} not found (the MNIST t10k array file; see ../shared/data/mnist-t10k/README.md)")
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.fid:
        fid_stage(args)
        return
    if args.density_components and not args.fid:  # refit, then score the new samples (needs --classifier-ckpt)
        args.score = [str(p) for p in refitted_density_samples(args).values()]
    if args.score:
        score_stage(args)
        return
    if args.step_cost:
        step_cost(args)
        return
    settings = {k: v for k, v in vars(args).items() if k != "models"}
    settings["torch"] = torch.__version__
    settings["mean_image_recon_mse"] = mean_image_baseline(args)
    (Path(args.out) / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    for name in args.models:
        run_model(name, args)
    # one report over every model run so far (several invocations may each run some of the models)
    report = {"settings": settings, "models": {}}
    for name in MODELS:
        path = Path(args.out) / name / "result.json"
        if path.exists():
            report["models"][name] = json.loads(path.read_text())
    results_path = Path(args.out) / "results.json"
    results_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
