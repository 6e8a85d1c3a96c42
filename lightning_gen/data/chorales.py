"""J. S. Bach's chorales from the music21 corpus as piano rolls, unlabelled or labelled by mode or key."""

from __future__ import annotations

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, _split_counts, check_condition, sliding_windows
from lightning_gen.errors import check_folder
from lightning_gen.music import load_chorale_notes, notes_to_roll

CHORALE_CONDITIONS = {"mode": 2, "key": 24}  # condition -> classes


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
        self.labelled = condition is not None
        self.class_count = CHORALE_CONDITIONS.get(condition)
        self.names: dict[str, list[str]] = {}

    def rolls(self) -> tuple[list[str], list[np.ndarray]]:
        """Names and piano rolls (T_i, P) uint8 of every chorale asked for."""
        names, notes = load_chorale_notes(self.data_dir, self.max_chorales, self.progress)
        return names, self._to_rolls(names, notes)

    def _to_rolls(self, names: list[str], notes: list[np.ndarray]) -> list[np.ndarray]:
        return [notes_to_roll(n, self.pitch_low, self.pitch_high, self.step, name=k) for k, n in zip(names, notes)]

    def chorale_labels(self) -> np.ndarray:
        """The class of every chorale asked for (N,) int64, under ``condition``."""
        if self.condition is None:
            raise ValueError("chorale_labels() needs a condition (`mode` or `key`).")
        return self._labels(load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)[2])

    def _labels(self, keys: np.ndarray) -> np.ndarray:
        if self.condition == "mode":
            return keys[:, 1].astype(np.int64)
        return np.asarray([key_class(t, m) for t, m in keys], dtype=np.int64).reshape(-1)

    def load(self):
        if self.labelled:
            names, notes, keys = load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)
            rolls, labels = self._to_rolls(names, notes), self._labels(keys)
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
