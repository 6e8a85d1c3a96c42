"""Sequence LightningDataModules: TimeGAN sines, Bach chorales (music21 corpus) and user arrays.

Every module yields float32 sequences shaped (B, T, D) and scaled to [0, 1], as ``(x,)`` batches, or
``(x, y)`` with class labels when asked for a condition. The modules live in ``sequence_base.py``
(splitting, windowing, scaling, labels), ``sines.py``, ``chorales.py`` and ``arrays.py``; this module keeps
the names importable (and config class paths working) from one place.
"""

from __future__ import annotations

from lightning_gen.data.arrays import ArraySequenceDataModule, read_csv
from lightning_gen.data.chorales import ChoralesDataModule, key_class
from lightning_gen.data.sequence_base import SequenceDataModule, sliding_windows
from lightning_gen.data.sines import SinesDataModule, make_band_sines, make_sines
from lightning_gen.scaling import EPS, SequenceScale, min_max_scale

__all__ = [
    "EPS",
    "ArraySequenceDataModule",
    "ChoralesDataModule",
    "SequenceDataModule",
    "SequenceScale",
    "SinesDataModule",
    "key_class",
    "make_band_sines",
    "make_sines",
    "min_max_scale",
    "read_csv",
    "sliding_windows",
]
