"""One LightningModule per model family."""

from lightning_gen.models.classifier import ImageClassifier, SmallCNN
from lightning_gen.models.gan import GAN
from lightning_gen.models.lstm_gan import LSTMGAN
from lightning_gen.models.rvae import RVAE
from lightning_gen.models.rvae_gan import RVAEGAN
from lightning_gen.models.timegan import TimeGAN
from lightning_gen.models.vae import VAE
from lightning_gen.models.vae_gan import VAEGAN

__all__ = ["GAN", "VAE", "VAEGAN"]
__all__ += ["LSTMGAN", "RVAE", "RVAEGAN", "TimeGAN"]
__all__ += ["ImageClassifier", "SmallCNN"]
