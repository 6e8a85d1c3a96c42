"""examples/ runs: train a tiny model from Python, then load / sample / reconstruct / evaluate it."""

from __future__ import annotations

import math
import os
import runpy

import pytest
import torch

from lightning_gen import api
from lightning_gen.errors import UserError
from tests.conftest import REPO

EXAMPLES = os.path.join(REPO, "examples")


@pytest.mark.slow  # about 30 s on a busy 2-core machine (two fits' worth of work: train, sample, evaluate)
def test_examples_train_then_use_checkpoint(tmp_path, capsys, restore_threads):
    train = runpy.run_path(os.path.join(EXAMPLES, "train_tiny.py"))["train"]
    ckpt = train(str(tmp_path))
    assert os.path.isfile(ckpt) and ckpt.endswith("last.ckpt")

    report = runpy.run_path(os.path.join(EXAMPLES, "use_checkpoint.py"))["main"](ckpt)
    out = capsys.readouterr().out
    assert "RVAE: sampled (8, 24, 5)" in out and "reconstruction error" in out
    assert report["num_generated"] == 64 and 0 < report["num_real"] <= 64  # the test split of 256 sines is small
    value = report["metrics"]["mmd"]["value"]
    assert math.isfinite(value) and f"mmd: {value:.4g}" in out  # the example prints what the job computed
    again = api.evaluate(ckpt, metrics=["mmd"], num_samples=64, num_reference=64, no_cache=True)
    assert again["metrics"]["mmd"]["value"] == value  # seeded: the same samples and reference every time

    model = api.load(ckpt)
    x = api.sample(model, 3, batch_size=2)  # batches are concatenated
    assert x.shape == (3, 24, 5) and torch.isfinite(x).all()
    assert api.reconstruct(model, x).shape == x.shape
    with pytest.raises(UserError, match="unknown option"):
        api.evaluate(ckpt, metricz=["mmd"])
