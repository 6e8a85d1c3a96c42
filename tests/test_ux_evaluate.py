"""`lightning-gen evaluate` as a user reads it: settings that differ from the published protocol are
flagged as not comparable, one repeat prints no spread, and the thread default is `fit`'s."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from lightning_gen.jobs import evaluate
from lightning_gen.jobs.evaluate import TimeGANSettings
from tests.conftest import REPO

SINES = os.path.join(REPO, "configs/rvae/sines.yaml")
SMALL_SINES = ["--data-arg", "num_sequences=400", "--data-arg", "seq_len=8"]
FAST_SCORES = ["--disc-iterations", "10", "--pred-iterations", "10", "--repeats", "1"]


@pytest.fixture
def sines_npz(tmp_path):
    from lightning_gen.data.sines import make_sines

    path = tmp_path / "sines.npz"
    np.savez(path, samples=make_sines(40, 8, 5, seed=7))  # 40 = the test split of SMALL_SINES
    return str(path)


def _protocol_args(**changes) -> TimeGANSettings:
    return TimeGANSettings(**changes)  # the defaults: TimeGAN's protocol


def test_short_timegan_scores_are_flagged_and_one_repeat_has_no_spread(sines_npz, tmp_path, capsys, monkeypatch,
                                                                       restore_threads):  # fmt: skip
    monkeypatch.setenv("COLUMNS", "250")  # rich's table and lines unwrapped
    out = tmp_path / "report.json"
    args = [sines_npz, "--data", SINES, *SMALL_SINES, *FAST_SCORES, "--metrics", "discriminative,predictive,mmd"]
    assert evaluate.main([*args, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    disc, pred, mmd = (report["metrics"][m] for m in ("discriminative", "predictive", "mmd"))
    assert report["comparable_with_published"] is False
    assert disc["comparable_with_published"] is False and pred["comparable_with_published"] is False
    assert "--disc-iterations 10 (TimeGAN: 2,000)" in disc["not_comparable"]
    assert "--pred-iterations 10 (TimeGAN: 5,000)" in pred["not_comparable"]
    assert "--repeats 1 (TimeGAN: the mean of 10)" in report["not_comparable_reasons"]
    assert "comparable_with_published" not in mmd  # no published protocol: the project's own number
    assert "std" not in disc and "reference_std" not in pred and disc["repeats"] == 1  # one run: no spread
    printed = capsys.readouterr().out
    assert "n=1 (no spread)" in printed and "NOT COMPARABLE WITH PUBLISHED SCORES: --disc-iterations 10" in printed
    assert "*" in next(line for line in printed.splitlines() if "discriminative" in line)


def test_table_row_spread_and_mark():
    one = {"value": 0.04, "std": 0.0, "repeats": 1, "iterations": 200, "not_comparable": ["--repeats 1"]}
    row = evaluate.table_row("discriminative", one)
    assert row == ("discriminative", "0.04 *", "", "n=1 (no spread); iterations=200")
    ten = {"value": 0.16, "std": 0.01, "repeats": 10, "reference_value": 0.2, "comparable_with_published": True}
    assert evaluate.table_row("predictive", ten) == ("predictive", "0.16", "0.01", "reference 0.2; n=10")


def test_protocol_settings_are_comparable_and_each_deviation_is_named():
    values = {"discriminative": {"value": 0.1}, "predictive": {"value": 0.2}, "mmd": {"value": 0.0}}
    fake = np.zeros((100, 8, 5))
    assert evaluate.mark_protocol(values, _protocol_args(), None, 100, 100, fake) == []
    assert values["discriminative"]["comparable_with_published"] is True
    assert "not_comparable" not in values["predictive"]

    values = {"discriminative": {"value": 0.1}}
    reasons = evaluate.mark_protocol(values, _protocol_args(repeats=3), None, 50, 100, fake)
    assert reasons == [
        "--repeats 3 (TimeGAN: the mean of 10)",
        "100 generated vs 50 real sequences (TimeGAN: as many of each)",
        "--num-reference 50 of the split's 100 items",
    ]
    assert evaluate.mark_protocol({"mmd": {"value": 0.0}}, _protocol_args(), None, 100, 100, fake) is None

    inception = {"name": "inception", "comparable_with_published": True}
    big, small = np.zeros((10000, 1)), np.zeros((2000, 1))
    fid = {"fid": {"value": 3.0}, "is": {"value": 9.0}}
    reasons = evaluate.mark_protocol(fid, _protocol_args(), inception, 10000, 10000, big)
    assert fid["fid"]["comparable_with_published"] is True  # 10,000 each: FID's protocol
    assert reasons == ["10,000 generated / 10,000 real samples (published: 50,000 or more each)"]  # IS: 50,000
    fid = {"fid": {"value": 3.0}}
    evaluate.mark_protocol(fid, _protocol_args(), inception, 10000, 10000, small)
    assert fid["fid"]["not_comparable"] == ["2,000 generated / 10,000 real samples (published: 10,000 or more each)"]
    classifier = {"name": "classifier", "comparable_with_published": False}
    evaluate.mark_protocol(fid, _protocol_args(), classifier, 10000, 10000, big)
    assert fid["fid"]["not_comparable"] == ["classifier features, not the standard FID Inception-v3"]


def test_threads_default_is_fits_and_the_callers_setting_comes_back(monkeypatch, restore_threads):
    from lightning_gen.lightning_cli import DEFAULT_THREADS

    seen = []
    monkeypatch.setattr(evaluate.job, "_evaluate", lambda args: seen.append(torch.get_num_threads()) or {})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    args = evaluate.build_parser().parse_args(["x.npz"])
    assert args.threads is None
    evaluate.evaluate(args)
    assert seen == [DEFAULT_THREADS] and torch.get_num_threads() == 2  # 1 inside the job; the caller's after it
    evaluate.evaluate(evaluate.build_parser().parse_args(["x.npz", "--threads", "0"]))
    assert seen[-1] == 2  # 0: torch's own setting
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    evaluate.evaluate(args)
    assert seen[-1] == 2  # a set OMP_NUM_THREADS wins over the default, as in `fit`


def test_training_metric_also_scores_the_test_split(tmp_path):
    """`lightning-gen test` with the sweep's metric callback in the config logs test/discriminative_score."""
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gen.metrics import TrainingMetric
    from tests.conftest import tiny_trainer
    from tests.test_evaluate import NoiseSequenceModel, SineSequences

    class WithTestSplit(SineSequences):
        def test_dataloader(self):
            return DataLoader(TensorDataset(self.x[80:]), batch_size=16)

    class Model(NoiseSequenceModel):
        def test_step(self, batch, batch_idx):
            pass

    metric = TrainingMetric("discriminative", num_samples=80, iterations=30, batch_size=32)
    trainer = tiny_trainer(tmp_path, callbacks=[metric])
    trainer.test(Model(), WithTestSplit(), verbose=False)
    assert 0.0 <= float(trainer.callback_metrics["test/discriminative_score"]) <= 0.5
    assert metric.split == "val" and metric.reference is None  # the validation setup is left as it was


def test_generator_test_metrics_log_g_adversarial(tiny_nets, adam, tmp_path):
    """`test` of a GAN reports G's adversarial loss beside D's test metrics (the CLI adds this callback to `test`)."""
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_gen.metrics.callback import GeneratorTestMetrics
    from lightning_gen.models import GAN
    from tests.conftest import tiny_trainer

    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam)
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4)
    trainer = tiny_trainer(tmp_path, callbacks=[GeneratorTestMetrics()])
    metrics = trainer.test(model, loader, verbose=False)[0]
    assert {"test/d_loss", "test/g_adversarial"} <= set(metrics) and np.isfinite(metrics["test/g_adversarial"])
    assert metrics["test/g_adversarial"] > 0  # -log D(G(z)) of the non-saturating loss
