import copy
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from lightning_gen import sample
from lightning_gen.checkpoints import load_model
from lightning_gen.cli import run_lightning_cli
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.models import VAEGAN
from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator
from tests.conftest import REPO, tiny_trainer


def nets(latent: int = 4, size: int = 8, d_norm: str = "batch"):
    torch.manual_seed(0)
    return (
        ConvEncoder(latent_dim=latent, img_size=size, channels=1, base_channels=4, min_size=2),
        DCGANGenerator(latent_dim=latent, img_size=size, channels=1, base_channels=4, min_size=2),
        DCGANDiscriminator(img_size=size, channels=1, base_channels=4, norm=d_norm, min_size=2),
    )


def adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def tiny_vaegan(**kwargs) -> VAEGAN:
    return VAEGAN(*nets(), optimizer_e=adam, optimizer_g=adam, optimizer_d=adam, **kwargs)


def snapshot(model: VAEGAN) -> dict[str, list[torch.Tensor]]:
    return {
        name: [p.detach().clone() for p in getattr(model, name).parameters()]
        for name in ("encoder", "generator", "discriminator")
    }


def changed(before: dict[str, list[torch.Tensor]], model: VAEGAN) -> set[str]:
    return {
        name
        for name, params in before.items()
        if any(not torch.equal(a, b) for a, b in zip(params, getattr(model, name).parameters()))
    }


def fit_one_batch(tmp_path, model, image_npz) -> None:
    dm = ArrayImageDataModule(image_npz, batch_size=4)
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, dm)


def test_full_step_moves_all_three(tmp_path, image_npz):
    model = tiny_vaegan(ema_decay=0.9, pixel_weight=0.5)
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"encoder", "generator", "discriminator"}


@pytest.mark.parametrize("loss", ["ns", "wasserstein"])
def test_d_step_moves_only_d(tmp_path, image_npz, loss):
    d_norm = "layer" if loss == "wasserstein" else "batch"
    model = VAEGAN(*nets(d_norm=d_norm), optimizer_e=adam, optimizer_g=adam, optimizer_d=adam, loss=loss)
    model.encoder_step = lambda real: torch.zeros(real.shape[0], 4)
    model.generator_step = lambda real, z: None
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"discriminator"}


def test_e_step_moves_only_e(tmp_path, image_npz):
    model = tiny_vaegan(pixel_weight=1.0)
    model.discriminator_step = lambda real: True
    model.generator_step = lambda real, z: None
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"encoder"}


def test_g_step_moves_only_g_and_ema(tmp_path, image_npz):
    model = tiny_vaegan(ema_decay=0.9, gamma=0.5)
    model.discriminator_step = lambda real: True
    model.encoder_step = lambda real: torch.randn(real.shape[0], 4)
    before = snapshot(model)
    ema_before = [p.detach().clone() for p in model.generator_ema.module.parameters()]
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"generator"}
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, model.generator_ema.module.parameters()))


def test_feature_reconstruction_is_gaussian_in_chosen_layer():
    model = tiny_vaegan(feature_layer=0)
    model.eval()  # batch norm on running statistics: features of a batch do not depend on its partner
    x, y = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    fx, fy = model.discriminator.features(x)[0], model.discriminator.features(y)[0]
    expected = 0.5 * (fx - fy).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(model.feature_reconstruction(x, y), expected, atol=1e-5)
    assert model.feature_reconstruction(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_equilibrium_gates():
    model = tiny_vaegan(equilibrium_gating=True)
    sure = torch.full((4,), 8.0)  # D(x) ~ 1: BCE on real ~ 0
    unsure = torch.zeros(4)  # D = 0.5: BCE = ln 2, at the equilibrium
    assert model.gates(unsure, unsure) == (True, True)
    assert model.gates(sure, -sure) == (False, True)  # D far ahead: skip D
    assert model.gates(-sure, sure) == (True, False)  # D far behind: skip G
    assert tiny_vaegan().gates(sure, -sure) == (True, True)  # off by default


def test_gated_d_step_leaves_d(tmp_path, image_npz):
    model = tiny_vaegan(equilibrium_gating=True, equilibrium=5.0, equilibrium_margin=0.1)  # D always "ahead"
    model.encoder_step = lambda real: torch.zeros(real.shape[0], 4)
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert "discriminator" not in changed(before, model)
    assert "generator" in changed(before, model)


def test_public_methods_shapes():
    model = tiny_vaegan(ema_decay=0.9)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.interpolate(x[:2], x[1:], steps=4).shape == (2, 4, 1, 8, 8)
    z = torch.randn(5, 4)
    with torch.no_grad():
        for p in model.generator_ema.module.parameters():
            p.zero_()
    assert torch.equal(model.sample(5, z=z), torch.zeros(5, 1, 8, 8))  # tanh(0): the EMA decoder was used


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_layer": 2}, r"feature_layer=2 .* 2 feature layers"),
        ({"feature_layer": -3}, "feature_layer=-3"),
        ({"gamma": -0.1}, "gamma must be >= 0"),
        ({"pixel_weight": -1.0}, "pixel_weight must be >= 0"),
        ({"loss": "hinge", "equilibrium_gating": True}, "only loss='ns'"),
        ({"loss": "wasserstein"}, "norm='layer'"),
        ({"loss": "lsgan"}, "Unknown adversarial loss"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAEGAN(*nets(), **kwargs)


def test_bad_geometry():
    enc, gen, disc = nets()
    with pytest.raises(ValueError, match="encoder gives latent_dim=6 but the decoder takes latent_dim=4"):
        VAEGAN(ConvEncoder(latent_dim=6, img_size=8, base_channels=4, min_size=2), gen, disc)
    with pytest.raises(ValueError, match="encoder reads"):
        VAEGAN(ConvEncoder(latent_dim=4, img_size=16, base_channels=4), gen, disc)
    with pytest.raises(ValueError, match="discriminator expects"):
        VAEGAN(enc, gen, DCGANDiscriminator(img_size=16, base_channels=4))
    with pytest.raises(ValueError, match="features"):
        VAEGAN(enc, gen, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1)))
    VAEGAN(enc, gen, MLPDiscriminator(img_size=8, hidden=8), feature_layer=1)  # any D with features() fits


