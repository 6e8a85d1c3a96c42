"""TimeGAN's two real benchmark data sets, stocks and energy, on the reference preprocessing exactly.

Yoon, Jarrett and van der Schaar, "Time-series Generative Adversarial Networks" (NeurIPS 2019), Table 2; reference
code github.com/jsyoon0823/TimeGAN, ``data_loading.py`` (``real_data_loading``): read the CSV with its header row,
reverse the rows (``ori_data[::-1]``), min-max scale every column over the whole file (``MinMaxScaler``:
``(x - min) / (max - min + 1e-7)``), cut windows ``ori_data[i : i + seq_len]`` for ``i in range(len - seq_len)``
(stride 1; the last possible window is not cut), shuffle them. The discriminative and predictive scores of the paper
(and of Diffusion-TS, Yuan and Qiao, ICLR 2024, Table 1) are computed on those scaled windows, so that scaled space
is the evaluation space here too: ``data_min`` / ``data_max`` are the whole file's, the models return samples in the
file's units, and ``lightning-gen evaluate`` scales both back into the reference space with the same range.

The files are the reference repository's (Apache-2.0): ``stock_data.csv`` (Google daily prices, 3,685 x 6) and
``energy_data.csv`` (UCI "Appliances energy prediction", 19,735 x 28). When ``path`` is not given they are read from
``data_dir``, downloaded there from the reference repository when missing, and checked against their sha256.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from lightning_gen.data.arrays import read_csv
from lightning_gen.data.sequence_base import SequenceDataModule, sliding_windows
from lightning_gen.errors import check_folder
from lightning_gen.scaling import min_max_scale

REFERENCE_URL = "https://raw.githubusercontent.com/jsyoon0823/TimeGAN/master/data/"


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def timegan_windows(series: np.ndarray, window_length: int, reverse: bool = True) -> tuple[np.ndarray, ...]:
    """TimeGAN's ``real_data_loading`` without its shuffle: (windows (N, window_length, D) float32 in [0, 1], the
    series' per-column min (D,), max (D,)), with N = L - window_length windows of the (reversed) series."""
    if reverse:
        series = series[::-1]  # the reference's "flip to chronological" (the stock file is already oldest first)
    lo, hi = series.min(axis=0), series.max(axis=0)  # (D,) each, over the whole file
    if len(series) <= window_length:
        raise ValueError(
            f"The series has {len(series)} rows; TimeGAN's windows of {window_length} steps need more: use a shorter "
            "window_length."
        )
    scaled = min_max_scale(series, lo, hi)  # (L, D)
    # range(0, L - window_length): the reference leaves out the last window, so N = L - window_length
    windows = sliding_windows(scaled[:-1], window_length)  # (L - window_length, window_length, D)
    return windows, lo.astype(np.float32), hi.astype(np.float32)


