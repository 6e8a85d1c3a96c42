"""Density / coverage, FID-infinity and the copying tests on small synthetic feature sets."""

import numpy as np
import pytest
import torch

from lightning_gen.metrics.fidelity import density_coverage, fid_infinity, precision_recall_knn
from lightning_gen.metrics.memorization import copy_share, copying_tests, meehan_ct, pixel_space, seen_unseen


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    train, unseen, fresh = (rng.normal(size=(n, 8)) for n in (900, 150, 150))
    copies = train[rng.integers(0, len(train), 150)] + rng.normal(0, 0.01, (150, 8))
    blurred = 0.5 * fresh  # pulled to the centre: near everything, copies nothing
    collapsed = np.repeat(fresh[:3], 50, axis=0) + rng.normal(0, 0.01, (150, 8))
    return train, unseen, {"fresh": fresh, "copies": copies, "blurred": blurred, "collapsed": collapsed}


def test_density_and_coverage_separate_fidelity_from_diversity(sets):
    _, unseen, fakes = sets
    fresh, collapsed = density_coverage(unseen, fakes["fresh"]), density_coverage(unseen, fakes["collapsed"])
    assert 0.6 < fresh["density"] < 1.5 and fresh["coverage"] > 0.8 and fresh["k"] == 5
    assert collapsed["coverage"] < 0.1 < 0.8 < fresh["coverage"]
    pr = precision_recall_knn(unseen, fakes["collapsed"])
    assert pr["recall"] < 0.1 < 0.5 < pr["precision"]
    with pytest.raises(ValueError, match="more than 5 real items"):
        density_coverage(unseen[:5], fakes["fresh"])


def test_fid_infinity_extrapolates_the_small_sample_bias_away():
    rng = np.random.default_rng(1)
    real, fake = torch.from_numpy(rng.normal(size=(400, 4))), torch.from_numpy(rng.normal(size=(400, 4)))
    entry = fid_infinity(real, fake)
    fids = [p[2] for p in entry["points"]]
    assert len(fids) == 6 and entry["slope"] > 0 and abs(entry["value"]) < min(fids)  # same distribution: 0
    with pytest.raises(ValueError, match="twice the 4 feature"):
        fid_infinity(real[:9], fake[:9])


def test_copying_tests_tell_copies_from_fresh_blurred_samples(sets):
    train, unseen, fakes = sets
    verdicts = {name: copying_tests(train, unseen, x) for name, x in fakes.items()}
    assert [n for n, v in verdicts.items() if v["copying"]] == ["copies"]  # collapsed on 3 unseen items: no copy
    assert "COPYING SUSPECTED" in verdicts["copies"]["verdict"]
    assert verdicts["copies"]["ct"]["value"] < -3 < verdicts["fresh"]["ct"]["value"]
    assert (
        copy_share(train, unseen, fakes["copies"])["value"]
        > 0.9
        > 0.2
        > copy_share(train, unseen, fakes["fresh"])["value"]
    )
    seen = seen_unseen(train, unseen, fakes["blurred"])
    assert seen["seen_sets"] == 6 and seen["expected"] == pytest.approx(1 / 7) and seen["p_value"] > 0.05


def test_meehan_ct_and_pixel_space_shapes():
    rng = np.random.default_rng(2)
    train, unseen = rng.random((300, 1, 10, 10)), rng.random((60, 1, 10, 10))
    t, u, f = pixel_space(train, unseen, unseen[:20], dims=16)
    assert t.shape == (300, 16) and u.shape == (60, 16) and f.shape == (20, 16)
    entry = meehan_ct(t, u, f, cells=3)
    assert entry["cells"] == 3 and 0 <= entry["fake_share_unscored"] <= 1
