"""Probe (issue 14): does the conditional VAE-GAN suffer from its EMA generator's averaged batch-norm statistics, as
the conditional GAN did? Decodes the same codes (seed 0, from the model's class-conditional density, balanced
labels 0..9, 0..) with G, the EMA generator as ``sample`` uses it, and the EMA generator with batch-norm
statistics re-estimated from 100 train-mode batches of 64 density codes (random labels); writes G.npz,
G_ema.npz, G_ema_restat.npz for ``bench_conditional_images.py --dataset mnist --score``.

Checkpoints written before ``LatentDensity`` gained its ``final`` flag load with the flag set (they were saved
after the final fit).

    python benchmarks/results/images_issue14/ema_batch_norm_probe/vae_gan_ema_probe.py CKPT OUT_DIR [N]
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
import lightning_gen.checkpoints as checkpoints  # noqa: E402

_check_weights = checkpoints.check_weights


def _with_final_flag(model, state_dict, path) -> None:
    for key in model.state_dict():
        if key.endswith("density.final"):
            state_dict.setdefault(key, torch.tensor(True))
    _check_weights(model, state_dict, path)


def main() -> None:
    torch.set_num_threads(1)
    ckpt, out = sys.argv[1], Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    out.mkdir(parents=True, exist_ok=True)
    checkpoints.check_weights = _with_final_flag
    model = checkpoints.load_model(ckpt).cpu().eval()
    labels = torch.arange(n) % model.num_classes
    torch.manual_seed(0)
    z = model.sample_latent(n, None, labels)

    def restat(g: torch.nn.Module) -> torch.nn.Module:
        g = copy.deepcopy(g)
        for m in g.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        g.train()
        torch.manual_seed(1)
        with torch.no_grad():
            for _ in range(100):
                y = torch.randint(0, model.num_classes, (64,))
                g(model.sample_latent(64, None, y), labels=y)
        return g.eval()

    variants = {"G": model.generator.eval(), "G_ema": model.generator_ema.module.eval()}
    variants["G_ema_restat"] = restat(variants["G_ema"])
    for name, g in variants.items():
        with torch.no_grad():
            x = torch.cat([g(zc, labels=yc) for zc, yc in zip(z.split(500), labels.split(500))])
        samples = ((x.clamp(-1, 1) + 1) / 2).numpy().astype(np.float32)
        np.savez_compressed(out / f"{name}.npz", samples=samples, labels=labels.numpy())
        print(f"{name}: mean pixel {x.mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
