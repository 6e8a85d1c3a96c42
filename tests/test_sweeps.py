"""Sweep files (W&B's schema, keys of the config) and the offline runner ``lightning-gen sweep``."""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from lightning_gen.jobs.sweep import LocalSweep, SweepError, check_parameters, expand_command, load_sweep, main
from lightning_gen.lightning_cli.parser import stacked_config
from tests.conftest import REPO

SWEEP_FILES = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "sweeps", "*.yaml")))

# A trial of a few seconds: 8x8 digits, 4-channel DCGAN, two batches of 4, one validation.
TINY = [
    "lightning-gen",
    "fit",
    "--config",
    os.path.join(REPO, "configs/gan/digits.yaml"),
    "--trainer.max_steps=4",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.callbacks=[]",
    "--checkpoint.save_last=false",
    "--model.init_args.generator.init_args.base_channels=4",
    "--model.init_args.discriminator.init_args.base_channels=4",
    "--data.init_args.batch_size=4",
    "${args}",
]


def write_sweep(tmp_path, name="tiny", **overrides) -> str:
    config = {
        "method": "grid",
        "metric": {"name": "val/d_loss", "goal": "minimize"},
        "parameters": {"model.init_args.n_critic": {"values": [1, 0, 2]}},
        "command": TINY,
    }
    config.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def quick_trial_processes(monkeypatch) -> list:
    """From now on every trial process runs a `python -c` that records `val/d_loss = 1.0` instead of training (for
    tests of the runner's bookkeeping); returns the list of the trial commands it replaced."""
    real = subprocess.Popen
    seen = []

    def fake(cmd, *args, **kwargs):
        if "lightning_gen.cli" in cmd:
            seen.append(cmd)
            metrics = json.loads(cmd[-1].split("=", 1)[1])["init_args"]["path"]  # the TrialRecorder's file
            record = json.dumps({"event": "validation", "epoch": 0, "step": 1, "metrics": {"val/d_loss": 1.0}})
            cmd = [sys.executable, "-c", f"open({metrics!r}, 'a').write({record!r} + '\\n')"]
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", fake)
    return seen


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))


def _swept_model(sweep_file: str) -> str:
    """The model class of the config a sweep file's command trains (its last ``--config`` that names a model)."""
    command = [str(c) for c in load_sweep(os.path.join(REPO, sweep_file))["command"]]
    model = None
    for flag, value in zip(command, command[1:]):
        if flag == "--config":
            with open(os.path.join(REPO, value)) as f:
                model = (yaml.safe_load(f).get("model") or {}).get("class_path", model)
    return model


def test_every_hybrid_family_has_a_sweep():
    models = {_swept_model(p) for p in SWEEP_FILES}
    hybrids = {f"lightning_gen.models.{name}" for name in ("GAN", "VAEGAN", "RVAEGAN", "LSTMGAN")}
    assert hybrids <= models, (SWEEP_FILES, models)


def _classifier_roots() -> dict[str, str]:
    """``default_root_dir`` of each shipped classifier config -> the config: where its fits write their runs."""
    roots = {}
    for config in glob.glob(os.path.join(REPO, "configs", "classifier", "*.yaml")):
        with open(config) as f:
            roots[yaml.safe_load(f)["trainer"]["default_root_dir"]] = os.path.relpath(config, REPO)
    return roots


def _added_callbacks(sweep_file: str) -> list[dict]:
    """The callbacks the sweep file's command adds (``--trainer.callbacks+=``)."""
    command = load_sweep(os.path.join(REPO, sweep_file))["command"]
    return [json.loads(str(a).split("=", 1)[1]) for a in command if str(a).startswith("--trainer.callbacks+=")]


def _fid_classifiers(sweep_file: str) -> list[str]:
    """The ``classifier`` of every metric callback the sweep file's command adds (FID, class accuracy)."""
    return [c["init_args"]["classifier"] for c in _added_callbacks(sweep_file) if "classifier" in c["init_args"]]


