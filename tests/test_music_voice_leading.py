"""Voice-leading statistics of piano rolls on hand-made rolls, the discriminative score on rolls, and the
chorale data's transposition into a common key."""

import os

import numpy as np
import pytest

from lightning_gen.metrics import music as M

pytestmark = pytest.mark.usefixtures("one_thread")


def roll_of(steps: list[list[int]], pitches: int = 25) -> np.ndarray:
    """A roll (T, pitches) with the given columns active at each step."""
    roll = np.zeros((len(steps), pitches), np.float32)
    for t, cols in enumerate(steps):
        roll[t, cols] = 1
    return roll


def test_voice_motion_follows_the_outer_lines_and_skips_silent_steps():
    roll = roll_of([[0, 12], [2, 7], [], [4, 12]])  # top 12 -> 7, bass 0 -> 2; the silent step breaks both lines
    assert M.voice_motion(roll) == {"top_motion": 5.0, "bass_motion": 2.0}
    held = roll_of([[0, 12]] * 4)
    assert M.voice_motion(held) == {"top_motion": 0.0, "bass_motion": 0.0}
    assert np.isnan(M.voice_motion(np.zeros((3, 5)))["top_motion"])


def test_pitch_class_distance_folds_octaves():
    c_major = roll_of([[0, 4, 7]])[None]  # C E G from C4
    octave_up = roll_of([[12, 16, 19]])[None]
    c_sharp = roll_of([[1, 5, 8]])[None]
    assert M.pitch_class_histogram(c_major, pitch_low=60)[[0, 4, 7]] == pytest.approx([1 / 3] * 3)
    assert M.pitch_class_distance(c_major, octave_up, pitch_low=60) == 0.0
    assert M.pitch_class_distance(c_major, c_sharp, pitch_low=60) == pytest.approx(1.0)
    assert M.pitch_class_distance(c_major, np.zeros_like(c_major)) == 1.0


def scale_roll(tonic_col: int, degrees: tuple[int, ...], stress: tuple[int, ...]) -> np.ndarray:
    """One note per step through ``degrees`` above ``tonic_col``, then the ``stress`` degrees held as a chord."""
    steps = [[tonic_col + d] for d in degrees] + [[tonic_col + d for d in stress]] * 4
    return roll_of(steps, pitches=30)


def test_window_keys_and_in_key_share():
    c_major = scale_roll(0, (0, 2, 4, 5, 7, 9, 11, 12), (0, 4, 7))  # pitch_low 60: C4
    a_minor = scale_roll(9, (0, 2, 3, 5, 7, 8, 11, 12), (0, 3, 7))  # A harmonic minor, A C E
    assert M.window_keys(np.stack([c_major, a_minor, np.zeros_like(c_major)]), pitch_low=60).tolist() == [0, 21, -1]
    assert M.in_key_share(c_major, pitch_low=60) == 1.0
    assert M.in_key_share(a_minor, pitch_low=60) == 1.0  # G# is A minor's leading tone
    stray = c_major.copy()
    stray[1, 6] = 1  # an F# onset beside D: 1 of 12 onsets outside C major
    assert M.in_key_share(stray, pitch_low=60) == pytest.approx(11 / 12)


def test_voice_leading_statistics_and_the_real_halves_floor():
    chorale_like = roll_of([[0, 7, 12], [0, 7, 14], [2, 9, 16], [2, 9, 14]])  # lines move by step
    blocks = roll_of([[0, 7, 12], [5, 9, 24], [0, 7, 12], [5, 9, 24]])  # the top leaps an octave every step
    drone = roll_of([[3]] * 4)
    stats = M.voice_leading_statistics(np.stack([chorale_like, drone]))
    assert stats["drone_share"] == 0.5 and stats["notes_per_step"] == pytest.approx(2.0)
    table = M.compare_voice_leading(np.stack([chorale_like] * 4), np.stack([blocks] * 4), pitch_low=60)
    assert table["top_motion"]["real"] == 2.0 and table["top_motion"]["generated"] == 12.0
    assert table["pitch_class_distance"]["real"] == 0.0  # identical halves
    assert table["pitch_class_distance"]["generated"] > 0.1
    assert table["note_length"]["generated"] < table["note_length"]["real"]


