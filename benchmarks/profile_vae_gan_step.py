"""Where the CPU time of a VAE-GAN training step goes: forward + backward of each network of the MNIST
``mnist_cpu`` configs alone, one torch thread, CPU milliseconds per call.

    OMP_NUM_THREADS=1 python benchmarks/profile_vae_gan_step.py

The VAE's step is E + G on B = 64 images; the VAE-GAN's adds D (the feature-wise term on the real images and
the reconstructions, the adversarial pass on real images and fakes), G on any prior codes and two more Adam
steps. ``benchmarks/bench_images.py --step-cost`` measures whole steps; this says which part costs what.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator  # noqa: E402


def cpu_ms(fn, n: int = 20) -> float:
    for _ in range(3):
        fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return round(1000 * (time.process_time() - start) / n, 1)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    enc = ConvEncoder(latent_dim=32, img_size=28, channels=1, base_channels=32)
    gen = DCGANGenerator(latent_dim=32, img_size=28, channels=1, base_channels=32)
    images = lambda b: torch.rand(b, 1, 28, 28) * 2 - 1  # noqa: E731

    def encoder_step():
        mu, logvar = enc(images(64))
        (mu.sum() + logvar.sum()).backward()

    rows = {"E, forward + backward, 64 images": cpu_ms(encoder_step)}
    for b in (32, 64, 128):
        rows[f"G, forward + backward, {b} codes"] = cpu_ms(lambda b=b: gen(torch.randn(b, 32)).sum().backward())
    with torch.no_grad():
        rows["G, forward only, 64 codes"] = cpu_ms(lambda: gen(torch.randn(64, 32)))
    last = gen.to_image[0]  # the 3x3 convolution to one channel
    h = torch.randn(64, last.in_channels, 28, 28, requires_grad=True)
    rows["G's last layer (Conv2d 32 -> 1, 3x3), forward + backward, 64 images"] = cpu_ms(
        lambda: last(h).sum().backward()
    )
    for width in (32, 16):
        disc = DCGANDiscriminator(img_size=28, channels=1, base_channels=width)
        for b in (64, 128, 192):
            x = images(b).requires_grad_(True)
            name = f"D ({width} channels), forward + backward, {b} images"
            rows[name] = cpu_ms(lambda d=disc, x=x: d(x).sum().backward())
    for name, ms in rows.items():
        print(f"{ms:8.1f}  {name}")


if __name__ == "__main__":
    main()
