"""One test per accessor of :mod:`lightning_gen.lightning_internals`: after upgrading Lightning or W&B, run this
file first; a failure names the accessor to rewrite. Two tiny fits on a 2-optimizer manual-optimization module
(3 batches per epoch, 2 epochs, about a second) feed the loop-progress tests."""

from __future__ import annotations

import copy
import logging

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader

from lightning_gen import lightning_internals as li
from tests.conftest import tiny_trainer

BATCHES, EPOCHS = 3, 2


class TwoOptimizers(pl.LightningModule):
    """A GAN's shape with nothing else: two optimizers stepped by hand in every training batch."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.given = li.given_hyperparameters()  # what LightningCLI handed over while building this module
        self.save_hyperparameters()
        self.a, self.b = nn.Linear(width, 1), nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        for opt, net in zip(self.optimizers(), (self.a, self.b)):
            loss = net(batch).pow(2).mean()
            self.manual_backward(loss)
            opt.step()
            opt.zero_grad()

    def configure_optimizers(self):
        return [torch.optim.SGD(self.a.parameters(), lr=0.01), torch.optim.SGD(self.b.parameters(), lr=0.01)]

    def train_dataloader(self):
        return DataLoader(torch.randn(4 * BATCHES, self.a.in_features), batch_size=4)


class Probe(pl.Callback):
    """Reads the accessors at the points where the project reads them; with ``count_batches``, does what
    ``ExactResume`` does (one ``global_step`` per batch); with ``stop_at``, what ``InterruptCheckpoint`` does."""

    def __init__(self, count_batches: bool = False, stop_at: int | None = None) -> None:
        self.count_batches, self.stop_at = count_batches, stop_at
        self.starts: list[tuple[int, int]] = []
        self.ends: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        self.optimizers = li.lightning_optimizers(pl_module)
        self.private_optimizers = list(trainer.strategy._lightning_optimizers)
        if self.count_batches:
            for opt in self.optimizers:
                li.stop_counting_optimizer_steps(opt)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append((batch_idx, li.current_batch_index(trainer)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.count_batches:
            li.count_one_optimizer_step(trainer)
        self.ends.append(
            dict(
                batch_idx=batch_idx,
                epoch=trainer.current_epoch,
                processed=li.batches_processed_this_epoch(trainer),
                completed_epoch=li.batches_completed_this_epoch(trainer),
                completed=li.batches_completed(trainer),
                global_step=trainer.global_step,
                writes=li.logger_writes_this_step(trainer),
                ends_here=li.fit_ends_after_this_batch(trainer),
                trainer_is_attached=li.attached_trainer(pl_module) is trainer,
            )
        )
        if self.stop_at is not None and batch_idx == self.stop_at:
            li.request_stop_after_batch(trainer)


def _fit(tmp_path, probe: Probe, **kwargs):
    trainer = tiny_trainer(tmp_path, max_epochs=EPOCHS, callbacks=[probe], log_every_n_steps=2, **kwargs)
    model = TwoOptimizers()
    trainer.fit(model)
    return trainer, model


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    probe = Probe()
    trainer, model = _fit(tmp_path_factory.mktemp("plain"), probe)
    return trainer, model, probe


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    probe = Probe(count_batches=True)
    trainer, _ = _fit(tmp_path_factory.mktemp("counted"), probe)
    return trainer, probe


# -- LightningModule ------------------------------------------------------------------------------------
def test_attached_trainer(plain):
    _, model, probe = plain
    assert all(end["trainer_is_attached"] for end in probe.ends)
    assert li.attached_trainer(TwoOptimizers()) is None  # a module outside any fit


def test_lightning_optimizers_are_the_strategys_wrapped_optimizers(plain):
    _, _, probe = plain
    assert len(probe.optimizers) == 2
    assert all(a is b for a, b in zip(probe.optimizers, probe.private_optimizers))


def test_given_hyperparameters_inside_and_outside_lightning_cli(tmp_path):
    assert li.given_hyperparameters() is None
    cli = LightningCLI(TwoOptimizers, run=False, args=["--model.width=3"], trainer_defaults=dict(logger=False))
    assert cli.model.given is not None and cli.model.given["width"] == 3


# -- loop progress --------------------------------------------------------------------------------------
def test_current_batch_index_is_the_hooks_batch_idx(plain):
    _, _, probe = plain
    assert len(probe.starts) == BATCHES * EPOCHS
    assert all(hook == ours for hook, ours in probe.starts)


def test_batches_processed_this_epoch(plain):
    _, _, probe = plain
    assert [e["processed"] for e in probe.ends] == [1, 2, 3] * EPOCHS  # already counts the batch that just ran


def test_batches_completed_this_epoch(plain):
    _, _, probe = plain
    assert [e["completed_epoch"] for e in probe.ends] == [0, 1, 2] * EPOCHS  # moves after on_train_batch_end
    trainer, _, _ = plain
    assert li.batches_completed_this_epoch(trainer) == BATCHES


def test_batches_completed_counts_batches_over_the_whole_fit(plain):
    trainer, _, probe = plain
    assert [e["completed"] for e in probe.ends] == list(range(BATCHES * EPOCHS))
    assert li.batches_completed(trainer) == BATCHES * EPOCHS
    assert trainer.global_step == 2 * BATCHES * EPOCHS  # what it is not: Lightning counts optimizer steps


def test_fit_ends_after_this_batch(plain, tmp_path):
    _, _, probe = plain  # max_epochs: only the last batch of the last epoch ends the fit
    assert [e["ends_here"] for e in probe.ends] == [False] * (BATCHES * EPOCHS - 1) + [True]
    counted = Probe(count_batches=True)  # max_steps (counted in batches), in the middle of the first epoch
    tiny_trainer(tmp_path, max_epochs=-1, max_steps=2, callbacks=[counted]).fit(TwoOptimizers())
    assert [e["ends_here"] for e in counted.ends] == [False, True]


def test_stop_counting_and_count_one_optimizer_step_make_global_step_count_batches(counted):
    trainer, probe = counted
    assert [e["global_step"] for e in probe.ends] == list(range(1, BATCHES * EPOCHS + 1))
    assert trainer.global_step == BATCHES * EPOCHS
    li.stop_counting_optimizer_steps(probe.optimizers[0])  # twice is once
    name = type(probe.optimizers[0]).__name__
    assert name.startswith("Uncounted") and not name.startswith("UncountedUncounted")


def test_count_one_optimizer_step_alone_adds_one(tmp_path):
    class CountTwice(Probe):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            li.count_one_optimizer_step(trainer)

    trainer, _ = _fit(tmp_path, CountTwice())
    assert trainer.global_step == 3 * BATCHES * EPOCHS  # two optimizer steps plus one per batch


# -- trainer state --------------------------------------------------------------------------------------
def test_request_stop_after_batch_raises_sigterm_after_the_batch(tmp_path):
    probe = Probe(stop_at=1)
    with pytest.raises(SIGTERMException):
        _fit(tmp_path, probe)
    assert [e["batch_idx"] for e in probe.ends] == [0, 1]  # the batch ran to its end, the next never started


def test_logger_writes_this_step_follows_log_every_n_steps(plain):
    _, _, probe = plain
    assert [e["writes"] for e in probe.ends] == [False, True, False, True, False, True]  # log_every_n_steps=2


def test_fit_epochs_finished(plain, tmp_path):
    trainer, _, _ = plain
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    assert li.fit_epochs_finished(torch.load(path, weights_only=True)) == EPOCHS
    assert li.fit_epochs_finished({}) == -1 and li.fit_epochs_finished({"loops": None}) == -1


class WithValidation(TwoOptimizers):
    """The project's models have a validation step; the fits below turn it off (``limit_val_batches=0``)."""

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.a(batch).pow(2).mean())

    def val_dataloader(self):
        return DataLoader(torch.randn(4, self.a.in_features), batch_size=4)


