"""TimeGAN (models/timegan.py, nets/timegan.py): shapes, the three phases each moving only its networks, the
discriminator's 0.15 gate, sampling. Resume, DDP, divergence and bf16 runs are in test_resume / test_ddp /
test_guards (the ``timegan`` family of tests/robust_helpers.py); the shipped configs in test_configs."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.data import SinesDataModule
from lightning_gen.models import TimeGAN
from lightning_gen.models.timegan import next_step_mse
from lightning_gen.nets.timegan import TimeGANNetworks

NETS = ("embedder", "recovery", "generator", "supervisor", "discriminator")


def tiny(**kwargs) -> TimeGAN:
    torch.manual_seed(0)
    return TimeGAN(TimeGANNetworks(3, hidden_size=4, num_layers=2), **kwargs)


def snapshot(model: TimeGAN) -> dict[str, list[torch.Tensor]]:
    return {n: [p.detach().clone() for p in getattr(model.networks, n).parameters()] for n in NETS}


class MovedPerBatch(pl.Callback):
    """Which of the five networks each training batch changed."""

    def __init__(self) -> None:
        self.moved: list[set[str]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before = snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        after = snapshot(pl_module)
        self.moved.append({n for n in NETS if any(not torch.equal(a, b) for a, b in zip(self.before[n], after[n]))})


def fit(model: TimeGAN, batches: int, *callbacks: pl.Callback, log_dir=None, sines: bool = False) -> pl.Trainer:
    """``batches`` batches of 4 sequences (8 steps, 3 features): random ones, or a SinesDataModule's (which
    gives the model its data scale and length)."""
    torch.manual_seed(1)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        accelerator="cpu",
        logger=CSVLogger(log_dir) if log_dir else False,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    if sines:
        trainer.fit(model, SinesDataModule(num_sequences=64, seq_len=8, dim=3, batch_size=4))
    else:  # (N, T, D) in [0, 1]
        trainer.fit(model, DataLoader(TensorDataset(torch.rand(4 * batches, 8, 3)), batch_size=4))
    return trainer


def test_network_shapes():
    nets = TimeGANNetworks(3, hidden_size=4, num_layers=2, noise_dim=2)
    x, z = torch.rand(5, 7, 3), nets.noise(5, 7)
    assert z.shape == (5, 7, 2) and 0 <= float(z.min()) and float(z.max()) < 1  # uniform, as the reference
    h = nets.embedder(x)
    assert h.shape == (5, 7, 4) and 0 < float(h.min()) and float(h.max()) < 1  # sigmoid codes
    assert nets.recovery(h).shape == (5, 7, 3)
    assert nets.generator(z).shape == nets.supervisor(h).shape == (5, 7, 4)
    assert nets.discriminate(h).shape == (5, 7)
    assert nets.generate(z).shape == (5, 7, 3)
    assert nets.supervisor.rnn.num_layers == 1  # num_layers - 1, as in the reference
    with pytest.raises(ValueError, match=r"wants \(B, T, 3\)"):
        nets.embedder(torch.rand(5, 7, 4))


def test_next_step_mse_compares_step_t_with_t_plus_1():
    h = torch.arange(4.0).view(1, 4, 1)  # codes 0, 1, 2, 3
    assert next_step_mse(h, h + 1) == 0  # a perfect one-step-ahead prediction
    assert next_step_mse(h, h) == 1


def test_each_phase_moves_only_its_networks():
    """Embedding: e, r. Supervised: s alone (g gets no gradient from G_loss_S). Joint: g, s (generator step), e, r
    (embedder step); d on every second joint batch (two generator steps per D step)."""
    model = tiny(embedding_steps=2, supervised_steps=2, d_threshold=0.0)
    probe = MovedPerBatch()
    fit(model, 8, probe)
    embedding, supervised, joint = {"embedder", "recovery"}, {"supervisor"}, set(NETS) - {"discriminator"}
    assert probe.moved == [embedding] * 2 + [supervised] * 2 + [joint, set(NETS)] * 2
    assert model.phase() == ("joint", 4)  # after the fit: 8 batches trained


def test_discriminator_waits_while_its_loss_is_under_the_threshold(tmp_path):
    model = tiny(embedding_steps=0, supervised_steps=0, d_threshold=1e9)  # loss never above: never trained
    probe = MovedPerBatch()
    trainer = fit(model, 4, probe, log_dir=tmp_path)
    assert all("discriminator" not in moved for moved in probe.moved)
    assert all("generator" in moved for moved in probe.moved)
    assert float(trainer.callback_metrics["train/d_trained"]) == 0.0


def test_sample_shape_range_and_length():
    model = tiny(embedding_steps=0, supervised_steps=0)
    fit(model, 2, sines=True)
    x = model.sample(6)  # the training length by default
    assert x.shape == (6, 8, 3) and bool(((x > 0) & (x < 1)).all())  # the recovery's sigmoid
    assert model.sample(2, length=11).shape == (2, 11, 3)
    z = torch.rand(2, 5, 3)
    assert torch.equal(model.sample(2, z=z), model.sample(2, z=z))  # deterministic given the noise
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=[0, 1])


def test_ema_copy_is_what_sample_uses():
    model = tiny(embedding_steps=0, supervised_steps=0, ema_decay=0.5)
    fit(model, 3)
    z = torch.rand(2, 5, 3)
    live = model.networks.generate(z)
    assert not torch.allclose(model.sample(2, z=z), live)  # the average, not the live networks
    assert all(not p.requires_grad for p in model.sampler_ema.parameters())


def test_a_model_without_a_trained_length_asks_for_one():
    with pytest.raises(ValueError, match="sample length"):
        tiny().sample(2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"supervised": -1.0}, "must be >= 0"),
        ({"embedding_steps": -5}, "must be >= 0"),
        ({"generator_steps": 0}, "generator_steps must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_networks_without_the_five_parts_are_refused():
    with pytest.raises(ValueError, match="TimeGANNetworks"):
        TimeGAN(torch.nn.GRU(3, 4))


@pytest.mark.slow  # about 5 s: a fit, the sample job (with its plot) and an evaluation
def test_fit_sample_and_evaluate_commands(tmp_path):
    """``lightning-gen fit`` of the shipped sines config (tiny), then the ``sample`` job, ``api.sample`` and
    ``api.evaluate`` on its checkpoint: the commands every family answers to."""
    import numpy as np

    from lightning_gen import api
    from lightning_gen.cli import run_lightning_cli
    from lightning_gen.jobs import sample
    from tests.conftest import REPO

    small = ["--data.init_args.num_sequences=64", "--data.init_args.seq_len=8", "--data.init_args.batch_size=4"]
    run_lightning_cli(
        ["fit", "--config", f"{REPO}/configs/timegan/sines.yaml", "--trainer.max_steps=4", "--trainer.callbacks=[]"]
        + ["--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false", *small]
        + ["--model.init_args.embedding_steps=1", "--model.init_args.supervised_steps=1"]
        + ["--model.init_args.networks.init_args.hidden_size=4", f"--trainer.default_root_dir={tmp_path}"]
    )
    ckpt = str(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    out = tmp_path / "samples.npz"
    assert sample.main([ckpt, "--num-samples", "5", "--batch-size", "2", "--output", str(out)]) == 0
    with np.load(out) as f:
        assert f["samples"].shape == (5, 8, 5)  # the training length, in the data's scale
    model = api.load(ckpt)
    assert api.sample(model, 3).shape == (3, 8, 5)
    args = {"metrics": ["mmd"], "data_arg": ["num_sequences=64", "seq_len=8"], "no_cache": True}
    report = api.evaluate(ckpt, **args)
    assert report["num_generated"] == report["num_real"] > 0 and report["metrics"]["mmd"]["value"] > 0


def test_sequences_of_different_lengths_are_refused():
    class Ragged(pl.LightningDataModule):
        variable_length = True

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.rand(8, 8, 3)), batch_size=4)

    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="different lengths"):
        trainer.fit(tiny(), Ragged())
