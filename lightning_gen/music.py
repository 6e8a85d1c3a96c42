"""Piano rolls and music21: parse the Bach chorales bundled with music21, convert notes <-> piano rolls,
write MIDI files and piano-roll pictures. (Music statistics of rolls: ``lightning_gen.metrics.music``.)

A note list is a float array (M, 3) of ``[midi pitch, onset, duration]`` with times in quarter notes. A
piano roll is a binary array (T, P): frame t covers ``[t * step, (t + 1) * step)`` quarter notes and column
p is MIDI pitch ``pitch_low + p``. A roll cannot tell a held note from a repeated one; converting back
merges consecutive active frames into one note (the usual convention for the JSB chorales roll, e.g.
Boulanger-Lewandowski et al. 2012).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def chorale_names(max_chorales: int | None = None) -> list[str]:
    """Corpus names of the Bach chorales music21 ships (371 in the Riemenschneider order)."""
    from music21 import corpus

    names = list(corpus.chorales.Iterator(returnType="filename"))
    return names if max_chorales is None else names[:max_chorales]


def score_to_notes(score) -> np.ndarray:
    """All sounding notes of a music21 score (every part, chords split, ties merged) as (M, 3) float32."""
    rows = []
    for n in score.stripTies().flatten().notes:
        duration = float(n.quarterLength)
        if duration <= 0:  # grace notes take no time in a roll
            continue
        for p in n.pitches:
            rows.append((p.midi, float(n.offset), duration))
    return np.asarray(rows, dtype=np.float32).reshape(-1, 3)


def score_key(score) -> tuple[int, int]:
    """(tonic pitch class 0..11, minor 0 / 1) of a score by music21's key analysis (``analyze('key')``: the
    Krumhansl-Schmuckler profile match on the duration-weighted pitch classes)."""
    key = score.analyze("key")
    return int(key.tonic.pitchClass), int(key.mode == "minor")


def parse_chorales(names: list[str], progress: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """Parse corpus chorales to note lists and keys (N, 2) int64 (:func:`score_key`), showing a progress bar
    (tens of seconds for all 371)."""
    from music21 import corpus

    iterator = names
    if progress:
        from rich.progress import track

        iterator = track(names, description=f"Parsing {len(names)} Bach chorales (music21 corpus, once)")
    notes, keys = [], []
    for name in iterator:
        score = corpus.parse(name)
        notes.append(score_to_notes(score))
        keys.append(score_key(score))
    return notes, np.asarray(keys, dtype=np.int64).reshape(-1, 2)


def load_chorale_notes(
    data_dir: str | os.PathLike, max_chorales: int | None = None, progress: bool = True, keys: bool = False
) -> tuple:
    """Names and note lists of the first ``max_chorales`` chorales (None: all), parsed once and cached in
    ``data_dir``; with ``keys``, also their keys (N, 2): tonic pitch class and minor (0 / 1), by music21's key
    analysis of each whole chorale (:func:`score_key`), cached with the notes.

    The cache is ``<data_dir>/chorales/notes_<all|N>.npz``; a cache of all chorales also serves any
    ``max_chorales``. A cache written before keys were cached is parsed again when keys are asked for.
    """
    folder = Path(data_dir) / "chorales"
    wanted = chorale_names(max_chorales)
    for tag in ["all"] if max_chorales is None else [str(max_chorales), "all"]:
        path = folder / f"notes_{tag}.npz"
        if path.exists():
            with np.load(path) as f:
                names, counts, notes = list(f["names"]), f["counts"], f["notes"]
                cached_keys = f["keys"] if "keys" in f.files else None
            if names[: len(wanted)] == wanted and (cached_keys is not None or not keys):
                split = np.split(notes, np.cumsum(counts)[:-1])
                found = [s.copy() for s in split[: len(wanted)]]
                return (wanted, found, cached_keys[: len(wanted)].copy()) if keys else (wanted, found)
    parsed, parsed_keys = parse_chorales(wanted, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"notes_{'all' if max_chorales is None else max_chorales}.npz"
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez_compressed(
        tmp,
        names=np.asarray(wanted),
        counts=np.asarray([len(n) for n in parsed], dtype=np.int64),
        notes=np.concatenate(parsed) if parsed else np.zeros((0, 3), np.float32),
        keys=parsed_keys,
    )
    os.replace(tmp, path)  # atomic: a half-written cache is never read
    return (wanted, parsed, parsed_keys) if keys else (wanted, parsed)


def notes_to_roll(
    notes: np.ndarray, pitch_low: int, pitch_high: int, step: float = 0.5, name: str = "notes"
) -> np.ndarray:
    """Note list (M, 3) to a binary piano roll (T, pitch_high - pitch_low + 1) uint8.

    Onsets and ends are rounded to the nearest frame; every note lasts at least one frame. Raises if the
    pitch range would drop notes, saying how many and which range would keep them.
    """
    if pitch_high < pitch_low or step <= 0:
        raise ValueError(f"Need pitch_low <= pitch_high and step > 0, got {pitch_low}, {pitch_high}, {step}.")
    pitch = notes[:, 0].astype(np.int64)
    outside = (pitch < pitch_low) | (pitch > pitch_high)
    if outside.any():
        raise ValueError(
            f"The pitch range [{pitch_low}, {pitch_high}] would drop {int(outside.sum())} of {len(notes)} notes "
            f"of {name} (their pitches span {pitch.min()}..{pitch.max()}). Widen the range (pitch_low / "
            "pitch_high)."
        )
    start = np.round(notes[:, 1] / step).astype(np.int64)
    end = np.maximum(start + 1, np.round((notes[:, 1] + notes[:, 2]) / step).astype(np.int64))
    roll = np.zeros((int(end.max()) if len(notes) else 0, pitch_high - pitch_low + 1), dtype=np.uint8)
    for s, e, p in zip(start, end, pitch - pitch_low):
        roll[s:e, p] = 1
    return roll


def note_onsets(active: np.ndarray) -> np.ndarray:
    """Where notes start in boolean rolls (..., T, P): active at a step and not at the step before (a roll
    cannot tell a held note from a repeated one). Same shape as ``active``."""
    before = np.zeros_like(active)
    before[..., 1:, :] = active[..., :-1, :]  # the previous step; nothing before step 0
    return active & ~before


def roll_to_notes(roll: np.ndarray, pitch_low: int, step: float = 0.5, threshold: float = 0.5) -> np.ndarray:
    """Piano roll (T, P) (binary or probabilities, active above ``threshold``) to a note list (M, 3)."""
    active = np.asarray(roll) > threshold  # (T, P)
    onset_t, onset_p = np.nonzero(note_onsets(active))
    last_t, last_p = np.nonzero(note_onsets(active[::-1])[::-1])  # a note's last step: the onset of the reversed roll
    end_t = last_t + 1  # one past the end
    order_on, order_end = np.lexsort((onset_t, onset_p)), np.lexsort((end_t, last_p))  # pair runs per pitch
    on_t, on_p, off_t = onset_t[order_on], onset_p[order_on], end_t[order_end]
    notes = np.stack([on_p + pitch_low, on_t * step, (off_t - on_t) * step], axis=1).astype(np.float32)
    return notes[np.lexsort((notes[:, 0], notes[:, 1]))]  # by onset, then pitch


def roll_to_score(roll: np.ndarray, pitch_low: int, step: float = 0.5, threshold: float = 0.5, tempo: int = 80):
    """A one-part music21 score (piano) from a piano roll; simultaneous notes become chords."""
    from music21 import chord, instrument, note, stream
    from music21 import tempo as m21tempo

    notes = roll_to_notes(roll, pitch_low, step, threshold)
    part = stream.Part()
    part.insert(0, instrument.Piano())
    part.insert(0, m21tempo.MetronomeMark(number=tempo))
    groups: dict[tuple[float, float], list[int]] = {}
    for pitch, onset, duration in notes:
        groups.setdefault((float(onset), float(duration)), []).append(int(pitch))
    for (onset, duration), pitches in sorted(groups.items()):
        element = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        element.quarterLength = duration
        part.insert(onset, element)
    score = stream.Score()
    score.insert(0, part)
    return score


def write_midi(roll: np.ndarray, path: str | os.PathLike, pitch_low: int, step: float = 0.5, **kwargs) -> str:
    """Write a piano roll as a MIDI file with music21; returns the path."""
    roll_to_score(roll, pitch_low, step, **kwargs).write("midi", fp=str(path))
    return str(path)


def piano_roll_image(
    rolls: np.ndarray, pitch_low: int, path: str | os.PathLike, step: float | None = 0.5, label: str = "sample"
) -> str:
    """Save rolls (N, T, P) as a PNG, up to 4 panels a row, with pitch (MIDI) and time (quarter notes, ``step``
    quarters per frame) axes: :func:`lightning_gen.plotting.save_sequences`."""
    from lightning_gen.plotting import save_sequences

    return save_sequences(np.asarray(rolls), path, roll=True, pitch_low=pitch_low, step=step, label=label)


def held_runs(roll: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Lengths in frames of every held note (run of consecutive active frames of one pitch) of a roll (T, P)."""
    notes = roll_to_notes(roll, pitch_low=0, step=1.0, threshold=threshold)  # durations in frames
    return notes[:, 2].astype(np.int64)


