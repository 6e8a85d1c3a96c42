"""The sample and evaluate jobs with class labels, and the conditional scores.

Tiny conditional models written here (real LightningModules with the :class:`Conditional` mixin and a trivial
generator: each class draws its own fixed pattern) test the jobs' plumbing without training; the shipped
conditional configs are fitted end to end further down."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_gen.jobs import sample
from lightning_gen.metrics import conditional as C
from lightning_gen.models.conditional import Conditional
from tests.conftest import fit_config

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyConditionalImages(Conditional, pl.LightningModule):
    """8x8 grey images: class c is a fixed random pattern plus a little noise."""

    data_kind = "image"

    def __init__(self, num_classes: int = 3, size: int = 8) -> None:
        super().__init__()
        self.patterns = nn.Embedding(num_classes, size * size)
        self.patterns.num_classes = num_classes
        self.init_conditional(self.patterns)
        self.size = size

    @torch.no_grad()
    def sample(self, n: int, labels=None) -> torch.Tensor:
        y = self.labels_for(n, labels)
        x = self.patterns(y).view(n, 1, self.size, self.size) + 0.05 * torch.randn(n, 1, self.size, self.size)
        return torch.tanh(x)


class TinyConditionalSequences(Conditional, pl.LightningModule):
    """TimeGAN's sines of a frequency band per class (as ``SinesDataModule(condition="frequency_band")`` makes
    them, at the band's centre): (n, T, dim) in the data's scale, the model's scale being the identity here."""

    data_kind = "sequence"

    def __init__(self, num_classes: int = 3, dim: int = 5) -> None:
        super().__init__()
        from lightning_gen.scaling import SequenceScale

        self.offset = nn.Embedding(num_classes, dim)  # a net with num_classes, as the contract reads it
        self.offset.num_classes = num_classes
        nn.init.zeros_(self.offset.weight)
        self.init_conditional(self.offset)
        self.data_info = SequenceScale(dim)
        self.data_info.seq_len.fill_(24)

    def sample_length(self, length):
        return int(self.data_info.seq_len) if length is None else int(length)

    def to_original(self, x):
        return self.data_info.inverse(x)

    @torch.no_grad()
    def sample(self, n: int, length: int | None = None, labels=None) -> torch.Tensor:
        y = self.labels_for(n, labels)
        t = torch.arange(self.sample_length(length)).float()
        freq = (y.float()[:, None, None] + 0.2 + 0.6 * torch.rand(n, 1, self.offset.embedding_dim)) * 0.1 / 3
        phase = 0.1 * torch.rand(n, 1, self.offset.embedding_dim)
        return (torch.sin(freq * t[None, :, None] + phase) + 1) / 2 + self.offset(y)[:, None, :]


def with_counts(model, counts):
    model.label_counts.copy_(torch.tensor(counts, dtype=torch.float32))
    return model.eval()


@pytest.fixture
def image_model(monkeypatch):
    torch.manual_seed(0)
    model = with_counts(TinyConditionalImages(), [1.0, 1.0, 2.0])
    monkeypatch.setattr(sample, "load_model", lambda *a, **k: model)
    return model


def run_sample(tmp_path, *argv: str) -> int:
    return sample.main(["x.ckpt", "--output", str(tmp_path / "s.npz"), *argv])


# -- sample: labels -----------------------------------------------------------------------------------------------
def test_labels_are_written_and_drawn_as_asked(image_model, tmp_path):
    assert run_sample(tmp_path, "--labels", "2,0,1,2") == 0
    with np.load(tmp_path / "s.npz") as f:
        labels, samples = f["labels"], f["samples"]
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1, 2] and samples.shape == (4, 1, 8, 8)
    patterns = (torch.tanh(image_model.patterns.weight.detach()).view(3, 1, 8, 8).numpy() + 1) / 2
    nearest = [int(np.argmin(((patterns - s) ** 2).sum((1, 2, 3)))) for s in samples]
    assert nearest == [2, 0, 1, 2]  # each sample is its requested class's pattern


