import copy
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from lightning_gen import renamed as renamed_options
from lightning_gen.checkpoints import CheckpointError, load_model
from lightning_gen.cli import run_lightning_cli
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.jobs import sample
from lightning_gen.losses import kl_normal
from lightning_gen.models import VAEGAN
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.models.vae_gan_parts import EquilibriumGating
from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator
from tests.conftest import REPO, tiny_trainer


def nets(latent: int = 4, size: int = 8, d_norm: str = "batch"):
    torch.manual_seed(0)
    return (
        ConvEncoder(latent_dim=latent, img_size=size, channels=1, base_channels=4, min_size=2),
        DCGANGenerator(latent_dim=latent, img_size=size, channels=1, base_channels=4, min_size=2),
        DCGANDiscriminator(img_size=size, channels=1, base_channels=4, norm=d_norm, min_size=2),
    )


NO_GATING = EquilibriumGating(enabled=False)


def adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def tiny_vaegan(**kwargs) -> VAEGAN:
    return VAEGAN(*nets(), optimizer_e=adam, optimizer_g=adam, optimizer_d=adam, **kwargs)


def snapshot(model: VAEGAN) -> dict[str, list[torch.Tensor]]:
    return {
        name: [p.detach().clone() for p in getattr(model, name).parameters()]
        for name in ("encoder", "decoder", "discriminator")
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
    model = tiny_vaegan(ema_decay=0.9, data_recon_weight=0.5, gating=NO_GATING, adversarial={"reconstructions": True})
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"encoder", "decoder", "discriminator"}


def grads(params) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


def reference_grads(model: VAEGAN, x: torch.Tensor, seed: int) -> dict[str, list[torch.Tensor]]:
    """The three networks' gradients computed the plain way, one loss per network with autograd.grad, from
    the same random draws as ``model.losses``."""
    enc, gen, disc = model.encoder, model.decoder, model.discriminator
    torch.manual_seed(seed)
    mu, logvar = enc(x)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    recon = gen(z)
    feats = disc.features(torch.cat([x, recon]))[model.feature_layer]
    f_real, f_recon = feats.chunk(2)
    feat = 0.5 * (f_real - f_recon).pow(2).flatten(1).sum(1).mean()
    if model.likelihood == "bernoulli":  # pixels and tanh outputs mapped to [0, 1]
        p, t = ((recon + 1) / 2).clamp(1e-6, 1 - 1e-6), (x + 1) / 2
        pixel = -(t * p.log() + (1 - t) * (1 - p).log()).flatten(1).sum(1).mean()
    else:
        pixel = 0.5 * (x - recon).pow(2).flatten(1).sum(1).mean()
    n_prior = round(model.game.prior_samples * x.shape[0])
    fakes = [recon] if model.game.reconstructions else []  # D judges the reconstruction x~ itself
    if n_prior:
        fakes.append(gen(torch.randn(n_prior, model.latent_dim)))  # the density is not fitted yet: N(0, I)
    real_logits, *fake_logits = disc(torch.cat([x, *fakes])).split([x.shape[0], *(len(f) for f in fakes)])
    d_loss = sum(model.adversarial.d(real_logits, f) for f in fake_logits)
    w = model.gamma / f_real[0].numel()
    recon_loss = model.feature_recon_weight * feat + model.data_recon_weight * pixel
    e_params, g_params, d_params = (list(m.parameters()) for m in (enc, gen, disc))
    return {
        "encoder": torch.autograd.grad(model.kl_weight * kl_normal(mu, logvar).mean() + recon_loss, e_params,
                                       retain_graph=True),
        # G: its share of the reconstruction, and the negated D loss of its fakes (the zero-sum game), x weight
        "decoder": torch.autograd.grad(w * recon_loss - model.game.weight * d_loss, g_params, retain_graph=True),
        "discriminator": torch.autograd.grad(d_loss, d_params),  # D's loss only: not the feature loss
    }  # fmt: skip


