"""J. S. Bach's chorales from the music21 corpus as piano rolls, unlabelled or labelled by mode or key."""

from __future__ import annotations

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, _split_counts, check_condition, sliding_windows
from lightning_gen.errors import check_folder
from lightning_gen.music import load_chorale_notes, notes_to_roll

CHORALE_CONDITIONS = {"mode": 2, "key": 24}  # condition -> classes


def common_key_shift(notes: np.ndarray, tonic: int, minor: int, pitch_low: int, pitch_high: int, name: str) -> int:
    """Semitones that move a chorale in the key (``tonic``, ``minor``) to C major or A minor: the smallest
    shift (-6..+5) that keeps every note in ``[pitch_low, pitch_high]``, else the one an octave away that
    does. Raises, naming the chorale, if neither fits the pitch range."""
    shift = (9 * int(minor) - int(tonic)) % 12  # A (9) is the minor keys' target tonic, C (0) the major keys'
    shift = shift - 12 if shift > 5 else shift
    low, high = (float(notes[:, 0].min()), float(notes[:, 0].max())) if len(notes) else (pitch_low, pitch_low)
    for candidate in sorted((shift, shift - 12, shift + 12), key=abs):
        if low + candidate >= pitch_low and high + candidate <= pitch_high:
            return candidate
    raise ValueError(
        f"{name} (pitches {low:.0f}..{high:.0f}) does not fit [{pitch_low}, {pitch_high}] once moved to "
        f"{'A minor' if minor else 'C major'} ({shift:+d} semitones, or an octave from there): widen the range "
        "(pitch_low / pitch_high) or set transpose: false."
    )


def key_class(tonic: int, minor: int) -> int:
    """The ``key`` condition's class of a key: ``tonic`` pitch class (0 = C ... 11 = B) for major keys,
    ``12 + tonic`` for minor keys (24 classes)."""
    return int(tonic) + 12 * int(minor)