def test_single_label_repeated_and_per_class(image_model, tmp_path):
    assert run_sample(tmp_path, "--labels", "1", "--num-samples", "5") == 0
    assert np.load(tmp_path / "s.npz")["labels"].tolist() == [1] * 5
    assert run_sample(tmp_path, "--per-class", "2") == 0
    assert np.load(tmp_path / "s.npz")["labels"].tolist() == [0, 0, 1, 1, 2, 2]
    assert run_sample(tmp_path, "--labels", "2,0", "--per-class", "3") == 0
    assert np.load(tmp_path / "s.npz")["labels"].tolist() == [0, 0, 0, 2, 2, 2]


def test_default_labels_follow_the_stored_distribution(image_model, tmp_path):
    assert run_sample(tmp_path, "--num-samples", "400") == 0
    share = np.bincount(np.load(tmp_path / "s.npz")["labels"], minlength=3) / 400
    assert abs(share[2] - 0.5) < 0.08 and abs(share[0] - 0.25) < 0.08


def test_labels_file_formats(image_model, tmp_path):
    np.save(tmp_path / "l.npy", np.array([0, 2, 2]))
    (tmp_path / "l.txt").write_text("1\n0\n2\n")
    (tmp_path / "l.csv").write_text("2,2,1\n")
    for name, want in (("l.npy", [0, 2, 2]), ("l.txt", [1, 0, 2]), ("l.csv", [2, 2, 1])):
        assert run_sample(tmp_path, "--labels-file", str(tmp_path / name)) == 0
        assert np.load(tmp_path / "s.npz")["labels"].tolist() == want


