"""One LightningModule per model family."""

from lightning_gen.models.classifier import ImageClassifier, SmallCNN
from lightning_gen.models.gan import GAN

__all__ = ["GAN"]
__all__ += ["ImageClassifier", "SmallCNN"]
