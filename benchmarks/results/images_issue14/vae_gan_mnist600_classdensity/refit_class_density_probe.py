"""Probe (issue 14): refit the class-conditional latent density of a conditional VAE-GAN checkpoint written before
the density was per class, and measure the share of samples the held-out classifier assigns to the asked class.

    OMP_NUM_THREADS=1 python \
        benchmarks/results/images_issue14/vae_gan_mnist600_classdensity/refit_class_density_probe.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.checkpoints import load_model
from lightning_gen.models.latent_density import LatentDensity

torch.set_num_threads(1)
torch.manual_seed(0)
OLD = "benchmarks/results/images_issue14/vae_gan_mnist600/vae_gan_cond/final.ckpt"  # one density for all classes
clf = load_model("benchmarks/results/images_issue12/cpu600/classifier/final.ckpt").cpu().eval()
ck = torch.load(OLD, weights_only=False, map_location="cpu")
for name in ("latent_density", "gan_density"):  # the per-class buffers, unfitted, in place of the old ones
    for k, v in LatentDensity(32, "gmm", 100, 10).state_dict().items():
        ck["state_dict"][f"{name}.{k}"] = v
torch.save(ck, "/tmp/probe_cvaegan.ckpt")
m = load_model("/tmp/probe_cvaegan.ckpt").cpu().eval()
d = np.load("../shared/data/mnist-t10k/mnist_t10k.npz")
x = torch.from_numpy(d["images"]).float()[:, None] / 127.5 - 1
y = torch.from_numpy(d["labels"]).long()
t = time.process_time()
m.fit_latent_density(DataLoader(TensorDataset(x[:8550], y[:8550]), batch_size=256))  # the training split
print("refit CPU-s", round(time.process_time() - t, 1))
labels = torch.arange(10).repeat_interleave(200)
with torch.no_grad():
    images = m.sample(2000, labels=labels)
    predicted = torch.cat([clf.network.head(clf.features(c)).argmax(1) for c in images.split(500)])
print("share of the asked class", float((predicted == labels).float().mean()))  # 0.9885 on 2026-11-29
