"""UCI "Japanese Vowels" (Kudo, Toyama & Shimbo 1999, "Multidimensional curve classification using passing-through
regions"): 640 utterances of 9 male speakers, 12 cepstrum coefficients per step, 7 to 29 steps, in the UEA / UCR
archive's ``.ts`` format: real multivariate sequences of different lengths, with a class (the speaker)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from lightning_gen.data.sequence_base import SequenceDataModule, check_condition, check_sequence_list
from lightning_gen.data.ts_format import read_ts

# The archive's zip (as aeon's ``load_classification`` downloads it) and the SHA-256 of the two files it holds.
URL = "https://timeseriesclassification.com/aeon-toolkit/JapaneseVowels.zip"
SHA256 = {
    "JapaneseVowels_TRAIN.ts": "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
    "JapaneseVowels_TEST.ts": "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class JapaneseVowelsDataModule(SequenceDataModule):
    """Japanese Vowels: the archive's TRAIN (270) and TEST (370) files pooled and split at random (a generative
    model wants every utterance it can get), min-max scaled per coefficient, zero-padded to the longest utterance
    with a mask of the real steps in every batch (:class:`SequenceDataModule`).

    The files are read from ``data_dir`` (``JapaneseVowels_TRAIN.ts`` and ``JapaneseVowels_TEST.ts``), or
    downloaded there from the UEA archive when missing and ``download`` is set, and checked against their
    SHA-256 (any other copy of the files is refused, so every run scores the same data).

    Args:
        data_dir: folder holding (or receiving) the two ``.ts`` files.
        download: fetch the files when missing.
        condition: ``speaker`` for batches ``(x, speaker, mask)``, speakers 1-9 as classes 0-8; None: unlabelled.
        check_files: compare the files with the archive's SHA-256 (off for a modified copy, at your own risk).
        **kwargs: see :class:`SequenceDataModule`.
    """

    conditions = ("speaker",)

    def __init__(
        self,
        data_dir: str = "data/japanese-vowels",
        download: bool = True,
        condition: str | None = None,
        check_files: bool = True,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, val_fraction, test_fraction, num_workers, seed)
        check_condition(type(self).__name__, condition, self.conditions)
        self.save_hyperparameters()
        self.data_dir, self.download = Path(data_dir), download
        self.condition, self.check_files = condition, check_files
        self.labelled = condition is not None
        self.class_count = 9 if self.labelled else None

    def files(self) -> list[Path]:
        """The two ``.ts`` files, downloaded when missing (and allowed), checked."""
        paths = [self.data_dir / name for name in SHA256]
        if not all(p.is_file() for p in paths):
            if not self.download:
                raise FileNotFoundError(
                    f"{self.data_dir} lacks {[p.name for p in paths if not p.is_file()]}: set data.download=true, or "
                    f"put the UEA archive's files there ({URL})."
                )
            self._download()
        for path in paths:
            if self.check_files and _sha256(path) != SHA256[path.name]:
                raise ValueError(
                    f"{path} is not the UEA archive's file (SHA-256 differs): delete it to download it again, or set "
                    "data.check_files=false to use a modified copy."
                )
        return paths

    def _download(self) -> None:
        import urllib.request

        os.makedirs(self.data_dir, exist_ok=True)
        archive = self.data_dir / "JapaneseVowels.zip"
        try:
            urllib.request.urlretrieve(URL, archive)  # noqa: S310  (a fixed https URL)
        except OSError as err:
            raise RuntimeError(
                f"Could not download {URL} ({err}): put JapaneseVowels_TRAIN.ts and _TEST.ts in {self.data_dir}."
            ) from None
        with zipfile.ZipFile(archive) as z:
            for name in SHA256:
                member = next((m for m in z.namelist() if m.endswith(name)), None)
                if member is None:
                    raise RuntimeError(f"{URL} holds no {name}; put the files in {self.data_dir} by hand.")
                (self.data_dir / name).write_bytes(z.read(member))
        archive.unlink()

    def load(self):
        parts = [read_ts(path) for path in self.files()]
        sequences = check_sequence_list([s for p in parts for s in p.sequences], str(self.data_dir))
        if not self.labelled:
            return self._random_split(sequences)
        labels = np.array([int(v) - 1 for p in parts for v in p.labels], dtype=np.int64)  # speakers 1-9 -> 0-8
        return self._random_split(sequences, labels)
