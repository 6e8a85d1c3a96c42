"""Probe (issue 14, conditional GAN on MNIST): are the EMA generator's batch-norm statistics the problem?

For a GAN checkpoint, writes balanced samples (the same number of each class, in order 0..9, 0..; seed 0) of

- ``G.npz``: the trained generator (eval mode, its own running statistics),
- ``G_ema.npz``: the EMA generator as ``sample`` uses it (averaged weights and averaged running statistics),
- ``G_ema_restat.npz``: the EMA generator with its batch-norm statistics re-estimated from 100 train-mode
  batches of 64 (random labels) through its averaged weights (cumulative average; BigGAN's standing statistics),

then prints, per variant, the within-class spread of the samples in the classifier's features (mean pairwise
distance within each class, as a share of that of the first 2,000 MNIST t10k digits; MNIST checkpoints only),
a diversity the FID sees only in part.
Score the files with ``bench_conditional_images.py --dataset mnist --score DIR/G.npz DIR/G_ema.npz
DIR/G_ema_restat.npz --out DIR``.

    python benchmarks/results/images_issue14/ema_batch_norm_probe/ema_batch_norm_probe.py CKPT OUT_DIR [N]
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO))
from lightning_gen.checkpoints import load_model  # noqa: E402

CLASSIFIER = REPO / "benchmarks/results/images_issue12/cpu600/classifier/final.ckpt"
DATA = REPO.parent / "shared/data/mnist-t10k/mnist_t10k.npz"


def restat(g: torch.nn.Module, latent_dim: int, conditional: bool, batches: int = 100) -> torch.nn.Module:
    g = copy.deepcopy(g)
    for m in g.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
    g.train()
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(batches):
            g(torch.randn(64, latent_dim), **({"labels": torch.randint(0, 10, (64,))} if conditional else {}))
    return g.eval()


def main() -> None:
    torch.set_num_threads(1)
    ckpt, out = sys.argv[1], Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(ckpt).cpu().eval()
    conditional = model.num_classes is not None
    labels = torch.arange(n) % 10
    classifier = load_model(CLASSIFIER).cpu().eval()
    data = np.load(DATA)
    real = torch.from_numpy(data["images"][:2000]).float()[:, None] / 127.5 - 1  # uint8 -> [-1, 1]
    real_labels = torch.from_numpy(data["labels"][:2000]).long()

    @torch.no_grad()
    def spread(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        f = torch.cat([classifier.features(c) for c in x.split(500)])
        return np.array([torch.pdist(f[y == c]).mean().item() for c in range(10)])

    real_spread = spread(real, real_labels)
    variants = {"G": model.generator.eval(), "G_ema": model.generator_ema.module.eval()}
    variants["G_ema_restat"] = restat(variants["G_ema"], model.latent_dim, conditional)
    for name, g in variants.items():
        torch.manual_seed(0)
        with torch.no_grad():
            x = torch.cat(
                [
                    g(torch.randn(len(y), model.latent_dim), **({"labels": y} if conditional else {}))
                    for y in labels.split(500)
                ]
            )
        arrays = {"samples": ((x.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32)}
        if conditional:
            arrays["labels"] = labels.numpy()
        np.savez_compressed(out / f"{name}.npz", **arrays)
        if conditional and x.shape[-1] == 28:  # the spread needs the MNIST classifier; digits are 8 x 8
            ratio = spread(x[:2000], labels[:2000]) / real_spread
            print(f"{name}: mean pixel {x.mean():.3f}; within-class spread / real digits' {ratio.mean():.2f}",
                  np.round(ratio, 2).tolist(), flush=True)  # fmt: skip
        else:
            print(f"{name}: mean pixel {x.mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
