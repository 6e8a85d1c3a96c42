"""Conditional image models, shipped configs as a user runs them: do they keep the data's variety within a class?

    python benchmarks/bench_within_class.py --dataset digits --runs gan_cond=configs/gan/digits_cond.yaml \\
        gan=configs/gan/digits.yaml --out benchmarks/results/within_class/digits
    python benchmarks/bench_within_class.py --dataset digits --runs ms=configs/gan/digits_cond.yaml \\
        --set ms:model.init_args.mode_seeking_weight=1.0 --out benchmarks/results/within_class/digits

Each run trains the config unchanged (its own ``max_epochs``, no callbacks, one torch thread; ``--budget-cpu-s``
caps the process CPU time, as ``bench_images.py``), then draws ``--num-samples`` samples, the same number of
each class in order (an unconditional model: unlabelled, its classes read off by the classifier), and scores
them in the penultimate features of an independent classifier (``configs/classifier/<dataset>.yaml``'s SmallCNN,
trained here on the training split and cached under ``--out``):

- ``diversity``: within-class diversity (:func:`lightning_gen.metrics.diversity.within_class_diversity`), the
  mean pairwise feature distance of a class's samples over that of the class's real items (1.0: as varied);
- ``class_recall``: per-class improved recall (Kynkaanniemi et al. 2019) against the real items of the class;
- ``precision`` / ``recall``: improved precision / recall of all samples against the reference;
- ``fid`` / ``kid``: against the ``--reference`` set: ``all`` (every item of the dataset, the training split
  included, labelled as such: digits has 1,797 items and its test split 180, too few for 64 features) or
  ``heldout`` (the val and test splits);
- ``class_accuracy``: the share of samples the classifier puts in the asked class;
- the same scores of real data (``real``: the training split against the reference) on the same protocol: the
  floor to read the others against.

Results: ``--out/<run>/result.json`` and one ``--out/results.jsonl`` line per run.

``--evaluate NAME=CHECKPOINT --classifier CKPT`` instead scores trained checkpoints with the default
protocol of ``lightning-gen evaluate`` (``bench_trust_digits.py``'s sampling and summary: labels drawn from the
training mix, held-out reference, KID, precision / recall, density / coverage, copying test, the real data's own
scores), one ``--out/evaluate.jsonl`` line per checkpoint.

``--score NAME=CHECKPOINT`` scores a trained checkpoint as the runs are scored (no training).

``--refit NAME=CHECKPOINT`` (with ``--set NAME:model.init_args.latent_density.KEY=VALUE``) keeps a trained VAE-type
model's networks and refits its ex-post latent density (Ghosh et al. 2020) with other settings to the posterior
means of the training split, writes ``--out/NAME/final.ckpt`` and scores it as ``--evaluate`` does: choosing the
density of a model whose training never decodes a code drawn from it (the VAE; the VAE-GAN with
``prior_samples: 0``) needs no retraining.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_images import CPUBudget, data_config, save_grid, split_images  # noqa: E402

from lightning_gen.checkpoints import load_model  # noqa: E402
from lightning_gen.cli import run_lightning_cli  # noqa: E402
from lightning_gen.lightning_cli.parser import config_stack, stacked_config  # noqa: E402
from lightning_gen.metrics.diversity import per_class_recall, within_class_diversity  # noqa: E402
from lightning_gen.metrics.image import (  # noqa: E402
    fid_from_features,
    kid_from_features,
    precision_recall_from_features,
)


def set_key(config: dict, dotted: str, value) -> None:
    node = config
    *path, last = dotted.split(".")
    for part in path:
        node = node[part]
    node[last] = value


def run_config(path: str, name: str, args) -> dict:
    """The config file ``path`` (a conditional overlay ``*_cond.yaml`` stacked on its twin), set up for this run."""
    config = stacked_config([str(REPO / part) for part in config_stack(path)])
    trainer = config["trainer"]
    trainer.update(
        accelerator="cpu",
        callbacks=[],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(Path(args.out) / name / "run"),
        limit_val_batches=0,
        logger=False,
    )
    config["data"] = data_config(args, labels=True)
    for item in args.set or []:
        run, assignment = item.split(":", 1)
        if run == name:
            key, value = assignment.split("=", 1)
            set_key(config, key, yaml.safe_load(value))
    return config


def train(path: str, name: str, args):
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(path, name, args)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    pl.seed_everything(config.get("seed_everything", 0), workers=True)
    cli = run_lightning_cli(["--config", str(out / "config.yaml")], run=False)
    budget = CPUBudget(args.budget_cpu_s)
    cli.trainer.callbacks.append(budget)
    wall = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.save_checkpoint(out / "final.ckpt")
    batches = int(cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed)
    info = {"train_cpu_s": round(budget.used, 1), "train_wall_s": round(time.perf_counter() - wall, 1)}
    info.update(train_batches=batches, stopped_by=budget.stopped_by, epochs=cli.trainer.current_epoch)
    return cli.model.cpu().eval(), info


@torch.no_grad()
def draw(model, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in [0, 1]; a conditional model's classes 0, 1, ..., K-1, 0, ... (the same count each)."""
    torch.manual_seed(0)
    labels = torch.arange(n) % model.num_classes if getattr(model, "num_classes", None) else None
    chunks = []
    for start in range(0, n, 500):
        b = min(500, n - start)
        part = None if labels is None else labels[start : start + b]
        chunks.append(model.sample(b) if part is None else model.sample(b, labels=part))
    return (torch.cat(chunks).float().clamp(-1, 1) + 1) / 2, labels