@pytest.mark.parametrize(
    ("feature_layer", "recons", "extra"),
    [
        (0, False, {}),
        (-1, False, {}),
        (0, True, {}),
        (-1, False, {"likelihood": "bernoulli", "feature_recon_weight": 0.5}),
        (-1, False, {"likelihood": "bernoulli", "feature_recon_weight": 0.0}),
        (-1, True, {"likelihood": "bernoulli", "prior_samples": 0.5}),
        (-1, True, {"prior_samples": 0.0}),
        (-1, True, {"weight": 0.5}),
    ],
)
def test_single_pass_routes_each_gradient_to_its_network(feature_layer, recons, extra):
    """One backward of ``losses()["loss"]`` gives every network exactly the gradient of its own objective."""
    game = {"reconstructions": recons, **{k: extra.pop(k) for k in ("prior_samples", "weight") if k in extra}}
    model = tiny_vaegan(feature_layer=feature_layer, gamma=0.7, kl_weight=0.5, data_recon_weight=0.3,
                        adversarial=game, **extra)  # fmt: skip
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    want = reference_grads(model, x, seed=3)
    model.zero_grad()
    torch.manual_seed(3)
    model.losses(x)["loss"].backward()
    for name in ("encoder", "decoder", "discriminator"):
        got = grads(getattr(model, name).parameters())
        assert any(g.abs().sum() > 0 for g in got), name
        for g, r in zip(got, want[name]):
            assert torch.allclose(g, r, rtol=1e-3, atol=1e-6), name


@pytest.mark.parametrize(("recons", "prior_samples"), [(False, 1.0), (True, 1.0), (True, 0.0)])
def test_encoder_gets_no_adversarial_gradient(recons, prior_samples):
    model = tiny_vaegan(adversarial={"reconstructions": recons, "prior_samples": prior_samples})
    model.zero_grad()
    out = model.losses(torch.rand(4, 1, 8, 8) * 2 - 1)
    out["d_loss"].backward()  # only the adversarial route
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


@pytest.mark.parametrize(("prior_samples", "sizes"), [(1.0, [8, 8]), (0.5, [8, 4]), (0.0, [8])])
def test_generator_decodes_the_codes_once(prior_samples, sizes):
    """With discriminated reconstructions G runs once on E's codes (x~ is both the reconstruction and the fake D
    judges) and once on the prior codes (``prior_samples`` of the batch), not a second time on E's codes."""
    model = tiny_vaegan(adversarial={"reconstructions": True, "prior_samples": prior_samples})
    calls = []
    model.decoder.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    out = model.losses(torch.rand(8, 1, 8, 8) * 2 - 1)
    assert calls == sizes
    assert out["fake_logits"].shape == (sum(sizes),) and ("prior_logits" in out) == (prior_samples > 0)
    out["loss"].backward()  # the shared pass backpropagates without running G again
    assert calls == sizes


def test_discriminator_gets_no_reconstruction_gradient():
    model = tiny_vaegan(data_recon_weight=1.0)
    model.zero_grad()
    out = model.losses(torch.rand(4, 1, 8, 8) * 2 - 1)
    (out["feature_recon"] + out["recon"]).backward()  # only the reconstruction route
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.discriminator.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


@pytest.mark.parametrize("loss", ["ns", "wasserstein"])
def test_each_optimizer_steps_only_its_network(tmp_path, image_npz, loss):
    d_norm = "layer" if loss == "wasserstein" else "batch"
    model = VAEGAN(*nets(d_norm=d_norm), optimizer_e=adam, optimizer_g=adam, optimizer_d=adam,
                   adversarial={"loss": loss}, gating=NO_GATING)  # fmt: skip
    stepped = []
    model.on_before_optimizer_step = lambda opt: stepped.append(
        next(n for n in ("encoder", "decoder", "discriminator")
             if opt.param_groups[0]["params"][0] is next(getattr(model, n).parameters()))
    )  # fmt: skip
    before = snapshot(model)
    fit_one_batch(tmp_path, model, image_npz)
    assert stepped == ["encoder", "decoder", "discriminator"]
    assert changed(before, model) == {"encoder", "decoder", "discriminator"}


def test_vae_warm_start_gives_g_no_adversarial_gradient_until_adversarial_start(tmp_path, image_npz):
    """``adversarial.start``: before it G's gradient is its reconstruction's alone and D still learns; from
    it on G also gets the adversarial one."""
    model = tiny_vaegan(adversarial={"start": 2}, gating=NO_GATING, likelihood="bernoulli",
                        data_recon_weight=1.0, feature_recon_weight=0.0)  # fmt: skip
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    assert model.adversarial_on()  # outside a fit: the game is on

    def g_grads(warm: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        model.adversarial_on = lambda: not warm
        model.zero_grad()
        torch.manual_seed(1)
        out = model.losses(x)
        out["d_loss"].backward()  # the adversarial route alone
        return grads(model.decoder.parameters()), grads(model.discriminator.parameters())

    g_warm, d_warm = g_grads(warm=True)
    g_game, d_game = g_grads(warm=False)
    assert all(g.abs().sum() == 0 for g in g_warm) and any(g.abs().sum() > 0 for g in g_game)
    assert all(torch.allclose(a, b) for a, b in zip(d_warm, d_game))  # D's loss is the same either way
    del model.adversarial_on
    dm = ArrayImageDataModule(image_npz, batch_size=4)
    before = snapshot(model)
    tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=0).fit(model, dm)
    assert changed(before, model) == {"encoder", "decoder", "discriminator"}


