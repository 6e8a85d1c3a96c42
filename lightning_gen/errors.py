"""Expected failures, argument checks shared by the jobs, and the one top-level error handler.

Every job checks its arguments first (:func:`check_int`, :func:`check_output`, :func:`check_device`), before
anything is loaded or written, and raises :class:`UserError` with what was wrong, the allowed range and what
to do. :func:`run_job` turns an expected failure into ``error: <message>`` on stderr with exit status 2 (a
training divergence: 3); ``LIGHTNING_GEN_TRACEBACK=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

TRACEBACK_ENV = "LIGHTNING_GEN_TRACEBACK"


class UserError(ValueError):
    """Bad input (an argument, a file, a checkpoint): the message says what was wrong and what to do."""


def check_int(name: str, value: int | None, low: int | None = None, high: int | None = None) -> None:
    """``value`` (None: not given) must lie in [low, high]; the message names the flag and the range."""
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            allowed = f">= {low}"
        elif low is None:
            allowed = f"<= {high}"
        else:
            allowed = f"in {low}..{high}"
        raise UserError(f"{name} must be an integer {allowed}, got {value}.")


def check_float(name: str, value: float | None, low: float = 0.0, inclusive: bool = False) -> None:
    if value is None:
        return
    if value != value or value < low or (value == low and not inclusive):  # value != value: NaN
        raise UserError(f"{name} must be a number {'>=' if inclusive else '>'} {low:g}, got {value}.")


def check_output(name: str, path: str, suffix: str | None = None) -> None:
    """An output file path that can be written: the right suffix, not a folder, no file in its parents."""
    if suffix and not path.endswith(suffix):
        raise UserError(f"{name} must end in {suffix}, got {path}.")
    if os.path.isdir(path):
        raise UserError(
            f"{name} {path} is a folder; give a file path inside it, e.g. {os.path.join(path, 'out')}{suffix or ''}."
        )
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise UserError(f"{name} {path}: {parent} is a file, not a folder; choose another output path.")
    if parent and not os.access(parent, os.W_OK):
        raise UserError(f"{name} {path}: the folder {parent} is not writable; choose another output path.")


def check_device(name: str, device: str) -> None:
    """A torch device that exists on this machine (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"{name} {device!r} is not a device name (use cpu, cuda, cuda:N or mps): {err}") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"{name} {device}: this machine has no CUDA GPU; use --device cpu.")
        if dev.index is not None and dev.index >= count:
            raise UserError(f"{name} {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}.")
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{name} {device}: MPS is not available on this machine; use --device cpu.")
        return
    raise UserError(f"{name} {device}: unsupported device type {dev.type!r}; use cpu, cuda, cuda:N or mps.")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: their message is shown without a traceback."""
    import pickle

    out: list[type[BaseException]] = [UserError, ValueError, KeyError, OSError, pickle.UnpicklingError]
    try:
        from jsonargparse import ArgumentError

        out.append(ArgumentError)
    except ImportError:  # pragma: no cover
        pass
    import yaml

    out.append(yaml.YAMLError)  # a config, --data or --data-arg that is not YAML; the message names line and column
    return tuple(out)


class DivergenceError(RuntimeError):
    """Training diverged: a loss or gradient norm was not finite, or a gradient norm exploded."""


def report(err: BaseException) -> int:
    """Print ``error: ...`` and return the exit status (2; 3 for a training divergence)."""
    message = str(err) if not isinstance(err, KeyError) else f"missing key {err}"
    if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
        message = f"{err.filename}: {message}"
    print(f"error: {message}\n(set {TRACEBACK_ENV}=1 to see the traceback)", file=sys.stderr)
    return 3 if isinstance(err, DivergenceError) else 2


def run_job(job: Callable[[], int | None]) -> int:
    """Run ``job`` under the one error handler: expected failures print ``error: ...`` and give status 2."""
    try:
        return int(job() or 0)
    except (*expected_errors(), DivergenceError) as err:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        return report(err)
