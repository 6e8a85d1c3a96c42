"""The issue-12 yardstick: a plain PyTorch VAE of about 60 lines (pytorch/examples' MNIST VAE, sized for 8x8
digits) trained for a budget of process CPU time on the same training split as ``bench_images.py --dataset
digits``; writes ``<out>/plain_vae/samples.npz`` (the bench's format) for ``bench_images.py --score``.

    python benchmarks/plain_vae_digits.py --budget-cpu-s 120 --out /tmp/plain
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lightning_gen.data import DigitsDataModule  # noqa: E402


class VAE(nn.Module):
    """Kingma & Welling 2014 with pytorch/examples' MLP: 64 -> 400 -> (mu, logvar) of 20 -> 400 -> 64 Bernoulli."""

    def __init__(self, d: int = 64, h: int = 400, z: int = 20) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(d, h), nn.Linear(h, z), nn.Linear(h, z)
        self.fc3, self.fc4, self.z = nn.Linear(z, h), nn.Linear(h, d), z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x: torch.Tensor):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        return self.decode(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)), mu, logvar


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget-cpu-s", type=float, default=120.0)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dm = DigitsDataModule(batch_size=64, val_fraction=0.1, test_fraction=0.1, seed=0)  # bench_images' split
    dm.setup("fit")
    x = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))]).flatten(1)  # (N, 64) in [0, 1]
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start, batches = time.process_time(), 0
    while time.process_time() - start < args.budget_cpu_s:
        for batch in x[torch.randperm(len(x))].split(64):
            recon, mu, logvar = model(batch)
            bce = F.binary_cross_entropy(recon, batch, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            opt.zero_grad()
            (bce + kl).div(len(batch)).backward()
            opt.step()
            batches += 1
    with torch.no_grad():
        samples = model.decode(torch.randn(args.num_samples, model.z)).view(-1, 1, 8, 8)
    out = Path(args.out) / "plain_vae"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "samples.npz", samples=samples.numpy().astype(np.float32))
    print(f"{batches} batches in {time.process_time() - start:.1f} CPU-s; wrote {out / 'samples.npz'}")


if __name__ == "__main__":
    main()
