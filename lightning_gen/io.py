"""Atomic writes: a job's output appears complete or not at all, and an earlier file survives a failed job.

- :func:`atomic_write` / :func:`atomic_path`: one file, written to a temporary name in the same folder and
  renamed over the target (``os.replace``) only when the writing succeeded.
- :func:`staged_outputs`: several files and folders of one job (samples + grid, MIDI folder + PNG): written into
  a hidden staging folder beside the output and moved into place at the end; a job that fails leaves every
  earlier file as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _tmp_name(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    stem, suffix = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)  # keeps the suffix
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the mode a plain open() would give, not mkstemp's 0600
    return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``path`` (same suffix) to write to; renamed to ``path`` if the block succeeds."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` that writes a temporary file and renames it over ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _replace_dir(src: str, dst: str) -> None:
    """Move folder ``src`` to ``dst``; an existing ``dst`` is removed only after ``src`` is in place."""
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    if not os.path.isdir(dst) or os.path.islink(dst):
        raise IsADirectoryError(f"cannot replace {dst} (not a folder) with the folder of the same name")
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.old.", dir=os.path.dirname(os.path.abspath(dst)))
    os.replace(dst, os.path.join(old, "x"))
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs(output: str | os.PathLike) -> Iterator[str]:
    """Yield a stand-in for ``output`` inside a staging folder beside it; everything written into that folder
    (the file itself, a PNG or a ``*_midi/`` folder named after it) is moved beside ``output`` at the end."""
    output = os.path.abspath(os.fspath(output))
    folder = os.path.dirname(output)
    os.makedirs(folder, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f".{Path(output).stem}.staging.", dir=folder)
    try:
        yield os.path.join(stage, os.path.basename(output))
        for name in sorted(os.listdir(stage)):
            src, dst = os.path.join(stage, name), os.path.join(folder, name)
            if os.path.isdir(src):
                _replace_dir(src, dst)
            else:
                os.replace(src, dst)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def final_path(staged: str, output: str | os.PathLike) -> str:
    """Where a path written inside :func:`staged_outputs`' folder lands (for the job's messages)."""
    return os.path.join(os.path.dirname(os.fspath(output)) or ".", os.path.basename(staged))


def read_numpy(path: Path, read):
    """``read(path)`` of a .npy / .npz file, with numpy's many errors on a corrupt or hostile file (truncated
    zips, pickles, garbage) turned into one ValueError that says how to write a readable file. A KeyError
    (a missing array name) passes through: the caller's message names the keys."""
    try:
        return read(path)
    except KeyError:
        raise
    except Exception as err:  # noqa: BLE001  (numpy raises many types)
        raise ValueError(
            f"{path} is not a readable {path.suffix} file ({type(err).__name__}: {err}); write it with "
            "numpy.save / numpy.savez."
        ) from None
