"""The training-time class score of conditional models (``val/class_accuracy``) and the conditional sweeps
that rank by it or log it: a model that makes the asked class scores high, one that makes another class low, and
the shipped sweeps' metric callbacks log their metric on their shipped config."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from lightning_gen.jobs.sweep import load_sweep
from lightning_gen.lightning_cli.parser import config_stack
from lightning_gen.metrics.class_accuracy import ClassAccuracyMetric
from lightning_gen.models.conditional import Conditional
from tests.conftest import REPO, fit_config

pytestmark = pytest.mark.usefixtures("one_thread")


class PatternImages(Conditional, pl.LightningModule):
    """8x8 images: class c is a fixed random pattern; ``shift`` makes class (c + shift) mod K instead."""

    data_kind = "image"

    def __init__(self, num_classes: int = 4, shift: int = 0, noise: float = 0.5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.patterns = nn.Embedding(num_classes, 64)
        self.patterns.num_classes = num_classes
        self.init_conditional(self.patterns)
        self.shift, self.noise = shift, noise

    @torch.no_grad()
    def sample(self, n: int, labels=None) -> torch.Tensor:
        y = (self.labels_for(n, labels) + self.shift) % self.num_classes
        return torch.tanh(self.patterns(y).view(n, 1, 8, 8) + self.noise * torch.randn(n, 1, 8, 8))


class PatternClassifier(nn.Module):
    """A classifier of :class:`PatternImages`: features are the pixels, class logits their match with each pattern."""

    def __init__(self, patterns: torch.Tensor) -> None:
        super().__init__()
        self.feature_dim, self.channels, self.img_size = 64, 1, 8
        self.head = nn.Linear(64, len(patterns), bias=False)
        self.head.weight.data.copy_(torch.tanh(patterns))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def fake_trainer(rank: int = 0, world: int = 1, datamodule=None):
    """What the score reads of a trainer: its rank, the world size, a sum over ranks (one rank: itself)."""
    return SimpleNamespace(
        global_rank=rank, world_size=world, datamodule=datamodule, strategy=SimpleNamespace(reduce=lambda t, **_: t)
    )


@pytest.fixture
def pattern_classifier(monkeypatch):
    """``classifier: some/run`` loads the pattern classifier (the checkpoint loader is the audited one, stubbed)."""
    import lightning_gen.checkpoints as checkpoints

    network = PatternClassifier(PatternImages().patterns.weight.detach())
    monkeypatch.setattr(checkpoints, "resolve_checkpoint", lambda path: path)
    monkeypatch.setattr(checkpoints, "load_model", lambda path, **_: SimpleNamespace(network=network))
    return "some/run"


def test_images_of_the_asked_class_score_high_and_of_another_class_low(pattern_classifier):
    scores = {}
    for shift in (0, 1):
        model, metric = PatternImages(shift=shift), ClassAccuracyMetric(num_samples=40, classifier=pattern_classifier)
        metric.setup(fake_trainer(), model, "fit")
        scores[shift] = metric.compute(fake_trainer(), model)
    assert scores[0] > 0.95 and scores[1] < 0.1, scores


@pytest.fixture
def pattern_data(tmp_path):
    """Labelled real pattern images (noise 0.5) whose validation half the diversity and recall compare with."""
    from lightning_gen.data import ArrayImageDataModule

    torch.manual_seed(1)
    y = torch.arange(160) % 4
    x = (PatternImages().sample(160, labels=y)[:, 0] + 1) / 2  # (N, 8, 8) in [0, 1]
    np.savez(tmp_path / "patterns.npz", images=(x * 255).round().to(torch.uint8).numpy(), labels=y.numpy())
    return ArrayImageDataModule(str(tmp_path / "patterns.npz"), labels_key="labels", batch_size=32, val_fraction=0.5)


def test_collapse_within_a_class_shows_in_diversity_and_recall(pattern_classifier, pattern_data):
    """Both models put every sample in the asked class; only the varied one keeps the data's spread."""
    scores = {}
    for noise in (0.5, 0.0):  # as varied as the data; one image per class
        model, metric = PatternImages(noise=noise), ClassAccuracyMetric(num_samples=80, classifier=pattern_classifier)
        trainer = fake_trainer(datamodule=pattern_data)
        metric.setup(trainer, model, "fit")
        scores[noise] = (metric.compute(trainer, model), metric.last_spread)
    (varied_accuracy, varied), (collapsed_accuracy, collapsed) = scores[0.5], scores[0.0]
    assert varied_accuracy > 0.95 and collapsed_accuracy > 0.95
    assert 0.8 < varied["diversity"] < 1.2 and collapsed["diversity"] < 0.05, scores
    assert varied["recall"] > 0.5 and collapsed["recall"] < 0.1, scores
    no_spread = ClassAccuracyMetric(num_samples=80, classifier=pattern_classifier, diversity=False)
    no_spread.setup(fake_trainer(datamodule=pattern_data), PatternImages(), "fit")
    no_spread.compute(fake_trainer(datamodule=pattern_data), PatternImages())
    assert no_spread.last_spread == {}


