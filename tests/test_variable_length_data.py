"""Sequences of different lengths: the UEA / UCR .ts reader, padded .npz with lengths, long CSVs with a sequence-id
column, the Japanese Vowels DataModule, batches with masks, and the errors for bad input."""

import os

import numpy as np
import pytest
import torch

from lightning_gen.data.arrays import ArraySequenceDataModule
from lightning_gen.data.sequence_base import length_mask, pad_sequences
from lightning_gen.data.ts_format import read_ts
from lightning_gen.data.vowels import JapaneseVowelsDataModule
from tests.variable_length_helpers import random_sequences, write_fake_vowels, write_ts

TS_HEAD = "@problemName t\n@timeStamps false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n"


def test_ts_round_trip_keeps_lengths_values_and_labels(tmp_path):
    seqs = random_sequences(6, 3, low=2, high=7)
    labels = ["x", "y", "x", "y", "x", "y"]
    write_ts(tmp_path / "d.ts", seqs, labels, ["x", "y"])
    ts = read_ts(tmp_path / "d.ts")
    assert [len(s) for s in ts.sequences] == [len(s) for s in seqs]
    np.testing.assert_allclose(ts.sequences[3], seqs[3])
    assert ts.labels == labels and ts.class_names == ["x", "y"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("1,2:3,4:5,6:a\n", "the series has 3 dimensions, @dimensions 2"),
        ("1,2:3:a\n", "different lengths"),
        ("1,2:3,?:b\n", "missing value at dimension 1, step 1"),
        ("1,2:3,x:b\n", "'x', not a number"),
        ("1,2:3,4:c\n", "class label 'c' is not one of"),
        (":3,4:b\n", "dimension 0 of the series is empty"),
    ],
)
def test_malformed_ts_files_are_refused_with_their_line(tmp_path, body, message):
    path = tmp_path / "bad.ts"
    path.write_text(TS_HEAD + body)
    with pytest.raises(ValueError, match="line 7") as err:
        read_ts(path)
    assert message in str(err.value)


def test_ts_without_data_section_is_refused(tmp_path):
    (tmp_path / "x.ts").write_text("@problemName t\n1,2:3,4\n")
    with pytest.raises(ValueError, match="header line"):
        read_ts(tmp_path / "x.ts")
    (tmp_path / "y.ts").write_text("@problemName t\n")
    with pytest.raises(ValueError, match="no @data"):
        read_ts(tmp_path / "y.ts")


def padded_file(tmp_path, n=12, lengths=None, nan_in_padding=True, **extra):
    seqs = random_sequences(n, 2, low=2, high=6)
    x, true_lengths = pad_sequences(seqs)
    lengths = true_lengths if lengths is None else np.asarray(lengths)
    if nan_in_padding:
        x[~length_mask(true_lengths, x.shape[1])] = np.nan  # padding is never read
    np.savez(tmp_path / "v.npz", data=x, lengths=lengths, **extra)
    return tmp_path / "v.npz", seqs


def test_padded_npz_with_lengths_gives_masked_batches_and_ignores_padding(tmp_path):
    path, seqs = padded_file(tmp_path)
    dm = ArraySequenceDataModule(str(path), batch_size=4, val_fraction=0.2, test_fraction=0.2, seed=1)
    dm.setup()
    assert dm.variable_length and dm.seq_len == max(len(s) for s in seqs)
    x, mask = next(iter(dm.train_dataloader()))
    assert x.shape == (4, dm.seq_len, 2) and mask.dtype == torch.bool and mask.shape == (4, dm.seq_len)
    assert (x[~mask] == 0).all() and torch.isfinite(x).all()  # padding: zeros, never NaN
    steps = np.concatenate(seqs)
    # the scaling's range is that of the real steps of the training split: inside the range of every real step
    assert (dm.data_min >= steps.min(0) - 1e-6).all() and (dm.data_max <= steps.max(0) + 1e-6).all()
    all_lengths = np.concatenate([dm.lengths[k] for k in ("train", "val", "test")])
    assert sorted(all_lengths.tolist()) == sorted(len(s) for s in seqs)
    counts = dm.length_counts()
    assert counts.shape == (dm.seq_len + 1,) and counts.sum() == len(dm.splits["train"]) and counts[0] == 0