def test_compare_music_statistics_carries_the_voice_leading_table():
    real = np.stack([roll_of([[0, 7, 12], [0, 7, 14]])] * 2)
    table = M.compare_music_statistics(real, real, pitch_low=60)
    assert {"top_motion", "bass_motion", "in_key_share", "note_length", "pitch_class_distance"} <= set(table)
    assert table["pitch_histogram_distance"] == {"generated": 0.0, "real": 0.0}
    assert np.isnan(M.compare_music_statistics(real[:1], real[:1])["pitch_class_distance"]["real"])


def test_real_halves_needs_two_rolls():
    with pytest.raises(ValueError, match="at least 2 rolls"):
        M.real_halves(np.zeros((1, 4, 3)))


def test_roll_discriminative_score_scores_binary_rolls_and_real_halves(monkeypatch):
    from lightning_gen.metrics import timegan

    calls = []

    def record(real, fake, iterations, batch_size, repeats, seed, device):
        calls.append((len(real), len(fake), set(np.unique(fake).tolist()), iterations, repeats))
        return float(len(calls)), 0.0

    monkeypatch.setattr(timegan, "discriminative_score", record)
    real = (np.random.default_rng(0).random((10, 6, 4)) < 0.5).astype(np.float32)
    out = M.roll_discriminative_score(real, np.full((8, 6, 4), 0.7, np.float32), iterations=5, repeats=2)
    # generated against all real rolls, then one half of the real rolls against the other; probabilities
    # thresholded to binary rolls first
    assert calls == [(8, 8, {1.0}, 5, 2), (5, 5, {0.0, 1.0}, 5, 2)]  # as many real rolls as fake ones
    assert out["discriminative"] == {"generated": 1.0, "generated_std": 0.0, "real": 2.0, "real_std": 0.0}


@pytest.mark.slow
def test_roll_discriminative_score_tells_silence_from_notes():
    rng = np.random.default_rng(0)
    real = (rng.random((40, 6, 8)) < 0.5).astype(np.float32)
    out = M.roll_discriminative_score(real, np.zeros_like(real), iterations=300, seed=0)["discriminative"]
    assert out["generated"] == 0.5  # silence is easy to tell from notes
    assert out["real"] < out["generated"]


def test_common_key_shift_moves_to_c_major_or_a_minor_within_the_range():
    from lightning_gen.data.chorales import common_key_shift

    notes = np.array([[62.0, 0, 1], [74.0, 1, 1]], np.float32)  # D4, D5: a chorale in D
    assert common_key_shift(notes, tonic=2, minor=0, pitch_low=36, pitch_high=88, name="x") == -2
    assert common_key_shift(notes, tonic=2, minor=1, pitch_low=36, pitch_high=88, name="x") == -5  # D minor -> A
    assert common_key_shift(notes, tonic=7, minor=0, pitch_low=36, pitch_high=88, name="x") == 5  # G -> C
    assert common_key_shift(notes, tonic=7, minor=0, pitch_low=50, pitch_high=76, name="x") == -7  # +5 leaves it
    with pytest.raises(ValueError, match="does not fit"):
        common_key_shift(notes, tonic=7, minor=0, pitch_low=62, pitch_high=74, name="x")


def test_transposed_chorales_and_back_to_written_keys():
    from lightning_gen.data import ChoralesDataModule
    from lightning_gen.music import shift_rolls

    dm = ChoralesDataModule(pitch_low=55, pitch_high=79, transpose=True, progress=False)
    notes = [np.array([[62.0, 0, 1], [66.0, 0.5, 0.5]], np.float32), np.array([[69.0, 0, 1]], np.float32)]
    keys = np.array([[2, 0], [9, 1]])  # D major, A minor
    d_major, a_minor = dm._to_rolls(["d", "a"], notes, keys)
    assert np.argwhere(d_major[:, :]).tolist() == [[0, 5], [1, 5], [1, 9]]  # D4 -> C4 (col 5), F#4 -> E4
    assert np.argwhere(a_minor).tolist() == [[0, 14], [1, 14]]  # already in A minor: unmoved
    assert dm.shifts == {"d": -2, "a": 0}
    dm.names["train"] = ["d"]
    back = dm.to_written_keys(d_major[None].astype(np.float32))
    assert np.argwhere(back[0]).tolist() == [[0, 7], [1, 7], [1, 11]]  # D4, F#4 again
    assert np.argwhere(shift_rolls(d_major[None], -6)[0]).tolist() == [[1, 3]]  # C4 falls off; E4 -> A#3
    with pytest.raises(ValueError, match="setup"):
        ChoralesDataModule(transpose=True).to_written_keys(back)


