"""Metrics, below the jobs: image metrics through torchmetrics (``image.py``); sequence metrics (``timegan.py``,
``mmd.py``, ``music.py``, all importable from ``sequence.py``); the reference split both compare with
(``reference.py``); and ``callback.py``, the training-time metric (a Lightning callback)."""

from lightning_gen.metrics.callback import TrainingMetric
from lightning_gen.metrics.sequence import discriminative_score, minmax_scale, mmd_rbf, predictive_score

__all__ = ["TrainingMetric", "discriminative_score", "minmax_scale", "mmd_rbf", "predictive_score"]