class TimeGANCSVDataModule(SequenceDataModule):
    """Base of :class:`StocksDataModule` and :class:`EnergyDataModule`: a reference CSV on TimeGAN's protocol.

    The windows are split at random (``seed``) into train / val / test; every split is scaled with the whole file's
    per-column range (TimeGAN's scaled space; ``data_min`` / ``data_max``), not the training split's as other
    sequence DataModules do. TimeGAN trains and scores on every window: ``all_windows()`` returns them, in the
    scaled space, for a benchmark on that protocol (``benchmarks/bench_timegan_data.py``).

    Args:
        path: a local copy of the CSV (default: ``data_dir`` / the reference file name).
        data_dir: where the file is looked for and downloaded to.
        download: download the file from the reference repository when it is missing.
        sha256: the file's expected sha256 (default: the reference file's); None skips the check (another file).
        window_length: steps per window (TimeGAN: 24).
        reverse: reverse the rows first, as the reference does (keep it to compare with published scores).
        **kwargs: see :class:`SequenceDataModule`.
    """

    filename = ""  # the reference file's name
    reference_sha256 = ""
    num_features = 0
    #: what the evaluate report says about the space its scores are in
    scaling_note = (
        "TimeGAN's scaled space: min-max per column over the whole file (reference real_data_loading), the space of "
        "the published scores"
    )

    def __init__(
        self,
        path: str | None = None,
        data_dir: str = "data",
        download: bool = True,
        sha256: str | None = "reference",
        window_length: int = 24,
        reverse: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)  # batch_size, val_fraction, test_fraction, num_workers, seed
        if window_length < 2:
            raise ValueError(f"window_length must be >= 2, got {window_length}.")
        if path is None:
            check_folder("data_dir", data_dir)  # the file is downloaded there: say so before the download
        self.save_hyperparameters()
        self.path, self.data_dir, self.download = path, data_dir, download
        self.sha256 = self.reference_sha256 if sha256 == "reference" else sha256
        self.window_length, self.reverse = window_length, reverse
        self._windows: np.ndarray | None = None

    @property
    def file(self) -> Path:
        """Where the CSV is read from."""
        return Path(self.path) if self.path else Path(self.data_dir) / self.filename

    @property
    def url(self) -> str:
        return REFERENCE_URL + self.filename

    def fetch(self) -> Path:
        """The CSV, downloaded into ``data_dir`` first when it is missing (and allowed), checked against ``sha256``."""
        file = self.file
        if not file.is_file():
            if self.path or not self.download:
                raise FileNotFoundError(
                    f"{file} does not exist. Put TimeGAN's {self.filename} there (from {self.url}), or set "
                    "data.path to a copy of it" + ("" if self.path else ", or set data.download=true") + "."
                )
            self._download(file)
        if self.sha256 is not None:
            found = sha256_of(file)
            if found != self.sha256:
                raise ValueError(
                    f"{file} has sha256 {found}, not {self.sha256} (TimeGAN's {self.filename}): it is another or a "
                    f"damaged file. Replace it with the file from {self.url}, or set data.sha256=null to use this file "
                    "anyway (its scores are then not on the published data)."
                )
        return file

    def _download(self, file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(file.name + ".part")
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response, open(partial, "wb") as f:
                f.write(response.read())
        except (urllib.error.URLError, OSError) as err:
            partial.unlink(missing_ok=True)
            raise FileNotFoundError(
                f"{file} is missing and could not be downloaded from {self.url} ({err}). Download it on a machine "
                f"with internet and put it at {file}, or set data.path to a copy of it."
            ) from None
        os.replace(partial, file)  # a complete file or none: an interrupted download leaves no damaged CSV

    def series(self) -> np.ndarray:
        """The file's rows (L, D) float64 as written (oldest first for stocks), checked for width and NaN."""
        file = self.fetch()
        data = read_csv(file)
        if self.num_features and data.shape[1] != self.num_features:
            raise ValueError(
                f"{file} has {data.shape[1]} columns; {type(self).__name__} expects {self.num_features} "
                f"(TimeGAN's {self.filename})."
            )
        if not np.isfinite(data).all():
            raise ValueError(f"{file} holds {int((~np.isfinite(data)).sum())} empty or non-finite cells.")
        return data

    def all_windows(self) -> np.ndarray:
        """Every window (N, T, D) float32 in TimeGAN's scaled space, in the file's order (the splits shuffle)."""
        self.setup()
        return self._windows

    def load(self):
        raise NotImplementedError("setup() scales with the whole file's range; see all_windows().")

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self._windows, self.data_min, self.data_max = timegan_windows(self.series(), self.window_length, self.reverse)
        train, val, test = self._random_split(self._windows)  # shuffled, as the reference shuffles its windows
        self.splits = {"train": train, "val": val, "test": test}
        if len(train) < self.batch_size:
            raise ValueError(
                f"The training split has {len(train)} windows, fewer than batch_size={self.batch_size}: lower "
                "data.batch_size or use a longer file."
            )


class StocksDataModule(TimeGANCSVDataModule):
    """TimeGAN's "Stocks": Google's daily Open, High, Low, Close, Adj_Close and Volume, 2004-2019 (3,685 rows,
    6 features), 3,661 windows of 24 steps on the reference protocol. See :class:`TimeGANCSVDataModule`."""

    filename = "stock_data.csv"
    reference_sha256 = "134b8a00eb4eefa3242dd7ae85144082da80dedf75a1a656d5d08f97cd95277a"
    num_features = 6


class EnergyDataModule(TimeGANCSVDataModule):
    """TimeGAN's "Energy": UCI "Appliances energy prediction" (Candanedo et al. 2017), 10-minute readings of 28
    variables (19,735 rows), 19,711 windows of 24 steps on the reference protocol. See
    :class:`TimeGANCSVDataModule`."""

    filename = "energy_data.csv"
    reference_sha256 = "0869e426fd33995b4028e092e90ae75c38756172c652b287639d4415985901f2"
    num_features = 28
