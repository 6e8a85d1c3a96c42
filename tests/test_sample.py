"""The sample job's output contract, and checkpoints it must refuse."""

import os
import pickle

import numpy as np
import pytest
import torch

from lightning_gen.checkpoints import CheckpointError, load_model
from lightning_gen.cli import run_lightning_cli
from lightning_gen.jobs import sample
from tests.conftest import REPO, WritesFile


@pytest.fixture
def gan_ckpt(digits_gan_ckpt):
    return digits_gan_ckpt  # fitted once for the test session (tests/conftest.py)


def test_sample_contract(gan_ckpt, tmp_path):
    out = tmp_path / "sub" / "samples.npz"
    assert sample.main([gan_ckpt, "--num-samples", "10", "--output", str(out), "--batch-size", "4"]) == 0
    with np.load(out) as z:
        samples = z["samples"]
    assert samples.shape == (10, 1, 8, 8) and samples.dtype == np.float32
    assert samples.min() >= 0.0 and samples.max() <= 1.0 and samples.std() > 0
    assert (tmp_path / "sub" / "samples.png").is_file()
    from PIL import Image

    with Image.open(tmp_path / "sub" / "samples.png") as grid:  # 8x8 digits enlarged, not a 34x34 thumbnail
        assert min(grid.size) >= 64 * 3


def test_sample_is_seeded(gan_ckpt, tmp_path):
    for name in ("a", "b"):
        sample.main([gan_ckpt, "--num-samples", "3", "--output", str(tmp_path / f"{name}.npz"), "--seed", "7"])
    assert np.array_equal(np.load(tmp_path / "a.npz")["samples"], np.load(tmp_path / "b.npz")["samples"])


def test_checkpoint_rebuilds_model_with_weights(gan_ckpt):
    model = load_model(gan_ckpt)
    state = torch.load(gan_ckpt, weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["generator.project.0.weight"], state["generator.project.0.weight"])
    assert model.generator_ema is not None


def test_missing_checkpoint(tmp_path, capsys):
    assert sample.main([str(tmp_path / "nope.ckpt"), "--output", str(tmp_path / "o.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_model(bad)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "somewhere.Else"}}, other)
    with pytest.raises(CheckpointError, match="not a checkpoint of a lightning_gen model"):
        load_model(other)


def test_pickled_payload_is_refused_and_not_run(tmp_path, gan_ckpt):
    marker = tmp_path / "pwned.txt"
    ckpt = torch.load(gan_ckpt, weights_only=True)
    ckpt["payload"] = WritesFile(str(marker))
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_model(evil)
    assert not marker.exists()


def test_untrusted_class_path_refused(tmp_path, gan_ckpt):
    ckpt = torch.load(gan_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["generator"]["class_path"] = "evil_pkg.Generator"
    path = tmp_path / "untrusted.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="evil_pkg.Generator"):
        load_model(path)


def test_test_subcommand_on_checkpoint(gan_ckpt, tmp_path):
    cli = run_lightning_cli(
        [
            "test",
            "--config",
            os.path.join(REPO, "configs/gan/digits.yaml"),
            f"--ckpt_path={gan_ckpt}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.callbacks=[]",
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert {"test/d_loss", "test/D(x)", "test/D(G(z))"} <= set(metrics)
    assert all(torch.isfinite(metrics[k]) for k in ("test/d_loss", "test/D(x)"))


def test_classifier_checkpoint_is_refused_with_a_message(tmp_path, capsys, digits_classifier_ckpt):
    """A classifier generates nothing: a clear message (not a bare KeyError), exit status 2 and no file."""
    ckpt = digits_classifier_ckpt
    out = tmp_path / "s.npz"
    assert sample.main([ckpt, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ImageClassifier (data kind 'classifier'), which does not generate samples" in err
    assert "evaluate --classifier" in err and not out.exists()


@pytest.mark.parametrize(("per_class", "grid_size", "columns"), [(200, 64, 21), (200, 9, 3), (2, 64, 2), (5, 2, 1)])
def test_per_class_grid_respects_grid_size(tmp_path, monkeypatch, per_class, grid_size, columns):
    """``--per-class 200`` writes every sample but draws at most ``--grid-size`` of them: one row per class."""
    from PIL import Image

    from lightning_gen.jobs import sample as sample_job
    from tests.test_conditional_jobs import TinyConditionalImages, with_counts

    torch.manual_seed(0)
    model = with_counts(TinyConditionalImages(), [1.0, 1.0, 1.0])
    monkeypatch.setattr(sample_job, "load_model", lambda *a, **k: model)
    out = tmp_path / "s.npz"
    argv = ["x.ckpt", "--output", str(out), "--per-class", str(per_class), "--grid-size", str(grid_size)]
    assert sample_job.main(argv) == 0
    assert len(np.load(out)["labels"]) == 3 * per_class  # the file holds them all
    with Image.open(out.with_suffix(".png")) as im:
        width, height = im.size
    assert height == 3 * 65 + 1  # three class rows of 8x8 images enlarged to 64 px, 1 px apart
    assert columns * 65 + 1 < width < columns * 65 + 1 + 64  # and a margin for the row labels
