"""Sequence metrics: TimeGAN scores, RBF MMD, music statistics on a hand-made piano roll, bad input."""

import numpy as np
import pytest

from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.metrics.music import (
    compare_music_statistics,
    music_statistics,
    note_onsets,
    pitch_histogram_distance,
)
from lightning_gen.metrics.timegan import (
    _hidden,
    discriminative_score,
    minmax_scale,
    out_of_range_share,
    predictive_score,
    scoring_space,
    sequence_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def sines(n: int, seq_len: int = 12, dim: int = 4, seed: int = 0) -> np.ndarray:
    """TimeGAN-style sines (freq, phase ~ U(0, 0.1)), scaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    freq, phase = rng.uniform(0, 0.1, (n, 1, dim)), rng.uniform(0, 0.1, (n, 1, dim))
    x = np.sin(freq * np.arange(seq_len)[None, :, None] + phase)
    return minmax_scale((x + 1) / 2)[0]


def test_sequence_scores_runs_the_timegan_protocol_by_default(monkeypatch):
    """``lightning-gen evaluate`` and bench_sines.py go through sequence_scores: with its defaults each score
    runs the reference's iterations (2,000 / 5,000), batch 128 and 10 repeats, the predictor also on real data."""
    from lightning_gen.metrics import timegan

    calls = []

    def record(name):
        def score(real, fake, iterations, batch_size, repeats, seed, device):
            calls.append((name, iterations, batch_size, repeats, fake is real))
            return 0.0, 0.0

        return score

    monkeypatch.setattr(timegan, "discriminative_score", record("disc"))
    monkeypatch.setattr(timegan, "predictive_score", record("pred"))
    sequence_scores(sines(8), sines(8, seed=1))
    assert calls == [("disc", 2000, 128, 10, False), ("pred", 5000, 128, 10, False), ("pred", 5000, 128, 10, True)]
    assert _hidden(5) == 2 and _hidden(1) == 1  # the post-hoc GRU: int(D / 2) units, at least one


# Small iteration counts keep these fast; 32 features give the post-hoc GRU 16 units, enough to learn in 100
# steps what the reference's 2,000 steps teach the 2-unit GRU of the 5-feature sines.
def test_discriminative_score_two_draws_of_sines_near_zero():
    real, fake = sines(400, dim=32, seed=0), sines(400, dim=32, seed=1)
    mean, std = discriminative_score(real, fake, iterations=100, batch_size=64, repeats=1)
    assert 0.0 <= mean < 0.15 and std == 0.0


def test_discriminative_score_sines_vs_noise_near_half():
    real = sines(400, dim=32, seed=0)
    noise = np.random.default_rng(2).uniform(0, 1, real.shape).astype(np.float32)
    mean, _ = discriminative_score(real, noise, iterations=100, batch_size=64, repeats=1)
    assert mean > 0.35


def test_discriminative_score_is_seeded():
    real, fake = sines(40, seed=0), sines(40, seed=3)
    kwargs = dict(iterations=5, batch_size=16, repeats=2, seed=5)
    assert discriminative_score(real, fake, **kwargs) == discriminative_score(real, fake, **kwargs)


def test_predictive_score_lower_when_trained_on_matching_data():
    real = sines(200, seed=0)
    noise = np.random.default_rng(2).uniform(0, 1, real.shape).astype(np.float32)
    good, _ = predictive_score(real, sines(200, seed=1), iterations=100, batch_size=64, repeats=1)
    bad, _ = predictive_score(real, noise, iterations=100, batch_size=64, repeats=1)
    assert 0 < good < bad


def test_mmd_identical_sets_is_zero_and_grows_with_shift():
    x = sines(64)
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)
    near, far = mmd_rbf(x, x + 0.05, gamma=1.0), mmd_rbf(x, x + 0.5, gamma=1.0)
    assert 0 < near < far


def test_minmax_scale_uses_the_real_range():
    real = np.stack([np.linspace(2, 4, 6)] * 3)[:, :, None]  # (3, 6, 1) in [2, 4]
    scaled_real, scaled_fake = minmax_scale(real, real + 1)
    assert scaled_real.min() == pytest.approx(0) and scaled_real.max() == pytest.approx(1, abs=1e-6)
    assert scaled_fake.max() == pytest.approx(1.5, abs=1e-6)


@pytest.mark.parametrize(
    "fake, match",
    [
        (np.zeros((10, 12)), r"expected sequences shaped \(N, T, D\)"),
        (np.full((10, 12, 4), np.nan), "NaN"),
        (np.zeros((10, 12, 3)), "expected 4 features"),
        (np.zeros((2, 12, 4)), "at least 5 sequences"),
    ],
)
def test_discriminative_bad_input(fake, match):
    with pytest.raises(ValueError, match=match):
        discriminative_score(sines(20), fake, iterations=1, repeats=1)


