import copy

import pytest
import torch

from lightning_gen.augment import cutout, diff_augment, parse_policy, translation
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.models import GAN
from lightning_gen.nets import DCGANDiscriminator, DCGANGenerator
from tests.conftest import tiny_trainer


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def _fit_one_batch(tmp_path, model, image_npz):
    dm = ArrayImageDataModule(image_npz, batch_size=4)
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, dm)


@pytest.mark.parametrize("loss", ["ns", "hinge", "wasserstein"])
def test_d_step_moves_only_d(tmp_path, tiny_nets, adam, image_npz, loss):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, loss=loss, n_critic=2)  # batch 0: D step only
    g0, d0 = _params(model.generator), _params(model.discriminator)
    _fit_one_batch(tmp_path, model, image_npz)
    assert _changed(d0, model.discriminator)
    assert not _changed(g0, model.generator)


def test_g_step_moves_only_g(tmp_path, tiny_nets, adam, image_npz):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, n_critic=1, ema_decay=0.9)
    model.discriminator_step = lambda real: None  # isolate the G step
    g0, d0 = _params(model.generator), _params(model.discriminator)
    ema0 = _params(model.generator_ema.module)
    _fit_one_batch(tmp_path, model, image_npz)
    assert _changed(g0, model.generator)
    assert not _changed(d0, model.discriminator)
    assert _changed(ema0, model.generator_ema.module)  # EMA follows G after its step


def test_losses_finite_and_logged(tmp_path, tiny_nets, adam, image_npz):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, loss="wasserstein")
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1)
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    metrics = trainer.logged_metrics
    for key in (
        "train/d_loss",
        "train/g_loss",
        "train/D(x)",
        "train/D(G(z))",
        "train/grad_norm_d",
        "train/grad_norm_g",
        "train/gradient_penalty",
        "val/d_loss",
    ):
        assert key in metrics, key
        assert torch.isfinite(metrics[key]), key


def test_sample_uses_ema_and_shape(tiny_nets):
    g, d = tiny_nets
    model = GAN(g, d, ema_decay=0.99)
    with torch.no_grad():
        for p in model.generator_ema.module.parameters():
            p.zero_()
    out = model.sample(5)
    assert out.shape == (5, 1, 8, 8)
    assert torch.allclose(out, torch.zeros_like(out))  # zero weights -> tanh(0): the EMA copy was used


def test_spectral_norm_applied(tiny_nets):
    g, d = tiny_nets
    model = GAN(g, d, spectral_norm=True)
    assert any("parametrizations" in name for name, _ in model.discriminator.named_parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_critic": 0}, "n_critic must be >= 1"),
        ({"gp_weight": -1.0}, "gp_weight must be >= 0"),
        ({"ema_decay": 1.5}, "ema_decay must be in"),
        ({"loss": "lsgan"}, "Unknown adversarial loss"),
        ({"ema_batch_norm": "recompute", "ema_decay": 0.9}, "ema_batch_norm='recompute': choose"),
        ({"ema_batch_norm": "track"}, "give `ema_decay`"),
    ],
)
def test_bad_arguments(tiny_nets, kwargs, message):
    with pytest.raises(ValueError, match=message):
        GAN(*tiny_nets, **kwargs)


def test_wasserstein_refuses_batch_norm_critic():
    g = DCGANGenerator(4, img_size=8, base_channels=4)
    with pytest.raises(ValueError, match="discriminator expects"):
        GAN(g, DCGANDiscriminator(img_size=16, base_channels=4), loss="ns")
    with pytest.raises(ValueError, match="norm=.layer."):
        GAN(g, DCGANDiscriminator(img_size=8, base_channels=4, norm="batch", min_size=2), loss="wasserstein")
    GAN(g, DCGANDiscriminator(img_size=8, base_channels=4, norm="layer"), loss="wasserstein")


def test_image_shape_mismatch_is_clear(tmp_path, image_npz):
    g = DCGANGenerator(4, img_size=16, base_channels=4)
    model = GAN(g, DCGANDiscriminator(img_size=16, base_channels=4))
    with pytest.raises(ValueError, match=r"data gives images of shape .*\(1, 8, 8\).*generator makes"):
        tiny_trainer(tmp_path, fast_dev_run=True).fit(model, ArrayImageDataModule(image_npz, batch_size=4))


def test_checkpoint_keeps_ema(tmp_path, tiny_nets, adam):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, ema_decay=0.9)
    state = model.state_dict()
    assert any(k.startswith("generator_ema.") for k in state)
    clone = GAN(copy.deepcopy(g), copy.deepcopy(d), ema_decay=0.9)
    clone.load_state_dict(state)
    z = torch.randn(3, 8)
    assert torch.equal(clone.sample(3, z=z), model.sample(3, z=z))


def test_training_metrics_only_computed_when_written(tmp_path, tiny_nets, adam, image_npz):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam)
    calls = []
    model._d_output = lambda logits: calls.append(1) or logits.detach().mean()
    trainer = tiny_trainer(tmp_path, limit_train_batches=6, limit_val_batches=0, log_every_n_steps=3)
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    assert len(calls) == 2 * 2  # batches 3 and 6 are written, D(x) and D(G(z)) each
    assert "train/d_loss" in trainer.logged_metrics


# -- DiffAugment (lightning_gen.augment) ------------------------------------------------------------------------
def test_translation_and_cutout_shapes_content_and_gradient():
    torch.manual_seed(0)
    x = -torch.ones(16, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0  # a bright square in the middle, away from the borders
    x.requires_grad_(True)
    shifted = translation(x)
    assert shifted.shape == x.shape
    assert torch.equal((shifted == 1).flatten(1).sum(1), torch.full((16,), 4))  # moved, not cut (shift <= 1)
    assert not torch.equal(shifted, x) and not all(torch.equal(s, shifted[0]) for s in shifted)  # per image
    cut = cutout(torch.ones(16, 1, 8, 8))
    zeroed = (cut == 0).flatten(1).float().mean(1)
    assert ((zeroed > 0) & (zeroed <= 0.25)).all()  # at most a 4 x 4 square of 8 x 8
    diff_augment(x, parse_policy("translation,cutout")).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: G's gradient passes


@pytest.mark.parametrize("policy", ["rotation", "translation,flip", 3])
def test_bad_augment_policy(tiny_nets, policy):
    with pytest.raises(ValueError, match="augment="):
        GAN(*tiny_nets, augment=policy)


@pytest.mark.parametrize("policy", [None, "cutout"])
def test_discriminator_sees_augmented_images_in_training(tmp_path, tiny_nets, adam, image_npz, policy):
    g, d = tiny_nets
    model = GAN(g, d, optimizer_g=adam, optimizer_d=adam, augment=policy)
    seen = []
    d.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    _fit_one_batch(tmp_path, model, image_npz)
    real = seen[0]  # the D step's real batch: uint8 pixels scaled to [-1, 1] are never exactly 0
    assert len(seen) == 3 and bool((real == 0).any()) == (policy == "cutout")
