"""Sequence data: TimeGAN sines, the Bach chorales cache and piano rolls, user arrays, and their errors."""

import numpy as np
import pytest
import torch

from lightning_gen import music
from lightning_gen.data import ArraySequenceDataModule, ChoralesDataModule, SinesDataModule
from lightning_gen.data.sequence_base import sliding_windows
from lightning_gen.data.sines import make_sines


def reference_sines(no, seq_len, dim):
    """TimeGAN's ``sine_data_generation`` (jsyoon0823/TimeGAN, data_loading.py), verbatim in logic."""
    data = []
    for _ in range(no):
        temp = []
        for _ in range(dim):
            freq = np.random.uniform(0, 0.1)
            phase = np.random.uniform(0, 0.1)
            temp.append([np.sin(freq * j + phase) for j in range(seq_len)])
        data.append((np.transpose(np.asarray(temp)) + 1) * 0.5)
    return np.asarray(data)


def test_make_sines_matches_reference_and_statistics():
    np.random.seed(7)
    ref = reference_sines(20, 24, 5)
    x = make_sines(20, 24, 5, seed=7)
    assert x.shape == (20, 24, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x, ref, atol=1e-6)
    big = make_sines(2000, 24, 5, seed=0)
    assert big.min() >= 0.5 - 1e-6 and big.max() <= 1.0 + 1e-6
    # invert x_t = (sin(f t + phase) + 1) / 2 at t = 0 and 1: both stay inside [0, 0.1]
    phase = np.arcsin(2.0 * big[:, 0].astype(np.float64) - 1.0)  # (N, D)
    freq = np.arcsin(2.0 * big[:, 1].astype(np.float64) - 1.0) - phase
    assert phase.min() > -1e-3 and phase.max() < 0.1 + 1e-3
    assert freq.min() > -1e-3 and freq.max() < 0.1 + 1e-3
    assert abs(freq.mean() - 0.05) < 0.005 and abs(phase.mean() - 0.05) < 0.005  # uniform draws
    assert not np.allclose(make_sines(5, seed=1), make_sines(5, seed=2))


def test_sines_datamodule_splits_scaling_and_batches():
    dm = SinesDataModule(num_sequences=100, seq_len=8, dim=3, batch_size=4, val_fraction=0.1, test_fraction=0.2)
    dm.setup()
    assert {k: len(v) for k, v in dm.splits.items()} == {"train": 70, "val": 10, "test": 20}
    assert dm.dims == (8, 3) and dm.seq_len == 8 and dm.data_dim == 3
    assert dm.splits["train"].min() >= 0 and dm.splits["train"].max() <= 1
    (x,) = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 8, 3) and x.dtype == torch.float32
    raw = make_sines(100, 8, 3, seed=0)
    back = dm.inverse_scale(dm.splits["train"])
    assert np.isin(np.round(back[:, 0, 0], 5), np.round(raw[:, 0, 0], 5)).all()  # original values recovered


