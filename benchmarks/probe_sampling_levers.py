"""Sampling-time levers on stored VAE / VAE-GAN checkpoints (issue 12, third pass): the ex-post GMM refitted on
every training code with 10, 30 or 100 components, and, for the VAE-GAN, discriminator rescoring (keep the
best 1 of k samples by D's logit). FID (10,000 samples) and class_tv in the features of the FID classifier.

    python benchmarks/probe_sampling_levers.py 240 600   # benchmarks/results/images_issue12c/cpu{240,600}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
import bench_images as bi  # noqa: E402

from lightning_gen.checkpoints import load_model  # noqa: E402
from lightning_gen.metrics.image import fid_from_features  # noqa: E402
from lightning_gen.models.common import eval_mode  # noqa: E402
from lightning_gen.models.latent_density import LatentDensity  # noqa: E402

R = REPO / "benchmarks/results/images_issue12c"
N = 10_000


class Args:
    dataset, batch_size = "mnist", 64
    data = str(REPO.parent / "shared/data/mnist-t10k/mnist_t10k.npz")


@torch.no_grad()
def draw(model, k: int = 1) -> torch.Tensor:
    """N samples in [-1, 1]; k > 1: the best 500 of 500 k by D's logit, per chunk."""
    torch.manual_seed(0)
    out = []
    for _ in range(0, N, 500):
        x = model.sample(500 * k)
        if k > 1:
            with eval_mode(model.discriminator):
                x = x[model.discriminator(x).argsort(descending=True)[:500]]
        out.append(x)
    return torch.cat(out)


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    dm = bi.make_datamodule(Args, labels=True)
    test, train = bi.split_images(dm.test_set), bi.split_images(dm.train_set) * 2 - 1
    labels = torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))])
    real_mix = torch.bincount(labels, minlength=10).double() / len(labels)
    clf = load_model(R / "cpu600/classifier/final.ckpt").cpu().eval()

    def feats(x01):
        f = torch.cat([clf.features(c * 2 - 1) for c in x01.split(500)])
        return f.double(), clf.network.head(f).argmax(1)

    real_feats, _ = feats(test)

    def score(x):  # x in [-1, 1] -> (FID, class_tv)
        f, p = feats((x.clamp(-1, 1) + 1) / 2)
        mix = torch.bincount(p, minlength=10).double() / len(p)
        return round(fid_from_features(real_feats, f), 3), round(float(0.5 * (mix - real_mix).abs().sum()), 3)

    res = {}
    for budget in sys.argv[1:]:
        for name in ("vae", "vae_gan"):
            m = load_model(R / f"cpu{budget}/{name}/final.ckpt").cpu().eval()
            res[f"{budget}/{name}/stored"] = score(draw(m))
            if name == "vae_gan":
                for k in (2, 4):
                    res[f"{budget}/{name}/rescored_1of{k}"] = score(draw(m, k))
            for comps in (10, 30, 100):
                m.latent_density, m.prior_max_codes = LatentDensity(m.latent_dim, "gmm", comps), len(train)
                m.fit_latent_density(train)
                res[f"{budget}/{name}/gmm{comps}_all_codes"] = score(draw(m))
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