class SaveAtEpochEnd(pl.Callback):
    """Saves a checkpoint in ``on_train_epoch_end``, as ``ModelCheckpoint`` does in a run without validation."""

    def __init__(self, path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.save_checkpoint(self.path)


def _batches_after_resume(tmp_path, ckpt: dict) -> list[tuple[int, int]]:
    """(epoch, batch_idx) of every batch a fit to ``2 * BATCHES`` steps (Lightning's iteration-based training:
    ``max_epochs=-1``, what ``max_steps`` alone gives) trains when resumed from ``ckpt``."""
    torch.save(ckpt, tmp_path / "resume.ckpt")
    probe = Probe(count_batches=True)  # global_step counts batches, as ExactResume makes it
    trainer = tiny_trainer(tmp_path, max_epochs=-1, max_steps=2 * BATCHES, callbacks=[probe], limit_val_batches=0)
    trainer.fit(WithValidation(), ckpt_path=tmp_path / "resume.ckpt")
    return [(e["epoch"], e["batch_idx"]) for e in probe.ends]


def test_close_finished_epoch(tmp_path):
    callbacks = [Probe(count_batches=True), SaveAtEpochEnd(tmp_path / "end.ckpt")]
    trainer = tiny_trainer(tmp_path, max_epochs=-1, max_steps=BATCHES, callbacks=callbacks, limit_val_batches=0)
    trainer.fit(WithValidation())
    ckpt = torch.load(tmp_path / "end.ckpt", weights_only=True)
    as_written = copy.deepcopy(ckpt)
    assert li.close_finished_epoch(ckpt) and not li.close_finished_epoch(ckpt)  # once: then it is a next epoch's
    assert li.fit_epochs_finished(ckpt) == 1
    assert li.close_finished_epoch({}) is False and li.close_finished_epoch({"loops": None}) is False
    next_epoch = [(1, i) for i in range(BATCHES)]
    assert _batches_after_resume(tmp_path, ckpt) == next_epoch
    # what it works around: as Lightning wrote it, the resumed fit trains one batch more in the finished epoch (if
    # this fails after an upgrade, Lightning resumes such checkpoints right and the accessor can go)
    assert _batches_after_resume(tmp_path, as_written) == [(0, BATCHES), *next_epoch[: BATCHES - 1]]


# -- loggers ---------------------------------------------------------------------------------------------
def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(params=["csv", "tensorboard"])
def version_logger(request, tmp_path):
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if request.param == "tensorboard" and not any(_importable(m) for m in ("tensorboard", "tensorboardX")):
        pytest.skip("TensorBoardLogger needs tensorboard or tensorboardX")
    cls = CSVLogger if request.param == "csv" else TensorBoardLogger
    (tmp_path / "logs" / "version_0").mkdir(parents=True)
    return cls(str(tmp_path), name="logs")


def test_logger_version_pinned(version_logger):
    assert not li.logger_version_pinned(version_logger)
    version_logger.version  # noqa: B018  (reading it picks a number and pins it)
    assert li.logger_version_pinned(version_logger)


def test_next_logger_version(version_logger):
    assert li.next_logger_version(version_logger) == 1
    assert not li.logger_version_pinned(version_logger)  # asking did not pin it


def test_pin_logger_version(version_logger):
    li.pin_logger_version(version_logger, 5)
    assert version_logger.version == 5 and version_logger.log_dir.endswith("version_5")


def test_lightning_info_loggers_carry_rank_zero_info():
    from pytorch_lightning.utilities import rank_zero_info

    seen: list[str] = []

    class Record(logging.Filter):
        def filter(self, record):
            seen.append(str(record.msg))
            return False  # keep the test's output clean

    loggers = li.lightning_info_loggers()
    levels = [log.level for log in loggers]
    record = Record()
    for log in loggers:
        log.setLevel(logging.INFO)
        log.addFilter(record)
    try:
        rank_zero_info("lightning_internals probe")
    finally:
        for log, level in zip(loggers, levels):
            log.removeFilter(record)
            log.setLevel(level)
    assert seen == ["lightning_internals probe"]


# -- LightningCLI ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_hparams():
    """Hyperparameters as ``lightning-gen fit`` records them: the model chosen by class path (subclass mode)."""
    args = [f"--model={__name__}.TwoOptimizers", "--model.width=3"]
    cli = LightningCLI(
        TwoOptimizers, subclass_mode_model=True, run=False, args=args, trainer_defaults=dict(logger=False)
    )
    return dict(cli.model.hparams)


def test_cli_class_path(cli_hparams):
    assert li.cli_class_path(cli_hparams) == f"{__name__}.TwoOptimizers"
    assert li.cli_class_path({"width": 3}) is None


def test_without_cli_instantiator_builds_the_module_again(cli_hparams):
    from pytorch_lightning.cli import instantiate_module

    hparams = li.without_cli_instantiator(cli_hparams)
    assert li.CLI_INSTANTIATOR_KEY in cli_hparams and li.CLI_INSTANTIATOR_KEY not in hparams
    assert instantiate_module(pl.LightningModule, hparams).a.in_features == 3


def test_parse_arguments_runs_just_before_lightning_reads_ckpt_path(tmp_path, monkeypatch):
    """The public replacement of overriding ``LightningCLI._parse_ckpt_path``: ``parse_arguments`` ends right
    before LightningCLI loads ``--ckpt_path``, so an override of it can audit the file first (``GenCLI`` does)."""
    events: list[str] = []

    class Stop(Exception):
        pass

    def load(*args, **kwargs):
        events.append("load")
        raise Stop

    class Recording(LightningCLI):
        def parse_arguments(self, parser, args):
            super().parse_arguments(parser, args)
            events.append("parse")

    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"not read")
    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(Stop):
        Recording(TwoOptimizers, args=["fit", f"--ckpt_path={ckpt}"], trainer_defaults=dict(logger=False))
    assert events == ["parse", "load"]


