"""Pictures drawn with matplotlib (Agg, no display): sequences, piano rolls with pitch and time axes, and the loss
curves of a run read from its logged metrics.

Used by the training callbacks (:mod:`lightning_gen.callbacks`) and the sample job (:mod:`lightning_gen.jobs.sample`),
so a picture looks the same wherever it is made. Every function imports matplotlib on first use: importing this module
costs nothing.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

#: a metric panel goes first when its name holds one of these (the losses a researcher looks for first)
LOSS_WORDS = ("loss", "elbo", "kl", "recon", "nll")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_pixels(fig) -> np.ndarray:
    """A drawn figure as an (H, W, 3) uint8 array; the figure is closed."""
    plt = pyplot()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8
    plt.close(fig)
    return pixels


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> str:
    """Write ``fig`` as a PNG at ``path`` (its folder is made) and close it."""
    plt = pyplot()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return str(path)


# -- sequences and piano rolls ----------------------------------------------------------------------------------
def draw_roll(ax, roll: np.ndarray, pitch_low: int = 0, step: float | None = None) -> None:
    """A piano roll (T, P) on ``ax``: time to the right (quarter notes when ``step``, the roll's frame length in
    quarter notes, is known; else frames), MIDI pitch up, both axes labelled."""
    frames, pitches = roll.shape
    length = frames * step if step else frames
    extent = (0, length, pitch_low - 0.5, pitch_low + pitches - 0.5)
    ax.imshow(roll.T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1, extent=extent)
    ax.set_xlabel("time (quarter notes)" if step else "time (frames)", fontsize=7)
    ax.set_ylabel("MIDI pitch", fontsize=7)


def draw_lines(ax, sequence: np.ndarray, ylim: tuple[float, float] | None = None) -> None:
    """A real-valued sequence (T, D) on ``ax``: one line per feature against the time step."""
    ax.plot(sequence, linewidth=1)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("time step", fontsize=7)
    ax.set_ylabel("value", fontsize=7)


def sequence_figure(
    rows: Sequence[tuple[np.ndarray, str]],
    roll: bool = False,
    pitch_low: int = 0,
    step: float | None = None,
    ylim: tuple[float, float] | None = None,
    max_cols: int | None = None,
):
    """A figure with one panel per sequence: ``rows`` of (batch (N, T, D), label), each batch on its own row(s) of at
    most ``max_cols`` panels (default: all on one row). Piano rolls (``roll``) as images with pitch and time axes
    (:func:`draw_roll`), real values as lines (:func:`draw_lines`)."""
    plt = pyplot()
    cols = max(1, max(len(batch) for batch, _ in rows) if max_cols is None else max_cols)
    layout = [(batch, label, math.ceil(len(batch) / cols)) for batch, label in rows]
    total = sum(n for _, _, n in layout)
    fig, axes = plt.subplots(total, cols, figsize=(2.8 * cols, 2.4 * total), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    first = 0
    for batch, label, n_rows in layout:
        for i, seq in enumerate(batch):
            ax = axes[first + i // cols, i % cols]
            ax.set_visible(True)
            if roll:
                draw_roll(ax, np.asarray(seq), pitch_low, step)
            else:
                draw_lines(ax, np.asarray(seq), ylim)
            ax.set_title(f"{label} {i}", fontsize=8)
            ax.tick_params(labelsize=6)
        first += n_rows
    fig.tight_layout()
    return fig


def trim(batch: np.ndarray, lengths) -> np.ndarray:
    """Zero-padded sequences (N, T, D) cut to their ``lengths`` (N,): an object array of (T_i, D) arrays that
    :func:`sequence_figure` draws like a batch, so that a plot never shows padding as data."""
    out = np.empty(len(batch), dtype=object)
    for i, (seq, length) in enumerate(zip(batch, np.asarray(lengths), strict=True)):
        out[i] = np.asarray(seq)[: int(length)]
    return out


def save_sequences(
    batch: np.ndarray,
    path: str | os.PathLike,
    roll: bool = False,
    pitch_low: int = 0,
    step: float | None = None,
    label: str = "sample",
) -> str:
    """The sample job's picture: up to 4 panels a row of generated sequences (N, T, D), lines or piano rolls."""
    return save_figure(sequence_figure([(batch, label)], roll, pitch_low, step, max_cols=min(4, len(batch))), path)


