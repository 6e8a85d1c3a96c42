"""TimeGAN's stocks and energy DataModules on small CSV files the tests write: the reference preprocessing, the
checksum, the download and their errors."""

import hashlib
import io
import urllib.error

import numpy as np
import pytest

from lightning_gen.data import EnergyDataModule, StocksDataModule
from lightning_gen.data.timegan_data import timegan_windows

STOCK_HEADER = "Open,High,Low,Close,Adj_Close,Volume"


def write_csv(path, rows: int = 40, cols: int = 6, seed: int = 0, header: str | None = STOCK_HEADER) -> np.ndarray:
    values = np.round(np.random.default_rng(seed).uniform(1, 100, size=(rows, cols)), 4)
    values[:, -1] *= 1e6  # a volume-like column of another magnitude
    lines = ([header] if header else []) + [",".join(f"{v:.4f}" for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")
    return values


def reference_loading(values: np.ndarray, seq_len: int) -> np.ndarray:
    """TimeGAN's ``real_data_loading`` (jsyoon0823/TimeGAN, data_loading.py) in logic, without its shuffle."""
    ori = values[::-1]
    ori = (ori - np.min(ori, 0)) / (np.max(ori, 0) - np.min(ori, 0) + 1e-7)
    return np.asarray([ori[i : i + seq_len] for i in range(0, len(ori) - seq_len)])


def test_stocks_follow_the_reference_preprocessing(tmp_path):
    values = write_csv(tmp_path / "stock_data.csv")
    dm = StocksDataModule(data_dir=str(tmp_path), sha256=None, window_length=8, batch_size=4, download=False)
    windows = dm.all_windows()
    assert windows.shape == (40 - 8, 8, 6)  # L - T windows: the reference leaves the last one out
    np.testing.assert_allclose(windows, reference_loading(values, 8), atol=1e-6)
    np.testing.assert_allclose(dm.data_min, values.min(axis=0), rtol=1e-6)  # the whole file's range
    np.testing.assert_allclose(dm.data_max, values.max(axis=0), rtol=1e-6)
    splits = dm.splits
    assert sum(len(s) for s in splits.values()) == len(windows)
    assert all(0.0 <= s.min() and s.max() <= 1.0 for s in splits.values())
    # the splits are a shuffle of the windows, and the model's samples come back in the file's units
    first = splits["train"][0]
    assert any(np.array_equal(first, w) for w in windows) and not np.array_equal(splits["train"][:5], windows[:5])
    back = dm.inverse_scale(windows[:1])
    assert np.abs(back - values[::-1][:8][None]).max() < 1e-3 * np.abs(values).max()
    x = next(iter(dm.train_dataloader()))[0]
    assert tuple(x.shape) == (4, 8, 6) and dm.dims == (8, 6)


def test_reverse_false_keeps_the_file_order(tmp_path):
    values = write_csv(tmp_path / "stock_data.csv", rows=12)
    windows, lo, hi = timegan_windows(values, 4, reverse=False)
    scaled = (values - values.min(0)) / (values.max(0) - values.min(0) + 1e-7)
    np.testing.assert_allclose(windows[0], scaled[:4], atol=1e-6)
    assert len(windows) == 8


def test_checksum_is_checked(tmp_path):
    path = tmp_path / "mine.csv"
    write_csv(path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert StocksDataModule(path=str(path), sha256=good, window_length=8, batch_size=4).all_windows().shape[0] == 32
    with pytest.raises(ValueError, match="data.sha256=null") as err:
        StocksDataModule(path=str(path), window_length=8, batch_size=4).setup()  # the reference file's checksum
    assert "134b8a00" in str(err.value) and "raw.githubusercontent.com/jsyoon0823/TimeGAN" in str(err.value)


def test_a_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.path") as err:
        EnergyDataModule(data_dir=str(tmp_path / "nowhere"), download=False).setup()
    assert "energy_data.csv" in str(err.value) and "jsyoon0823/TimeGAN" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StocksDataModule(path=str(tmp_path / "absent.csv")).setup()


def test_download_writes_the_checked_file(tmp_path, monkeypatch):
    source = tmp_path / "source.csv"
    write_csv(source)
    content = source.read_bytes()
    asked = []

    def fake_urlopen(url, timeout):
        asked.append(url)
        return io.BytesIO(content)

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    dm = StocksDataModule(data_dir=str(tmp_path / "data"), sha256=hashlib.sha256(content).hexdigest(), window_length=8,
                          batch_size=4)  # fmt: skip
    assert dm.all_windows().shape == (32, 8, 6)
    assert asked == ["https://raw.githubusercontent.com/jsyoon0823/TimeGAN/master/data/stock_data.csv"]
    assert (tmp_path / "data" / "stock_data.csv").read_bytes() == content
    assert not (tmp_path / "data" / "stock_data.csv.part").exists()


def test_no_network_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded") as err:
        StocksDataModule(data_dir=str(tmp_path)).setup()
    assert str(tmp_path / "stock_data.csv") in str(err.value)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_wrong_width_and_short_files_are_refused(tmp_path):
    write_csv(tmp_path / "energy_data.csv", cols=6)
    with pytest.raises(ValueError, match="expects 28"):
        EnergyDataModule(data_dir=str(tmp_path), sha256=None).setup()
    write_csv(tmp_path / "stock_data.csv", rows=5)
    with pytest.raises(ValueError, match="shorter window_length"):
        StocksDataModule(data_dir=str(tmp_path), sha256=None).setup()


def test_energy_has_28_features(tmp_path):
    write_csv(tmp_path / "energy_data.csv", rows=30, cols=28, header=",".join(f"c{i}" for i in range(28)))
    dm = EnergyDataModule(data_dir=str(tmp_path), sha256=None, window_length=6, batch_size=4)
    assert dm.dims == (6, 28) and len(dm.all_windows()) == 24
