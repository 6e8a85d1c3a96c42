"""Metrics: image metrics through torchmetrics (``image.py``) and sequence metrics (``sequence.py``)."""

from lightning_gen.metrics.callback import TrainingMetric
from lightning_gen.metrics.sequence import discriminative_score, minmax_scale, mmd_rbf, predictive_score

__all__ = ["TrainingMetric", "discriminative_score", "minmax_scale", "mmd_rbf", "predictive_score"]