# -- W&B ---------------------------------------------------------------------------------------------------
@pytest.fixture
def wandb_logger(tmp_path, monkeypatch):
    from pytorch_lightning.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    return WandbLogger(project="p", id="abc12345", save_dir=str(tmp_path), offline=True)


@pytest.fixture
def fake_wandb_init(monkeypatch):
    """``wandb.init`` replaced by a recorder: Lightning's logger starts its run without W&B's service."""
    import types

    import wandb

    calls: list[dict] = []

    def init(**kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(id=kwargs.get("id"))

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb, "run", None)
    return calls


def test_wandb_run_id(wandb_logger, fake_wandb_init):
    assert li.wandb_run_id(wandb_logger) == "abc12345"
    wandb_logger.experiment  # noqa: B018
    assert li.wandb_run_id(wandb_logger) == "abc12345"


def test_wandb_run_started(wandb_logger, fake_wandb_init):
    assert not li.wandb_run_started(wandb_logger) and not fake_wandb_init
    wandb_logger.experiment  # noqa: B018
    assert li.wandb_run_started(wandb_logger) and len(fake_wandb_init) == 1


def test_wandb_init_kwargs_reach_wandb_init(wandb_logger, fake_wandb_init):
    li.wandb_init_kwargs(wandb_logger)["dir"] = "elsewhere"
    wandb_logger.experiment  # noqa: B018
    assert fake_wandb_init[0]["dir"] == "elsewhere" and fake_wandb_init[0]["id"] == "abc12345"


def test_wandb_netrc_api_key(tmp_path, monkeypatch):
    key = "0123456789abcdef0123456789abcdef01234567"  # 40 characters, the form W&B accepts
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {key}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert li.wandb_netrc_api_key("https://api.wandb.ai") == key
    assert li.wandb_netrc_api_key("https://wandb.example.org") is None


def test_wandb_generate_run_id():
    a, b = li.wandb_generate_run_id(), li.wandb_generate_run_id()
    assert isinstance(a, str) and len(a) == 8 and a.isalnum() and a != b


def test_wandb_sweep_command_keeps_macros():
    command = ["lightning-gen", "fit", "--config", "c.yaml", "${args}"]
    assert li.wandb_sweep_command(command) == command


def test_wandb_sweep_args_as_wandb_agent_expands_them():
    expanded = li.wandb_sweep_args({"model.init_args.lr": 0.001, "data.batch_size": 8, "model.x": None})
    assert expanded["args"] == ["--model.init_args.lr=0.001", "--data.batch_size=8", "--model.x=None"]
    assert expanded["args_no_hyphens"] == ["model.init_args.lr=0.001", "data.batch_size=8", "model.x=None"]
