"""Expected failures, argument checks shared by the jobs, and the one top-level error handler.

Every job checks its arguments first (:func:`check_int`, :func:`check_output`, :func:`check_device`), before
anything is loaded or written, and raises :class:`UserError` with what was wrong, the allowed range and what
to do. :func:`run_job` turns an expected failure into ``error: <message>`` on stderr with exit status 2 (a
training divergence: 3); ``LIGHTNING_GEN_TRACEBACK=1`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import os
import re
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


def check_at_least(low: float, **values: float) -> None:
    """Each of ``values`` (by argument name: a loss weight, a count) must be >= ``low``; the message names the first
    that is not."""
    for name, value in values.items():
        if value < low:
            raise UserError(f"{name} must be >= {low:g}, got {value}.")


def check_split_args(batch_size: int, val_fraction: float, test_fraction: float) -> None:
    """A DataModule's loader and split arguments: at least one item a batch, each held-out share in [0, 1)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}.")


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


def file_in_path(path: str | os.PathLike) -> str | None:
    """The first existing part of ``path`` (itself or a parent) that is a file, not a folder; None if none is.
    A folder cannot be made below a file: ``mkdir`` fails with a bare ``Not a directory``."""
    part = os.path.abspath(path)
    while part and not os.path.isdir(part):
        if os.path.exists(part):
            return part
        parent = os.path.dirname(part)
        if parent == part:
            return None
        part = parent
    return None


def check_folder(name: str, path: str | os.PathLike) -> None:
    """A folder that exists or can be made: neither ``path`` nor a parent of it is a file. Checked before any
    work whose result would go there (parsing a corpus, extracting features), not when the result is written."""
    blocker = file_in_path(path)
    if blocker is not None:
        what = "is a file" if os.path.abspath(blocker) == os.path.abspath(path) else f"runs through the file {blocker}"
        raise UserError(f"{name} {path} {what}, not a folder; give a folder path (it is created if missing).")


def check_init_args(what: str, cls: type, kwargs: dict) -> None:
    """Every key of ``kwargs`` is an argument of ``cls``'s constructor (its own or, through ``**kwargs``, a parent
    class's); the message names the unknown key, a close match and the arguments there are."""
    import difflib
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    unknown = [key for key in kwargs if key not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(
            f"{what}: {cls.__name__} has no argument {unknown[0]!r}{hint}. Its arguments: {', '.join(names)}."
        )


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


#: jsonargparse's opening line when a class of the config (model, data) refused its arguments in its constructor
UNION_ERROR = "Does not validate against any of the Union subtypes"
_SECTIONS = {"LightningModule": "model", "LightningDataModule": "data"}


def config_reason(err: BaseException) -> tuple[str | None, str] | None:
    """``(key, reason)`` of jsonargparse's "Does not validate against any of the Union subtypes" error (the whole
    namespace follows it), or None for another error. ``reason``: the constructor's own message (the error's
    cause, else the one entry of the Errors list that is not "Expected a <class 'NoneType'>"); ``key``: the dotted
    config key it is about (``model.init_args.n_critic``), when the reason names one, else None."""
    text = str(err)
    if UNION_ERROR not in text:
        return None
    cause = err.__cause__
    while cause is not None and UNION_ERROR in str(cause) and cause.__cause__ is not None:
        cause = cause.__cause__
    if cause is not None and UNION_ERROR not in str(cause):
        reason = str(cause).strip()
    else:
        entries = re.findall(r"^\s*- (.+)$", text.split("Given value", 1)[0], flags=re.MULTILINE)
        real = [e for e in entries if not e.startswith("Expected a <class 'NoneType'>")]
        reason = real[0].strip() if real else text.split("\n", 1)[0]
    subtypes = text.split("Subtypes:", 1)[-1].split("\n", 1)[0]
    section = next((name for cls, name in _SECTIONS.items() if f".{cls}'" in subtypes), None)
    given = text.split("Given value:", 1)[-1] if "Given value:" in text else ""
    subject = re.match(r"[A-Za-z_]\w*", reason)  # "n_critic must be >= 1 ...": the key the reason is about
    paths = _namespace_paths(given, subject.group(0)) if subject else []
    if paths:
        return " or ".join(".".join(p for p in (section, path) if p) for path in paths), reason
    return section, reason


#: the messages torch.optim's constructors raise for an out-of-range setting ("Invalid learning rate: -0.001")
_TORCH_OPTIMIZER_ERROR = re.compile(
    r"^Invalid (learning rate|beta parameter|epsilon value|weight_decay value|momentum)"
)


def _namespace_paths(given: str, word: str) -> list[str]:
    """The dotted paths of the key ``word`` in the repr of a jsonargparse Namespace (``Namespace(a=1,
    init_args=Namespace(word=0))``: ``init_args.word``)."""
    stack: list[str | None] = []
    out = []
    for m in re.finditer(r"(\w+)=(Namespace\()?|\(|\)", given):
        key, opens = m.group(1), m.group(2)
        if key and key == word and not opens:  # a value, not a nested class's namespace
            out.append(".".join(k for k in [*stack, key] if k))
        if key and opens:
            stack.append(key)
        elif m.group(0) == "(":
            stack.append(None)
        elif m.group(0) == ")" and stack:
            stack.pop()
    return out


def _message(err: BaseException) -> str:
    """What ``error:`` shows: the message of ``err``, with jsonargparse's Union text cut to its one reason and key,
    and a path through a file said in words."""
    found = config_reason(err)
    if found is not None:
        key, reason = found
        if key in _SECTIONS.values():
            return f"{reason}\n(raised by the class of the config's `{key}:` section; fix its init_args)"
        if key and " or " in key:  # the reason's subject is a key of several classes (base_channels of G and D)
            return f"{reason}\nConfig key: one of {key.replace(' or ', ', ')} (change it in the config file)."
        if key:
            return f"{reason}\nConfig key: {key} (change it in the config file, or on the command line: --{key}=VALUE)."
        return reason
    message = str(err) if not isinstance(err, KeyError) else f"missing key {err}"
    if isinstance(err, OSError) and err.filename:
        blocker = file_in_path(err.filename) if err.errno in (errno.ENOTDIR, errno.EEXIST) else None
        if blocker is not None:
            return (
                f"{err.filename}: {blocker} is a file, so no folder can be made there ({err.strerror}); "
                "choose another folder (a --cache-dir, data_dir or output path)."
            )
        if str(err.filename) not in message:
            message = f"{err.filename}: {message}"
    if _TORCH_OPTIMIZER_ERROR.match(message):  # torch.optim's own check: it does not say which config key
        message += (
            " (an optimizer's init_args in the config: model.init_args.optimizer_g / optimizer_d / optimizer ... "
            ".init_args; learning rates must be > 0, betas in [0, 1), eps and weight_decay >= 0)"
        )
    return message


def report(err: BaseException) -> int:
    """Print ``error: ...`` and return the exit status (2; 3 for a training divergence)."""
    message = _message(err)
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