def test_every_class_is_asked_in_equal_shares_over_the_ranks():
    metric = ClassAccuracyMetric(num_samples=12)
    shares = [metric.requested_labels(fake_trainer(rank, 2), 3) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 6
    assert torch.cat(shares).bincount().tolist() == [4, 4, 4]


def test_sequences_of_the_asked_band_score_high_and_of_another_band_low():
    """A 'model' that returns real training sines of the asked band (or the next band): the post-hoc classifier,
    fitted on the training split, finds the band of the first and not of the second."""
    from lightning_gen.data import SinesDataModule
    from lightning_gen.metrics.conditional import labelled_split

    dm = SinesDataModule(num_sequences=300, seq_len=24, dim=5, batch_size=32, condition="frequency_band")
    x, y = labelled_split(dm, "val", seed=0)

    class RealSines(Conditional, pl.LightningModule):
        data_kind = "sequence"

        def __init__(self, shift: int) -> None:
            super().__init__()
            embed = nn.Embedding(3, 1)
            embed.num_classes = 3
            self.init_conditional(embed)
            self.shift = shift

        def sample(self, n, length=None, labels=None):
            want = (self.labels_for(n, labels) + self.shift) % 3
            return torch.stack([x[y == c][i % int((y == c).sum())] for i, c in enumerate(want.tolist())])[:, :length]

    scores = {}
    for shift in (0, 1):
        model, metric = RealSines(shift), ClassAccuracyMetric(num_samples=60)
        metric.setup(fake_trainer(datamodule=dm), model, "fit")
        scores[shift] = metric.compute(fake_trainer(datamodule=dm), model)
    assert scores[0] > 0.8 and scores[1] < 0.3, scores


def test_wrong_uses_are_refused(tiny_nets, pattern_classifier, adam):
    from lightning_gen.models import GAN

    with pytest.raises(ValueError, match="must be >= 1"):
        ClassAccuracyMetric(num_samples=0)
    with pytest.raises(ValueError, match="split must be train, val or test"):
        ClassAccuracyMetric(split="holdout")
    with pytest.raises(ValueError, match="is unconditional"):
        ClassAccuracyMetric(classifier="x").setup(fake_trainer(), GAN(*tiny_nets, adam, adam), "fit")
    with pytest.raises(ValueError, match="needs `classifier`"):
        ClassAccuracyMetric().setup(fake_trainer(), PatternImages(), "fit")
    with pytest.raises(ValueError, match="fewer than the model's 4 classes"):
        ClassAccuracyMetric(num_samples=3, classifier=pattern_classifier).setup(fake_trainer(), PatternImages(), "fit")


# -- the shipped conditional sweeps --------------------------------------------------------------------------------
def sweep_callbacks(sweep_file: str, **init_args) -> list[str]:
    """The ``--trainer.callbacks+=`` arguments of a shipped sweep, with ``init_args`` set in each (a short trial)."""
    out = []
    for arg in load_sweep(os.path.join(REPO, sweep_file))["command"]:
        if str(arg).startswith("--trainer.callbacks+="):
            callback = json.loads(str(arg).split("=", 1)[1])
            callback["init_args"].update({k: v for k, v in init_args.items() if k in callback["init_args"]})
            out.append("--trainer.callbacks+=" + json.dumps(callback))
    return out


def sweep_config(sweep_file: str) -> str:
    """The config a sweep trains (a conditional overlay: the sweep stacks it on its twin, as ``fit_config`` does)."""
    command = [str(c) for c in load_sweep(os.path.join(REPO, sweep_file))["command"]]
    configs = [v for f, v in zip(command, command[1:]) if f == "--config" and "logger" not in v]
    assert configs == config_stack(configs[-1]), configs
    return configs[-1]


def test_the_conditional_digits_sweep_logs_fid_and_class_accuracy(tmp_path, digits_classifier_ckpt):
    """gan_digits_cond.yaml's command on its config (tiny networks, one epoch, the tests' tiny 4-step classifier):
    both its callbacks log, so the sweep ranks by a metric the runs log."""
    sweep = "sweeps/gan_digits_cond.yaml"
    callbacks = sweep_callbacks(sweep, classifier=digits_classifier_ckpt, every_n_epochs=1, num_samples=100)
    tiny = [f"--model.init_args.{n}.init_args.base_channels=4" for n in ("generator", "discriminator")]
    fit_config(
        sweep_config(sweep), tmp_path / "gan", "--trainer.max_steps=-1", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2", *callbacks, *tiny,
        "--model.init_args.discriminator.init_args.conditioning=auxiliary",
    )  # fmt: skip
    metrics = (tmp_path / "gan" / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    logged = ("val/class_accuracy", "val/class_diversity", "val/class_recall", "val/accuracy")
    for name in (load_sweep(os.path.join(REPO, sweep))["metric"]["name"], *logged):
        assert name in metrics.split(","), (name, metrics)


def test_the_conditional_sines_sweep_logs_class_accuracy(tmp_path):
    sweep = "sweeps/lstm_gan_sines_cond.yaml"
    callbacks = sweep_callbacks(sweep, every_n_epochs=1, num_samples=30, iterations=5)
    fit_config(
        sweep_config(sweep), tmp_path, "--trainer.max_steps=-1", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2", "--data.init_args.num_sequences=300", "--data.init_args.seq_len=8",
        "--data.init_args.batch_size=16", *callbacks,
    )  # fmt: skip
    header = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {load_sweep(os.path.join(REPO, sweep))["metric"]["name"], "val/discriminative_score"} <= set(header)


def test_every_rank_scores_the_spread_on_all_ranks_samples(pattern_classifier):
    """Under DDP the features of each rank's share (padded to one length, padding dropped) are gathered: rank 0 of 2
    with 7 samples of 13 sees all 13 (here the other rank's share is stood in by this rank's)."""
    model, metric = PatternImages(), ClassAccuracyMetric(num_samples=13, classifier=pattern_classifier)
    model.all_gather = lambda t: torch.stack([t, torch.cat([t[:-1], torch.full_like(t[-1:], -1)])])  # (2, 7, ...)
    features, labels = torch.randn(7, 5, dtype=torch.float64), metric.requested_labels(fake_trainer(0, 2), 4)
    gathered, gathered_labels = metric._gather(fake_trainer(0, 2), model, features, labels)
    assert len(labels) == 7 and gathered.shape == (13, 5)
    assert gathered_labels.tolist() == labels.tolist() + labels.tolist()[:-1]
