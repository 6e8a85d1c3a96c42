"""Music statistics of piano rolls: C-RNN-GAN's four (Mogren 2016), notes per step, a distance between the
onset pitch histograms of real and generated rolls, and statistics of voice leading (how the top and bass lines
move, pitch classes, note length, notes in the window's key) with TimeGAN's discriminative score on rolls, each
beside the real data's own figure."""

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
    ``pitch_histogram_distance`` between them (beside that of one half of the real rolls to the other, NaN
    with fewer than 2 real rolls) and the voice-leading table of :func:`compare_voice_leading`
    (line motion, note length, share of notes in key, drones, pitch-class distance beside the real halves'):
    ``{name: {"generated": g, "real": r}}``."""
    gen, ref = music_statistics(fake, pitch_low, threshold), music_statistics(real, pitch_low, threshold)
    out = {k: {"generated": gen[k], "real": ref[k]} for k in gen}
    halves = real_halves(real) if len(check_piano_rolls(real, "real")) >= 2 else None
    floor = pitch_histogram_distance(*halves, threshold) if halves is not None else float("nan")
    out["pitch_histogram_distance"] = {"generated": pitch_histogram_distance(real, fake, threshold), "real": floor}
    for name, pair in compare_voice_leading(real, fake, pitch_low, threshold).items():
        out.setdefault(name, pair)  # notes_per_step is in both tables
    return out


# -- voice leading: how the lines move, which pitch classes sound, whether the notes keep to a key --------------


def _krumhansl_profiles() -> np.ndarray:
    """The 24 Krumhansl-Schmuckler key profiles (12 major, then 12 minor tonics), rows z-scored (24, 12):
    Krumhansl & Kessler's probe-tone ratings as music21 ships them (``analysis.discrete.KrumhanslSchmuckler``)."""
    from music21.analysis.discrete import KrumhanslSchmuckler

    ks = KrumhanslSchmuckler()
    rows = [np.roll(np.asarray(ks.getWeights(mode), dtype=np.float64), tonic) for mode in ("major", "minor")
            for tonic in range(12)]  # fmt: skip
    profiles = np.stack(rows)  # (24, 12): row k, column pc = weight of pc in key k
    return (profiles - profiles.mean(1, keepdims=True)) / profiles.std(1, keepdims=True)


# The pitch classes counted as in a key: the major scale; for minor keys natural and harmonic minor together
# (the raised seventh is the minor key's leading tone in Bach's chorales).
_KEY_MASKS = np.array(
    [[((pc - tonic) % 12) in (0, 2, 4, 5, 7, 9, 11) for pc in range(12)] for tonic in range(12)]
    + [[((pc - tonic) % 12) in (0, 2, 3, 5, 7, 8, 10, 11) for pc in range(12)] for tonic in range(12)]
)  # (24, 12)


def pitch_classes(num_pitches: int, pitch_low: int) -> np.ndarray:
    """Pitch class (0 = C ... 11 = B) of each roll column (P,)."""
    return (np.arange(num_pitches) + pitch_low) % 12


def _by_pitch_class(counts: np.ndarray, pitch_low: int) -> np.ndarray:
    """Fold per-pitch counts (..., P) onto the 12 pitch classes (..., 12)."""
    onehot = np.eye(12)[pitch_classes(counts.shape[-1], pitch_low)]  # (P, 12)
    return counts @ onehot


def pitch_class_histogram(rolls, pitch_low: int = 0, threshold: float = 0.5) -> np.ndarray:
    """Normalised histogram (12,) of the note onsets' pitch classes over rolls (N, T, P); zeros if no note."""
    rolls = check_piano_rolls(rolls, "rolls")
    counts = _by_pitch_class(note_onsets(rolls > threshold).sum(axis=(0, 1)).astype(np.float64), pitch_low)
    return counts / counts.sum() if counts.sum() > 0 else counts


def pitch_class_distance(real, fake, pitch_low: int = 0, threshold: float = 0.5) -> float:
    """Total variation distance between the onset pitch-class histograms of two sets of rolls (0 same, 1
    disjoint); NaN when neither has a note, 1 when only one has none."""
    p, q = pitch_class_histogram(real, pitch_low, threshold), pitch_class_histogram(fake, pitch_low, threshold)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan") if p.sum() == q.sum() else 1.0
    return float(0.5 * np.abs(p - q).sum())


def outer_voices(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top and bass lines of boolean rolls (N, T, P): the highest and lowest sounding column at each step,
    (N, T) float each, NaN where the step is silent."""
    sounding = active.any(-1)  # (N, T)
    top = active.shape[-1] - 1 - np.argmax(active[..., ::-1], axis=-1)  # (N, T): last active column
    bass = np.argmax(active, axis=-1)  # (N, T): first active column
    return np.where(sounding, top, np.nan), np.where(sounding, bass, np.nan)


def voice_motion(rolls, threshold: float = 0.5) -> dict[str, float]:
    """Mean absolute jump in semitones of the top line (``top_motion``) and of the bass (``bass_motion``)
    from one step to the next, over the pairs of consecutive steps that both sound (a held or repeated
    note is a jump of 0). Chorale voices move mostly by step; block chords with stray notes jump."""
    top, bass = outer_voices(check_piano_rolls(rolls, "rolls") > threshold)
    out = {}
    for name, line in (("top_motion", top), ("bass_motion", bass)):
        jumps = np.abs(np.diff(line, axis=1))  # (N, T - 1), NaN where either step is silent
        out[name] = float(np.nanmean(jumps)) if np.isfinite(jumps).any() else float("nan")
    return out


def window_keys(rolls, pitch_low: int = 0, threshold: float = 0.5) -> np.ndarray:
    """Each roll's key by the Krumhansl-Schmuckler algorithm (Krumhansl 1990): the key profile best
    correlated with the roll's duration-weighted pitch-class histogram. (N,) int: tonic (0 = C ... 11 = B) for
    major keys, 12 + tonic for minor keys (the chorale data's ``key`` classes); -1 for a silent roll."""
    rolls = check_piano_rolls(rolls, "rolls")
    durations = _by_pitch_class((rolls > threshold).sum(1).astype(np.float64), pitch_low)  # (N, 12)
    centred = durations - durations.mean(1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    correlation = (centred / np.where(norm > 0, norm, 1.0)) @ _krumhansl_profiles().T  # (N, 24), up to a scale
    return np.where(durations.sum(1) > 0, correlation.argmax(1), -1)


def in_key_share(rolls, pitch_low: int = 0, threshold: float = 0.5) -> float:
    """Share of note onsets whose pitch class belongs to their roll's key (:func:`window_keys`; major scale,
    or natural and harmonic minor together), over all notes of all rolls; NaN without notes."""
    rolls = check_piano_rolls(rolls, "rolls")
    keys = window_keys(rolls, pitch_low, threshold)  # (N,)
    onsets = _by_pitch_class(note_onsets(rolls > threshold).sum(1).astype(np.float64), pitch_low)  # (N, 12)
    inside = (onsets * _KEY_MASKS[np.maximum(keys, 0)]).sum()
    return float(inside / onsets.sum()) if onsets.sum() > 0 else float("nan")


def voice_leading_statistics(rolls, pitch_low: int = 0, threshold: float = 0.5) -> dict[str, float]:
    """Statistics that hear whether rolls move like chorales, for any set of rolls (N, T, P):
    ``top_motion`` and ``bass_motion`` (:func:`voice_motion`), ``notes_per_step`` (polyphony: active pitches
    per step), ``note_length`` (mean held-note length in steps), ``in_key_share`` (:func:`in_key_share`) and
    ``drone_share`` (rolls in which one pitch is held through 3/4 of the roll)."""
    from lightning_gen.music import drone_statistics

    rolls = check_piano_rolls(rolls, "rolls")
    drones = drone_statistics(rolls, threshold)
    return {
        **voice_motion(rolls, threshold),
        "notes_per_step": float((rolls > threshold).sum(-1).mean()),
        "note_length": drones["mean_note_length"],
        "in_key_share": in_key_share(rolls, pitch_low, threshold),
        "drone_share": drones["drone_share"],
    }


def real_halves(real, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The real rolls split at random into two halves: the pair whose distance is the floor a generated set
    is compared with (the real data's own figure on the same protocol)."""
    real = check_piano_rolls(real, "real")
    if len(real) < 2:
        raise ValueError(f"Splitting the real rolls into halves needs at least 2 rolls, got {len(real)}.")
    order = np.random.default_rng(seed).permutation(len(real))
    return real[order[: len(real) // 2]], real[order[len(real) // 2 :]]


def compare_voice_leading(
    real, fake, pitch_low: int = 0, threshold: float = 0.5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """:func:`voice_leading_statistics` of generated and real rolls side by side, and the
    ``pitch_class_distance`` of generated to real rolls beside that of one half of the real rolls to the
    other (:func:`real_halves`; NaN with fewer than 2 real rolls): ``{name: {"generated": g, "real": r}}``."""
    real, fake = check_piano_rolls(real, "real"), check_piano_rolls(fake, "fake")
    gen, ref = (
        voice_leading_statistics(fake, pitch_low, threshold),
        voice_leading_statistics(real, pitch_low, threshold),
    )
    out = {k: {"generated": gen[k], "real": ref[k]} for k in gen}
    floor = pitch_class_distance(*real_halves(real, seed), pitch_low, threshold) if len(real) >= 2 else float("nan")
    out["pitch_class_distance"] = {"generated": pitch_class_distance(real, fake, pitch_low, threshold), "real": floor}
    return out


def roll_discriminative_score(
    real, fake, iterations: int = 2000, repeats: int = 1, seed: int = 0, device: str | torch.device = "cpu"
) -> dict[str, dict[str, float]]:
    """TimeGAN's discriminative score (Yoon et al. 2019; :func:`lightning_gen.metrics.timegan.discriminative_score`:
    a post-hoc GRU, 80/20 split, ``|accuracy - 0.5|``) on binary piano rolls, for generated against real rolls
    and for one half of the real rolls against the other (:func:`real_halves`): ``{"discriminative":
    {"generated", "generated_std", "real", "real_std"}}``. Rolls are thresholded at 0.5 first. With more real
    than generated rolls, as many real rolls as generated ones are drawn for the first score: the test is
    balanced, as TimeGAN's equal-size sets (a classifier that calls everything real would otherwise score
    well above 0); pass twice as many real rolls as generated ones for halves of the same size."""
    from lightning_gen.metrics.timegan import discriminative_score

    real = (check_piano_rolls(real, "real") > 0.5).astype(np.float32)
    fake = (check_piano_rolls(fake, "fake") > 0.5).astype(np.float32)
    drawn = real[np.random.default_rng(seed).permutation(len(real))[: len(fake)]]  # (min(N, M), T, P)
    gen, gen_std = discriminative_score(drawn, fake, iterations, 128, repeats, seed, device)
    ref, ref_std = discriminative_score(*real_halves(real, seed), iterations, 128, repeats, seed, device)
    return {"discriminative": {"generated": gen, "generated_std": gen_std, "real": ref, "real_std": ref_std}}
