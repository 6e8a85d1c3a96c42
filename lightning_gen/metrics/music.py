"""Music statistics of piano rolls: C-RNN-GAN's four (Mogren 2016), notes per step, and a distance between the
onset pitch histograms of real and generated rolls."""

from __future__ import annotations

import numpy as np
import torch

from lightning_gen.music import note_onsets  # one onset detector, beside the roll <-> notes conversion

# Scales of C-RNN-GAN's midi_statistics.py (Mogren 2016): major, natural minor, harmonic minor.
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
_SCALE_MASKS = np.array(
    [[((pc - root) % 12) in steps for pc in range(12)] for root in range(12) for steps in SCALES.values()]
)  # (36, 12): is pitch class pc in scale (root, kind)


def check_piano_rolls(rolls, name: str = "samples") -> np.ndarray:
    """Return rolls as float32 (N, T, P); a single roll (T, P) becomes (1, T, P). Values must be in [0, 1]."""
    arr = np.asarray(rolls.detach().cpu().numpy() if isinstance(rolls, torch.Tensor) else rolls)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected piano rolls (N, T, P) = (count, steps, pitches), got shape {arr.shape}.")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: piano rolls contain NaN or infinite values.")
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: piano-roll values must be in [0, 1] (binary or probabilities), found [{lo}, {hi}].")
    return arr


def roll_tones(roll: np.ndarray, pitch_low: int = 0, threshold: float = 0.5) -> np.ndarray:
    """MIDI pitches of the note onsets (:func:`note_onsets`) of one roll (T, P), in time order (pitch order within
    a step): the ``tones`` of C-RNN-GAN's statistics."""
    t, p = np.nonzero(note_onsets(np.asarray(roll) > threshold))  # row-major: by time, then pitch
    return p + pitch_low


def _repetitions(tones: np.ndarray, max_len: int = 9) -> int:
    """Number of pairs of equal, non-overlapping subsequences of 2..``max_len`` tones (C-RNN-GAN)."""
    count, n = 0, len(tones)
    for length in range(2, min(n // 2, max_len) + 1):
        windows = np.lib.stride_tricks.sliding_window_view(tones, length)  # (n - length + 1, length)
        equal = (windows[:, None, :] == windows[None, :, :]).all(-1)  # (W, W)
        i, j = np.nonzero(np.triu(equal, k=length))  # j >= i + length: no overlap
        count += len(i)
    return count


def _scale_consistency(tones: np.ndarray) -> float:
    hist = np.bincount(tones % 12, minlength=12)  # (12,)
    return float((_SCALE_MASKS @ hist).max() / len(tones))


def music_statistics(rolls, pitch_low: int = 0, threshold: float = 0.5) -> dict[str, float]:
    """C-RNN-GAN's music statistics (Mogren 2016, sec. 4; ``midi_statistics.py``) of piano rolls, averaged
    over the rolls that hold at least one note, plus notes per step.

    - ``polyphony``: share of onset steps at which two or more notes start together;
    - ``scale_consistency``: share of tones in the best-fitting major / natural minor / harmonic minor scale
      (pitch classes compared modulo 12; the reference's ``tone % 12 - root`` skips that wrap-around);
    - ``repetitions``: pairs of equal, non-overlapping subsequences of 2 to 9 tones;
    - ``tone_span``: semitones between the lowest and the highest tone;
    - ``notes_per_step``: mean number of active pitches per step (over all rolls);
    - ``empty_fraction``: share of rolls without any note.

    Args:
        rolls: (N, T, P) or (T, P), binary or probabilities in [0, 1]; column p is MIDI pitch ``pitch_low + p``.
        pitch_low: MIDI pitch of column 0 (changes nothing but the pitch labels; scales are relative).
        threshold: a step is active above it.
    """
    rolls = check_piano_rolls(rolls, "rolls")
    tones = [roll_tones(r, pitch_low, threshold) for r in rolls]
    played = [t for t in tones if len(t)]
    stats: dict[str, float] = {}
    if played:
        poly = []
        for r in rolls:
            starts = note_onsets(r > threshold).sum(-1)  # (T,) onsets per step
            if (starts > 0).any():
                poly.append(float((starts >= 2).sum() / (starts > 0).sum()))
        stats["polyphony"] = float(np.mean(poly))
        stats["scale_consistency"] = float(np.mean([_scale_consistency(t) for t in played]))
        stats["repetitions"] = float(np.mean([_repetitions(t) for t in played]))
        stats["tone_span"] = float(np.mean([t.max() - t.min() for t in played]))
    else:
        stats.update(polyphony=float("nan"), scale_consistency=float("nan"), repetitions=float("nan"))
        stats["tone_span"] = float("nan")
    stats["notes_per_step"] = float((rolls > threshold).sum(-1).mean())
    stats["empty_fraction"] = 1.0 - len(played) / len(rolls)
    return stats


def pitch_histogram(rolls, threshold: float = 0.5) -> np.ndarray:
    """Normalised histogram of note onsets over the P pitches of rolls (N, T, P); zeros if no note."""
    rolls = check_piano_rolls(rolls, "rolls")
    counts = note_onsets(rolls > threshold).sum(axis=(0, 1)).astype(np.float64)  # (P,)
    return counts / counts.sum() if counts.sum() > 0 else counts


def pitch_histogram_distance(real, fake, threshold: float = 0.5) -> float:
    """Total variation distance ``0.5 * sum |p - q|`` between the onset pitch histograms: 0 same, 1 disjoint."""
    p, q = pitch_histogram(real, threshold), pitch_histogram(fake, threshold)
    if p.shape != q.shape:
        raise ValueError(
            f"real and fake rolls must have the same number of pitches, got {p.shape[0]} and {q.shape[0]}."
        )
    if p.sum() == 0 or q.sum() == 0:
        return float("nan") if p.sum() == q.sum() else 1.0
    return float(0.5 * np.abs(p - q).sum())


def compare_music_statistics(real, fake, pitch_low: int = 0, threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Each statistic of :func:`music_statistics` for the generated and the real rolls side by side, plus the
    ``pitch_histogram_distance`` between them: ``{name: {"generated": g, "real": r}}``."""
    gen, ref = music_statistics(fake, pitch_low, threshold), music_statistics(real, pitch_low, threshold)
    out = {k: {"generated": gen[k], "real": ref[k]} for k in gen}
    out["pitch_histogram_distance"] = {"generated": pitch_histogram_distance(real, fake, threshold), "real": 0.0}
    return out