def test_samples_outside_the_real_range_are_scored_not_refused():
    real, fake = sines(20), sines(20) * 3 - 1  # finite, far outside [0, 1]
    assert np.isfinite(predictive_score(real, fake, iterations=2, repeats=1)[0])
    scores, info = sequence_scores(real, fake, ("discriminative", "predictive"), 2, 2, repeats=1)
    assert np.isfinite(scores["discriminative"]["value"]) and np.isfinite(scores["predictive"]["value"])
    assert 0.5 < info["out_of_range_share"] <= 1.0


def test_scoring_space_keeps_unit_range_data_and_scales_the_rest():
    real = sines(20) * 0.5 + 0.5  # in [0.5, 1], like TimeGAN's sines
    fake = real + 0.3  # partly above 1: never clipped
    r, f, scaling = scoring_space(real, fake)
    np.testing.assert_array_equal(r, real)
    np.testing.assert_array_equal(f, fake)
    assert scaling.startswith("none")
    assert out_of_range_share(real, fake) == pytest.approx(float((fake > real.max(axis=(0, 1))).mean()))
    r, f, scaling = scoring_space(real * 10, fake * 10)  # outside [0, 1]: min-max with the real range
    assert r.min() == pytest.approx(0, abs=1e-6) and r.max() == pytest.approx(1, abs=1e-6)
    assert f.max() > 1 and scaling.startswith("min-max")


def test_predictive_bad_input():
    with pytest.raises(ValueError, match="at least 2 features"):
        predictive_score(sines(20, dim=1), sines(20, dim=1), iterations=1, repeats=1)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        predictive_score(sines(20), sines(20), iterations=0)


def hand_made_roll() -> np.ndarray:
    """8 steps, pitches 60..72 (C4..C5). Onset tones in order: C E G (chord), D, C, D, C, C#; last step silent."""
    roll = np.zeros((8, 13), dtype=np.float32)
    roll[0:2, [0, 4, 7]] = 1  # C major triad held for two steps
    roll[2, 2] = roll[3, 0] = roll[4, 2] = roll[5, 0] = roll[6, 1] = 1
    return roll


def test_music_statistics_on_a_hand_made_roll():
    stats = music_statistics(hand_made_roll(), pitch_low=60)
    # tones: 60 64 67 62 60 62 60 61
    assert stats["polyphony"] == pytest.approx(1 / 6)  # 6 onset steps, one of them a chord
    assert stats["scale_consistency"] == pytest.approx(7 / 8)  # C# is outside every scale holding C, D, E, G
    assert stats["repetitions"] == 1  # (62, 60) at positions 3 and 5; nothing longer repeats
    assert stats["tone_span"] == 7  # C4..G4
    assert stats["notes_per_step"] == pytest.approx(11 / 8)
    assert stats["empty_fraction"] == 0.0


def test_music_statistics_skip_empty_rolls_for_tone_statistics():
    rolls = np.stack([hand_made_roll(), np.zeros((8, 13), np.float32)])
    stats = music_statistics(rolls, pitch_low=60)
    assert stats["tone_span"] == 7 and stats["empty_fraction"] == 0.5
    assert stats["notes_per_step"] == pytest.approx(11 / 16)


def test_pitch_histogram_distance_and_comparison():
    roll = hand_made_roll()[None]
    shifted = roll[:, :, ::-1].copy()  # pitches mirrored (columns 12-c): none of its onset pitches is in roll
    assert pitch_histogram_distance(roll, roll) == 0.0
    assert pitch_histogram_distance(roll, shifted) == pytest.approx(1.0)
    table = compare_music_statistics(roll, shifted, pitch_low=60)
    assert table["tone_span"] == {"generated": 7.0, "real": 7.0}
    assert table["pitch_histogram_distance"]["generated"] == pytest.approx(1.0)


def test_note_onsets_count_a_held_note_once_and_a_repeated_one_twice():
    roll = np.zeros((6, 2), dtype=bool)
    roll[0:3, 0] = True  # held three steps: one onset
    roll[1, 1] = roll[3, 1] = roll[4, 1] = True  # played, silent, played twice in a row (= held): two onsets
    assert np.argwhere(note_onsets(roll)).tolist() == [[0, 0], [1, 1], [3, 1]]
    assert note_onsets(np.stack([roll, roll])).sum() == 6  # (N, T, P): each roll on its own
    held, repeated = np.zeros((1, 4, 2), np.float32), np.zeros((1, 4, 2), np.float32)
    held[0, :, 0] = 1  # one onset at pitch 0
    repeated[0, [0, 2], 0] = repeated[0, [0, 2], 1] = 1  # two onsets at each pitch: histogram (.5, .5)
    assert pitch_histogram_distance(held, repeated) == pytest.approx(0.5)


def test_piano_roll_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        music_statistics(hand_made_roll() * 2)
    with pytest.raises(ValueError, match="piano rolls"):
        music_statistics(np.zeros(8))