def test_feature_reconstruction_is_gaussian_in_chosen_layer():
    model = tiny_vaegan(feature_layer=0)
    model.eval()  # batch norm on running statistics: features of a batch do not depend on its partner
    x, y = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    fx, fy = model.discriminator.features(x)[0], model.discriminator.features(y)[0]
    expected = 0.5 * (fx - fy).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(model.feature_reconstruction(x, y), expected, atol=1e-5)
    assert model.feature_reconstruction(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_equilibrium_gates():
    model = tiny_vaegan(gating=EquilibriumGating())
    sure = torch.full((4,), 8.0)  # D(x) ~ 1: BCE on real ~ 0
    unsure = torch.zeros(4)  # D = 0.5: BCE = ln 2, at the equilibrium
    assert model.gates(unsure, unsure) == (True, True)
    assert model.gates(sure, -sure) == (False, True)  # D far ahead: skip D
    assert model.gates(-sure, sure) == (True, False)  # D far behind: skip G
    assert tiny_vaegan(gating=NO_GATING).gates(sure, -sure) == (True, True)


@pytest.mark.parametrize(
    ("equilibrium", "skipped"),
    [(5.0, "discriminator"), (-5.0, "decoder")],  # BCEs ~0.7: far below 4.9 (D ahead), far above -4.9
)
def test_gating_skips_exactly_one_update(tmp_path, image_npz, equilibrium, skipped):
    model = tiny_vaegan(gating=EquilibriumGating(equilibrium=equilibrium, margin=0.1), ema_decay=0.9)
    before = snapshot(model)
    ema_before = [p.detach().clone() for p in model.decoder_ema.module.parameters()]
    fit_one_batch(tmp_path, model, image_npz)
    assert changed(before, model) == {"encoder", "decoder", "discriminator"} - {skipped}
    ema_moved = any(not torch.equal(a, b) for a, b in zip(ema_before, model.decoder_ema.module.parameters()))
    assert ema_moved == (skipped != "decoder")  # the EMA follows G's steps only
    # the gated optimizer's state is untouched: no Adam moments for it
    opt = model.trainer.optimizers[("encoder", "decoder", "discriminator").index(skipped)]
    assert not opt.state


def test_gating_is_on_by_default_with_larsens_values():
    model = tiny_vaegan()
    assert model.gating == EquilibriumGating(enabled=True, equilibrium=0.68, margin=0.35)


def test_public_methods_shapes():
    model = tiny_vaegan(ema_decay=0.9)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert model.reconstruct(x).shape == (3, 1, 8, 8)
    assert model.interpolate(x[:2], x[1:], steps=4).shape == (2, 4, 1, 8, 8)
    z = torch.randn(5, 4)
    with torch.no_grad():
        for p in model.decoder_ema.module.parameters():
            p.zero_()
    assert torch.equal(model.sample(5, z=z), torch.zeros(5, 1, 8, 8))  # tanh(0): the EMA decoder was used


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_layer": 2}, r"feature_layer=2 .* 2 feature layers"),
        ({"feature_layer": -3}, "feature_layer=-3"),
        ({"gamma": 0.0}, "gamma must be > 0"),
        ({"data_recon_weight": -1.0}, "data_recon_weight must be >= 0"),
        ({"feature_recon_weight": -1.0}, "feature_recon_weight must be >= 0"),
        ({"likelihood": "laplace"}, "likelihood must be"),
        ({"adversarial": {"start": -1}}, "adversarial.start must be >= 0"),
        ({"adversarial": {"prior_samples": 1.5}}, r"adversarial.prior_samples must be in \[0, 1\]"),
        ({"adversarial": {"prior_samples": 0.0}}, "gives D no fakes"),
        ({"adversarial": {"gp_weight": -1.0}}, "adversarial.gp_weight must be >= 0"),
        ({"adversarial": {"weight": -1.0}}, "adversarial.weight must be >= 0"),
        ({"adversarial": {"prior": "uniform"}}, "adversarial.prior must be"),
        ({"latent_density": {"components": 4, "train_components": 5}}, "latent_density.train_components must be in"),
        ({"gating": {"margin": -0.1}}, "gating.margin must be >= 0"),
        ({"adversarial": {"loss": "hinge"}}, "only loss='ns'"),
        ({"adversarial": {"loss": "wasserstein"}, "gating": NO_GATING}, "norm='layer'"),
        ({"adversarial": {"loss": "lsgan"}, "gating": NO_GATING}, "Unknown adversarial loss"),
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
        sum(p.numel() for p in getattr(first, n).parameters()) for n in ("encoder", "decoder", "discriminator")
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
            f"--model.init_args.decoder.init_args={small}",
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
    assert isinstance(model, VAEGAN) and model.decoder_ema is not None
    out = tmp_path / "out" / "samples.npz"
    assert sample.main([str(ckpt), "--num-samples", "10", "--output", str(out), "--batch-size", "4"]) == 0
    samples = np.load(out)["samples"]
    assert samples.shape == (10, 1, 8, 8) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 1 and samples.std() > 0
    assert (tmp_path / "out" / "samples.png").is_file()
    assert model.reconstruct(torch.zeros(2, 1, 8, 8)).shape == (2, 1, 8, 8)


def _with_old_names(ckpt: dict) -> dict:
    """The checkpoint as the VAE-GAN wrote it before its options were renamed (lightning_gen.renamed)."""
    hp = ckpt["hyper_parameters"]
    for old, new in renamed_options.RENAMED_OPTIONS["VAEGAN"].items():
        group, _, key = new.partition(".")
        if key and key in hp.get(group, {}):
            hp[old] = hp[group][key]
        elif not key and new in hp:
            hp[old] = hp.pop(new)
    hp.pop("gating"), hp.pop("latent_density"), hp.pop("adversarial")
    old = {"decoder.": "generator.", "decoder_ema.": "generator_ema.", "training_density.": "gan_density."}
    state = {}
    for k, v in ckpt["state_dict"].items():
        prefix = next((p for p in old if k.startswith(p)), None)
        state[k if prefix is None else old[prefix] + k.removeprefix(prefix)] = v
    ckpt["state_dict"] = state
    return ckpt


def test_a_checkpoint_with_old_names_is_refused_with_what_to_do_and_converts(vaegan_run, tmp_path, capsys):
    ckpt = vaegan_run / "checkpoints" / "last.ckpt"
    model = load_model(ckpt)
    assert model.gating == EquilibriumGating() and model.latent_density_config == LatentDensityConfig()
    original = torch.load(ckpt, weights_only=True)
    old = tmp_path / "old.ckpt"
    torch.save(_with_old_names(torch.load(ckpt, weights_only=True)), old)
    with pytest.raises(CheckpointError, match=r"`pixel_weight` is now `data_recon_weight`.*python -m lightning_gen"):
        load_model(old)
    with pytest.raises(CheckpointError, match="--ckpt_path: .*python -m lightning_gen.renamed"):  # resuming too
        run_lightning_cli(
            ["fit", "--config", os.path.join(REPO, "configs/vae_gan/digits.yaml"), "--ckpt_path", str(old)]
        )
    new = tmp_path / "new.ckpt"
    assert renamed_options.main([str(old), str(new)]) == 0
    assert "`generator` is now `decoder`" in capsys.readouterr().out
    converted = torch.load(new, weights_only=True)
    assert converted["hyper_parameters"] == original["hyper_parameters"]
    assert converted["state_dict"].keys() == original["state_dict"].keys()
    assert all(torch.equal(converted["state_dict"][k], v) for k, v in original["state_dict"].items())
    assert isinstance(load_model(new), VAEGAN)


def test_reconstruction_grid_layout(vaegan_run):
    grid = Image.open(vaegan_run / "samples" / "final.png")
    # 8 per row, 8x8 digits enlarged 8x (nearest) to 64 px + 1 px padding: 16 (input, reconstruction)
    # pairs = 4 rows, 1 interpolation row, 64 samples = 8 rows -> 13 rows
    assert grid.size == (8 * 65 + 1, 13 * 65 + 1)
    pixels = np.asarray(grid)[1:65, 1:65, 0]  # the first digit: 8x8 blocks of one value each
    assert (pixels.reshape(8, 8, 8, 8) == pixels[::8, ::8][:, None, :, None]).all()


def test_upscale_small_is_nearest_and_leaves_large_images():
    from lightning_gen.callbacks import image_grid, upscale_small

    x = torch.arange(4.0).view(1, 1, 2, 2)
    up = upscale_small(x, min_side=6)  # factor 3
    assert up.shape == (1, 1, 6, 6) and torch.equal(up[0, 0, :3, :3], torch.zeros(3, 3))
    assert torch.equal(up[0, 0, 3:, 3:], torch.full((3, 3), 3.0))
    big = torch.rand(2, 3, 64, 64)
    assert upscale_small(big) is big
    assert image_grid(torch.zeros(4, 1, 8, 8), nrow=2).shape == (3, 2 * 65 + 1, 2 * 65 + 1)


def test_adversarial_codes_come_from_the_density():
    model = tiny_vaegan(adversarial={"prior": "density"})
    with torch.no_grad():
        model.latent_density.means.fill_(4.0)
        model.latent_density.scale_tril.zero_()
        model.latent_density.fitted.fill_(True)
    assert not torch.equal(model.noise(3), torch.full((3, 4), 4.0))  # copied only at an epoch's first batch
    model.training_density.load_state_dict(model.latent_density.state_dict())
    assert torch.equal(model.noise(3), torch.full((3, 4), 4.0))
    assert not torch.equal(tiny_vaegan(adversarial={"prior": "standard"}).noise(3), torch.full((3, 4), 4.0))


def test_latent_density_round_trips_and_sample_uses_it(tmp_path, image_npz):
    model = tiny_vaegan(latent_density=LatentDensityConfig("gmm", components=2, max_codes=16))
    dm = ArrayImageDataModule(image_npz, batch_size=4)
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, dm)
    density = model.latent_density
    assert bool(density.fitted) and int(density.fitted_at) == 2
    # fitted to the codes of *scaled* images: the data module's uint8 -> [-1, 1], as the training batches
    train = dm.train_set
    images = torch.stack([train[i][0] for i in range(min(16, len(train)))]).float() / 255 * 2 - 1
    codes = model.encode(images)[0]
    weighted_mean = (density.weights[:, None] * density.means).sum(0)
    assert torch.allclose(weighted_mean, codes.mean(0), atol=1e-3)
    path = tmp_path / "density.ckpt"
    trainer.save_checkpoint(path)
    fresh = tiny_vaegan(latent_density=LatentDensityConfig("gmm", components=2, max_codes=16))
    fresh.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    for name, buf in density.named_buffers():
        assert torch.equal(buf, dict(fresh.latent_density.named_buffers())[name]), name
    # sample() decodes codes of the density: make it a point mass and compare with decoding that point
    with torch.no_grad():
        fresh.latent_density.means.fill_(2.0)
        fresh.latent_density.scale_tril.zero_()
    point = torch.full((3, 4), 2.0)
    assert torch.allclose(fresh.sample(3), fresh.sample(3, z=point))
    assert not torch.allclose(fresh.sample(3, prior="standard"), fresh.sample(3, z=point))


