"""Metrics, below the jobs: image metrics through torchmetrics (``image.py``); sequence metrics (``timegan.py``,
``mmd.py``, ``music.py``); the reference split both compare with
(``reference.py``); ``callback.py``, the training-time metric, and ``class_accuracy.py``, a conditional model's
class score (Lightning callbacks)."""

from lightning_gen.metrics.callback import TrainingMetric
from lightning_gen.metrics.class_accuracy import ClassAccuracyMetric
from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.metrics.timegan import discriminative_score, minmax_scale, predictive_score

__all__ = [
    "ClassAccuracyMetric",
    "TrainingMetric",
    "discriminative_score",
    "minmax_scale",
    "mmd_rbf",
    "predictive_score",
]
