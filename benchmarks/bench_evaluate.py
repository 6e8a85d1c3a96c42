"""Cost of the evaluation metrics, in process CPU seconds (``torch.set_num_threads(--threads)``).

Images: ``lightning-gen evaluate`` (in process) of 10,000 MNIST-size images with classifier features,
against the held-out split of ``mnist_t10k.npz`` (ArrayImageDataModule, test_fraction 0.1: 1,000 images).
The 10,000 "generated" images are the t10k images themselves (a stand-in with the right size and count;
their FID is the floor, not a model's score). Timed cold (reference features computed and cached) and warm
(read from the cache) for ``fid``, then warm for ``fid,kid,is,precision_recall``. The classifier is
``configs/classifier/mnist.yaml``'s SmallCNN, trained here for ``--classifier-epochs`` on the same file
(labels included) unless ``--classifier CKPT`` is given.

Sines: TimeGAN's discriminative (2,000 iterations) and predictive (5,000 iterations) scores, batch 128,
ONE repeat each (the protocol's 10 repeats cost 10x), on 10,000 sines (24 x 5) against another 10,000.

    python benchmarks/bench_evaluate.py --data ../shared/data/mnist-t10k/mnist_t10k.npz
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, round(time.process_time() - cpu, 1), round(time.perf_counter() - wall, 1)


def data_section(path: str) -> dict:
    return {
        "class_path": "lightning_gen.data.ArrayImageDataModule",
        "init_args": {"path": str(Path(path).resolve()), "labels_key": "labels", "batch_size": 128,
                      "val_fraction": 0.05, "test_fraction": 0.1, "seed": 0},
    }  # fmt: skip


def train_classifier(args, out: Path) -> str:
    from lightning_gen.cli import run_lightning_cli

    with open(REPO / "configs" / "classifier" / "mnist.yaml") as f:
        config = yaml.safe_load(f)
    config["trainer"].update(
        max_epochs=args.classifier_epochs, accelerator="cpu", default_root_dir=str(out / "classifier"),
        enable_progress_bar=False,
    )  # fmt: skip
    config["data"] = data_section(args.data)
    config_path = out / "classifier.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    cli = run_lightning_cli(["--config", str(config_path)], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    ckpt = out / "classifier" / "mnist_classifier.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    return str(ckpt)


def image_stage(args, out: Path) -> dict:
    from lightning_gen.jobs import evaluate

    classifier = args.classifier
    results: dict = {}
    if classifier is None:
        classifier, cpu, wall = timed(lambda: train_classifier(args, out))
        results["classifier_training"] = {"epochs": args.classifier_epochs, "cpu_s": cpu, "wall_s": wall}
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"data": data_section(args.data)}))
    with np.load(args.data) as z:
        images = z["images"][:, None]  # (10000, 1, 28, 28) uint8
    samples = out / "t10k_as_samples.npz"
    np.savez(samples, samples=(images.astype(np.float32) / 255.0))
    cache = out / "metric_cache"
    for path in cache.glob("*"):
        path.unlink()
    # cold: the reference features are computed and cached; warm: read from the cache
    for metrics, run in (("fid", "cold"), ("fid", "warm"), ("fid,kid,is,precision_recall", "warm")):
        argv = [str(samples), "--data", str(data_yaml), "--classifier", classifier, "--metrics", metrics,
                "--cache-dir", str(cache), "--threads", str(args.threads), "--batch-size", "500"]  # fmt: skip
        report, cpu, wall = timed(lambda argv=argv: evaluate.evaluate(evaluate.build_parser().parse_args(argv)))
        results[f"{metrics} ({run})"] = {
            "cpu_s": cpu,
            "wall_s": wall,
            "cache_hit": report["reference_cache"]["hit"],
            "num_generated": report["num_generated"],
            "num_real": report["num_real"],
            "values": {k: v.get("value", v) for k, v in report["metrics"].items()},
        }
        print(metrics, run, json.dumps(results[f"{metrics} ({run})"]), flush=True)
    return results


def sines_stage(args) -> dict:
    from lightning_gen.data.sines import make_sines
    from lightning_gen.metrics.timegan import discriminative_score, predictive_score

    real, fake = make_sines(10000, 24, 5, seed=0), make_sines(10000, 24, 5, seed=1)
    results = {}
    (disc, _), cpu, wall = timed(lambda: discriminative_score(real, fake, iterations=2000, repeats=1))
    results["discriminative (2000 it, 1 repeat)"] = {"score": round(disc, 4), "cpu_s": cpu, "wall_s": wall}
    print(json.dumps(results), flush=True)
    (pred, _), cpu, wall = timed(lambda: predictive_score(real, fake, iterations=5000, repeats=1))
    results["predictive (5000 it, 1 repeat)"] = {"score": round(pred, 4), "cpu_s": cpu, "wall_s": wall}
    print(json.dumps(results), flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared/data/mnist-t10k/mnist_t10k.npz"))
    p.add_argument("--classifier", default=None, help="reuse a trained MNIST classifier checkpoint")
    p.add_argument("--classifier-epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "runs" / "bench_evaluate"))
    p.add_argument("--skip-images", action="store_true")
    p.add_argument("--skip-sines", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"threads": args.threads, "torch": torch.__version__}
    if not args.skip_images:
        results["images"] = image_stage(args, out)
    if not args.skip_sines:
        results["sines"] = sines_stage(args)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