# -- conditional VAE-GAN ----------------------------------------------------------------------------------
K = 3


def cond_vaegan(**kwargs) -> VAEGAN:
    torch.manual_seed(0)
    small = dict(img_size=8, channels=1, base_channels=4, min_size=2, num_classes=K)
    enc, gen = ConvEncoder(latent_dim=4, **small), DCGANGenerator(latent_dim=4, **small)
    return VAEGAN(enc, gen, DCGANDiscriminator(**small), optimizer_e=adam, optimizer_g=adam, optimizer_d=adam,
                  latent_density=LatentDensityConfig("gaussian"), **kwargs)  # fmt: skip


@pytest.fixture
def labelled_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "labelled.npz"
    np.savez(path, images=rng.integers(0, 256, size=(24, 8, 8), dtype=np.uint8), labels=np.arange(24) % K)
    return str(path)


def test_conditional_vaegan_trains_with_labels_and_they_change_its_outputs(tmp_path, labelled_npz):
    model = cond_vaegan(gating=NO_GATING, adversarial={"reconstructions": True})
    calls = []  # the labels every network call of a training step gets
    for name in ("encoder", "decoder", "discriminator"):
        getattr(model, name).register_forward_pre_hook(
            lambda m, args, kwargs, name=name: calls.append((name, kwargs.get("labels"))), with_kwargs=True
        )
    before = snapshot(model)
    dm = ArrayImageDataModule(labelled_npz, labels_key="labels", batch_size=4)
    tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1).fit(model, dm)
    assert changed(before, model) == {"encoder", "decoder", "discriminator"}
    assert model.label_counts.tolist() == [float(c) for c in dm.label_counts()]  # the training mix, stored
    assert model.label_counts.sum() > 0
    assert {n for n, _ in calls} == {"encoder", "decoder", "discriminator"}
    assert all(y is not None and y.dtype == torch.int64 for _, y in calls)  # no network call without labels
    for m in model.decoder.modules():  # trained class tables differ; fresh ones are all equal
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight)
    z = torch.randn(1, 4).expand(K, 4)
    out = model.sample(K, z=z, labels=torch.arange(K))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert not torch.allclose(model.reconstruct(x, labels=[0, 0]), model.reconstruct(x, labels=[1, 1]))
    assert model.sample(5).shape == (5, 1, 8, 8)  # labels drawn from the stored mix


