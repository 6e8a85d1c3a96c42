"""One LightningModule per model family."""

from lightning_gen.models.gan import GAN

__all__ = ["GAN"]
