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
from lightning_gen.data.timegan_data import EnergyDataModule, StocksDataModule, TimeGANCSVDataModule

__all__ = [
    "ArrayImageDataModule",
    "ArraySequenceDataModule",
    "ChoralesDataModule",
    "SequenceDataModule",
    "SinesDataModule",
    "StocksDataModule",
    "EnergyDataModule",
    "TimeGANCSVDataModule",
    "CIFAR10DataModule",
    "DigitsDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "MNISTDataModule",
]
