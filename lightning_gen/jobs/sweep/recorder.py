"""The callback each sweep trial runs: every validation's scalar metrics, one JSON line each, for the runner."""

from __future__ import annotations

import json
import os
from typing import Any

import pytorch_lightning as pl


class TrialRecorder(pl.Callback):
    """Appends one JSON line per validation (and one at the end of fit) with every scalar metric to ``path``.

    Added to each trial by ``lightning-gen sweep``; the runner reads the file to follow the trial, to stop it
    early (hyperband) and to read its final metric.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._seen: dict[str, Any] = {}

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _metrics(self, trainer: pl.Trainer, fresh_only: bool) -> dict[str, float]:
        """Scalar callback metrics; with ``fresh_only`` only those logged since the last call (Lightning keeps
        a metric's last value in ``callback_metrics``, e.g. an FID computed every 5th epoch)."""
        out = {}
        for key, value in trainer.callback_metrics.items():
            if fresh_only and self._seen.get(key) is value:
                continue
            try:
                out[key] = float(value)
            except (TypeError, ValueError, RuntimeError):  # non-scalar: not a sweep metric
                continue
        self._seen = dict(trainer.callback_metrics)
        return out

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning_gen.callbacks import run_dir

        if trainer.is_global_zero:
            self._write({"event": "start", "run_dir": os.path.abspath(run_dir(trainer))})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            metrics = self._metrics(trainer, fresh_only=True)
            self._write(
                {"event": "validation", "epoch": trainer.current_epoch, "step": trainer.global_step, "metrics": metrics}
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write({"event": "end", "step": trainer.global_step, "metrics": self._metrics(trainer, False)})