def test_fixed_length_data_keeps_plain_batches(tmp_path):
    np.save(tmp_path / "f.npy", np.random.default_rng(0).normal(size=(10, 5, 2)))
    dm = ArraySequenceDataModule(str(tmp_path / "f.npy"), batch_size=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 1 and not dm.variable_length and dm.lengths is None


@pytest.mark.parametrize(
    "lengths, message",
    [
        ([3, 0, 4, 2, 5, 3], "sequence 1 is empty"),
        ([3, 2, 40, 2, 5, 3], "sequence 2 has length 40, longer than the padded array"),
        ([3, 2, 4], "holds 6 sequences but 3 lengths"),
    ],
)
def test_bad_lengths_are_refused(tmp_path, lengths, message):
    path, _ = padded_file(tmp_path, n=6, lengths=lengths, nan_in_padding=False)
    with pytest.raises(ValueError, match=message):
        ArraySequenceDataModule(str(path), batch_size=2).setup()


def test_nan_inside_a_sequence_names_it_and_labels_must_agree_with_lengths(tmp_path):
    path, seqs = padded_file(tmp_path, n=6)
    with np.load(path) as f:
        x, lengths = f["data"], f["lengths"]
    x[4, 1, 0] = np.nan
    np.savez(path, data=x, lengths=lengths)
    with pytest.raises(ValueError, match="sequence 4 has a NaN / infinite value at step 1, feature 0"):
        ArraySequenceDataModule(str(path), batch_size=2).setup()
    path, _ = padded_file(tmp_path, n=6)
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1, 0]))  # 5 labels for 6 sequences
    with pytest.raises(ValueError, match="holds 6 sequences"):
        ArraySequenceDataModule(str(path), labels_path=str(tmp_path / "y.npy"), batch_size=2).setup()


def long_csv(tmp_path, rows):
    path = tmp_path / "long.csv"
    path.write_text("id,a,b,label\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return str(path)


def test_long_csv_with_a_sequence_id_column_and_labels(tmp_path):
    rows = [(7, 0.1 * i, i, 0) for i in range(3)] + [(2, 1, 1, 1)] * 5 + [(9, 2, 2, 0)] * 4 + [(4, 3, 3, 1)] * 2
    dm = ArraySequenceDataModule(
        long_csv(tmp_path, rows), sequence_column=0, label_column=3, batch_size=1, val_fraction=0, test_fraction=0
    )
    dm.setup()
    assert sorted(dm.lengths["train"].tolist()) == [2, 3, 4, 5] and dm.num_classes == 2
    assert dm.data_dim == 2  # the id and the label columns are not features
    by_length = dict(zip(dm.lengths["train"].tolist(), dm.labels["train"].tolist()))
    assert by_length == {3: 0, 5: 1, 4: 0, 2: 1}
    per_class = dm.length_counts()
    assert per_class.shape == (2, dm.seq_len + 1) and per_class[0, 3] == 1 and per_class[1, 5] == 1


def test_long_csv_errors_name_the_sequence_and_row(tmp_path):
    rows = [(1, 0, 0, 0), (1, 1, 1, 0), (2, 0, 0, 1), (1, 2, 2, 0)]
    with pytest.raises(ValueError, match="sequence id 1 starts at data row 1 and again at data row 4"):
        ArraySequenceDataModule(long_csv(tmp_path, rows), sequence_column=0, batch_size=1).setup()
    rows = [(1, 0, 0, 0), (1, 1, 1, 0), (2, 0, 0, 1), (2, "", 1, 1)]
    with pytest.raises(ValueError, match=r"sequence id 2 \(from row 3\) has a NaN .* step 1, feature 0, row 4"):
        ArraySequenceDataModule(long_csv(tmp_path, rows), sequence_column=0, batch_size=1).setup()
    rows = [(1, 0, 0, 0), (1, 1, 1, 1), (2, 0, 0, 1)]
    with pytest.raises(ValueError, match="changes within sequence id 1"):
        ArraySequenceDataModule(long_csv(tmp_path, rows), sequence_column=0, label_column=3, batch_size=1).setup()


def test_ts_file_through_the_array_module_with_its_labels(tmp_path):
    seqs = random_sequences(10, 3)
    write_ts(tmp_path / "d.ts", seqs, ["u", "v"] * 5, ["u", "v"])
    dm = ArraySequenceDataModule(
        str(tmp_path / "d.ts"), condition="class", batch_size=2, val_fraction=0, test_fraction=0
    )
    x, y, mask = next(iter(dm.train_dataloader()))
    assert dm.num_classes == 2 and set(y.tolist()) <= {0, 1} and mask.sum(1).min() >= 3
    with pytest.raises(ValueError, match="cannot condition on 'speaker'"):
        ArraySequenceDataModule(str(tmp_path / "d.ts"), condition="speaker")


def test_japanese_vowels_reads_checks_and_labels_speakers(tmp_path):
    folder = str(tmp_path / "jv")
    with pytest.raises(FileNotFoundError, match="download=true"):
        JapaneseVowelsDataModule(folder, download=False).setup()
    write_fake_vowels(folder)
    with pytest.raises(ValueError, match="SHA-256 differs"):  # not the archive's files
        JapaneseVowelsDataModule(folder, download=False).setup()
    dm = JapaneseVowelsDataModule(folder, download=False, check_files=False, condition="speaker", batch_size=4)
    x, y, mask = next(iter(dm.train_dataloader()))
    assert dm.num_classes == 9 and dm.data_dim == 12 and 0 <= int(y.min()) and int(y.max()) <= 8
    assert dm.variable_length and mask.shape == x.shape[:2]
    assert os.path.basename(folder) == "jv"