def test_grid_has_one_row_per_class(image_model, tmp_path):
    from PIL import Image

    assert run_sample(tmp_path, "--per-class", "4", "--labels", "0,2") == 0
    with Image.open(tmp_path / "s.png") as im:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    # 8x8 images are enlarged 8x to 64x64, one white pixel between: 2 rows -> 2 * 65 + 1 pixels high
    assert grey.shape[0] == 2 * 65 + 1
    assert grey.shape[1] > 4 * 65 + 1  # and a margin for the row labels on the left
    margin = grey.shape[1] - (4 * 65 + 1)
    assert (grey[:, :margin] < 128).any()  # the labels are written there


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--labels", "0,3"], "Labels must be in [0, 3)"),
        (["--labels", "0,1.5"], "whole numbers"),
        (["--labels", "0,1", "--num-samples", "3"], "2 labels for --num-samples 3"),
        (["--labels", "1", "--labels-file", "x.txt"], "not both"),
        (["--per-class", "2", "--num-samples", "3"], "not both"),
        (["--per-class", "0"], "--per-class must be an integer >= 1"),
    ],
)
def test_bad_labels_are_refused(image_model, tmp_path, capsys, argv, message):
    assert run_sample(tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s.npz").exists()


def test_bad_labels_files_are_refused(image_model, tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.array([0.0, 1.0]))
    (tmp_path / "bad.txt").write_text("0\nseven\n")
    (tmp_path / "float.csv").write_text("0,1.0\n")
    (tmp_path / "l.json").write_text("[0]")
    np.save(tmp_path / "count.npy", np.array([0, 1]))
    cases = [
        ("f.npy", [], "expected an array of integers"),
        ("bad.txt", [], "whole numbers"),
        ("float.csv", [], "whole numbers"),
        ("l.json", [], "give a .npy, .txt or .csv"),
        ("nope.txt", [], "no such file"),
        ("count.npy", ["--num-samples", "3"], "2 labels for --num-samples 3"),
    ]
    for name, extra, message in cases:
        assert run_sample(tmp_path, "--labels-file", str(tmp_path / name), *extra) == 2, name
        assert message in capsys.readouterr().err, name


def test_no_stored_distribution_and_no_labels(monkeypatch, tmp_path, capsys):
    model = TinyConditionalImages().eval()  # label_counts all zero: a checkpoint without a distribution
    monkeypatch.setattr(sample, "load_model", lambda *a, **k: model)
    assert run_sample(tmp_path) == 2
    assert "stores no label distribution" in capsys.readouterr().err
    assert run_sample(tmp_path, "--labels", "1") == 0


@pytest.fixture
def gan_ckpt(digits_gan_ckpt):
    return digits_gan_ckpt  # fitted once for the test session (tests/conftest.py)


def test_labels_to_an_unconditional_checkpoint(gan_ckpt, tmp_path, capsys):
    for argv in (["--labels", "1"], ["--per-class", "2"]):
        assert sample.main([gan_ckpt, "--output", str(tmp_path / "s.npz"), *argv]) == 2
        err = capsys.readouterr().err
        assert "is unconditional" in err and "Traceback" not in err
    assert sample.main([gan_ckpt, "--output", str(tmp_path / "s.npz"), "--num-samples", "3"]) == 0
    with np.load(tmp_path / "s.npz") as f:
        assert "labels" not in f.files and f["samples"].shape == (3, 1, 8, 8)


# -- sample: sequences ----------------------------------------------------------------------------------------------
def test_sequence_samples_carry_labels_and_class_rows(monkeypatch, tmp_path):
    model = with_counts(TinyConditionalSequences(), [1.0, 1.0, 1.0])
    monkeypatch.setattr(sample, "load_model", lambda *a, **k: model)
    assert run_sample(tmp_path, "--per-class", "2") == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["labels"].tolist() == [0, 0, 1, 1, 2, 2] and f["samples"].shape == (6, 24, 5)
        x = f["samples"]
    assert not np.allclose(x[0], x[2])  # classes differ
    assert (tmp_path / "s.png").is_file()


def test_piano_roll_samples_carry_labels(monkeypatch, tmp_path):
    model = with_counts(TinyConditionalSequences(dim=12), [1.0, 1.0, 1.0])
    model.data_info.pitch_low.fill_(60)  # a piano-roll model: binary rolls, MIDI files, labels beside them
    monkeypatch.setattr(sample, "load_model", lambda *a, **k: model)
    assert run_sample(tmp_path, "--labels", "2,0", "--per-class", "2") == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["labels"].tolist() == [0, 0, 2, 2] and set(f.files) >= {"samples", "probabilities", "pitch_low"}
        assert set(np.unique(f["samples"])) <= {0.0, 1.0} and f["samples"].shape == (4, 24, 12)
    assert (tmp_path / "s.png").is_file() and len(list((tmp_path / "s_midi").glob("*.mid"))) == 4


def test_api_sample_with_labels(image_model):
    from lightning_gen import api

    x, y = api.sample(image_model, 4, labels=[1, 1, 0, 2], return_labels=True)
    assert x.shape == (4, 1, 8, 8) and y.tolist() == [1, 1, 0, 2]
    _, drawn = api.sample(image_model, 6, batch_size=4, return_labels=True)
    assert drawn.shape == (6,) and int(drawn.max()) < 3
    with pytest.raises(ValueError, match="Labels must be in"):
        api.sample(image_model, 2, labels=[0, 5])


# -- metrics -----------------------------------------------------------------------------------------------------------
def test_class_accuracy_and_spread():
    logits = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])] * 5
    right = C.class_accuracy_from_logits(logits, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], splits=2)
    assert right["value"] == 1.0 and right["std"] == 0.0 and right["per_class"] == {"0": 1.0, "1": 1.0, "2": 1.0}
    half = C.class_accuracy_from_logits(logits, [0, 1, 2, 0, 1, 0, 1, 2, 0, 1], splits=2)
    assert half["value"] == 0.5 and half["std"] > 0.5  # 1.0 and 0.0 on the two halves
    with pytest.raises(ValueError, match="outside \\[0, 3\\)"):
        C.class_accuracy_from_logits(logits, [3] * 10)
    with pytest.raises(ValueError, match="must be integers"):
        C.class_accuracy_from_logits(logits, np.zeros(10))


