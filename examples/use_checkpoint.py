"""Load a checkpoint, sample, reconstruct and evaluate it from Python.

    python examples/use_checkpoint.py CKPT        # e.g. the path that examples/train_tiny.py printed

Works for any checkpoint of the project; `reconstruct` needs a VAE-type model (VAE, VAE-GAN, R-VAE, R-VAE-GAN).
"""

import sys

import torch

from lightning_gen import api


def main(ckpt: str) -> dict:
    model = api.load(ckpt)  # audited: weights only, allowlisted classes, finite weights, matching shapes
    fake = api.sample(model, 8)  # (8, T, D) for sequences, (8, C, H, W) in [-1, 1] for images
    print(f"{type(model).__name__}: sampled {tuple(fake.shape)}")
    if hasattr(model, "reconstruct"):
        x = fake[:4]  # any batch in the model's scale; a real one comes from the DataModule
        print(f"reconstruction error of 4 samples: {torch.mean((api.reconstruct(model, x) - x) ** 2):.4g}")
    # the `lightning-gen evaluate` job (flags as keyword arguments); small settings for a quick look
    metrics = ["mmd"] if model.data_kind == "sequence" else ["fid"]
    report = api.evaluate(ckpt, metrics=metrics, num_samples=64, num_reference=64, no_cache=True)
    for name, value in report["metrics"].items():
        print(f"{name}: {value['value']:.4g}")
    return report


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