def drone_statistics(rolls: np.ndarray, threshold: float = 0.5, drone_fraction: float = 0.75) -> dict[str, float]:
    """How often rolls (N, T, P) drone: ``drone_share`` is the share of rolls in which one pitch is held
    without a break for at least ``drone_fraction`` of the roll (a recurrent generator whose output is
    thresholded can settle on one held pitch); ``longest_note`` the mean over rolls of the longest held note as a
    share of the roll; ``mean_note_length`` the mean held-note length in frames."""
    rolls = np.asarray(rolls)
    longest, lengths = [], []
    for roll in rolls:
        runs = held_runs(roll, threshold)
        longest.append(runs.max(initial=0) / max(len(roll), 1))
        lengths.extend(runs.tolist())
    longest = np.asarray(longest, dtype=np.float64)
    return {
        "drone_share": float((longest >= drone_fraction).mean()) if len(longest) else 0.0,
        "longest_note": float(longest.mean()) if len(longest) else 0.0,
        "mean_note_length": float(np.mean(lengths)) if lengths else 0.0,
    }


def write_roll_samples(
    probabilities: np.ndarray,
    output: str,
    pitch_low: int,
    step: float = 0.5,
    max_files: int = 16,
    max_audio_files: int = 0,
) -> dict[str, str]:
    """The sample job's files for piano-roll models: ``output`` (.npz with ``samples``, the binary rolls
    float32 (N, T, P), and ``probabilities``, what the model returned: sampled binary rolls for the R-VAE /
    R-VAE-GAN, so both are the same there; probabilities are thresholded at 0.5), MIDI files of the first
    ``max_files`` rolls in ``<output stem>_midi/``, WAV files (:func:`write_wav`) of the first
    ``max_audio_files`` (default none) beside them, and a PNG of the first 8 rolls beside ``output``."""
    rolls = (probabilities > 0.5).astype(np.float32)  # (N, T, P)
    np.savez_compressed(
        output, samples=rolls, probabilities=probabilities.astype(np.float32), pitch_low=pitch_low, step=step
    )
    stem = Path(output).with_suffix("")
    midi_dir = Path(f"{stem}_midi")
    midi_dir.mkdir(parents=True, exist_ok=True)
    for i, roll in enumerate(rolls[:max_files]):
        write_midi(roll, midi_dir / f"sample_{i:03d}.mid", pitch_low, step)
    for i, roll in enumerate(rolls[:max_audio_files]):
        write_wav(roll, midi_dir / f"sample_{i:03d}.wav", pitch_low, step)
    png = piano_roll_image(rolls[:8], pitch_low, f"{stem}.png", step)
    return {"samples": output, "midi": str(midi_dir), "piano roll": png}


