"""Every shipped config runs (fast_dev_run), alone and with each trainer preset that fits this machine; a conditional
config (``<name>_cond.yaml``) is an overlay that runs stacked on its unconditional twin (``<name>.yaml``)."""

import glob
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
import torchvision
import yaml

from lightning_gen.cli import run_lightning_cli
from lightning_gen.jobs.sample import is_conditional
from lightning_gen.lightning_cli.parser import config_stack, stacked_config
from tests.conftest import REPO, config_args, write_fake_cifar10, write_fake_mnist

PRESET_DIRS = ("trainer", "logger")
MODEL_CONFIGS = sorted(
    os.path.relpath(p, REPO)
    for p in glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
    if os.path.basename(os.path.dirname(p)) not in PRESET_DIRS
)
OVERLAYS = [c for c in MODEL_CONFIGS if c.endswith("_cond.yaml")]


def load(config: str) -> dict:
    with open(os.path.join(REPO, config)) as f:
        return yaml.safe_load(f) or {}


def composed_value(config: str, *keys: str):
    """The raw value at ``keys`` of ``config`` stacked on its twin (if it is an overlay)."""
    node = stacked_config([os.path.join(REPO, part) for part in config_stack(config)])
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def leaves(tree: dict, prefix: str = "") -> dict:
    """``{"model.init_args.generator.init_args.num_classes": 10, ...}``: a config's settings as dotted keys."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


_PARSED_CHORALES: dict[int, tempfile.TemporaryDirectory] = {}


def chorale_cache(root: str, count: int = 4) -> None:
    """Put the first ``count`` chorales' notes and keys, parsed once per test session, into ``root``'s note cache
    (``music.load_chorale_notes``'s file): each config then starts as a user's second run does. The parsing itself
    is tested in tests/test_sequence_data.py."""
    from lightning_gen.music import load_chorale_notes

    if count not in _PARSED_CHORALES:
        _PARSED_CHORALES[count] = tempfile.TemporaryDirectory(prefix="chorales")
        load_chorale_notes(_PARSED_CHORALES[count].name, count, progress=False, keys=True)
    shutil.copytree(os.path.join(_PARSED_CHORALES[count].name, "chorales"), os.path.join(root, "chorales"))


def data_overrides(config: str, tmp_path, monkeypatch) -> list[str]:
    """Point datasets that would download at tiny local fakes; others run as shipped."""
    data_class = composed_value(config, "data", "class_path") or ""
    name = data_class.rsplit(".", 1)[-1]
    root = str(tmp_path / "data")
    if name in ("MNISTDataModule", "FashionMNISTDataModule"):
        write_fake_mnist(root, "MNIST" if name == "MNISTDataModule" else "FashionMNIST")
    elif name == "CIFAR10DataModule":
        write_fake_cifar10(root)
        monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
        monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    elif name == "JapaneseVowelsDataModule":  # small .ts files of the archive's layout (not its checksums)
        from tests.variable_length_helpers import write_fake_vowels

        write_fake_vowels(root)
        return [f"--data.init_args.data_dir={root}", "--data.init_args.download=false",
                "--data.init_args.check_files=false", "--data.init_args.batch_size=4"]  # fmt: skip
    elif name == "ChoralesDataModule":  # 4 chorales, not all 371, parsed once for every chorale config
        chorale_cache(root)
        return [
            f"--data.init_args.data_dir={root}",
            "--data.init_args.max_chorales=4",
            "--data.init_args.progress=false",
            "--data.init_args.batch_size=4",
        ]
    elif name in ("StocksDataModule", "EnergyDataModule"):  # a small CSV of the file's width, not the real one
        width = 6 if name == "StocksDataModule" else 28
        path = tmp_path / "series.csv"
        rows = np.random.default_rng(0).uniform(1, 100, size=(48, width))
        path.write_text(",".join(f"c{i}" for i in range(width)) + "\n" + "\n".join(",".join(map(str, r)) for r in rows))
        return [f"--data.init_args.path={path}", "--data.init_args.sha256=null", "--data.init_args.batch_size=4"]
    elif name == "SinesDataModule":  # 64 sequences, not 10,000 (drawn, then encoded by the latent density refits)
        return ["--data.init_args.num_sequences=64", "--data.init_args.batch_size=4"]
    else:
        return []
    return [
        f"--data.init_args.data_dir={root}",
        "--data.init_args.download=false",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
    ]


def fit_args(config: str, tmp_path, *extra: str) -> list[str]:
    return [
        "fit",
        *config_args(config),
        "--trainer.fast_dev_run=true",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        *extra,
    ]


def test_configs_found():
    assert "configs/gan/digits.yaml" in MODEL_CONFIGS


def fid_classifier(config: str) -> str | None:
    """The ``classifier`` of the config's FID TrainingMetric (a run folder relative to the working folder), if any."""
    callbacks = composed_value(config, "trainer", "callbacks") or []
    for callback in callbacks:
        args = callback.get("init_args") or {}
        if callback["class_path"].endswith("TrainingMetric") and args.get("metric", "fid") == "fid":
            return args["classifier"]
    return None


def train_classifier_into(run_folder: str) -> None:
    """Fit (4 steps, a 4-channel net) the shipped classifier config whose ``default_root_dir`` is ``run_folder``, as
    shipped otherwise: the run lands where that config writes it, relative to the working folder."""
    for path in glob.glob(os.path.join(REPO, "configs", "classifier", "*.yaml")):
        with open(path) as f:
            if yaml.safe_load(f)["trainer"]["default_root_dir"] == run_folder:
                break
    else:
        raise AssertionError(f"no configs/classifier/*.yaml trains into {run_folder}")
    run_lightning_cli(
        ["fit", "--config", path, "--trainer.max_steps=4", "--trainer.limit_val_batches=1", "--trainer.callbacks=[]"]
        + ["--trainer.enable_progress_bar=false", "--model.init_args.network.init_args.width=4"]
    )


@pytest.mark.parametrize("config", MODEL_CONFIGS)
def test_config_fast_dev_run(config, tmp_path, monkeypatch):
    classifier = fid_classifier(config)
    if classifier:  # its classifier, trained by the classifier config in a fresh working folder
        monkeypatch.chdir(tmp_path)
        train_classifier_into(classifier)
    args = fit_args(config, tmp_path, *data_overrides(config, tmp_path, monkeypatch))
    cli = run_lightning_cli(args)
    assert cli.trainer.state.finished
    assert cli.trainer.global_step > 0  # at least one optimizer step ran
    for p in cli.model.parameters():
        assert torch.isfinite(p).all()
    if classifier:  # the metric ran on the classifier the config names (fast_dev_run computes it at once)
        assert torch.isfinite(cli.trainer.callback_metrics["val/fid"])
    if config in OVERLAYS:  # every setting of the overlay, and of its twin where the overlay says nothing, is used
        overlay, twin = leaves(load(config)), leaves(load(config_stack(config)[0]))
        given = tuple(arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--") and "=" in arg)
        for key, value in {**twin, **overlay}.items():
            if not key.startswith(given) and not key.startswith("trainer.callbacks"):
                used = cli.config["fit"][key]
                assert (list(used) if isinstance(used, tuple) else used) == value, (config, key)
        assert any(key.endswith(".num_classes") for key in overlay) and is_conditional(cli.model), config


def test_every_conditional_config_is_an_overlay_on_its_twin():
    """``<name>_cond.yaml`` holds only what differs from ``<name>.yaml`` (so nothing it shares can drift): no class
    path (one would restart that class's arguments from their defaults), no setting equal to the twin's, its own
    run folder."""
    assert len(OVERLAYS) >= 18, OVERLAYS
    for config in OVERLAYS:
        twin = config_stack(config)[0]
        assert os.path.isfile(os.path.join(REPO, twin)), f"{config} has no twin {twin}"
        overlay, twin_leaves = leaves(load(config)), leaves(load(twin))
        assert not [k for k in overlay if k.endswith("class_path")], config
        copied = [k for k, v in overlay.items() if k in twin_leaves and twin_leaves[k] == v]
        assert not copied, f"{config} repeats {copied} of {twin}"
        assert overlay["trainer.default_root_dir"] != twin_leaves["trainer.default_root_dir"], config


def test_a_shipped_config_computes_fid_while_training():
    """The README's TrainingMetric example is a shipped config, run above like every other."""
    assert any(fid_classifier(c) for c in MODEL_CONFIGS)


def test_cpu_preset_composes(tmp_path):
    cli = run_lightning_cli(
        fit_args("configs/gan/digits.yaml", tmp_path, "--config", os.path.join(REPO, "configs/trainer/cpu.yaml"))
    )
    assert cli.trainer.state.finished


def test_print_config_with_gpu_preset(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_lightning_cli(
            [
                "fit",
                "--config",
                os.path.join(REPO, "configs/gan/digits.yaml"),
                "--config",
                os.path.join(REPO, "configs/trainer/gpu.yaml"),
                "--model.init_args.n_critic=2",
                "--print_config",
            ]
        )
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["precision"] == "bf16-mixed"
    assert printed["trainer"]["accelerator"] == "gpu"
    assert printed["model"]["init_args"]["n_critic"] == 2
    assert printed["checkpoint"]["save_last"] is True


def test_unknown_config_key_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_lightning_cli(fit_args("configs/gan/digits.yaml", tmp_path, "--model.init_args.n_critics=2"))
    assert exit_.value.code != 0
    assert "n_critics" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_unknown_dataset_class(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_lightning_cli(fit_args("configs/gan/digits.yaml", tmp_path, "--data=lightning_gen.data.NoSuchDataModule"))
    assert exit_.value.code != 0
    assert "NoSuchDataModule" in capsys.readouterr().err


def test_bad_n_critic_from_cli(tmp_path):
    with pytest.raises(ValueError, match="n_critic must be >= 1"):
        run_lightning_cli(fit_args("configs/gan/digits.yaml", tmp_path, "--model.init_args.n_critic=0"))
    assert not (tmp_path / "run").exists()


def test_classifier_network_keeps_its_old_class_path(tmp_path):
    """SmallCNN moved to nets/; configs and checkpoints written before name lightning_gen.models.classifier.SmallCNN."""
    from lightning_gen.nets.classifier import SmallCNN

    old = "--model.init_args.network.class_path=lightning_gen.models.classifier.SmallCNN"
    cli = run_lightning_cli(fit_args("configs/classifier/digits.yaml", tmp_path, old)[1:], run=False)
    assert type(cli.model.network) is SmallCNN and cli.model.network.img_size == 8


def test_ckpt_path_may_name_the_run_folder(tmp_path, capsys):
    """``--ckpt_path DIR`` (a config's default_root_dir) resumes from the newest version_N's last.ckpt: here a
    finished one, so the run says so, names that file and creates no folder."""
    from tests.robust_helpers import family_args, last_ckpt

    root = tmp_path / "run"
    run_lightning_cli(family_args("gan", root, "--trainer.max_steps=1"))
    (root / "lightning_logs" / "version_7").mkdir()  # a run without a checkpoint (yet): never chosen
    capsys.readouterr()
    run_lightning_cli(family_args("gan", root, "--trainer.max_steps=1", f"--ckpt_path={root}"))
    err = capsys.readouterr().err
    assert f"the run of {last_ckpt(root)} is finished" in err and "Fit finished" not in err
    assert sorted(os.listdir(root / "lightning_logs")) == ["version_0", "version_7"]
