"""A small CNN image classifier whose penultimate features give a domain FID that works offline.

The standard FID uses Inception-v3 features trained on ImageNet (Heusel et al. 2017). On 8x8 digits or
MNIST, a classifier trained on the dataset itself gives features that separate its classes, the choice of
several GAN papers for MNIST ("FID computed with a LeNet-style classifier"). Such a score ranks models of
one dataset but is NOT comparable with published Inception FID; every report says so.

Train one with ``lightning-gen fit --config configs/classifier/digits.yaml`` (or ``mnist.yaml``). The network,
:class:`~lightning_gen.nets.classifier.SmallCNN`, lives in ``nets/``; ``lightning_gen.models.classifier.SmallCNN``,
the path earlier configs and checkpoints record, still names it.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from lightning_gen import lightning_internals as li
from lightning_gen.models.common import save_plain_hyperparameters
from lightning_gen.nets.classifier import SmallCNN  # re-exported: checkpoints and configs name this path

__all__ = ["ImageClassifier", "SmallCNN"]


class ImageClassifier(pl.LightningModule):
    """Supervised image classifier (cross-entropy), trained on a dataset's labels to serve as a feature
    extractor for domain FID / KID / precision-recall and a label distribution for the Inception Score.

    Logs ``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy``, ``test/loss``, ``test/accuracy``.

    Args:
        network: maps (B, C, H, W) images in [-1, 1] to logits and has ``features(x)``, ``feature_dim``,
            ``num_classes`` (e.g. :class:`SmallCNN`).
        optimizer: optimizer factory.
    """

    data_kind = "classifier"

    def __init__(self, network: nn.Module, optimizer: OptimizerCallable = torch.optim.Adam) -> None:
        super().__init__()
        for attr in ("features", "feature_dim", "num_classes"):
            if not hasattr(network, attr):
                raise ValueError(
                    f"The classifier network must have `{attr}` (see lightning_gen.nets.classifier.SmallCNN)."
                )
        save_plain_hyperparameters(self)
        self.network, self.optimizer = network, optimizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim) of images in [-1, 1]."""
        return self.network.features(x)

    def setup(self, stage: str) -> None:
        trainer = li.attached_trainer(self)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        dims = getattr(datamodule, "dims", None)
        made = (getattr(self.network, "channels", None), getattr(self.network, "img_size", None))
        if dims is not None and None not in made and tuple(dims) != (made[0], made[1], made[1]):
            raise ValueError(
                f"The data gives images of shape (C, H, W) = {tuple(dims)} but the classifier takes "
                f"{(made[0], made[1], made[1])}; set --model.init_args.network.init_args.img_size / channels."
            )

    def configure_optimizers(self):
        return self.optimizer(self.parameters())

    def _step(self, batch, prefix: str) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        if (labels < 0).any():
            raise ValueError(
                "The classifier needs labelled images, but the batch holds label -1 (no label). Give the data "
                "module labels (e.g. ArrayImageDataModule's labels_key, or class sub-folders for image folders)."
            )
        if int(labels.max()) >= self.network.num_classes:
            raise ValueError(
                f"Label {int(labels.max())} is out of range for num_classes={self.network.num_classes}; "
                "raise the network's num_classes."
            )
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        on_step = prefix == "train"
        self.log_dict(
            {f"{prefix}/loss": loss, f"{prefix}/accuracy": accuracy},
            on_step=on_step,
            on_epoch=True,
            sync_dist=not on_step,
            prog_bar=prefix != "test",
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")
