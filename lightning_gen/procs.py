"""Child processes that die with their parent, and pid locks that tell a live process from a stale file.

Used by the sweep runner (:mod:`lightning_gen.jobs.sweep`): a trial is started in its own session (so that the
runner can stop its whole process group) and, on Linux, with ``PR_SET_PDEATHSIG``, so that a runner killed
with SIGKILL takes its trial with it (the trial gets SIGTERM: Lightning stops after the batch). Elsewhere, and
for a trial's own children, the pid lock in the trial folder makes the next continuation refuse to touch a
folder that a live trial still writes.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
_libc = None


def _prctl():
    """libc's ``prctl``, loaded in the parent (a forked child should not load libraries), or None."""
    global _libc
    if not sys.platform.startswith("linux"):
        return None
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.prctl  # noqa: B018  (raises AttributeError when missing)
        except (OSError, AttributeError):
            _libc = False
    return _libc.prctl if _libc else None


def start_child(cmd: list[str], death_signal: int = signal.SIGTERM, **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(cmd)`` in a new session that receives ``death_signal`` when this process dies."""
    prctl = _prctl()
    parent = os.getpid()

    def before_exec() -> None:  # runs in the child between fork and exec
        os.setsid()
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl: nobody is left to send the signal
                os.kill(os.getpid(), death_signal)

    popen_kwargs.pop("start_new_session", None)
    return subprocess.Popen(cmd, preexec_fn=before_exec, **popen_kwargs)  # noqa: PLW1509


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux ``/proc/<pid>/stat`` field 22), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def write_lock(path: str, pid: int, **extra) -> None:
    """Record ``pid`` (a process group leader) and its start time in the JSON file ``path``."""
    from lightning_gen.io import atomic_write

    with atomic_write(path) as f:
        json.dump({"pid": pid, "start_time": process_start_time(pid), **extra}, f)


def live_lock(path: str, group: bool = True) -> dict | None:
    """The lock at ``path`` if the process group it names (``group=False``: the process) still runs, else None
    (no lock, or a stale one)."""
    try:
        with open(path) as f:
            lock = json.load(f)
        pid = int(lock["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid <= 0:
        return None
    try:
        if group:
            os.killpg(pid, 0)  # any process of the trial's group (the trial, its DDP ranks, its workers)
        else:
            os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return lock
    started = lock.get("start_time")
    now = process_start_time(pid)
    if started and now and started != now:  # the leader's pid was reused by another process
        return None
    return lock
