"""J. S. Bach's chorales from the music21 corpus as piano rolls or as four voices, unlabelled or labelled by mode
or key."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, _split_counts, check_condition, sliding_windows
from lightning_gen.errors import check_folder
from lightning_gen.music import chorale_names, load_chorale_notes, notes_to_roll, voices_to_rolls

CHORALE_CONDITIONS = {"mode": 2, "key": 24}  # condition -> classes
REPRESENTATIONS = ("roll", "voices")
VOICES = ("soprano", "alto", "tenor", "bass")


def satb_parts(score) -> list | None:
    """The soprano, alto, tenor and bass parts of a chorale score: the first part whose name starts with each
    voice's name (chorales with instruments beside the choir, e.g. "Horn 1", "Soprano", ..., "Continuo"),
    else the parts in score order when there are exactly four (unnamed "spine" parts); None otherwise."""
    parts = list(score.parts)
    named = []
    for voice in VOICES:
        found = [p for p in parts if str(p.id or "").strip().lower().startswith(voice)]
        if not found:
            break
        named.append(found[0])
    if len(named) == len(VOICES):
        return named
    return parts if len(parts) == len(VOICES) else None


def score_voices(score) -> np.ndarray:
    """A chorale's soprano, alto, tenor and bass notes as (M, 4) float32 ``[midi pitch, onset, duration, voice]``
    (voice 0 = soprano ... 3 = bass; ties merged; a chord inside a part gives its highest pitch to an upper voice
    and its lowest to the bass); (0, 4) when the score has no four voices (:func:`satb_parts`) or one is empty."""
    parts = satb_parts(score)
    rows = []
    for voice, part in enumerate(parts or []):
        found = 0
        for n in part.stripTies().flatten().notes:
            duration = float(n.quarterLength)
            if duration <= 0:  # grace notes take no time
                continue
            midi = [p.midi for p in n.pitches]
            rows.append((min(midi) if voice == len(VOICES) - 1 else max(midi), float(n.offset), duration, voice))
            found += 1
        if not found:
            return np.zeros((0, 4), np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def load_chorale_voices(
    data_dir: str | os.PathLike, max_chorales: int | None = None, progress: bool = True
) -> tuple[list[str], list[np.ndarray]]:
    """Names and voice notes (:func:`score_voices`, (0, 4) for a chorale without four voices) of the first
    ``max_chorales`` chorales (None: all), parsed once and cached in ``<data_dir>/chorales/voices_<all|N>.npz``
    (a cache of all chorales also serves any ``max_chorales``)."""
    from music21 import corpus

    folder, wanted = Path(data_dir) / "chorales", chorale_names(max_chorales)
    for tag in ["all"] if max_chorales is None else [str(max_chorales), "all"]:
        path = folder / f"voices_{tag}.npz"
        if path.exists():
            with np.load(path) as f:
                names, counts, notes = list(f["names"]), f["counts"], f["notes"]
            if names[: len(wanted)] == wanted:
                return wanted, [s.copy() for s in np.split(notes, np.cumsum(counts)[:-1])[: len(wanted)]]
    iterator = wanted
    if progress:
        from rich.progress import track

        iterator = track(wanted, description=f"Parsing the voices of {len(wanted)} Bach chorales (music21, once)")
    parsed = [score_voices(corpus.parse(name)) for name in iterator]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"voices_{'all' if max_chorales is None else max_chorales}.npz"
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    counts = np.asarray([len(n) for n in parsed], dtype=np.int64)
    np.savez_compressed(tmp, names=np.asarray(wanted), counts=counts, notes=np.concatenate(parsed))
    os.replace(tmp, path)  # atomic: a half-written cache is never read
    return wanted, parsed


def voice_frames(notes: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Voice notes (M, 4) (:func:`score_voices`) to the voices' pitches per frame (T, 4) int64, one frame per
    ``step`` quarter notes (onsets and ends rounded to the nearest frame, every note at least one frame; a later
    note takes the frames it shares with an earlier one). A rest holds the voice's previous pitch, and a voice
    that starts with a rest takes its first pitch from the start."""
    start = np.round(notes[:, 1] / step).astype(np.int64)
    end = np.maximum(start + 1, np.round((notes[:, 1] + notes[:, 2]) / step).astype(np.int64))
    frames = np.full((int(end.max()), len(VOICES)), -1, dtype=np.int64)  # (T, 4); -1: a rest
    for s, e, p, v in zip(start, end, notes[:, 0].astype(np.int64), notes[:, 3].astype(np.int64)):
        frames[s:e, v] = p
    for v in range(len(VOICES)):
        sounding = np.flatnonzero(frames[:, v] >= 0)
        last = np.maximum.accumulate(np.where(frames[:, v] >= 0, np.arange(len(frames)), -1))  # last note so far
        frames[:, v] = frames[np.where(last >= 0, last, sounding[0]), v]
    return frames