def test_resume_restores_three_optimizers(tmp_path, image_npz):
    dm = ArrayImageDataModule(image_npz, batch_size=4)
    first = tiny_vaegan()
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(first, dm)
    assert trainer.global_step == 6  # 2 batches x 3 optimizer steps
    path = tmp_path / "resume.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["optimizer_states"]
    assert len(saved) == 3

    seen = {}

    class OnStart(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["states"] = [copy.deepcopy(opt.state_dict()) for opt in trainer.optimizers]
            seen["step"] = trainer.global_step

    second = tiny_vaegan()
    resumed = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=0, max_epochs=2, callbacks=[OnStart()])
    resumed.fit(second, ArrayImageDataModule(image_npz, batch_size=4), ckpt_path=str(path))
    assert seen["step"] == 6
    for got, want in zip(seen["states"], saved):
        assert got["state"].keys() == want["state"].keys() and got["state"]
        for k in want["state"]:
            assert torch.equal(got["state"][k]["exp_avg"], want["state"][k]["exp_avg"])
    # the three states are distinct (one per network), not one state copied three times
    sizes = [sum(s["exp_avg"].numel() for s in st["state"].values()) for st in saved]
    assert sizes == [
        sum(p.numel() for p in getattr(first, n).parameters()) for n in ("encoder", "generator", "discriminator")
    ]
    assert resumed.global_step == 12


@pytest.fixture(scope="module")
def vaegan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vaegan_run")
    small = "{latent_dim: 4, img_size: 8, channels: 1, base_channels: 4, min_size: 2}"
    run_lightning_cli(
        [
            "fit",
            "--config",
            os.path.join(REPO, "configs/vae_gan/digits.yaml"),
            f"--model.init_args.encoder.init_args={small}",
            f"--model.init_args.generator.init_args={small}",
            "--model.init_args.discriminator.init_args={img_size: 8, channels: 1, base_channels: 4, min_size: 2}",
            "--trainer.max_steps=6",
            "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    return root / "lightning_logs" / "version_0"


def test_sample_job_on_vaegan_checkpoint(vaegan_run, tmp_path):
    ckpt = vaegan_run / "checkpoints" / "last.ckpt"
    model = load_model(ckpt)
    assert isinstance(model, VAEGAN) and model.generator_ema is not None
    out = tmp_path / "out" / "samples.npz"
    assert sample.main([str(ckpt), "--num-samples", "10", "--output", str(out), "--batch-size", "4"]) == 0
    samples = np.load(out)["samples"]
    assert samples.shape == (10, 1, 8, 8) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 1 and samples.std() > 0
    assert (tmp_path / "out" / "samples.png").is_file()
    assert model.reconstruct(torch.zeros(2, 1, 8, 8)).shape == (2, 1, 8, 8)


def test_reconstruction_grid_layout(vaegan_run):
    grid = Image.open(vaegan_run / "samples" / "final.png")
    # 8 per row, 9 px per image + 1 px padding: 16 (input, reconstruction) pairs = 4 rows, 1 interpolation
    # row, 64 samples = 8 rows -> 13 rows
    assert grid.size == (8 * 9 + 1, 13 * 9 + 1)