def test_per_class_fid_separates_classes():
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(60, 4, generator=g), torch.randn(60, 4, generator=g) + 3])
    labels = torch.tensor([0] * 60 + [1] * 60)
    fake = torch.cat([torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g) + 3])
    fake_labels = torch.tensor([0] * 50 + [1] * 50)
    right = C.per_class_fid(real, labels, fake, fake_labels, 2)
    wrong = C.per_class_fid(real, labels, fake, 1 - fake_labels, 2)
    assert set(right["per_class"]) == {"0", "1"} and right["value"] < 1.0 < 30 < wrong["value"]
    assert right["samples_per_class"] == {"0": [50, 60], "1": [50, 60]} and right["unstable"] == []
    few = C.per_class_fid(real, labels, fake[:53], fake_labels[:53], 2)
    assert few["unstable"] == [1]  # 3 generated samples of class 1, fewer than 4 feature dimensions


def test_sequence_classifier_true_vs_shuffled_labels():
    from lightning_gen.data.sines import make_band_sines

    x, y = make_band_sines(1200, seq_len=24, dim=5, num_bands=3, seed=1)
    true = C.sequence_class_accuracy(x[:800], y[:800], x[800:1000], y[800:1000], x[1000:], y[1000:])
    shuffled = C.sequence_class_accuracy(
        x[:800], y[:800], x[800:1000], np.random.default_rng(0).permutation(y[800:1000])
    )
    assert true["value"] > 0.8 and true["reference_value"] > 0.8
    assert abs(shuffled["value"] - 1 / 3) < 0.12


# -- evaluate --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
    """The digits classifier, fitted for 150 batches: enough to tell digits apart (about 90% held out)."""
    return fit_config("configs/classifier/digits.yaml", tmp_path_factory.mktemp("clf"), "--trainer.max_steps=150")


def _digits_images(split: str = "test"):
    from lightning_gen.data import DigitsDataModule

    return C.labelled_split(DigitsDataModule(batch_size=64), split, seed=0)


def _write_samples(tmp_path, monkeypatch, model, *argv) -> str:
    out = tmp_path / "cond.npz"
    monkeypatch.setattr(sample, "load_model", lambda *a, **k: model)
    assert sample.main(["x.ckpt", "--output", str(out), *argv]) == 0
    return str(out)


def test_evaluate_scores_labelled_samples(digits_classifier, tmp_path):
    """Real digits written as 'samples' with their labels: the class scores come out, and shuffled labels score
    lower (accuracy) and further (per-class FID) than the true ones."""
    from lightning_gen import api

    images, labels = _digits_images()
    scores = {}
    for name, y in (("true", labels), ("shuffled", labels[torch.randperm(len(labels))])):
        np.savez(tmp_path / f"{name}.npz", samples=images.numpy(), labels=y.numpy())
        scores[name] = api.evaluate(
            tmp_path / f"{name}.npz", data="configs/gan/digits.yaml", classifier=digits_classifier, no_cache=True,
            output=str(tmp_path / f"{name}.json"), split="test",  # the samples are the test split's digits
        )  # fmt: skip
    true, shuffled = scores["true"], scores["shuffled"]
    assert {"fid", "class_accuracy", "class_fid", "class_recall", "class_diversity"} <= set(true["metrics"])
    acc = true["metrics"]["class_accuracy"]
    assert 0.0 <= acc["value"] <= 1.0 and len(acc["per_class"]) == 10
    assert acc["classifier"]["checkpoint"] == digits_classifier and len(acc["classifier"]["weights_sha256"]) == 64
    assert shuffled["metrics"]["class_accuracy"]["value"] < acc["value"] - 0.4
    fid = true["metrics"]["class_fid"]
    assert fid["value"] < 1e-6 < shuffled["metrics"]["class_fid"]["value"]  # the same images per class: FID 0
    assert fid["unstable"] == list(range(10))  # ~18 test digits per class, 64 features: flagged
    assert true["conditional"]["num_classes"] == 10 and sum(true["conditional"]["samples_per_class"]) == len(labels)
    assert '"class_accuracy"' in (tmp_path / "true.json").read_text()


