"""The Lightning side of ``lightning-gen``: :class:`GenCLI` (LightningCLI fit / validate / test) and its helpers.

Kept apart from :mod:`lightning_gen.cli` so that ``lightning-gen --help`` and the jobs start without importing
Lightning. Besides LightningCLI's own options it adds ``--threads`` (torch CPU threads, 1 by default), a plain
one-line-per-epoch progress report when the output is not a terminal, a closing summary of a fit with its loss
curves (``--loss_curves.*``), generator-side metrics for ``test``, a clear message (and no new folder) when
``--ckpt_path`` names a run that already reached its limits, and config errors printed alone (no usage block).

One module per part: :mod:`~.gencli` (the CLI class and its checks), :mod:`~.threads` (``--threads``),
:mod:`~.console` (notices, progress bars, the fit summary), :mod:`~.parser` (error messages) and
:mod:`~.run_folder` (the atomic ``version_N`` folder, the finished-run message).
"""

from __future__ import annotations

from lightning_gen.lightning_cli.console import (
    EpochLineProgressBar,
    QuietRichProgressBar,
    fit_summary,
    quiet_lightning,
)
from lightning_gen.lightning_cli.gencli import GenCLI, log_effective_batch_size, run_lightning_cli
from lightning_gen.lightning_cli.parser import ErrorFirstParser
from lightning_gen.lightning_cli.run_folder import reserve_run_folder
from lightning_gen.lightning_cli.threads import DEFAULT_THREADS, apply_threads

__all__ = [
    "DEFAULT_THREADS",
    "EpochLineProgressBar",
    "ErrorFirstParser",
    "GenCLI",
    "QuietRichProgressBar",
    "apply_threads",
    "fit_summary",
    "log_effective_batch_size",
    "quiet_lightning",
    "reserve_run_folder",
    "run_lightning_cli",
]
