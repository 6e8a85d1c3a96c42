"""Hostile checkpoints on every path that reads one: nothing they name is imported unless allowlisted.

Each hostile checkpoint names a module in ``tmp_path`` (on ``sys.path``) whose import writes a marker file. The
marker must never appear, the job must end with ``error: ...`` and exit status 2, and no run folder is made.
"""

import os
import sys

import pytest
import torch

from lightning_gen.checkpoints import CheckpointError, load_model
from lightning_gen.cli import main
from lightning_gen.jobs import evaluate, sample
from tests.conftest import REPO
from tests.robust_helpers import family_args
from tests.shared_checkpoints import tiny_gan_ckpt  # noqa: F401  (a session fixture: one fit for both modules)


@pytest.fixture(scope="module")
def good_ckpt(request):
    return request.getfixturevalue("tiny_gan_ckpt")


_counter = [0]


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """A module on sys.path whose import writes ``marker``; returns (module name, marker path)."""
    _counter[0] += 1
    name = f"evil_mod_{os.getpid()}_{_counter[0]}"
    marker = tmp_path / "imported.txt"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import torch\n"
        "class Generator(torch.nn.Module):\n    pass\n"
        "def s(params) -> torch.optim.Optimizer:\n    return torch.optim.SGD(params, lr=0.1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def _hostile(good_ckpt, tmp_path, module: str, how: str) -> str:
    ckpt = torch.load(good_ckpt, weights_only=True)
    hp = ckpt["hyper_parameters"]
    if how == "plain_string":  # a dotted string in a callable hyperparameter, no class_path key
        hp["optimizer_g"] = f"{module}.s"
    elif how == "nested_class_path":
        hp["generator"]["class_path"] = f"{module}.Generator"
    elif how == "datamodule":
        ckpt["datamodule_hyper_parameters"]["_class_path"] = f"{module}.DataModule"
    path = tmp_path / f"hostile_{how}.ckpt"
    torch.save(ckpt, path)
    return str(path)


HOW = ["plain_string", "nested_class_path", "datamodule"]


@pytest.mark.parametrize("how", HOW)
def test_python_loader(good_ckpt, tmp_path, evil_module, how):
    name, marker = evil_module
    with pytest.raises(CheckpointError, match=f"asks to import .*{name}"):
        load_model(_hostile(good_ckpt, tmp_path, name, how))
    assert not marker.exists()


@pytest.mark.parametrize("how", HOW)
def test_sample_job(good_ckpt, tmp_path, evil_module, how, capsys):
    name, marker = evil_module
    out = tmp_path / "s.npz"
    assert sample.main([_hostile(good_ckpt, tmp_path, name, how), "--output", str(out)]) == 2
    assert "asks to import" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("how", HOW)
def test_evaluate_job(good_ckpt, tmp_path, evil_module, how, capsys):
    name, marker = evil_module
    report = tmp_path / "r.json"
    args = [_hostile(good_ckpt, tmp_path, name, how), "--output", str(report), "--no-cache"]
    assert evaluate.main(args) == 2
    assert "asks to import" in capsys.readouterr().err
    assert not marker.exists() and not report.exists()


# Every payload through fit; validate and test (the same check before the subcommand runs) with one each: the loader
# refuses every payload kind in test_python_loader.
@pytest.mark.parametrize(
    ("subcommand", "how"), [*(("fit", how) for how in HOW), ("validate", "datamodule"), ("test", "nested_class_path")]
)
def test_ckpt_path(good_ckpt, tmp_path, evil_module, how, subcommand, capsys):
    name, marker = evil_module
    args = family_args("gan", tmp_path / "run", f"--ckpt_path={_hostile(good_ckpt, tmp_path, name, how)}")
    args[0] = subcommand
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--ckpt_path" in err and "asks to import" in err and name in err
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # no run folder


def test_classifier_checkpoint_of_evaluate(good_ckpt, tmp_path, evil_module, capsys):
    """--classifier is read by the same loader: the evaluate job loads it before the metrics see a model."""
    import numpy as np

    name, marker = evil_module
    samples = tmp_path / "digits.npz"
    np.savez(samples, samples=np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32))  # digits' shape
    classifier = _hostile(good_ckpt, tmp_path, name, "plain_string")
    report = tmp_path / "r.json"
    digits = os.path.join(REPO, "configs/gan/digits.yaml")
    args = [str(samples), "--data", digits, "--features", "classifier", "--classifier", classifier]
    assert evaluate.main([*args, "--no-cache", "--output", str(report)]) == 2
    assert "asks to import" in capsys.readouterr().err
    assert not marker.exists() and not report.exists()


def test_classifier_checkpoint_of_the_training_metric(good_ckpt, tmp_path, evil_module):
    """TrainingMetric's classifier goes through the audited loader too, when the fit sets up."""
    from lightning_gen.metrics import TrainingMetric

    name, marker = evil_module
    metric = TrainingMetric("fid", classifier=_hostile(good_ckpt, tmp_path, name, "plain_string"))
    with pytest.raises(CheckpointError, match="asks to import"):
        metric.setup(None, None, "fit")
    assert not marker.exists()


def test_metrics_never_read_a_checkpoint(good_ckpt, tmp_path, evil_module):
    """The feature extractor takes a loaded model, never a path: no second loading path beside the audited one."""
    from lightning_gen.metrics.image import ClassifierFeatures, build_extractor

    name, marker = evil_module
    path = _hostile(good_ckpt, tmp_path, name, "plain_string")
    with pytest.raises(TypeError, match="load_model"):
        ClassifierFeatures(path)
    with pytest.raises(TypeError, match="load_model"):
        build_extractor("classifier", path)
    assert not marker.exists()


def test_allow_module_opt_in(good_ckpt, tmp_path, evil_module, monkeypatch):
    """Your own network module, explicitly allowed (flag or environment), is imported; never by default."""
    name, marker = evil_module
    path = _hostile(good_ckpt, tmp_path, name, "plain_string")
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()
    monkeypatch.setenv("LIGHTNING_GEN_ALLOW_MODULES", f"other,{name}")
    model = load_model(path)  # the optimizer factory is only called by configure_optimizers
    assert marker.exists() and model.sample(2).isfinite().all()


def test_allow_module_flag_of_sample(good_ckpt, tmp_path, evil_module):
    name, marker = evil_module
    path = _hostile(good_ckpt, tmp_path, name, "plain_string")
    out = tmp_path / "s.npz"
    assert sample.main([path, "--output", str(out), "--num-samples", "2", "--allow-module", name]) == 0
    assert marker.exists() and out.exists()


def test_strings_that_cannot_be_imported_are_data(good_ckpt, tmp_path):
    """A file name such as ``digits.npz`` looks like ``a.b`` but names no module: it is not refused."""
    ckpt = torch.load(good_ckpt, weights_only=True)
    ckpt["datamodule_hyper_parameters"]["note"] = "digits_file_xyz.npz"
    path = tmp_path / "ok.ckpt"
    torch.save(ckpt, path)
    assert load_model(path).sample(1).shape == (1, 1, 8, 8)
