"""Tiny runs of every model family through `lightning-gen fit`, shared by test_resume / test_ddp / test_guards.

Each family is a shipped config plus overrides that shrink it (4-channel networks, batch 4, 3 batches per
epoch, one validation batch). A family whose config has not landed yet is skipped.
"""

from __future__ import annotations

import glob
import os

import pytest
import pytorch_lightning as pl
import torch

from tests.conftest import REPO, config_args

TINY_TRAINER = [
    "--trainer.accelerator=cpu",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
    "--trainer.max_epochs=-1",
    "--trainer.callbacks=[]",
    "--loss_curves.enabled=false",  # tests/test_ux_pictures.py turns the picture on where it checks it
    "--data.init_args.batch_size=4",
]

_IMAGE_NETS = [
    "--model.init_args.generator.init_args.base_channels=4",
    "--model.init_args.discriminator.init_args.base_channels=4",
]

# 64 sequences, not 10,000: each fit draws them, and the latent density refits encode up to 2,000 of them
_SINES = ["--data.init_args.num_sequences=64"]

# family -> (config, overrides that make it tiny)
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "gan": ("configs/gan/digits.yaml", _IMAGE_NETS),
    "vae_gan": (
        "configs/vae_gan/digits.yaml",
        [
            "--model.init_args.encoder.init_args.base_channels=4",
            "--model.init_args.decoder.init_args.base_channels=4",
            "--model.init_args.discriminator.init_args.base_channels=4",
        ],
    ),
    "vae": (
        "configs/vae/digits.yaml",
        ["--model.init_args.encoder.init_args.base_channels=4", "--model.init_args.decoder.init_args.base_channels=4"],
    ),
    "rvae_gan": ("configs/rvae_gan/sines.yaml", _SINES),
    "rvae": ("configs/rvae/sines.yaml", _SINES),
    "lstm_gan": ("configs/lstm_gan/sines.yaml", _SINES),
    "timegan": (
        "configs/timegan/sines.yaml",  # phases of 1 and 2 batches: a resume at batch 4 is in the joint phase
        [*_SINES, "--model.init_args.embedding_steps=1", "--model.init_args.supervised_steps=2"],
    ),
}

# The divergence guard, SIGTERM and bf16 tests (one fit each) run by default for every family but the two whose
# model and networks a hybrid of the default runs extends: the VAE's (the VAE-GAN's LatentImageAPI, encoder and
# decoder; the conditional VAE's guard test runs too) and the R-VAE's (the R-VAE-GAN extends its model).
DEFAULT_FAMILIES = ("gan", "vae_gan", "rvae_gan", "lstm_gan", "timegan")

# Exact resume (three fits each) runs by default for the families whose model class no other default resume test
# covers; the others run in the slow suite. The GAN: test_resume's stop at an epoch's end and the conditional GAN's
# resume (tests/test_conditional_images.py); the VAE: the conditional VAE's; the VAE-GAN: its conditional and its
# cheap-refit resumes (tests/test_vae_gan.py); the R-VAE: the R-VAE-GAN, whose model extends the R-VAE's.
DEFAULT_RESUME_FAMILIES = ("rvae_gan", "lstm_gan", "timegan")


# The 2-process DDP run of one family stays in the default run (the launcher, the sharded sampler and rank 0's
# files are the same code for every family); the others (each a pair of processes that import torch and Lightning)
# run in the slow suite, which CI runs too.
DEFAULT_DDP_FAMILIES = ("gan",)


def family_params(default=DEFAULT_FAMILIES):
    """pytest params over FAMILIES; families outside ``default`` are marked slow."""
    return [pytest.param(name, marks=() if name in default else pytest.mark.slow, id=name) for name in FAMILIES]


def family_args(family: str, root, *extra: str) -> list[str]:
    config, overrides = FAMILIES[family]
    assert os.path.exists(os.path.join(REPO, config)), f"{config} is missing"
    return [
        "fit",
        *config_args(config),
        *TINY_TRAINER,
        *overrides,
        f"--trainer.default_root_dir={root}",
        *extra,
    ]


def fit_family(family: str, root, *extra: str):
    """``lightning-gen fit`` of the tiny ``family`` into ``root`` (:func:`family_args`); returns the CLI object."""
    from lightning_gen.cli import run_lightning_cli

    return run_lightning_cli(family_args(family, root, *extra))


def checkpoints(root) -> list[str]:
    return sorted(glob.glob(os.path.join(str(root), "lightning_logs", "version_*", "checkpoints", "*.ckpt")))


def last_ckpt(root, version: int = 0) -> str:
    return os.path.join(str(root), "lightning_logs", f"version_{version}", "checkpoints", "last.ckpt")


def assert_same_tensors(a, b, where: str = "") -> int:
    """Recursively compare nested dicts / lists of tensors bit for bit; returns how many tensors matched."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), f"{where} differs"
        return 1
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))} differ"
        return sum(assert_same_tensors(a[k], b[k], f"{where}.{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        return sum(assert_same_tensors(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    assert a == b, f"{where}: {a!r} != {b!r}"
    return 0


class RankStateDump(pl.Callback):
    """Test probe: each rank saves its weights and the batches it trained on to ``dirpath/rank<r>.pt``."""

    def __init__(self, dirpath: str) -> None:
        super().__init__()
        self.dirpath, self.batch_sums = dirpath, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batch_sums.append(float(batch[0].double().sum()))

    def on_train_end(self, trainer, pl_module) -> None:
        os.makedirs(self.dirpath, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
        params = {k: v.detach().cpu() for k, v in pl_module.named_parameters()}  # the EMA copy's too
        path = os.path.join(self.dirpath, f"rank{trainer.global_rank}.pt")
        torch.save(
            {"state_dict": state, "params": params, "batch_sums": self.batch_sums, "world_size": trainer.world_size},
            path,
        )


class PoisonAt(pl.Callback):
    """Test probe: at the start of training batch ``step``, make the discriminator's (or the first) weights NaN."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            target = getattr(pl_module, "discriminator", pl_module)
            with torch.no_grad():
                next(target.parameters()).fill_(float("nan"))


class SignalAt(pl.Callback):
    """Test probe: send this process ``signum`` (SIGTERM, SIGINT) at the end of training batch ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        super().__init__()
        self.step, self.signum, self.seen = step, signum, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen == self.step + 1:
            os.kill(os.getpid(), self.signum)