def test_evaluate_conditional_model_and_unconditional_unchanged(digits_classifier, tmp_path, capsys, monkeypatch):
    from lightning_gen.jobs.evaluate import main

    torch.manual_seed(0)
    model = with_counts(TinyConditionalImages(num_classes=10), [1.0] * 10)
    path = _write_samples(tmp_path, monkeypatch, model, "--per-class", "12")
    common = ["--data", "configs/gan/digits.yaml", "--classifier", digits_classifier, "--no-cache"]
    assert main([path, *common, "--metrics", "class_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "class_accuracy" in out and "class_accuracy per class" in out and "generated labels: 10 classes" in out
    np.savez(tmp_path / "plain.npz", samples=np.load(path)["samples"])
    assert main([str(tmp_path / "plain.npz"), *common, "--metrics", "class_accuracy"]) == 2
    assert "carry no class labels" in capsys.readouterr().err
    assert main([path, "--data", "configs/gan/digits.yaml", "--metrics", "class_fid", "--no-cache"]) == 2
    assert "give --classifier CKPT" in capsys.readouterr().err


def test_unconditional_report_has_no_class_scores(digits_classifier, tmp_path):
    from lightning_gen import api

    images, _ = _digits_images()
    np.savez(tmp_path / "plain.npz", samples=images.numpy())
    report = api.evaluate(tmp_path / "plain.npz", data="configs/gan/digits.yaml", classifier=digits_classifier,
                          no_cache=True)  # fmt: skip
    assert "fid" in report["metrics"] and not [m for m in report["metrics"] if m.startswith("class_")]
    assert "conditional" not in report


def test_evaluate_labels_in_a_samples_file_are_checked(tmp_path, capsys):
    from lightning_gen.jobs.evaluate import main

    images, labels = _digits_images()
    np.savez(tmp_path / "bad.npz", samples=images.numpy(), labels=labels.numpy()[:-1])
    assert main([str(tmp_path / "bad.npz"), "--data", "configs/gan/digits.yaml"]) == 2
    assert "labels for" in capsys.readouterr().err
    np.savez(tmp_path / "float.npz", samples=images.numpy(), labels=labels.numpy().astype(float))
    assert main([str(tmp_path / "float.npz"), "--data", "configs/gan/digits.yaml"]) == 2
    assert "must be integers" in capsys.readouterr().err


def _sines_config(tmp_path) -> str:
    path = tmp_path / "sines_bands.yaml"
    path.write_text(
        "data:\n  class_path: lightning_gen.data.SinesDataModule\n  init_args: {num_sequences: 900, batch_size: 32, "
        "condition: frequency_band, num_bands: 3}\n"
    )
    return str(path)


def test_evaluate_sequence_class_accuracy(tmp_path, monkeypatch):
    """Band sines sampled per class score high under the post-hoc classifier; the same sequences under the wrong
    labels score near zero."""
    from lightning_gen import api

    model = with_counts(TinyConditionalSequences(), [1.0, 1.0, 1.0])
    path = _write_samples(tmp_path, monkeypatch, model, "--per-class", "40")
    report = api.evaluate(path, data=_sines_config(tmp_path), metrics=["class_accuracy"])
    acc = report["metrics"]["class_accuracy"]
    assert acc["value"] > 0.8 and acc["reference_value"] > 0.8 and acc["n"] == 120
    with np.load(path) as f:
        np.savez(tmp_path / "wrong.npz", samples=f["samples"], labels=(f["labels"] + 1) % 3)
    wrong = api.evaluate(tmp_path / "wrong.npz", data=_sines_config(tmp_path), metrics=["class_accuracy"])
    assert wrong["metrics"]["class_accuracy"]["value"] < 0.2


# -- end to end: the shipped conditional configs -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cond_gan_ckpt(tmp_path_factory):
    return fit_config("configs/gan/digits_cond.yaml", tmp_path_factory.mktemp("cond_gan"))


def test_conditional_gan_sample_and_evaluate(cond_gan_ckpt, digits_classifier, tmp_path):
    from PIL import Image

    from lightning_gen import api

    out = tmp_path / "c.npz"
    assert sample.main([cond_gan_ckpt, "--labels", "4,1,3", "--per-class", "5", "--output", str(out)]) == 0
    with np.load(out) as f:
        assert f["labels"].tolist() == [1] * 5 + [3] * 5 + [4] * 5 and f["samples"].shape == (15, 1, 8, 8)
    with Image.open(tmp_path / "c.png") as grid:
        assert grid.size[1] == 3 * 65 + 1  # one row per class asked
    assert sample.main([cond_gan_ckpt, "--num-samples", "60", "--output", str(out)]) == 0
    drawn = np.load(out)["labels"]
    assert len(set(drawn.tolist())) > 3 and drawn.min() >= 0 and drawn.max() < 10  # the training mix
    report = api.evaluate(cond_gan_ckpt, classifier=digits_classifier, num_samples=200, no_cache=True)
    assert {"fid", "class_accuracy", "class_fid"} <= set(report["metrics"])
    assert 0.0 <= report["metrics"]["class_accuracy"]["value"] <= 1.0
    assert report["conditional"]["num_classes"] == 10 and sum(report["conditional"]["samples_per_class"]) == 200


def test_conditional_lstm_gan_sample_and_evaluate(tmp_path):
    from lightning_gen import api

    ckpt = fit_config("configs/lstm_gan/sines_cond.yaml", tmp_path / "run", "--data.init_args.num_sequences=300")
    out = tmp_path / "s.npz"
    assert sample.main([ckpt, "--per-class", "2", "--output", str(out)]) == 0
    with np.load(out) as f:
        assert f["labels"].tolist() == [0, 0, 1, 1, 2, 2] and f["samples"].shape == (6, 24, 5)
    assert (tmp_path / "s.png").is_file()
    report = api.evaluate(ckpt, metrics=["class_accuracy"], data_arg=["num_sequences=300"])
    entry = report["metrics"]["class_accuracy"]
    assert 0.0 <= entry["value"] <= 1.0 and entry["reference_value"] > 0.8 and entry["n"] == 30


def test_table_rows_of_class_scores():
    from lightning_gen.jobs.evaluate import table_row

    fid = {"value": 2.5, "per_class": {"0": 1.0, "1": 4.0}, "samples_per_class": {"0": [90, 18], "1": [110, 20]},
           "feature_dim": 64, "unstable": [0, 1]}  # fmt: skip
    row = table_row("class_fid", fid)
    assert row[:3] == ("class_fid", "2.5", "")
    assert "90-110 generated, 18-20 real" in row[3] and "UNSTABLE in all classes" in row[3]
    acc = {"value": 0.9, "std": 0.05, "splits": 10, "n": 200, "per_class": {}, "reference_value": 0.97}
    assert table_row("class_accuracy", acc) == (
        "class_accuracy", "0.9", "0.05", "real held-out 0.97; n=200, std over 10 splits"
    )  # fmt: skip


def test_sequence_class_accuracy_refuses_another_length(tmp_path, monkeypatch, capsys):
    from lightning_gen.jobs.evaluate import main

    model = with_counts(TinyConditionalSequences(), [1.0, 1.0, 1.0])
    path = _write_samples(tmp_path, monkeypatch, model, "--per-class", "5", "--length", "30")
    assert main([path, "--data", _sines_config(tmp_path), "--metrics", "class_accuracy"]) == 2
    assert "sample at the training length (--length 24)" in capsys.readouterr().err
