"""The conditional VAE-GAN (issue 14) through ``bench_conditional_images.py``'s protocol: trained for a budget of
process CPU time on the same split, balanced samples (the same number of each class, labels saved), then scored
by the same classifier (FID and the share of samples classified as the class asked for).

    python benchmarks/bench_vae_gan_cond.py --dataset digits --budget-cpu-s 180 \\
        --out benchmarks/results/images_issue14/vae_gan_digits180

That script's model names split at the first underscore (``gan_cond`` -> family ``gan``), so it cannot name
the VAE-GAN; this one passes it ``vae_gan`` / ``vae_gan_cond`` with every other piece unchanged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_conditional_images as bc  # noqa: E402
from bench_images import bench_config, data_config  # noqa: E402


def model_config(name: str, args) -> dict:
    """``configs/vae_gan/<config>[_cond].yaml`` with the labelled data (``bc.model_config`` for the VAE-GAN)."""
    base = args.config
    args.config = f"{base}_cond" if name.endswith("_cond") else base
    try:
        config = bench_config("vae_gan", args)
    finally:
        args.config = base
    config["data"] = data_config(args, labels=True)
    config["trainer"]["default_root_dir"] = str(Path(args.out) / name / "run")
    return config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=("mnist", "digits"), default="digits")
    p.add_argument("--data", default=str(bc.REPO.parent / "shared" / "data" / "mnist-t10k" / "mnist_t10k.npz"))
    p.add_argument("--models", nargs="+", default=["vae_gan_cond"], choices=("vae_gan", "vae_gan_cond"))
    p.add_argument("--budget-cpu-s", type=float, default=180.0)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--out", required=True)
    p.add_argument("--classifier-ckpt", default=None, help="default: bench_conditional_images.py's for the dataset")
    p.add_argument("--set", action="append", help="vae_gan.key=value on the model's init_args")
    args = p.parse_args()
    args.config = "digits" if args.dataset == "digits" else "mnist_cpu"
    args.wall_limit_s = args.snapshot_cpu_s = args.snapshot_out = None
    args.threads, args.batch_size, args.classifier_epochs = 1, 64, 3
    args.latent_dim = args.base_channels = args.kl_warmup_steps = None
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    bc.model_config = model_config  # run_model looks it up in its module
    for name in args.models:
        bc.run_model(name, args)
    bc.score(args, [Path(args.out) / name / "samples.npz" for name in args.models])


if __name__ == "__main__":
    main()
