"""The sweep job's old import path: everything lives in :mod:`lightning_gen.jobs.sweep` (``lightning_gen.sweep.X``
and class paths such as ``lightning_gen.sweep.TrialRecorder`` keep working)."""

from lightning_gen.jobs.sweep import *  # noqa: F403
from lightning_gen.jobs.sweep import __all__  # noqa: F401