def test_conditional_vaegan_refuses_bad_labels(tmp_path, image_npz):
    model = cond_vaegan()
    model.label_counts.fill_(1.0)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        model.sample(2, labels=[0, 7])
    with pytest.raises(ValueError, match="integers"):
        model.sample(2, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="give the images' labels"):
        model.reconstruct(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_vaegan().sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="gives no labels"):  # conditional model, unlabelled data
        fit_one_batch(tmp_path, cond_vaegan(), image_npz)
    enc, gen, disc = nets()
    with pytest.raises(ValueError, match="disagree on num_classes"):  # one conditional net among plain ones
        VAEGAN(enc, gen, DCGANDiscriminator(img_size=8, base_channels=4, min_size=2, num_classes=K))


def test_conditional_vaegan_stop_and_resume_is_exact(tmp_path, monkeypatch):
    import tests.robust_helpers as robust_helpers
    import tests.test_resume as test_resume

    spec = ("configs/vae_gan/digits_cond.yaml", robust_helpers.FAMILIES["vae_gan"][1])
    monkeypatch.setitem(robust_helpers.FAMILIES, "vae_gan_cond", spec)
    test_resume.test_stop_and_resume_is_exact("vae_gan_cond", tmp_path)


def test_stop_and_resume_is_exact_with_cheap_training_refits(tmp_path, monkeypatch):
    """Training refits with fewer components and codes than the final fit (made at the end of training, written
    into last.ckpt): the adversarial codes of a resumed run still come from the density an uninterrupted run
    used. (A stop at an epoch's very end, N = 3, is not exact for this family even without cheap refits.)"""
    import tests.robust_helpers as robust_helpers
    import tests.test_resume as test_resume

    cheap = ["--model.init_args.latent_density.components=4", "--model.init_args.latent_density.train_components=2",
             "--model.init_args.latent_density.train_codes=64", "--model.init_args.adversarial.reconstructions=true",
             "--model.init_args.adversarial.prior_samples=0.5"]  # fmt: skip
    spec = ("configs/vae_gan/digits.yaml", robust_helpers.FAMILIES["vae_gan"][1] + cheap)
    monkeypatch.setitem(robust_helpers.FAMILIES, "vae_gan_cheap_refits", spec)
    test_resume.test_stop_and_resume_is_exact("vae_gan_cheap_refits", tmp_path)  # N = 4: a stop inside an epoch
    final = torch.load(robust_helpers.last_ckpt(tmp_path / "whole"), weights_only=True)["state_dict"]
    assert bool(final["latent_density.final"]) and (final["latent_density.weights"] > 0).sum() == 4
    assert (final["training_density.weights"] > 0).sum() == 2  # the training refits' density: 2 of 4 components


@pytest.mark.slow
def test_ddp_with_shared_decode_and_cheap_refits(tmp_path, monkeypatch):
    """2-process DDP of the VAE-GAN with the mnist_cpu options (discriminated reconstructions from the shared
    pass of G, no prior fakes, cheap training refits): ranks end identical (tests/test_ddp.py's checks)."""
    import tests.robust_helpers as robust_helpers
    import tests.test_ddp as test_ddp

    extra = ["--model.init_args.adversarial.reconstructions=true", "--model.init_args.adversarial.prior_samples=0.0",
             "--model.init_args.latent_density.components=4", "--model.init_args.latent_density.train_components=2",
             "--model.init_args.latent_density.train_codes=64"]  # fmt: skip
    spec = ("configs/vae_gan/digits.yaml", robust_helpers.FAMILIES["vae_gan"][1] + extra)
    monkeypatch.setitem(robust_helpers.FAMILIES, "vae_gan_shared_decode", spec)
    test_ddp.test_ddp_two_processes("vae_gan_shared_decode", tmp_path)
