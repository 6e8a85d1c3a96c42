"""``--threads``: torch's CPU threads for a fit / validate / test, and for the jobs that follow the same rule."""

from __future__ import annotations

import contextlib
import os

import torch

from lightning_gen.errors import UserError

#: ``--threads`` default. The models are small: a second thread gets little work per layer, and on a machine busy
#: with other work torch's default of one thread per core oversubscribes the cores and runs several times slower
#: than one thread (benchmarks/README.md, "Threads"). Try more threads only on an idle machine with many cores;
#: 0 keeps torch's default.
DEFAULT_THREADS = 1


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op (and, where still allowed, inter-op) CPU threads; returns the intra-op count in use.

    ``threads`` None (not given): :data:`DEFAULT_THREADS`, unless ``OMP_NUM_THREADS`` is set, which torch already
    follows; 0: torch's default (one per core, or ``OMP_NUM_THREADS``)."""
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS", "").strip():
            return torch.get_num_threads()
        threads = DEFAULT_THREADS
    if not isinstance(threads, int) or threads < 0:
        raise UserError(f"--threads must be an integer >= 0 (0: torch's default), got {threads!r}.")
    if threads == 0:
        return torch.get_num_threads()
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # inter-op threads can be set once, before any parallel work
        torch.set_num_interop_threads(threads)
    return torch.get_num_threads()