class ChoralesDataModule(SequenceDataModule):
    """J. S. Bach's chorales from the corpus inside ``music21`` (371 chorales, no download) as piano rolls.

    Parsed once (tens of seconds, with a progress bar) into note lists cached under
    ``<data_dir>/chorales/``; later runs read the cache in well under a second. Each chorale becomes a
    binary roll (T, pitch_high - pitch_low + 1) with one frame per ``step`` quarter notes (0.5: an eighth
    note), all voices in one roll. The split is by chorale (seeded), then each chorale is cut into windows of
    ``window_length`` frames every ``stride`` frames; chorales shorter than a window are left out.

    Conditions (``condition``), one label per chorale given to each of its windows, from music21's key
    analysis of the whole chorale (``analyze('key')``, cached with the notes): ``mode``, 0 major / 1 minor;
    ``key``, 24 classes, the tonic's pitch class (0 = C ... 11 = B) for a major key and 12 + it for a minor
    key (:func:`key_class`; 371 chorales over 24 keys: some keys have few or no chorales).

    ``transpose``: every chorale moved into a common key, C major or A minor (by the same key analysis;
    :func:`common_key_shift`), so a model learns one set of scale degrees instead of 24 transpositions of it, as
    the JSB chorales benchmark does (Boulanger-Lewandowski et al. 2012 transpose to C major / C minor).
    The ``key`` condition then only carries the mode.

    Args:
        data_dir: cache folder.
        window_length: frames per training sequence (32 eighths: four 4/4 bars).
        stride: frames between window starts.
        step: quarter notes per frame.
        pitch_low: MIDI pitch of the lowest column (36 = C2, the lowest note of the corpus).
        pitch_high: MIDI pitch of the highest column (88 = E6; the four voices stay within 36..81, a few
            chorales with an instrumental descant reach 88).
        max_chorales: parse only the first N chorales (None: all); for quick tests.
        progress: show a progress bar while parsing.
        condition: ``mode`` or ``key`` for labelled windows; None (default): unlabelled.
        transpose: move every chorale into C major or A minor (False: as written).
        **kwargs: see :class:`SequenceDataModule`.
    """

    scale_data = False

    def __init__(
        self,
        data_dir: str = "data",
        window_length: int = 32,
        stride: int = 8,
        step: float = 0.5,
        pitch_low: int = 36,
        pitch_high: int = 88,
        max_chorales: int | None = None,
        progress: bool = True,
        condition: str | None = None,
        transpose: bool = False,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        if max_chorales is not None and max_chorales < 1:
            raise ValueError(f"max_chorales must be >= 1 (or null for all), got {max_chorales}.")
        if step <= 0:
            raise ValueError(f"step must be > 0 quarter notes, got {step}.")
        check_condition(type(self).__name__, condition, tuple(CHORALE_CONDITIONS))
        check_folder("data_dir", data_dir)  # the parsed corpus is cached there: say so before parsing it
        self.save_hyperparameters()
        self.data_dir, self.window_length, self.stride, self.step = data_dir, window_length, stride, step
        self.pitch_low, self.pitch_high = pitch_low, pitch_high
        self.max_chorales, self.progress, self.condition = max_chorales, progress, condition
        self.transpose = transpose
        self.shifts: dict[str, int] = {}  # chorale name -> semitones it was moved by (with transpose)
        self.labelled = condition is not None
        self.class_count = CHORALE_CONDITIONS.get(condition)
        self.names: dict[str, list[str]] = {}

    def rolls(self) -> tuple[list[str], list[np.ndarray]]:
        """Names and piano rolls (T_i, P) uint8 of every chorale asked for."""
        if self.transpose:
            names, notes, keys = load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)
            return names, self._to_rolls(names, notes, keys)
        names, notes = load_chorale_notes(self.data_dir, self.max_chorales, self.progress)
        return names, self._to_rolls(names, notes)

    def _to_rolls(self, names: list[str], notes: list[np.ndarray], keys: np.ndarray | None = None) -> list[np.ndarray]:
        if self.transpose:  # each chorale into C major / A minor
            lo, hi = self.pitch_low, self.pitch_high
            shifts = [common_key_shift(n, t, m, lo, hi, k) for k, n, (t, m) in zip(names, notes, keys)]
            notes = [n + np.asarray([s, 0, 0], dtype=n.dtype) for n, s in zip(notes, shifts)]
            self.shifts = dict(zip(names, shifts))
        return [notes_to_roll(n, self.pitch_low, self.pitch_high, self.step, name=k) for k, n in zip(names, notes)]

    def to_written_keys(self, rolls: np.ndarray, seed: int = 0) -> np.ndarray:
        """Rolls (N, T, P) generated in the common key moved into the keys the chorales are written in: each
        roll by the inverse shift of a training chorale drawn at random (so the keys come out as often as in
        the training chorales), notes moved past the pitch range dropped. The rolls as they are without
        ``transpose``. Needs ``setup()`` first."""
        if not self.transpose:
            return np.asarray(rolls)
        if not self.names.get("train"):
            raise ValueError("to_written_keys() needs the training chorales: call setup() first.")
        from lightning_gen.music import shift_rolls

        train_shifts = np.asarray([self.shifts[name] for name in self.names["train"]])
        drawn = np.random.default_rng(seed).choice(train_shifts, size=len(rolls))
        return shift_rolls(np.asarray(rolls), -drawn)

    def _labels(self, keys: np.ndarray) -> np.ndarray:
        if self.transpose:  # the keys after the move: C major or A minor
            keys = np.stack([9 * keys[:, 1], keys[:, 1]], axis=1)
        if self.condition == "mode":
            return keys[:, 1].astype(np.int64)
        return np.asarray([key_class(t, m) for t, m in keys], dtype=np.int64).reshape(-1)

    def load(self):
        if self.labelled:
            names, notes, keys = load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)
            rolls, labels = self._to_rolls(names, notes, keys), self._labels(keys)
        else:
            names, rolls = self.rolls()
            labels = None
        n_train, n_val, _ = _split_counts(len(rolls), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(rolls))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        p = self.pitch_high - self.pitch_low + 1
        out = []
        for split, idx in parts.items():
            self.names[split] = [names[i] for i in idx]
            kept = [i for i in idx if len(rolls[i]) >= self.window_length]
            windows = [sliding_windows(rolls[i], self.window_length, self.stride, names[i]) for i in kept]
            if not windows and len(idx):
                raise ValueError(
                    f"No {split} chorale is as long as window_length={self.window_length} frames: use a shorter window."
                )
            x = np.concatenate(windows) if windows else np.zeros((0, self.window_length, p), np.float32)
            if labels is None:
                out.append(x)
            else:  # each window takes its chorale's label
                y = np.concatenate([np.full(len(w), labels[i], np.int64) for i, w in zip(kept, windows)])
                out.append((x, y if windows else np.zeros(0, np.int64)))
        return tuple(out)
