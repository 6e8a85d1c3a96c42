"""LightningDataModules."""

from lightning_gen.data.arrays import ArraySequenceDataModule
from lightning_gen.data.chorales import ChoralesDataModule
from lightning_gen.data.images import (
    ArrayImageDataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from lightning_gen.data.sequence_base import SequenceDataModule
from lightning_gen.data.sines import SinesDataModule
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
