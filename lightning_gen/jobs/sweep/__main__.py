"""``python -m lightning_gen.jobs.sweep``: the same as ``lightning-gen sweep``."""

import sys

from lightning_gen.jobs.sweep.cli import main

sys.exit(main())
