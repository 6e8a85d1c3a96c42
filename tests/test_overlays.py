"""Conditional configs are overlays stacked on their unconditional twins (``--config A.yaml --config A_cond.yaml``):
in the wrong order or alone ``fit`` says which file goes first, and ``evaluate --data`` stacks them as ``fit`` does.
(tests/test_configs.py runs every overlay on its twin.)"""

import os

import pytest

from lightning_gen.cli import main
from lightning_gen.errors import UserError
from lightning_gen.jobs.evaluate import EvaluateError, build_parser, resolve_data_spec
from lightning_gen.lightning_cli.parser import check_overlay_order, merge_configs
from tests.conftest import REPO

SINES, SINES_COND = (os.path.join(REPO, f"configs/lstm_gan/{n}.yaml") for n in ("sines", "sines_cond"))
MNIST, MNIST_COND = (os.path.join(REPO, f"configs/gan/{n}.yaml") for n in ("mnist", "mnist_cond"))


@pytest.mark.parametrize("order", ["alone", "first"])
def test_an_overlay_before_its_twin_is_refused_with_the_order_to_use(order, tmp_path, capsys):
    configs = ["--config", MNIST_COND] + (["--config", MNIST] if order == "first" else [])
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *configs, f"--trainer.default_root_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"--config {MNIST} --config {MNIST_COND}" in err and "`model.class_path`" in err
    assert not (tmp_path / "run").exists()


def test_a_model_or_data_named_on_the_command_line_lets_an_overlay_come_first():
    """``--model=CLASS`` names the class, so a config that only sets its arguments may follow it."""
    check_overlay_order(["fit", "--model=lightning_gen.models.GAN", "--config", MNIST_COND])
    check_overlay_order(["fit", "--data", "lightning_gen.data.SinesDataModule", "--model=x.Y", "--config", SINES_COND])
    with pytest.raises(UserError, match="`data.class_path`"):
        check_overlay_order(["fit", "--model=x.Y", "--config", SINES_COND])


def test_evaluate_data_stacks_an_overlay_on_its_twin():
    """``--data A --data A_cond``: the twin's dataset and settings, with the overlay's labels switched on."""
    assert build_parser().parse_args(["x.ckpt", "--data", SINES, "--data", SINES_COND]).data == [SINES, SINES_COND]
    twin = resolve_data_spec(SINES, None, [])
    spec = resolve_data_spec([SINES, SINES_COND], None, ["seq_len=8"])
    assert spec["class_path"] == twin["class_path"] == "lightning_gen.data.SinesDataModule"
    assert spec["init_args"] == {**twin["init_args"], "condition": "frequency_band", "num_bands": 3, "seq_len": 8}
    assert "condition" not in twin["init_args"]
    # an image overlay changes no data setting: its twin's data as it is
    assert resolve_data_spec([MNIST, MNIST_COND], None, []) == resolve_data_spec(MNIST, None, [])


def test_evaluate_data_of_another_class_brings_its_own_arguments(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("data:\n  class_path: lightning_gen.data.DigitsDataModule\n  init_args: {batch_size: 8}\n")
    spec = resolve_data_spec([SINES, str(other)], None, [])
    assert spec == {"class_path": "lightning_gen.data.DigitsDataModule", "init_args": {"batch_size": 8}}


def test_evaluate_data_overlay_alone_names_the_twin_to_give_first():
    with pytest.raises(EvaluateError, match=f"--data {SINES} --data {SINES_COND}"):
        resolve_data_spec([SINES_COND], None, [])


def test_merge_configs_follows_lightningclis_rules_on_the_files_keys():
    base = {
        "trainer": {"max_epochs": 40, "callbacks": [{"class_path": "A"}, {"class_path": "B"}]},
        "model": {"class_path": "GAN", "init_args": {"generator": {"class_path": "G", "init_args": {"width": 64}}}},
    }
    overlay = {
        "trainer": {"callbacks": [{"class_path": "C"}]},
        "model": {"init_args": {"generator": {"init_args": {"num_classes": 10}}, "discriminator": {"class_path": "D"}}},
    }
    merged = merge_configs(base, overlay)
    assert merged["trainer"] == {"max_epochs": 40, "callbacks": [{"class_path": "C"}]}  # a list replaces
    assert merged["model"]["init_args"]["generator"] == {
        "class_path": "G",
        "init_args": {"width": 64, "num_classes": 10},
    }
    assert merged["model"]["init_args"]["discriminator"] == {"class_path": "D"}
    other = merge_configs(base, {"model": {"class_path": "VAE", "init_args": {"kl_weight": 0.1}}})
    assert other["model"] == {"class_path": "VAE", "init_args": {"kl_weight": 0.1}}  # another class starts afresh
    assert base["model"]["init_args"]["generator"]["init_args"] == {"width": 64}  # the inputs are not changed