class Scorer:
    """Features of an independent classifier and the reference sets, computed once."""

    def __init__(self, args) -> None:
        self.args = args
        ckpt = Path(args.out) / "classifier" / "final.ckpt"
        if not ckpt.exists():
            train_feature_classifier(args, ckpt)
        self.classifier = load_model(ckpt).cpu().eval()
        dm = _datamodule(args)
        sets = {s: (split_images(getattr(dm, f"{s}_set")), _labels(getattr(dm, f"{s}_set"))) for s in SPLITS}
        self.train = self.features(sets["train"][0]), sets["train"][1]
        parts = ("train", "val", "test") if args.reference == "all" else ("val", "test")
        x = torch.cat([sets[s][0] for s in parts])
        self.reference = self.features(x), torch.cat([sets[s][1] for s in parts])
        acc = (self.predict(sets["test"][0]) == sets["test"][1]).float().mean()
        self.classifier_accuracy = round(float(acc), 4)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.classifier.features(c * 2 - 1) for c in images.split(500)]).double()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.classifier(c * 2 - 1).argmax(1) for c in images.split(500)])

    def score(self, images: torch.Tensor, labels: torch.Tensor | None) -> dict:
        feats, predicted = self.features(images), self.predict(images)
        ref, ref_labels = self.reference
        out = {"n": len(images), "reference": self.args.reference, "reference_n": len(ref)}
        out["fid"] = round(fid_from_features(ref, feats), 3)
        kid, kid_std, _ = kid_from_features(ref, feats)
        out["kid"], out["kid_std"] = round(kid, 5), round(kid_std, 5)
        out.update({k: round(v, 4) for k, v in precision_recall_from_features(ref, feats).items()})
        classes = predicted if labels is None else labels  # unconditional: the classifier's reading
        if labels is not None:
            out["class_accuracy"] = round(float((predicted == labels).float().mean()), 4)
        div = within_class_diversity(feats, classes, ref, ref_labels)
        out["diversity"] = round(div["value"], 4)
        out["diversity_per_class"] = {int(c): round(v, 3) for c, v in div["per_class"].items()}
        rec = per_class_recall(feats, classes, ref, ref_labels)
        out["class_recall"] = round(rec["value"], 4)
        out["class_recall_per_class"] = {int(c): round(v, 3) for c, v in rec["per_class"].items()}
        return out


