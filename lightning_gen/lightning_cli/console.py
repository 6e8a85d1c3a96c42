"""What ``lightning-gen fit / validate / test`` prints: Lightning's notices a user cannot act on silenced, a progress
bar without the run number (rich on a terminal, one plain line per epoch in a log file or pipe) and the closing
summary of a fit (run folder, checkpoint, pictures, loss curves, metrics, final values)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ProgressBar, RichProgressBar

from lightning_gen import lightning_internals as li
from lightning_gen.callbacks import LossCurves

_NOISE = (
    # notices that ask nothing of the run: without tensorboard installed the CSV logger is the complete default
    r".*`tensorboardX` has been removed as a dependency.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning's own _pytree, not user code
)


#: Lightning info lines that ask nothing of the user (an available but unused GPU is still reported)
_DROPPED_INFO = ("litlogger", "TPU available:", "GPU available: False", "already configured with model summary")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(text in message for text in _DROPPED_INFO)


def quiet_lightning() -> None:
    """Silence the notices a user cannot act on (Lightning's tensorboardX and litlogger tips, torch's LeafSpec
    deprecation raised inside Lightning); every other warning is kept."""
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for log in li.lightning_info_loggers():
        if not any(isinstance(f, _DropTips) for f in log.filters):
            log.addFilter(_DropTips())


def is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class QuietRichProgressBar(RichProgressBar):
    """Lightning's rich bar without ``v_num`` (the run folder's number, not a metric)."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class EpochLineProgressBar(ProgressBar):
    """One plain line per training epoch (epoch, batches, seconds, the progress-bar metrics), for output that
    goes to a file or a pipe: no carriage returns or terminal control codes in the log."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        metrics = {**_final_metrics(trainer), **self.get_metrics(trainer, pl_module)}
        metrics.pop("v_num", None)
        shown = "  ".join(f"{k}={_fmt(metrics[k])}" for k in sorted(metrics))
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        print(
            f"epoch {trainer.current_epoch + 1}/{total}  step {trainer.global_step}  "
            f"{time.monotonic() - self._start:.1f}s  {shown}".rstrip(),
            flush=True,
        )


def _fmt(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _final_metrics(trainer: pl.Trainer) -> dict:
    return {k: v for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}


def _run_folder(trainer: pl.Trainer) -> str | None:
    """``trainer.log_dir`` without its broadcast (a collective call: the summary runs on rank 0 only)."""
    if not trainer.loggers:
        return None
    logger = trainer.loggers[0]
    return getattr(logger, "log_dir", None) or logger.save_dir


def fit_summary(trainer: pl.Trainer, resumed_from: str | None = None) -> str:
    """The closing lines of a fit: where the run folder, checkpoint, pictures and metrics are; the final metrics.
    ``resumed_from``: the ``--ckpt_path`` of a resumed run, whose earlier metrics are in its own folder."""
    lines = [f"Fit finished: {trainer.current_epoch} epoch(s), {trainer.global_step} step(s)."]
    folder = _run_folder(trainer)
    if folder and os.path.isdir(folder):
        lines.append(f"  run folder:  {folder}")
    ckpt = trainer.checkpoint_callback
    last = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
    if last:
        lines.append(f"  checkpoint:  {last}")
        config = os.path.join(folder, "config.yaml") if folder else "<config>"
        lines.append(
            f"  train more:  lightning-gen fit --config {config} --ckpt_path {last} --trainer.max_epochs=<more>"
        )
    lines += _output_lines(trainer, folder)
    if resumed_from:
        earlier = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(resumed_from))), "metrics.csv")
        if os.path.isfile(earlier) and os.path.abspath(earlier) != os.path.abspath(
            os.path.join(folder or "", "metrics.csv")
        ):
            lines.append(f"               (the steps before the resume: {earlier})")
    final = _final_metrics(trainer)
    if final:
        shown = [f"{k}={_fmt(final[k])}" for k in sorted(final)]
        lines.append("  final:       " + "  ".join(shown))
    return "\n".join(lines)


def _output_lines(trainer: pl.Trainer, folder: str | None) -> list[str]:
    """The summary's lines on the pictures (sub-folders with PNGs), the loss curves and ``metrics.csv``."""
    lines = []
    if folder and os.path.isdir(folder):
        pictures = sorted(
            {os.path.relpath(root, folder) for root, _, files in os.walk(folder) for f in files if f.endswith(".png")}
            - {"."}
        )
        if pictures:
            lines.append("  pictures:    " + ", ".join(os.path.join(folder, p) for p in pictures))
    curves = next((cb.last_path for cb in trainer.callbacks if isinstance(cb, LossCurves) and cb.last_path), None)
    if curves:
        lines.append(f"  loss curves: {curves}")
    metrics_csv = os.path.join(folder, "metrics.csv") if folder else None
    if metrics_csv and os.path.isfile(metrics_csv):
        lines.append(f"  metrics:     {metrics_csv}")
    return lines
