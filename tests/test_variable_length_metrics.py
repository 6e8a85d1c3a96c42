"""TimeGAN's scores, MMD and the length match on sequences of different lengths: padding never scored as data."""

import numpy as np
import pytest

from lightning_gen.data.sequence_base import pad_sequences
from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.metrics.timegan import (
    discriminative_score,
    length_ks,
    out_of_range_share,
    predictive_score,
    scoring_space,
    sequence_scores,
)
from tests.variable_length_helpers import random_sequences


def padded(n=40, seed=0):
    x, lengths = pad_sequences([np.abs(s) / 10 for s in random_sequences(n, 3, low=3, high=8, seed=seed)])
    return x, lengths


def with_garbage(x, lengths, value=7.0):
    out = x.copy()
    out[~(np.arange(x.shape[1])[None] < lengths[:, None])] = value
    return out


def test_scores_ignore_what_lies_past_each_length():
    real, lengths = padded()
    fake, fake_lengths = padded(seed=1)
    kw = {"iterations": 5, "batch_size": 16, "repeats": 1, "seed": 0}
    a = discriminative_score(real, fake, real_lengths=lengths, fake_lengths=fake_lengths, **kw)
    b = discriminative_score(
        real, with_garbage(fake, fake_lengths), real_lengths=lengths, fake_lengths=fake_lengths, **kw
    )
    assert a == b
    p = predictive_score(real, fake, real_lengths=lengths, fake_lengths=fake_lengths, **kw)
    q = predictive_score(real, with_garbage(fake, fake_lengths), real_lengths=lengths, fake_lengths=fake_lengths, **kw)
    assert p == q and 0 <= p[0] < 1
    assert mmd_rbf(real, with_garbage(real, lengths), x_lengths=lengths, y_lengths=lengths) == pytest.approx(
        0, abs=1e-9
    )
    assert mmd_rbf(real, with_garbage(real, lengths)) > 0.01  # without lengths the garbage counts
    assert out_of_range_share(real, with_garbage(fake, fake_lengths), lengths, fake_lengths) == out_of_range_share(
        real, fake, lengths, fake_lengths
    )


def test_scoring_space_scales_by_real_steps_and_keeps_padding_zero():
    real, lengths = padded()
    real = real * 10 + 5  # outside [0, 1]: min-max scaled (padding 0 would widen the range if it counted)
    real = with_garbage(real, lengths, 0.0)
    r, f, how = scoring_space(real, real, real_lengths=lengths, fake_lengths=lengths)
    mask = np.arange(real.shape[1])[None] < lengths[:, None]
    assert "min-max" in how and r[mask].min() == pytest.approx(0, abs=1e-6) and r[mask].max() == pytest.approx(1, 1e-5)
    assert (r[~mask] == 0).all() and (f[~mask] == 0).all()


def test_length_ks_and_sequence_scores_report_it():
    assert length_ks([3, 4, 5], [3, 4, 5])["value"] == 0
    far = length_ks([3, 3, 4], [9, 9, 8])
    assert far["value"] == 1 and far["real_histogram"] == {3: 2, 4: 1} and far["generated_histogram"] == {8: 1, 9: 2}
    real, lengths = padded()
    fake, fake_lengths = padded(seed=1)
    out, info = sequence_scores(real, fake, ("mmd",), repeats=1, real_lengths=lengths, fake_lengths=fake_lengths)
    assert 0 <= out["length_ks"]["value"] <= 1 and out["mmd"]["value"] >= 0
    out, _ = sequence_scores(real, fake, ("mmd",), repeats=1)
    assert "length_ks" not in out


def test_bad_lengths_are_refused():
    real, lengths = padded(n=10)
    with pytest.raises(ValueError, match="outside"):
        discriminative_score(real, real, real_lengths=lengths + 100, fake_lengths=lengths, iterations=1, repeats=1)
    with pytest.raises(ValueError, match="one per sequence"):
        discriminative_score(real, real, real_lengths=lengths[:3], iterations=1, repeats=1)
    ones = np.ones_like(lengths)
    with pytest.raises(ValueError, match="length 1"):
        predictive_score(real, real, real_lengths=ones, fake_lengths=lengths, iterations=1, repeats=1)
