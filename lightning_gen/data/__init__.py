"""LightningDataModules."""

from lightning_gen.data.images import (
    ArrayImageDataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from lightning_gen.data.sequences import (
    ArraySequenceDataModule,
    ChoralesDataModule,
    SequenceDataModule,
    SinesDataModule,
)

__all__ = [
    "ArrayImageDataModule",
    "ArraySequenceDataModule",
    "ChoralesDataModule",
    "SequenceDataModule",
    "SinesDataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
]