def test_fid_sweeps_name_the_run_folder_the_classifier_config_writes():
    """A sweep's FID classifier is the run folder a shipped classifier config trains into (so it holds that fit's
    newest last.ckpt, whatever its version number), never one fixed version_N of it."""
    roots = _classifier_roots()
    named = {p: _fid_classifiers(p) for p in SWEEP_FILES}
    assert sum(len(v) for v in named.values()) >= 7, named  # gan_digits(_cond), vae_gan_digits, (gan_)mnist_cpu..
    for path, classifiers in named.items():
        for classifier in classifiers:
            assert classifier in roots, (path, classifier, roots)


def _swept_config(sweep_file: str) -> dict:
    """The raw config a sweep trains: its ``--config`` files (a conditional overlay after its twin), merged."""
    command = [str(c) for c in load_sweep(os.path.join(REPO, sweep_file))["command"]]
    configs = [v for flag, v in zip(command, command[1:]) if flag == "--config" and "logger" not in v]
    return stacked_config([os.path.join(REPO, path) for path in configs])


def _conditional(config: dict) -> bool:
    nets = config["model"]["init_args"]
    return any("num_classes" in (nets.get(n) or {}).get("init_args", {}) for n in ("generator", "decoder"))


def test_conditional_configs_have_sweeps_that_search_the_conditional_options_and_score_the_class():
    """A conditional sweep for the conditional GAN (digits and MNIST) and a sequence family; each logs
    val/class_accuracy (ClassAccuracyMetric) and searches how the label is used: D's projection head vs auxiliary
    classifier and the auxiliary loss's weight for the image GANs, the label embeddings' size for sequences."""
    conditional = [p for p in SWEEP_FILES if _conditional(_swept_config(p))]
    assert {"sweeps/gan_digits_cond.yaml", "sweeps/gan_mnist_cpu_cond.yaml"} <= set(conditional), conditional
    assert any(_swept_model(p) == "lightning_gen.models.LSTMGAN" for p in conditional), conditional
    for path in conditional:
        added = [c["class_path"] for c in _added_callbacks(path)]
        assert "lightning_gen.metrics.class_accuracy.ClassAccuracyMetric" in added, (path, added)
        parameters = load_sweep(os.path.join(REPO, path))["parameters"]
        d = _swept_config(path)["model"]["init_args"]["discriminator"]["class_path"]
        if d.endswith("DCGANDiscriminator"):
            conditioning = parameters["model.init_args.discriminator.init_args.conditioning"]["values"]
            assert sorted(conditioning) == ["auxiliary", "projection"], path
            assert "model.init_args.class_weight" in parameters, path
        else:
            assert any(key.endswith("init_args.label_dim") for key in parameters), path
    for path in set(SWEEP_FILES) - set(conditional):  # the callback that needs a conditional model is not there
        assert all(c["class_path"].endswith("TrainingMetric") for c in _added_callbacks(path)), path


