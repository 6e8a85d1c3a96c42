"""Sequence metrics, one module per kind, all importable from here as before:

- :mod:`lightning_gen.metrics.timegan`: TimeGAN's discriminative and predictive scores (Yoon et al. 2019), the
  space they are computed in (:func:`scoring_space`) and :func:`sequence_scores`, the one code path of
  ``lightning-gen evaluate`` and ``benchmarks/bench_sines.py``;
- :mod:`lightning_gen.metrics.mmd`: MMD with an RBF kernel;
- :mod:`lightning_gen.metrics.music`: music statistics of piano rolls (C-RNN-GAN's four plus notes per step and
  a pitch-histogram distance).
"""

from __future__ import annotations

from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.metrics.music import (
    SCALES,
    check_piano_rolls,
    compare_music_statistics,
    music_statistics,
    note_onsets,
    pitch_histogram,
    pitch_histogram_distance,
    roll_tones,
)
from lightning_gen.metrics.timegan import (
    check_sequences,
    discriminative_score,
    minmax_scale,
    out_of_range_share,
    predictive_score,
    scoring_space,
    sequence_scores,
)

__all__ = [
    "SCALES",
    "check_piano_rolls",
    "check_sequences",
    "compare_music_statistics",
    "discriminative_score",
    "minmax_scale",
    "mmd_rbf",
    "music_statistics",
    "note_onsets",
    "pitch_histogram",
    "pitch_histogram_distance",
    "out_of_range_share",
    "predictive_score",
    "roll_tones",
    "scoring_space",
    "sequence_scores",
]