def test_music_statistics_callback_logs_generated_and_real_figures():
    from types import SimpleNamespace

    import torch

    from lightning_gen.metrics.music_logging import MusicStatistics

    real = np.stack([roll_of([[0, 7, 12], [0, 7, 14], [2, 9, 16], [2, 9, 14]])] * 6)  # (6, 4, 25)
    logged = {}
    module = SimpleNamespace(
        device=torch.device("cpu"),
        sample=lambda n, length: torch.ones(n, length, 25),  # every pitch held: a drone
        log_dict=lambda values, **kwargs: logged.update(values),
    )
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(pitch_low=60, splits={"val": real}),
        sanity_checking=False,
        current_epoch=1,
        fast_dev_run=False,
    )
    MusicStatistics(every_n_epochs=2, num_samples=3).on_validation_epoch_end(trainer, module)
    assert logged["val/music/top_motion"] == 0.0 and logged["val/music/top_motion_real"] == 2.0
    assert logged["val/music/drone_share"] == 1.0 and logged["val/music/notes_per_step_real"] == 3.0
    logged.clear()
    trainer.current_epoch = 2  # not an N-th epoch
    MusicStatistics(every_n_epochs=2).on_validation_epoch_end(trainer, module)
    assert logged == {}
    trainer.datamodule = SimpleNamespace(splits={"val": real})  # no pitch_low: not piano-roll data
    with pytest.raises(ValueError, match="piano-roll data"):
        MusicStatistics(every_n_epochs=1).on_validation_epoch_end(trainer, module)


def test_evaluate_gives_the_roll_discriminative_score_its_real_halves_figure(monkeypatch):
    from types import SimpleNamespace

    from lightning_gen.jobs.evaluate.options import TimeGANSettings
    from lightning_gen.jobs.evaluate.scores import sequence_metrics
    from lightning_gen.metrics import timegan

    sizes = []

    def fake_score(real, fake, iterations, batch_size, repeats, seed, device, **lengths):
        sizes.append((len(real), len(fake)))
        return 0.4 if len(sizes) == 1 else 0.05, 0.0

    monkeypatch.setattr(timegan, "discriminative_score", fake_score)
    real = (np.random.default_rng(0).random((12, 4, 6)) < 0.4).astype(np.float32)
    rolls = SimpleNamespace(scale_data=False, pitch_low=60, data_min=None, data_max=None)
    settings = TimeGANSettings(disc_iterations=3, pred_iterations=3, repeats=1)
    out, _ = sequence_metrics(["discriminative"], real, real[::-1].copy(), rolls, settings)
    assert out["discriminative"]["value"] == 0.4 and out["discriminative"]["reference_value"] == 0.05
    assert sizes == [(12, 12), (6, 6)]  # then one half of the real windows against the other


def test_wav_of_a_roll_sounds_its_note(tmp_path):
    from scipy.io import wavfile

    from lightning_gen.music import write_wav

    roll = np.zeros((3, 13), np.float32)
    roll[:2, 9] = 1  # A4 (pitch_low 60 + 9) for two eighths = one second at 60 quarters a minute; then silence
    rate, audio = wavfile.read(write_wav(roll, tmp_path / "a.wav", pitch_low=60, tempo=60, rate=8000))
    assert rate == 8000 and audio.dtype == np.int16 and len(audio) == 12001
    sounding = audio[:8000].astype(np.float64)
    assert np.fft.rfftfreq(8000, 1 / 8000)[np.abs(np.fft.rfft(sounding)).argmax()] == pytest.approx(440, abs=1)
    assert np.abs(audio[8001:]).max() == 0  # the last step is silent


def test_roll_samples_write_wavs_only_when_asked(tmp_path):
    from lightning_gen.music import write_roll_samples

    rolls = np.zeros((3, 4, 13), np.float32)
    rolls[:, :, 9] = 1
    written = write_roll_samples(rolls, str(tmp_path / "r.npz"), pitch_low=60, max_files=2, max_audio_files=1)
    assert sorted(os.listdir(written["midi"])) == ["sample_000.mid", "sample_000.wav", "sample_001.mid"]