def test_a_run_folder_resolves_to_its_newest_last_checkpoint(tmp_path):
    from lightning_gen.checkpoints import CheckpointError, resolve_checkpoint

    root = tmp_path / "runs" / "classifier" / "digits"
    for version in (0, 2, 10):
        (root / "lightning_logs" / f"version_{version}" / "checkpoints").mkdir(parents=True)
        (root / "lightning_logs" / f"version_{version}" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (root / "lightning_logs" / "version_11").mkdir()  # a run that wrote no checkpoint (yet)
    newest = root / "lightning_logs" / "version_10" / "checkpoints" / "last.ckpt"
    assert resolve_checkpoint(root) == newest  # 10 > 2 as numbers, not as strings; version_11 has none
    assert resolve_checkpoint(root / "lightning_logs" / "version_2") == root.joinpath(
        "lightning_logs", "version_2", "checkpoints", "last.ckpt"
    )
    assert resolve_checkpoint(newest) == newest
    with pytest.raises(CheckpointError, match="folder without a last.ckpt"):
        resolve_checkpoint(tmp_path / "runs")


@pytest.mark.parametrize("path", SWEEP_FILES)
def test_sweep_file_passes_wandb_schema(path):
    import sweeps

    with open(os.path.join(REPO, path)) as f:
        config = yaml.safe_load(f)
    assert sweeps.schema_violations_from_proposed_config(config) == []
    assert load_sweep(os.path.join(REPO, path))["metric"]["name"].startswith("val/")
    assert "configs/logger/wandb.yaml" in config["command"]  # `wandb agent` runs report to W&B


@pytest.mark.parametrize("path", SWEEP_FILES)
def test_sweep_parameters_are_config_keys(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the commands name configs relative to the repository, as `wandb agent` runs them
    sweep = LocalSweep(path, directory="unused")
    params = sweep.propose(1)
    resolved = check_parameters(sweep.config, params, path)
    for key, value in params.items():
        node = resolved
        for part in key.split("."):
            node = node[part]
        assert node == pytest.approx(value) if isinstance(value, float) else node == value, key
    # the metric callback the command appends (--trainer.callbacks+=...) joins the config's own callbacks
    command = sweep.config["command"]
    with open(command[command.index("--config") + 1]) as f:
        own = [c["class_path"] for c in yaml.safe_load(f)["trainer"].get("callbacks", [])]
    callbacks = [c["class_path"] for c in resolved["trainer"]["callbacks"]]
    assert set(own) < set(callbacks) and "lightning_gen.metrics.callback.TrainingMetric" in callbacks
    assert resolved["trainer"]["logger"]["class_path"] == "lightning_gen.wandb_utils.WandbLogger"


def test_expand_command_like_wandb_agent():
    config = {"command": ["lightning-gen", "fit", "--config", "c.yaml", "${args}"]}
    command = expand_command(config, {"model.init_args.n_critic": 2, "data.init_args.batch_size": 32})
    assert command[1:3] == ["-m", "lightning_gen.cli"]
    expected = ["fit", "--config", "c.yaml", "--model.init_args.n_critic=2", "--data.init_args.batch_size=32"]
    assert command[3:] == expected


def test_schema_rejected_file_shows_wandb_message(tmp_path, capsys):
    path = write_sweep(tmp_path, method="gridd")
    assert main([path, "--count", "1", "--dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "W&B's schema check says" in err and "'gridd' is not one of" in err
    assert not (tmp_path / "out").exists()


def test_unknown_parameter_key_is_named(tmp_path):
    path = write_sweep(tmp_path, parameters={"model.init_args.n_critics": {"values": [1, 2]}})
    with pytest.raises(SweepError, match="n_critics"):
        LocalSweep(path, directory=str(tmp_path / "out")).run(2)
    assert not (tmp_path / "out" / "trial-0001").exists()  # nothing ran


def test_command_without_args_macro(tmp_path):
    path = write_sweep(tmp_path, command=TINY[:-1])
    with pytest.raises(SweepError, match=r"\$\{args\}"):
        load_sweep(path)


def test_metric_never_logged_is_named_with_what_was_logged(tmp_path):
    """The check the runner makes after the first finished trial, on a trial's recorded output."""
    path = write_sweep(tmp_path, metric={"name": "val/fid_typo", "goal": "minimize"})
    sweep = LocalSweep(path, directory=str(tmp_path / "out"))
    trial = {"number": 1, "name": "trial-0001", "params": {}, "trial_dir": "trial-0001"}
    os.makedirs(sweep.trial_dir(trial))
    with open(os.path.join(sweep.trial_dir(trial), "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"event": "validation", "epoch": 0, "step": 4, "metrics": {"val/d_loss": 1.3}}) + "\n")
    sweep.trials = [trial]
    sweep._finish(trial, 0, None, os.path.join(sweep.trial_dir(trial), "output.log"))
    assert trial["state"] == "finished" and trial["metric"] is None
    with pytest.raises(SweepError, match=r"'val/fid_typo' was never logged .*it logged: val/d_loss"):
        sweep._check_metric_logged(trial)


@pytest.mark.slow
def test_metric_never_logged_is_reported_after_first_trial(tmp_path, capsys):
    path = write_sweep(tmp_path, metric={"name": "val/fid_typo", "goal": "minimize"})
    out = tmp_path / "out"
    assert main([path, "--count", "3", "--dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "val/fid_typo" in err and "val/d_loss" in err  # names what the runs do log
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert len(trials) == 1  # stopped after the first trial, did not burn the others


def test_crash_recorded_next_runs_and_resume(tmp_path, capsys, monkeypatch):
    """Grid n_critic = 1, 0, 2: trial 2 crashes (n_critic >= 1), and a higher --count adds only trial 3 (a quick
    stand-in process: trial 1 already trained for real)."""
    path, out = write_sweep(tmp_path), tmp_path / "out"
    assert main([path, "--count", "2", "--dir", str(out)]) == 0
    first = json.loads((out / "results.json").read_text())["trials"]
    assert [t["state"] for t in first] == ["finished", "failed"]
    assert isinstance(first[0]["metric"], float) and first[0]["history"]
    assert os.path.isdir(out / first[0]["run_dir"])  # stored relative to the sweep folder
    assert "n_critic must be >= 1" in first[1]["reason"] and first[1]["metric"] is None

    started = quick_trial_processes(monkeypatch)
    assert main([path, "--count", "3", "--dir", str(out)]) == 0
    assert len(started) == 1  # trial 3 only
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert trials[:2] == first  # the recorded trials were not run again
    assert trials[2]["params"] == {"model.init_args.n_critic": 2}
    assert trials[2]["state"] == "finished" and isinstance(trials[2]["metric"], float)
    summary = (out / "summary.md").read_text().splitlines()
    metrics = sorted(t["metric"] for t in (trials[0], trials[2]))
    assert summary[2].startswith(("| 1 | finished", "| 3 | finished"))
    assert f"{metrics[0]:.4g}" in summary[2] and "failed" in summary[4]  # best first, failed last
    assert "already recorded" in capsys.readouterr().out


def test_hyperband_stops_a_trial_behind_the_others(tmp_path):
    path = write_sweep(tmp_path, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2})
    sweep = LocalSweep(path, directory=str(tmp_path / "out"))
    done = {"params": {"model.init_args.n_critic": 1}, "state": "finished"}
    sweep.trials = [
        {**done, "name": "trial-0001", "history": [1.0], "metric": 1.0},
        {**done, "name": "trial-0002", "history": [2.0], "metric": 2.0},
        {**done, "name": "trial-0003", "history": [5.0], "metric": None, "state": "running"},
    ]
    assert "hyperband" in sweep._should_stop(sweep.trials[2])
    sweep.trials[2]["history"] = [0.5]
    assert sweep._should_stop(sweep.trials[2]) is None


def test_changed_sweep_file_is_refused(tmp_path):
    path, out = write_sweep(tmp_path), tmp_path / "out"
    sweep = LocalSweep(path, directory=str(out))
    sweep.trials = [{"number": 1, "name": "trial-0001", "params": {}, "state": "failed", "metric": None}]
    sweep.save()
    write_sweep(tmp_path, parameters={"model.init_args.n_critic": {"values": [3]}})
    with pytest.raises(SweepError, match="different sweep file"):
        LocalSweep(path, directory=str(out))


@pytest.mark.slow
def test_two_trial_random_sweep_with_wandb_offline(tmp_path):
    path = write_sweep(
        tmp_path,
        method="random",
        parameters={
            "model.init_args.optimizer_g.init_args.lr": {"values": [1e-4, 1e-3]},
            "model.init_args.loss": {"values": ["ns", "hinge"]},
        },
        command=[*TINY[:4], "--config", os.path.join(REPO, "configs/logger/wandb.yaml"), *TINY[4:]],
    )
    out = tmp_path / "out"
    assert main([path, "--count", "2", "--dir", str(out)]) == 0
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert [t["state"] for t in trials] == ["finished", "finished"]
    assert all(isinstance(t["metric"], float) for t in trials)
    assert trials[0]["params"] != trials[1]["params"]
    for t in trials:  # each trial is its own offline W&B run, in its own folder
        assert glob.glob(os.path.join(out, t["trial_dir"], "wandb", "offline-run-*", "run-*.wandb"))
        assert os.path.isfile(os.path.join(out, t["run_dir"], "config.yaml"))


def test_extra_trial_arguments_and_resume_guard(tmp_path):
    path, out = write_sweep(tmp_path), tmp_path / "out"
    sweep = LocalSweep(path, directory=str(out), extra_args=["--trainer.max_epochs=3"])
    trial = {"name": "trial-0001", "params": {"model.init_args.n_critic": 2}, "trial_dir": "trial-0001"}
    command = sweep.command(trial)
    args = command.index("--model.init_args.n_critic=2")
    assert command[args + 1] == "--trainer.max_epochs=3"  # after ${args}, so it wins over the sweep's command
    assert command[-1].startswith("--trainer.callbacks+=") and "TrialRecorder" in command[-1]
    assert f"--trainer.default_root_dir={out / 'trial-0001'}" in command
    sweep.trials = [{"number": 1, "name": "trial-0001", "params": {}, "state": "failed", "metric": None}]
    sweep.save()
    with pytest.raises(SweepError, match="extra trial arguments"):
        LocalSweep(path, directory=str(out), extra_args=["--trainer.max_epochs=4"])


def test_failure_reason_is_the_last_error_line(tmp_path):
    from lightning_gen.jobs.sweep import failure_reason

    log = tmp_path / "output.log"
    log.write_text("Traceback:\n  File x\nValueError: n_critic must be >= 1, got 0.\nwandb: x\n")
    assert failure_reason(str(log), 1) == "exit code 1: ValueError: n_critic must be >= 1, got 0."
    log.write_text("usage: ...\nerror: Parser key \"model\":\n  Option 'n_critics' is not accepted\n")
    assert "n_critics" in failure_reason(str(log), 2)


def test_metric_never_logged_because_callback_is_slower_than_the_trial(tmp_path):
    """2-epoch trials with an FID callback every 5 epochs: the advice names the callback's every_n_epochs and the
    trial length, not 'add the callback'."""
    path = write_sweep(tmp_path, metric={"name": "val/fid", "goal": "minimize"})
    sweep = LocalSweep(path, directory=str(tmp_path / "out"))
    trial = {"number": 1, "name": "trial-0001", "params": {}, "trial_dir": "trial-0001"}
    run = os.path.join(sweep.trial_dir(trial), "lightning_logs", "version_0")
    os.makedirs(run)
    with open(os.path.join(run, "config.yaml"), "w") as f:
        f.write(
            "trainer:\n  max_epochs: 2\n  callbacks:\n  - class_path: lightning_gen.callbacks.FIDCallback\n"
            "    init_args:\n      every_n_epochs: 5\n"
        )
    with open(os.path.join(sweep.trial_dir(trial), "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"event": "validation", "epoch": 1, "step": 4, "metrics": {"val/d_loss": 1.3}}) + "\n")
    sweep.trials = [trial]
    sweep._finish(trial, 0, None, os.path.join(sweep.trial_dir(trial), "output.log"))
    with pytest.raises(SweepError) as err:
        sweep._check_metric_logged(trial)
    message = str(err.value)
    assert "trains 2 epoch(s)" in message and "FIDCallback runs every 5 epochs" in message
    assert "every_n_epochs=1" in message and "add the callback" not in message