# -- conditional samples: one row per class ----------------------------------------------------------------------
def class_rows(labels: np.ndarray, columns: int) -> tuple[list[int], np.ndarray]:
    """Arrange samples by class: the sorted classes present in ``labels`` (N,), and an index array (rows, columns)
    whose row ``r`` holds the positions of the first ``columns`` samples of class ``r`` (-1 where it has fewer)."""
    labels = np.asarray(labels).reshape(-1)
    classes = sorted(int(c) for c in np.unique(labels))
    index = np.full((len(classes), max(1, columns)), -1, dtype=np.int64)
    for r, c in enumerate(classes):
        found = np.flatnonzero(labels == c)[: index.shape[1]]
        index[r, : len(found)] = found
    return classes, index


def save_labelled_grid(grid, row_labels: Sequence[str], path: str | os.PathLike) -> str:
    """Write an image grid ((3, H, W) in [0, 1], e.g. from ``torchvision.utils.make_grid`` with one row per entry
    of ``row_labels`` and 1-pixel padding) as a PNG with each row's label written in a margin on its left."""
    from PIL import Image, ImageDraw, ImageFont

    pixels = (np.asarray(grid.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()) * 255).round().astype(np.uint8)
    height, width = pixels.shape[:2]
    row_height = (height - 1) / max(1, len(row_labels))  # make_grid: padding 1 above every row and below the last
    size = int(max(10, min(24, row_height * 0.5)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    margin = int(size * (max((len(t) for t in row_labels), default=1) * 0.7 + 1))
    canvas = Image.new("RGB", (width + margin, height), "white")
    canvas.paste(Image.fromarray(pixels), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(row_labels):
        centre = 1 + r * row_height + row_height / 2
        draw.text((margin - size // 2, centre), text, fill="black", font=font, anchor="rm")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path)
    return str(path)


# -- loss curves ------------------------------------------------------------------------------------------------
Series = dict[str, list[tuple[float, float]]]  # metric name -> [(step, value), ...]


def read_metrics_csv(path: str | os.PathLike) -> Series:
    """The scalar metrics of a Lightning ``metrics.csv`` (columns ``epoch``, ``step``, one per metric, blank where a
    row does not log it): ``{metric: [(step, value), ...]}``. A missing or unreadable file gives ``{}``."""
    series: Series = {}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = _number(row.get("step"))
                if step is None:
                    continue
                for key, cell in row.items():
                    value = _number(cell)
                    if key not in ("epoch", "step") and key is not None and value is not None:
                        series.setdefault(key, []).append((step, value))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return series


def _number(cell) -> float | None:
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def join_parts(parts: Sequence[Series]) -> tuple[Series, list[float]]:
    """Concatenate the metrics of a run's parts (the first run, then each resume), oldest first. A part's points
    from the step where the next part starts on are dropped (a resume from an earlier checkpoint re-trains them).
    Returns the joined series and the steps where the resumed parts start."""
    parts = [p for p in parts if p]
    starts = [min(step for points in p.values() for step, _ in points) for p in parts]
    joined: Series = {}
    for i, part in enumerate(parts):
        until = starts[i + 1] if i + 1 < len(parts) else math.inf
        for key, points in part.items():
            joined.setdefault(key, []).extend((s, v) for s, v in points if s < until)
    return {k: v for k, v in joined.items() if v}, starts[1:]


def _panels(names: Iterable[str], max_panels: int) -> list[tuple[str, list[str]]]:
    """Group ``split/name`` metrics by ``name`` (train/d_loss and val/d_loss share a panel), losses first."""
    groups: dict[str, list[str]] = {}
    for key in sorted(names):
        groups.setdefault(key.split("/", 1)[-1], []).append(key)
    order = sorted(groups, key=lambda g: (not any(w in g.lower() for w in LOSS_WORDS), g))
    return [(g, groups[g]) for g in order[:max_panels]]


def loss_curve_figure(series: Series, resumes: Sequence[float] = (), title: str = "", max_panels: int = 16):
    """One panel per metric (its ``train/`` and ``val/`` curves together) against the step; a dashed line where
    the run was resumed. None when there is nothing to draw."""
    panels = _panels([k for k, points in series.items() if points], max_panels)
    if not panels:
        return None
    plt = pyplot()
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, keys) in zip(axes.flat, panels, strict=False):
        for key in keys:
            steps, values = zip(*sorted(series[key]), strict=True)
            few = len(steps) < 30  # validation curves: a point per validation
            ax.plot(steps, values, marker="o" if few else None, markersize=3, linewidth=1, label=key.split("/")[0])
        for step in resumes:
            ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
        if len(keys) > 1:
            ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