SPLITS = ("train", "val", "test")


def _datamodule(args):
    import importlib

    config = data_config(args, labels=True)
    module, name = config["class_path"].rsplit(".", 1)
    dm = getattr(importlib.import_module(module), name)(**config["init_args"])
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    return dm


def _labels(dataset) -> torch.Tensor:
    return torch.stack([torch.as_tensor(dataset[i][1]) for i in range(len(dataset))]).long()


def train_feature_classifier(args, ckpt: Path) -> None:
    with open(REPO / "configs" / "classifier" / f"{args.dataset}.yaml") as f:
        config = yaml.safe_load(f)
    config["trainer"].update(
        accelerator="cpu",
        max_epochs=args.classifier_epochs,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        default_root_dir=str(ckpt.parent / "run"),
    )
    config["data"] = data_config(args, labels=True)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    (ckpt.parent / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    pl.seed_everything(0, workers=True)
    cli = run_lightning_cli(["--config", str(ckpt.parent / "config.yaml")], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.save_checkpoint(ckpt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mnist-t10k" / "mnist_t10k.npz"))
    p.add_argument("--runs", nargs="*", default=[], help="NAME=CONFIG.yaml, trained as shipped")
    p.add_argument("--set", action="append", help="NAME:dotted.key=value overriding a run's config")
    p.add_argument("--budget-cpu-s", type=float, default=1e9)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--reference", choices=("all", "heldout"), default="all")
    p.add_argument("--classifier-epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--real", action="store_true", help="also score the training split (the real data's floor)")
    p.add_argument("--score", nargs="*", default=[], help="NAME=CHECKPOINT scored as the --runs are, untrained")
    p.add_argument("--evaluate", nargs="*", default=[], help="NAME=CHECKPOINT scored by `evaluate`'s protocol")
    p.add_argument("--refit", nargs="*", default=[], help="NAME=CHECKPOINT: its latent density refitted (--set)")
    p.add_argument("--classifier", help="the classifier (run folder or checkpoint) of --evaluate / --refit")
    p.add_argument("--sample-seed", type=int, default=0, help="`lightning-gen sample --seed` of --evaluate / --refit")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.refit:
        start = time.process_time()
        args.evaluate += [f"{spec.split('=', 1)[0]}={refit_density(spec, args)}" for spec in args.refit]
        print(f"refits: {time.process_time() - start:.0f} CPU-s", flush=True)
    if args.evaluate:
        return evaluate_checkpoints(args)
    scorer = Scorer(args)
    rows = []
    if args.real:
        feats_labels = scorer.train
        row = {"run": "real (training split)", "classifier_accuracy": scorer.classifier_accuracy}
        images = split_images(_datamodule(args).train_set)
        row.update(scorer.score(images, feats_labels[1]))
        rows.append(row)
    for spec in args.score:  # trained checkpoints (e.g. of --refit), drawn and scored as the runs are
        name, ckpt = spec.split("=", 1)
        images, labels = draw(load_model(ckpt).cpu().eval(), args.num_samples)
        rows.append({"run": name, "checkpoint": ckpt, **scorer.score(images, labels)})
    for spec in args.runs:
        name, path = spec.split("=", 1)
        model, info = train(path, name, args)
        images, labels = draw(model, args.num_samples)
        save_grid(_grid(images, labels) * 2 - 1, Path(args.out) / f"{name}_samples.png", nrow=10)
        row = {"run": name, "config": path, "set": [s for s in args.set or [] if s.startswith(name + ":")], **info}
        row.update(scorer.score(images, labels))
        (Path(args.out) / name / "result.json").write_text(json.dumps(row, indent=2) + "\n")
        rows.append(row)
    with open(Path(args.out) / "results.jsonl", "a") as f:
        for row in rows:
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")


def evaluate_checkpoints(args) -> None:
    import bench_trust_digits as trust

    data = trust.DIGITS
    if args.dataset != "digits":  # the samples' dataset, with the training split the models saw
        data = str(Path(args.out) / "evaluate_data.yaml")
        Path(data).write_text(yaml.safe_dump({"data": data_config(args, labels=True)}, sort_keys=False))
    with open(Path(args.out) / "evaluate.jsonl", "a") as f:
        for spec in args.evaluate:
            name, ckpt = spec.split("=", 1)
            run = name if args.sample_seed == 0 else f"{name}_seed{args.sample_seed}"
            path = Path(args.out) / f"{run}_evaluate.npz"
            start = time.process_time()
            _sample(ckpt, args.num_samples, path, args.sample_seed)
            row = {"checkpoint": ckpt, **trust.summary(run, *trust.score(path, args.classifier, data))}
            row["set"] = [s for s in args.set or [] if s.startswith(name + ":")]
            row["sample_seed"] = args.sample_seed
            row["evaluate_cpu_s"] = round(time.process_time() - start, 1)
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")


def _sample(checkpoint: str, n: int, path: Path, seed: int) -> None:
    from lightning_gen.jobs import sample as job

    assert job.main([checkpoint, "--num-samples", str(n), "--output", str(path), "--seed", str(seed)]) == 0


def refit_density(spec: str, args) -> str:
    """``NAME=CHECKPOINT``: the checkpoint's model with its latent density refitted under this run's ``--set``
    overrides of ``model.init_args.latent_density.*``, saved as ``--out/NAME/final.ckpt`` (returned)."""
    from pytorch_lightning.cli import instantiate_module
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gen import lightning_internals as li
    from lightning_gen.checkpoints import load_checkpoint, model_config
    from lightning_gen.renamed import needs_upgrade, upgrade

    name, path = spec.split("=", 1)
    ckpt = load_checkpoint(path)
    if needs_upgrade(ckpt):  # written with option names the models no longer take
        ckpt = upgrade(ckpt)
    hparams = model_config(ckpt, path)
    density = dict(hparams["latent_density"])
    for item in args.set or []:
        run, assignment = item.split(":", 1)
        key, value = assignment.split("=", 1)
        prefix = "model.init_args.latent_density."
        if run == name:
            if not key.startswith(prefix):
                raise SystemExit(f"--refit {name}: only {prefix}* can change without retraining, got {key!r}.")
            density[key.removeprefix(prefix)] = yaml.safe_load(value)
    hparams["latent_density"] = density
    model = instantiate_module(pl.LightningModule, li.without_cli_instantiator(hparams))
    own = model.state_dict()  # the new density's buffers (their shapes follow the new settings)
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(("latent_density.", "training_density."))}
    model.load_state_dict({**state, **{k: v for k, v in own.items() if "density." in k}}, strict=True)
    model.eval()
    dm = _datamodule(args)
    loader = DataLoader(dm.train_set, batch_size=256, shuffle=False)
    # the model's input range: the DataModule scales raw images on the device (on_after_batch_transfer)
    x, y = map(torch.cat, zip(*(dm.on_after_batch_transfer(batch, 0) for batch in loader)))
    limit = model.latent_density_config.max_codes
    model.fit_latent_density(DataLoader(TensorDataset(x[:limit], y[:limit]), batch_size=256))
    if model.training_density is not None:  # what a resumed run would decode for the game: the same density
        model.training_density.load_state_dict({**model.latent_density.state_dict(), "epoch": torch.tensor(-1)})
    ckpt["hyper_parameters"]["latent_density"] = density
    ckpt["state_dict"] = model.state_dict()
    out = Path(args.out) / name / "final.ckpt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    return str(out)


def _grid(images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    if labels is None:
        return images[:100]
    k = int(labels.max()) + 1
    return images[: 10 * k].view(10, k, *images.shape[1:]).transpose(0, 1).flatten(0, 1)  # row c: class c


if __name__ == "__main__":
    main()