@pytest.fixture(scope="module")
def two_chorales(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    names, notes = music.load_chorale_notes(root, max_chorales=2, progress=False)
    return root, names, notes


def test_chorale_cache_round_trip(two_chorales, monkeypatch):
    root, names, notes = two_chorales
    assert len(names) == 2 and (root / "chorales" / "notes_2.npz").exists()
    assert all(n.shape[1] == 3 and len(n) > 50 for n in notes)
    monkeypatch.setattr(music, "parse_chorales", lambda *a, **k: pytest.fail("the cache was not used"))
    names2, notes2 = music.load_chorale_notes(root, max_chorales=2, progress=False)
    assert names2 == names
    for a, b in zip(notes, notes2):
        np.testing.assert_array_equal(a, b)
    # notes -> roll -> notes -> roll is stable (a roll merges repeated notes, so compare rolls)
    roll = music.notes_to_roll(notes[0], 36, 88, step=0.5)
    assert roll.shape[1] == 53 and set(np.unique(roll)) <= {0, 1} and roll.sum(1).max() <= 6
    again = music.notes_to_roll(music.roll_to_notes(roll, 36, 0.5), 36, 88, 0.5)
    np.testing.assert_array_equal(roll, again)


def test_chorales_datamodule_split_by_chorale(two_chorales):
    root, names, _ = two_chorales
    dm = ChoralesDataModule(
        data_dir=str(root), max_chorales=2, window_length=16, stride=8, batch_size=2, val_fraction=0.5,
        test_fraction=0.0, progress=False,
    )  # fmt: skip
    dm.setup()
    assert sorted(dm.names["train"] + dm.names["val"]) == sorted(names)
    assert set(dm.names["train"]).isdisjoint(dm.names["val"])
    assert dm.splits["train"].shape[1:] == (16, 53) and dm.pitch_low == 36
    assert set(np.unique(dm.splits["train"])) <= {0.0, 1.0}


def test_chorales_errors(two_chorales):
    root, names, notes = two_chorales
    with pytest.raises(ValueError, match=r"would drop \d+ of \d+ notes"):
        music.notes_to_roll(notes[0], 60, 72, 0.5)
    dm = ChoralesDataModule(data_dir=str(root), max_chorales=2, window_length=100000, batch_size=1,
                            val_fraction=0.5, test_fraction=0.0, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="window_length=100000"):
        dm.setup()
    dm = ChoralesDataModule(data_dir=str(root), max_chorales=2, pitch_low=60, pitch_high=72, batch_size=1,
                            val_fraction=0.5, test_fraction=0.0, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="would drop"):
        dm.setup()


def test_array_datamodule_sequences_series_and_scale(tmp_path):
    rng = np.random.default_rng(0)
    seqs = rng.normal(10.0, 3.0, size=(40, 8, 2))
    np.save(tmp_path / "seqs.npy", seqs)
    dm = ArraySequenceDataModule(str(tmp_path / "seqs.npy"), batch_size=4)
    dm.setup()
    assert dm.dims == (8, 2) and 0 <= dm.splits["train"].min() and dm.splits["train"].max() <= 1
    np.testing.assert_allclose(dm.inverse_scale(dm.splits["train"]).min(axis=(0, 1)), dm.data_min, rtol=1e-5)
    series = np.cumsum(rng.normal(size=(60, 3)), axis=0)
    np.savetxt(tmp_path / "series.csv", series, delimiter=",", header="a,b,c", comments="")
    dm = ArraySequenceDataModule(str(tmp_path / "series.csv"), window_length=10, stride=2, batch_size=4)
    dm.setup()
    assert sum(len(v) for v in dm.splits.values()) == 26 and dm.dims == (10, 3)  # (60 - 10) / 2 + 1 windows
    np.savez(tmp_path / "two.npz", x=seqs, y=seqs[:, :, :1])
    dm = ArraySequenceDataModule(str(tmp_path / "two.npz"), key="y", batch_size=4)
    dm.setup()
    assert dm.data_dim == 1


def test_array_datamodule_errors(tmp_path):
    bad = np.ones((10, 8, 2))
    bad[3, 2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="1 NaN"):
        ArraySequenceDataModule(str(tmp_path / "nan.npy"), batch_size=2).setup()
    np.save(tmp_path / "rank4.npy", np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"expected sequences \(N, T, D\) or one series \(L, D\)"):
        ArraySequenceDataModule(str(tmp_path / "rank4.npy"), batch_size=2).setup()
    np.save(tmp_path / "series.npy", np.ones((20, 2)))
    with pytest.raises(ValueError, match="window_length=50 is longer than"):
        ArraySequenceDataModule(str(tmp_path / "series.npy"), window_length=50, batch_size=2).setup()
    with pytest.raises(ValueError, match="set data.window_length"):
        ArraySequenceDataModule(str(tmp_path / "series.npy"), batch_size=2).setup()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ArraySequenceDataModule(str(tmp_path / "missing.npy")).setup()
    with pytest.raises(ValueError, match="must be >= 1"):
        sliding_windows(np.ones((5, 1)), 0)
