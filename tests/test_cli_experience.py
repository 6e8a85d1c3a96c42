"""The CLI as a user meets it: a fast --help, a thread setting, plain logs, a closing summary and a
clear answer when a finished run is resumed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lightning_gen.cli import run_lightning_cli
from tests.conftest import REPO
from tests.robust_helpers import family_args, fit_family, last_ckpt


def test_help_imports_neither_torch_nor_lightning():
    code = (
        "import sys; from lightning_gen.cli import main; main(['--help']); "
        "print('HEAVY', sorted(m for m in ('torch', 'pytorch_lightning', 'jsonargparse') if m in sys.modules))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout  # --help costs a fraction of a second, not the seconds of importing Lightning
    usage = out.stdout.splitlines()[0]
    assert usage.startswith("usage: lightning-gen {fit,validate,test}") and "predict" not in usage
    assert "--threads" in out.stdout


def test_threads_flag_config_key_and_default(tmp_path, restore_threads, monkeypatch):
    from lightning_gen.lightning_cli import DEFAULT_THREADS

    args = family_args("gan", tmp_path)[1:]  # without the subcommand: run=False parses one config
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    run_lightning_cli(args, run=False)
    assert torch.get_num_threads() == DEFAULT_THREADS == 1  # the default applies before the model is built

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting wins over the default, not over --threads
    torch.set_num_threads(2)
    run_lightning_cli(args, run=False)
    assert torch.get_num_threads() == 2

    cfg = tmp_path / "threads.yaml"
    cfg.write_text("threads: 2\n")
    cli = run_lightning_cli([*args, "--config", str(cfg)], run=False)
    assert cli.config["threads"] == 2 and torch.get_num_threads() == 2  # a top-level config key

    run_lightning_cli([*args, "--threads=1"], run=False)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    run_lightning_cli([*args, "--threads=0"], run=False)  # 0: leave torch's setting alone
    assert torch.get_num_threads() == 2


def test_threads_must_not_be_negative(tmp_path, restore_threads):
    from lightning_gen.errors import UserError

    with pytest.raises(UserError, match="--threads must be an integer >= 0"):
        run_lightning_cli([*family_args("gan", tmp_path)[1:], "--threads=-2"], run=False)


def test_fit_ends_with_summary_plain_epoch_lines_and_finished_resume_creates_nothing(tmp_path, capsys, restore_threads):
    root = tmp_path / "run"
    plain_bar = ["--trainer.enable_progress_bar=true"]  # stdout is not a terminal here: one line per epoch
    # one batch per epoch, no loss-curve picture (tests/test_ux_pictures.py checks its summary line): three fits
    short = ["--trainer.limit_train_batches=1", "--loss_curves.enabled=false"]
    fit_family("gan", root, "--trainer.max_epochs=2", *plain_bar, *short)
    out, err = capsys.readouterr()
    folder = os.path.join(str(root), "lightning_logs", "version_0")
    assert "\x1b[" not in out + err and "\r" not in out + err  # no terminal control codes in a redirected log
    assert "epoch 1/2" in out and "epoch 2/2" in out and "val/d_loss=" in out
    assert "v_num" not in out + err and "litlogger" not in out + err and "tensorboardX" not in out + err
    assert "Fit finished: 2 epoch(s), 2 step(s)." in err
    assert f"checkpoint:  {last_ckpt(root)}" in err
    assert f"metrics:     {os.path.join(folder, 'metrics.csv')}" in err
    assert "final:" in err and "val/d_loss=" in err.split("final:")[1]

    # resuming the finished run: a clear message, the flag to extend it, and no new version_N
    fit_family("gan", root, "--trainer.max_epochs=2", f"--ckpt_path={last_ckpt(root)}", *short)
    out, err = capsys.readouterr()
    assert "is finished (it reached max_epochs=2: 2 epochs trained)" in err
    assert "--trainer.max_epochs=4" in err and "Fit finished" not in err
    assert sorted(os.listdir(os.path.join(str(root), "lightning_logs"))) == ["version_0"]

    # and extending it trains on into version_1
    cli = fit_family("gan", root, "--trainer.max_epochs=3", f"--ckpt_path={last_ckpt(root)}", *short)
    assert cli.trainer.current_epoch == cli.trainer.global_step == 3 and os.path.isfile(last_ckpt(root, version=1))
    err = capsys.readouterr().err
    assert f"(the steps before the resume: {os.path.join(folder, 'metrics.csv')})" in err


def test_modules_of_the_current_folder_are_importable_last(tmp_path, monkeypatch):
    """`lightning-gen fit` finds `mynets.MyGen` in the folder it runs in without PYTHONPATH=., and such a file
    never shadows an installed module (the folder goes last on sys.path)."""
    from lightning_gen import cli

    (tmp_path / "my_ux_nets.py").write_text("VALUE = 42\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    cli._add_cwd_to_path()
    assert sys.path[-1] == str(tmp_path)
    import my_ux_nets

    assert my_ux_nets.VALUE == 42
    sys.modules.pop("my_ux_nets", None)