def voices_to_rolls(x, voices: int = 4) -> np.ndarray:
    """One-hot voices (..., T, voices * K) (``ChoralesDataModule(representation='voices')``: voice v's pitch in
    columns ``v * K .. (v + 1) * K - 1``) to piano rolls (..., T, K) on the same pitch columns: a pitch is active
    where any voice sings it (two voices in unison make one note, as in a roll)."""
    x = np.asarray(x)
    if voices < 1 or x.shape[-1] % voices:
        raise ValueError(f"{x.shape[-1]} features per step cannot be {voices} voices of equal pitch ranges.")
    return x.reshape(*x.shape[:-1], voices, x.shape[-1] // voices).max(axis=-2)  # (..., T, V, K) -> (..., T, K)


def shift_rolls(rolls: np.ndarray, semitones) -> np.ndarray:
    """Rolls (N, T, P) each moved up by its ``semitones`` (N,) (negative: down), one int for all; notes moved
    past the lowest or highest column are dropped (columns are not wrapped around)."""
    rolls = np.asarray(rolls)
    shifts = np.broadcast_to(np.asarray(semitones, dtype=np.int64), (len(rolls),))
    out = np.zeros_like(rolls)
    p = rolls.shape[-1]
    for i, s in enumerate(shifts):
        if abs(s) < p:
            out[i, :, max(s, 0) : p + min(s, 0)] = rolls[i, :, max(-s, 0) : p - max(s, 0)]
    return out


def roll_to_audio(
    roll: np.ndarray, pitch_low: int, step: float = 0.5, tempo: int = 80, rate: int = 22050, threshold: float = 0.5
) -> np.ndarray:
    """A piano roll (T, P) as mono audio (samples,) float32 in [-1, 1]: each note an organ-like tone (the
    fundamental and three harmonics at 1/2, 1/4, 1/8, after additive synthesis as in ``pretty_midi``'s
    ``synthesize``), with 10 ms fades against clicks; ``tempo`` quarter notes per minute. No sound font
    needed: a rough rendering to hear the lines and chords, not a performance."""
    notes = roll_to_notes(roll, pitch_low, step, threshold)
    seconds_per_quarter = 60.0 / tempo
    total = int(np.ceil(len(roll) * step * seconds_per_quarter * rate)) + 1
    audio = np.zeros(total, dtype=np.float64)
    fade = max(1, int(0.01 * rate))
    for pitch, onset, duration in notes:
        start, length = int(onset * seconds_per_quarter * rate), int(duration * seconds_per_quarter * rate)
        t = np.arange(length) / rate
        freq = 440.0 * 2.0 ** ((pitch - 69) / 12)
        tone = sum(0.5**h * np.sin(2 * np.pi * freq * (h + 1) * t) for h in range(4))  # (length,)
        envelope = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / fade)
        audio[start : start + length] += tone * envelope
    peak = np.abs(audio).max()
    return (audio / peak * 0.9 if peak > 0 else audio).astype(np.float32)


def write_wav(roll: np.ndarray, path: str | os.PathLike, pitch_low: int, step: float = 0.5, **kwargs) -> str:
    """Write a piano roll as a 16-bit mono WAV file (:func:`roll_to_audio`, ``scipy.io.wavfile``); returns the
    path. For a richer sound, render the MIDI file with a synthesizer and a General MIDI sound font instead
    (e.g. ``fluidsynth -ni -F out.wav /usr/share/sounds/sf2/FluidR3_GM.sf2 sample_000.mid``)."""
    from scipy.io import wavfile

    rate = kwargs.pop("rate", 22050)
    audio = roll_to_audio(roll, pitch_low, step, rate=rate, **kwargs)
    wavfile.write(str(path), rate, (audio * 32767).astype(np.int16))
    return str(path)
