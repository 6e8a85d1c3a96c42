"""A reader for the ``.ts`` text format of the UEA / UCR time-series archive (Bagnall et al. 2018, "The UEA
multivariate time series classification archive"; the format of timeseriesclassification.com, as read by
sktime's and aeon's ``load_from_tsfile``).

A file holds header lines (``@problemName``, ``@dimensions``, ``@equalLength``, ``@classLabel true 1 2 ...``),
comments (``#``), then after ``@data`` one series a line: its dimensions separated by ``:``, each a
comma-separated list of values, and the class label after the last ``:`` when ``@classLabel`` is true. Series may
differ in length (``@equalLength false``). Timestamped series (``@timeStamps true``) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TSFile:
    """The content of a ``.ts`` file: ``sequences`` (a list of float64 (T_i, D) arrays), ``labels`` (the class
    label of each series as written, or None), ``class_names`` (the ``@classLabel`` list, or None), and the line
    of the file each series came from (``lines``, 1-based)."""

    sequences: list[np.ndarray]
    labels: list[str] | None
    class_names: list[str] | None
    lines: list[int]


def read_ts(path: str | Path) -> TSFile:
    """Read a UEA / UCR ``.ts`` file. Malformed files are refused with the line and what was wrong: no ``@data``,
    timestamps, a series with another number of dimensions than ``@dimensions``, dimensions of different lengths
    within a series, an empty series, a value that is not a number, a missing value (``?``, NaN), a class label
    not in ``@classLabel``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (give a UEA / UCR .ts file).")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file; a .ts file is text (header lines, then @data).") from None
    header: dict[str, str] = {}
    sequences, labels, lines = [], [], []
    in_data = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{path}, line {number}: expected a header line (@...) before @data: {line[:40]!r}.")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                _check_header(path, header)
            else:
                header[key] = value.strip()
            continue
        seq, label = _parse_series(path, number, line, header)
        sequences.append(seq)
        labels.append(label)
        lines.append(number)
    if not in_data:
        raise ValueError(f"{path} has no @data line: not a UEA / UCR .ts file.")
    if not sequences:
        raise ValueError(f"{path} holds no series after @data.")
    has_labels = _has_labels(header)
    class_names = header["classlabel"].split()[1:] if has_labels else None
    return TSFile(sequences, labels if has_labels else None, class_names, lines)


def _has_labels(header: dict[str, str]) -> bool:
    return header.get("classlabel", "false").split()[:1] == ["true"]


def _check_header(path: Path, header: dict[str, str]) -> None:
    if header.get("timestamps", "false").lower() == "true":
        raise ValueError(f"{path}: @timeStamps true is not supported; write the series without timestamps.")
    if _has_labels(header) and len(header["classlabel"].split()) < 2:
        raise ValueError(f"{path}: @classLabel true lists no class names (e.g. '@classLabel true 1 2 3').")


def _series_label(path: Path, number: int, fields: list[str], header: dict[str, str]) -> str | None:
    """The class label after the last ``:`` (taken off ``fields``), checked against ``@classLabel``."""
    if not _has_labels(header):
        return None
    label = fields.pop().strip()
    names = header["classlabel"].split()[1:]
    if label not in names:
        raise ValueError(f"{path}, line {number}: class label {label!r} is not one of @classLabel {names}.")
    return label


def _parse_series(path: Path, number: int, line: str, header: dict[str, str]) -> tuple[np.ndarray, str | None]:
    fields = line.split(":")
    label = _series_label(path, number, fields, header)
    expected = header.get("dimensions")
    if expected is not None and expected.isdigit() and len(fields) != int(expected):
        raise ValueError(f"{path}, line {number}: the series has {len(fields)} dimensions, @dimensions {expected}.")
    dims = []
    for d, field in enumerate(fields):
        values = [v.strip() for v in field.split(",")] if field.strip() else []
        if not values:
            raise ValueError(f"{path}, line {number}: dimension {d} of the series is empty (0 steps).")
        for step, v in enumerate(values):
            if v in ("?", "") or v.lower() == "nan":
                raise ValueError(
                    f"{path}, line {number}: missing value at dimension {d}, step {step}; fill it before training."
                )
        try:
            dims.append(np.array([float(v) for v in values]))
        except ValueError:
            bad = next(v for v in values if not _is_number(v))
            raise ValueError(f"{path}, line {number}: dimension {d} holds {bad[:40]!r}, not a number.") from None
    if len({len(v) for v in dims}) > 1:
        raise ValueError(
            f"{path}, line {number}: the dimensions of the series have different lengths {[len(v) for v in dims]}."
        )
    seq = np.stack(dims, axis=-1)  # (T, D)
    if not np.isfinite(seq).all():
        raise ValueError(f"{path}, line {number}: the series holds infinite values.")
    return seq, label


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
