"""The evaluate job's old import path: everything lives in :mod:`lightning_gen.jobs.evaluate`."""

from lightning_gen.jobs.evaluate import *  # noqa: F403
from lightning_gen.jobs.evaluate import __all__  # noqa: F401
