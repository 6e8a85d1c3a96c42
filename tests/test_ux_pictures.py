"""Pictures a researcher expects: a loss-curve PNG at the end of every fit, spanning resumed parts of the
run, with or without a CSV logger; a line plot from `sample` on real-valued sequences; piano rolls with pitch and
time axes; generator-side metrics from `test`."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_gen import plotting
from lightning_gen.cli import run_lightning_cli
from tests.robust_helpers import family_args, last_ckpt


def _csv(path, rows: list[str]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("epoch,step,train/d_loss,val/d_loss\n" + "\n".join(rows) + "\n")
    return str(path)


def test_metrics_parts_are_read_and_joined_at_the_resume(tmp_path):
    rows = ["0,1,0.9,", "0,3,0.8,", "0,3,,0.7", "1,7,0.75,"]  # the run went on to step 7 after the checkpoint
    first = plotting.read_metrics_csv(_csv(tmp_path / "v0" / "metrics.csv", rows))
    assert first == {"train/d_loss": [(1.0, 0.9), (3.0, 0.8), (7.0, 0.75)], "val/d_loss": [(3.0, 0.7)]}
    second = {"train/d_loss": [(4.0, 0.6), (5.0, 0.5)]}  # resumed from the checkpoint of step 3
    joined, resumes = plotting.join_parts([first, {}, second])
    assert joined["train/d_loss"] == [(1.0, 0.9), (3.0, 0.8), (4.0, 0.6), (5.0, 0.5)]  # step 7 was trained again
    assert resumes == [4.0] and joined["val/d_loss"] == [(3.0, 0.7)]
    assert plotting.read_metrics_csv(tmp_path / "missing.csv") == {}

    fig = plotting.loss_curve_figure(joined, resumes, "run")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["d_loss"]  # train and val on one panel
    path = plotting.save_figure(fig, tmp_path / "curves.png")
    with Image.open(path) as image:
        assert min(image.size) > 100
    assert plotting.loss_curve_figure({}) is None


def test_sequence_panels_have_axes():
    rolls = (np.random.default_rng(0).random((2, 16, 53)) > 0.8).astype(np.float32)  # (N, T, P)
    fig = plotting.sequence_figure([(rolls, "real"), (rolls, "generated")], roll=True, pitch_low=36, step=0.5)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "MIDI pitch" and ax.get_xlabel() == "time (quarter notes)"
    assert ax.get_ylim() == (35.5, 88.5) and ax.get_xlim() == (0.0, 8.0)  # pitches 36..88, 16 eighths = 8 quarters
    lines = plotting.sequence_figure([(np.zeros((3, 8, 5)), "sample")], max_cols=2)
    assert sum(ax.get_visible() for ax in lines.axes) == 3 and lines.axes[0].get_xlabel() == "time step"
    plotting.pyplot().close("all")


class _StubSequenceModel:
    """What the sample job uses of a sequence model, without training one."""

    def __init__(self, roll: bool):
        self.data_info = argparse.Namespace(
            is_piano_roll=roll, pitch_low=torch.tensor(36 if roll else -1), step=torch.tensor(0.5)
        )
        self.dim = 53 if roll else 5

    def modules(self):  # no voice networks: the job writes piano rolls / real values
        return iter(())

    def sample_length(self, length):
        return length or 16

    def sample(self, n, length):
        return torch.rand(n, length, self.dim, generator=torch.Generator().manual_seed(n))

    def to_original(self, x):
        return x / 2 + 0.5


def _sample_args(output):
    return argparse.Namespace(
        num_samples=3, batch_size=4, length=None, grid_size=64, prior=None, output=str(output), wav=0
    )


def test_sample_job_draws_sines_and_labelled_piano_rolls(tmp_path, monkeypatch):
    from lightning_gen import plotting
    from lightning_gen.jobs import sample

    written = sample.write_sequence_samples(_StubSequenceModel(roll=False), _sample_args(tmp_path / "seq.npz"))
    assert written["plot"] == str(tmp_path / "seq.png") and os.path.isfile(written["plot"])

    drawn = []
    real_save = plotting.save_sequences
    monkeypatch.setattr(plotting, "save_sequences", lambda *a, **kw: drawn.append(kw) or real_save(*a, **kw))
    written = sample.write_sequence_samples(_StubSequenceModel(roll=True), _sample_args(tmp_path / "roll.npz"))
    assert written["piano roll"] == str(tmp_path / "roll.png") and os.path.isfile(written["piano roll"])
    assert drawn == [{"roll": True, "pitch_low": 36, "step": 0.5, "label": "sample"}]  # pitch and time axes


CURVES = "--loss_curves.enabled=true"  # the tiny runs of tests/robust_helpers.py draw none


def _curves(cli):
    from lightning_gen.callbacks import LossCurves

    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, LossCurves))


def test_fit_writes_loss_curves_without_a_csv_logger(tmp_path, capsys):
    cli = run_lightning_cli(family_args("gan", tmp_path, "--trainer.max_epochs=1", "--trainer.logger=false", CURVES))
    curves = _curves(cli)
    assert curves.last_path == os.path.join(str(tmp_path), "loss_curves.png") and os.path.isfile(curves.last_path)
    assert {"train/d_loss", "val/d_loss"} <= set(curves.recorded)  # collected by the callback itself
    assert f"loss curves: {curves.last_path}" in capsys.readouterr().err


def test_a_diverged_run_gets_its_loss_curves(tmp_path, capsys):
    import json

    from lightning_gen.cli import main

    poison = json.dumps([{"class_path": "tests.robust_helpers.PoisonAt", "init_args": {"step": 2}}])
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path, "--trainer.max_steps=3", f"--trainer.callbacks={poison}", CURVES))
    assert exit_.value.code == 3 and "Training diverged" in capsys.readouterr().err  # the run's own error, kept
    assert os.path.isfile(os.path.join(str(tmp_path), "lightning_logs", "version_0", "loss_curves.png"))


@pytest.mark.slow
def test_loss_curves_span_resumed_parts_and_test_reports_generator_metrics(tmp_path):
    root = tmp_path / "run"
    run_lightning_cli(family_args("gan", root, "--trainer.max_epochs=1", CURVES))
    assert os.path.isfile(os.path.join(str(root), "lightning_logs", "version_0", "loss_curves.png"))
    run_lightning_cli(family_args("gan", root, "--trainer.max_epochs=2", f"--ckpt_path={last_ckpt(root)}", CURVES))
    cli = run_lightning_cli(
        family_args("gan", root, "--trainer.max_epochs=3", f"--ckpt_path={last_ckpt(root, version=1)}", CURVES)
    )
    curves = _curves(cli)
    folders = [os.path.join(str(root), "lightning_logs", f"version_{i}") for i in range(3)]
    assert curves.earlier_runs == folders[:2]  # version_0 found through version_1's checkpoint
    assert curves.last_path == os.path.join(folders[2], "loss_curves.png")
    series, resumes = curves.series(cli.trainer)
    assert resumes == sorted(resumes) and len(resumes) == 2
    steps = [s for s, _ in series["train/d_loss"]]
    assert steps == sorted(steps) and steps[0] < resumes[0] < resumes[1] < steps[-1]

    args = family_args("gan", root, f"--ckpt_path={last_ckpt(root, version=2)}")
    cli = run_lightning_cli(["test", *args[1:]])
    metrics = cli.trainer.callback_metrics
    assert {"test/d_loss", "test/g_adversarial"} <= set(metrics) and torch.isfinite(metrics["test/g_adversarial"])


def test_sequence_plot_callback_draws_rolls_with_axes(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lightning_gen import callbacks

    rolls = (np.random.default_rng(0).random((4, 16, 53)) > 0.8).astype(np.float32)
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(splits={"val": rolls}), loggers=[], default_root_dir=str(tmp_path), global_step=0
    )
    model = _StubSequenceModel(roll=True)
    figures = []
    real_figure = plotting.sequence_figure
    monkeypatch.setattr(plotting, "sequence_figure", lambda *a, **kw: figures.append(kw) or real_figure(*a, **kw))
    path = callbacks.SequencePlot(num_sequences=2).write(trainer, model, "final")
    assert path == os.path.join(str(tmp_path), "samples", "sequences_final.png") and os.path.isfile(path)
    assert figures == [{"roll": True, "pitch_low": 36, "step": 0.5}]
