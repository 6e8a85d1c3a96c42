"""The W&B logger preset: offline fallback (no key, no network), one folder per run, full config, images."""

import glob
import os

import pytest
import yaml

from lightning_gen import wandb_utils
from lightning_gen.cli import run_lightning_cli
from tests.conftest import REPO


@pytest.fixture
def no_wandb_setup(tmp_path, monkeypatch):
    """No WANDB_MODE, no API key, no ~/.netrc: what a fresh offline machine looks like."""
    for var in (
        "WANDB_MODE",
        "WANDB_API_KEY",
        "WANDB_BASE_URL",
        "WANDB_RUN_ID",
        "WANDB_NAME",
        "WANDB_RUN_GROUP",
        "WANDB_PROJECT",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setattr(wandb_utils, "_ANNOUNCED", False)


def test_no_api_key_means_offline(no_wandb_setup):
    mode, why = wandb_utils.wandb_mode()
    assert mode == "offline" and "API key" in why


def test_unreachable_host_means_offline_quickly(no_wandb_setup, monkeypatch):
    import time

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    mode, why = wandb_utils.wandb_mode(timeout=2.0)
    assert mode == "offline" and "cannot reach http://127.0.0.1:9" in why
    assert time.monotonic() - start < 5


def test_wandb_mode_env_wins(no_wandb_setup, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_utils.wandb_mode() == ("disabled", None)


def test_offline_logger_without_checkpoint_artifacts(no_wandb_setup):
    logger = wandb_utils.WandbLogger(project="p", log_model=True)
    assert logger.mode == "offline" and logger._log_model is False
    assert "log_model" in logger.offline_reason


def test_logger_preset_offline_run_folder_with_image(no_wandb_setup, tmp_path, capfd):
    import wandb

    root = tmp_path / "run"
    cli = run_lightning_cli(
        [
            "fit",
            "--config",
            os.path.join(REPO, "configs/gan/digits.yaml"),
            "--config",
            os.path.join(REPO, "configs/logger/wandb.yaml"),
            f"--trainer.default_root_dir={root}",
            "--trainer.max_steps=2",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--model.init_args.generator.init_args.base_channels=4",
            "--model.init_args.discriminator.init_args.base_channels=4",
            "--model.init_args.n_critic=1",
            "--data.init_args.batch_size=4",
            "--trainer.logger.init_args.tags=[test]",
        ]
    )
    try:
        logger = cli.trainer.logger
        assert isinstance(logger, wandb_utils.WandbLogger) and logger.mode == "offline"
        # the full resolved config is the run's `config`, next to the model's own hyperparameters
        config = dict(logger.experiment.config)
        assert config["config"]["model"]["init_args"]["n_critic"] == 1
        assert config["config"]["trainer"]["logger"]["class_path"] == "lightning_gen.wandb_utils.WandbLogger"
        assert logger.experiment.tags == ("test",)
        run_dir = logger.save_dir  # this run's own folder under default_root_dir
        assert run_dir == os.path.join(str(root), "lightning_gen", logger.version)
        assert os.path.isfile(os.path.join(run_dir, "config.yaml"))
        assert os.path.isfile(os.path.join(run_dir, "samples", "final.png"))
        assert os.path.isfile(os.path.join(run_dir, "checkpoints", "last.ckpt"))
        with open(os.path.join(run_dir, "config.yaml")) as f:
            assert yaml.safe_load(f)["trainer"]["default_root_dir"] == str(root)
    finally:
        wandb.finish()
    offline_runs = glob.glob(os.path.join(root, "wandb", "offline-run-*"))
    assert len(offline_runs) == 1 and offline_runs[0].endswith(logger.version)
    assert glob.glob(os.path.join(offline_runs[0], "files", "media", "images", "samples_*.png"))
    assert glob.glob(os.path.join(offline_runs[0], "run-*.wandb"))
    err = capfd.readouterr().err
    assert err.count("W&B runs offline: no W&B API key") == 1 and "wandb sync" in err
    assert "anonymous setting" not in err  # W&B's notice about the argument Lightning always passes