def voices_to_one_hot(frames: np.ndarray, pitch_low: int, pitch_high: int, name: str = "the chorale") -> np.ndarray:
    """Voice pitches (T, V) to one-hot voices (T, V * K) float32, K = ``pitch_high - pitch_low + 1``: voice v's
    pitch in columns ``v * K .. (v + 1) * K - 1`` (soprano first). Raises, naming ``name``, if a pitch is outside
    the range."""
    k = pitch_high - pitch_low + 1
    if frames.min() < pitch_low or frames.max() > pitch_high:
        raise ValueError(
            f"{name}'s voices span {frames.min()}..{frames.max()}, outside [{pitch_low}, {pitch_high}]: widen the "
            "range (pitch_low / pitch_high)."
        )
    return np.eye(k, dtype=np.float32)[frames - pitch_low].reshape(len(frames), -1)  # (T, V, K) -> (T, V * K)


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

    ``representation``: ``roll`` (default), the piano roll above; ``voices``, the soprano, alto, tenor and bass
    (music21's parts, :func:`satb_parts`) as four one-hot pitches per frame, (T, 4 * K) with K = ``pitch_high -
    pitch_low + 1`` (soprano in the first K columns), as DeepBach (Hadjeres et al. 2017) and Coconet (Huang et al.
    2017) represent chorales: a held or repeated pitch carries on, a rest holds the voice's previous pitch.
    A model of this layout draws one pitch per voice and step (``lightning_gen.nets.voices``) instead of ~55
    independent notes, so lines move by step as voices do. :meth:`to_rolls` turns voices back into piano rolls
    (the four pitches of a frame) for the music statistics and MIDI. Chorales without four voices are left out;
    ``skipped`` names them.

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
        representation: ``roll`` or ``voices``.
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
        representation: str = "roll",
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
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation={representation!r}: choose one of {list(REPRESENTATIONS)}.")
        check_folder("data_dir", data_dir)  # the parsed corpus is cached there: say so before parsing it
        self.save_hyperparameters()
        self.data_dir, self.window_length, self.stride, self.step = data_dir, window_length, stride, step
        self.pitch_low, self.pitch_high = pitch_low, pitch_high
        self.max_chorales, self.progress, self.condition = max_chorales, progress, condition
        self.transpose, self.representation = transpose, representation
        self.voice_count = len(VOICES) if representation == "voices" else 0  # 0: piano rolls
        self.skipped: list[str] = []  # chorales without four voices (representation 'voices')
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

    def to_rolls(self, x: np.ndarray) -> np.ndarray:
        """Sequences of this module's layout (N, T, D) as piano rolls (N, T, K): voices become the four pitches of
        each frame (:func:`lightning_gen.music.voices_to_rolls`); rolls are returned as they are."""
        return voices_to_rolls(x, self.voice_count) if self.voice_count else np.asarray(x)

    def _voices(self) -> tuple[list[str], list[np.ndarray], np.ndarray | None]:
        """Names, one-hot voices (T_i, 4 * K) and labels (None when unlabelled) of the chorales with four voices;
        the others are named in ``skipped`` (and a warning says how many)."""
        names, notes = load_chorale_voices(self.data_dir, self.max_chorales, self.progress)
        keys = None
        if self.transpose or self.labelled:
            keys = load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)[2]
        kept = [i for i, n in enumerate(notes) if len(n)]
        self.skipped = [names[i] for i, n in enumerate(notes) if not len(n)]
        if not kept:
            raise ValueError(f"None of the {len(names)} chorales has four voices: use representation: roll.")
        if self.skipped:
            warnings.warn(
                f"{len(self.skipped)} of {len(names)} chorales have no soprano, alto, tenor and bass parts and are "
                f"left out of representation 'voices' (first: {self.skipped[0]}).",
                stacklevel=2,
            )
        names, frames = [names[i] for i in kept], [voice_frames(notes[i], self.step) for i in kept]
        lo, hi = self.pitch_low, self.pitch_high
        if self.transpose:  # each chorale into C major / A minor
            shifts = [common_key_shift(f.reshape(-1, 1), *keys[i], lo, hi, k) for k, f, i in zip(names, frames, kept)]
            frames = [f + s for f, s in zip(frames, shifts)]
            self.shifts = dict(zip(names, shifts))
        voices = [voices_to_one_hot(f, lo, hi, k) for k, f in zip(names, frames)]
        return names, voices, self._labels(keys[kept]) if self.labelled else None

    def load(self):
        if self.representation == "voices":
            names, rolls, labels = self._voices()
        elif self.labelled:
            names, notes, keys = load_chorale_notes(self.data_dir, self.max_chorales, self.progress, keys=True)
            rolls, labels = self._to_rolls(names, notes, keys), self._labels(keys)
        else:
            names, rolls = self.rolls()
            labels = None
        n_train, n_val, _ = _split_counts(len(rolls), self.val_fraction, self.test_fraction)
        order = np.random.default_rng(self.seed).permutation(len(rolls))
        parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
        p = rolls[0].shape[-1]
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
