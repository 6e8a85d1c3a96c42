"""Tiny fixtures shared by the tests: 8x8 images, MLP / small conv networks, batch 4."""

from __future__ import annotations

import functools
import os
import sys

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: one thread is faster than two, and the suite's time is measured on one

from lightning_gen.nets import MLPDiscriminator, MLPGenerator  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def benchmark_script(name: str, monkeypatch=None):
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package). A script that puts
    ``benchmarks/`` first on ``sys.path`` gets a copy of the path through ``monkeypatch``, undone after the test."""
    import importlib.util

    if monkeypatch is not None:
        monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_nets():
    torch.manual_seed(0)
    return MLPGenerator(latent_dim=8, img_size=8, channels=1, hidden=16), MLPDiscriminator(8, 1, hidden=16)


@pytest.fixture
def adam():
    return functools.partial(torch.optim.Adam, lr=1e-3)


@pytest.fixture
def image_npz(tmp_path):
    """32 random uint8 8x8 grey images in an .npz, as a user's array file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, images=rng.integers(0, 256, size=(32, 8, 8), dtype=np.uint8))
    return str(path)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and on a loaded 2-core machine far faster, than two. Module-scoped, so
    that a module's fits in module-scoped fixtures run on one thread too (``pytestmark = usefixtures(...)``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def restore_threads():
    """For tests that set torch's thread count themselves (``--threads``, ``apply_threads``): the count is put back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def config_args(config: str) -> list[str]:
    """The ``--config`` arguments that run a shipped config (relative to the repository): a conditional config
    ``<name>_cond.yaml`` is an overlay stacked after its twin ``<name>.yaml``, as users run it."""
    from lightning_gen.lightning_cli.parser import config_stack

    return [arg for part in config_stack(config) for arg in ("--config", os.path.join(REPO, part))]


def fit_config(config: str, root, *extra: str) -> str:
    """Fit a shipped config (relative to the repository) for 4 steps into ``root``; returns its ``last.ckpt``."""
    from lightning_gen.cli import run_lightning_cli

    run_lightning_cli(
        [
            "fit",
            *config_args(config),
            "--trainer.max_steps=4",
            "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu",
            "--trainer.callbacks=[]",
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
            "--loss_curves.enabled=false",  # the picture is tested in tests/test_ux_pictures.py; it costs a second
            *extra,
        ]
    )
    path = root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert path.is_file()
    return str(path)


# Checkpoints fitted once per test session and shared by the tests that only read them (never write into their run
# folders: copy a checkpoint to edit it).
@pytest.fixture(scope="session")
def digits_gan_ckpt(tmp_path_factory) -> str:
    """``last.ckpt`` of the shipped digits GAN after :func:`fit_config`'s 4 steps."""
    return fit_config("configs/gan/digits.yaml", tmp_path_factory.mktemp("digits_gan"))


@pytest.fixture(scope="session")
def digits_classifier_ckpt(tmp_path_factory) -> str:
    """``last.ckpt`` of a tiny classifier of the shipped digits classifier config after 4 steps (16 features: FID
    needs at least 16 samples)."""
    return fit_config(
        "configs/classifier/digits.yaml",
        tmp_path_factory.mktemp("digits_classifier"),
        "--model.init_args.network.init_args.width=4",
        "--model.init_args.network.init_args.feature_dim=16",
    )


class WritesFile:
    """A pickled payload: unpickling it creates ``path`` (a marker that the payload ran)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def tiny_trainer(tmp_path, **kwargs):
    import pytorch_lightning as pl

    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        max_epochs=1,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def write_fake_mnist(root, name: str = "MNIST", n: int = 16, size: int = 28) -> None:
    """Write tiny IDX files where torchvision's MNIST / FashionMNIST look for them (no download)."""
    import struct

    raw = os.path.join(root, name, "raw")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with open(os.path.join(raw, f"{split}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, size, size) + images.tobytes())
        with open(os.path.join(raw, f"{split}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())


def write_fake_cifar10(root, n: int = 16) -> None:
    """Write tiny CIFAR-10 python batches (tests must also bypass torchvision's md5 check)."""
    import pickle

    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8), "labels": [0] * n}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(entry, f)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
