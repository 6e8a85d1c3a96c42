"""benchmarks/bench_within_class.py's density refit: a trained VAE-type checkpoint keeps its networks and gets the
latent density of other settings. Slow: importing the script imports the CLI and every metric, and a config is fitted.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.conftest import benchmark_script, fit_config

pytestmark = pytest.mark.slow

DENSITY = "model.init_args.latent_density"


@pytest.fixture
def bench(monkeypatch):
    return benchmark_script("bench_within_class", monkeypatch)


def test_refit_keeps_the_networks_and_changes_only_the_density(bench, tmp_path):
    from lightning_gen.checkpoints import load_model

    ckpt = fit_config("configs/vae/digits_cond.yaml", tmp_path / "fit")  # one Gaussian per class
    args = SimpleNamespace(dataset="digits", batch_size=64, out=str(tmp_path / "out"), set=[])
    same = load_model(bench.refit_density(f"same={ckpt}", args))
    args.set = [f"two:{DENSITY}.kind=gmm", f"two:{DENSITY}.components=2"]
    two = load_model(bench.refit_density(f"two={ckpt}", args))
    before = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    # the recorded settings refitted give the checkpoint's own density (the same codes, in the same order)
    for name in ("weights", "means", "scale_tril"):
        assert torch.allclose(getattr(same.latent_density, name), before[f"latent_density.{name}"], atol=1e-5)
    assert two.hparams.latent_density["components"] == 2
    assert tuple(two.latent_density.weights.shape) == (10, 2)  # two components for each of the 10 classes
    assert bool(two.latent_density.fitted) and not torch.allclose(
        two.latent_density.means[:, 0], two.latent_density.means[:, 1]
    )
    for name, value in two.state_dict().items():  # every network weight as trained
        if "density." not in name:
            assert torch.equal(value, before[name]), name
    assert two.sample(4, labels=torch.tensor([0, 1, 2, 3])).shape == (4, 1, 8, 8)


def test_refit_refuses_a_setting_that_needs_training(bench, tmp_path):
    ckpt = fit_config("configs/vae/digits.yaml", tmp_path / "fit")
    args = SimpleNamespace(
        dataset="digits", batch_size=64, out=str(tmp_path / "out"), set=["x:model.init_args.kl_weight=0.5"]
    )
    with pytest.raises(SystemExit, match="only model.init_args.latent_density"):
        bench.refit_density(f"x={ckpt}", args)
