"""Class-conditional image networks and models: the networks use their labels, each training sub-step
moves only its own parameters, every adversarial loss works with projection and auxiliary discriminators, and
exact resume, EMA, DDP and the divergence guard work on conditional models unchanged."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

import tests.test_ddp as test_ddp
import tests.test_guards as test_guards
import tests.test_resume as test_resume
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.models import GAN, VAE
from lightning_gen.models.gan import mode_seeking_loss
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from tests import robust_helpers
from tests.conftest import tiny_trainer

pytestmark = pytest.mark.usefixtures("one_thread")
ADAM = functools.partial(torch.optim.Adam, lr=1e-3)
K = 3
COND_FAMILIES = {  # the tiny robust-test runs of the shipped conditional configs
    "gan_cond": ("configs/gan/digits_cond.yaml", robust_helpers.FAMILIES["gan"][1]),
    "vae_cond": ("configs/vae/digits_cond.yaml", robust_helpers.FAMILIES["vae"][1]),
}


@pytest.fixture
def cond_families(monkeypatch):
    for name, spec in COND_FAMILIES.items():
        monkeypatch.setitem(robust_helpers.FAMILIES, name, spec)


@pytest.fixture
def labelled_dm(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "labelled.npz"
    np.savez(path, images=rng.integers(0, 256, size=(24, 8, 8), dtype=np.uint8), labels=np.arange(24) % K)
    return ArrayImageDataModule(str(path), labels_key="labels", batch_size=4)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def _all_distinct(values, atol=1e-5):
    """Float results of a batched convolution differ by a rounding error with the position in the batch, so
    values count as equal within `atol`, never by bit identity."""
    gaps = (values[:, None] - values[None, :]).abs() + torch.eye(len(values)) * atol * 2
    return bool((gaps > atol).all())


def _randomise_class_tables(net):
    """Trained conditional nets have per-class tables that differ; fresh ones start at gain 1, bias 0."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight)


# -- networks ----------------------------------------------------------------------------------------------
def test_unconditional_networks_keep_their_parameter_names():
    g = DCGANGenerator(latent_dim=8, img_size=8, base_channels=4, min_size=2)
    assert list(g.state_dict())[:7] == [
        "project.0.weight",
        "project.2.weight",
        "project.2.bias",
        "project.2.running_mean",
        "project.2.running_var",
        "project.2.num_batches_tracked",
        "blocks.0.weight",
    ]
    d = DCGANDiscriminator(img_size=8, base_channels=4, min_size=2)
    assert list(d.state_dict())[-2:] == ["head.1.weight", "head.1.bias"]
    e = ConvEncoder(latent_dim=8, img_size=8, base_channels=4, min_size=2)
    assert e.head[1].in_features == 8 * 2 * 2  # no label inputs


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_conditional_generator_output_depends_on_the_label(norm):
    g = DCGANGenerator(latent_dim=8, img_size=8, base_channels=4, min_size=2, norm=norm, num_classes=K).eval()
    cbn = [m for m in g.modules() if type(m).__name__ == "ConditionalBatchNorm2d"]
    assert g.embed is not None and bool(cbn) == (norm == "batch")  # an embedding beside z; CBN with batch norm
    for m in cbn:  # conditional batch norm starts as the plain batch norm: gain 1, bias 0 for every class
        assert torch.equal(m.gain.weight, torch.ones_like(m.gain.weight)) and not m.bias.weight.any()
    z = torch.randn(1, 8).expand(K, 8)
    out = g(z, labels=torch.arange(K))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    mlp = MLPGenerator(latent_dim=8, hidden=16, num_classes=K)
    out = mlp(z, labels=torch.arange(K))
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("net", ["dcgan", "mlp"])
def test_projection_and_auxiliary_discriminators_use_the_label(net):
    def make(conditioning):
        torch.manual_seed(0)
        if net == "dcgan":
            return DCGANDiscriminator(8, base_channels=4, min_size=2, num_classes=K, conditioning=conditioning)
        return MLPDiscriminator(8, 1, hidden=16, num_classes=K, conditioning=conditioning)

    x = torch.randn(1, 1, 8, 8).expand(K, 1, 8, 8)
    proj = make("projection")
    logits = proj(x, labels=torch.arange(K))  # the same image with each class: <embed(y), phi(x)> differs
    assert logits.shape == (K,) and _all_distinct(logits)
    assert proj.logits_and_classes(x, labels=torch.arange(K))[1] is None

    aux = make("auxiliary")
    logits, classes = aux.logits_and_classes(x, labels=torch.arange(K))
    assert classes.shape == (K, K)
    torch.testing.assert_close(logits, logits[:1].expand(K))  # AC-GAN: the adversarial logit is unconditional,
    losses = nn.functional.cross_entropy(classes, torch.arange(K), reduction="none")  # the label enters the class
    assert _all_distinct(losses)  # loss instead


def test_conditional_encoder_uses_the_label():
    e = ConvEncoder(latent_dim=8, img_size=8, base_channels=4, min_size=2, num_classes=K).eval()
    x = torch.randn(1, 1, 8, 8).expand(K, 1, 8, 8)
    mu, logvar = e(x, labels=torch.arange(K))
    assert mu.shape == logvar.shape == (K, 8) and not torch.allclose(mu[0], mu[1])


# -- GAN sub-steps and losses ------------------------------------------------------------------------------
def cond_gan(conditioning="projection", **kwargs):
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, img_size=8, base_channels=4, min_size=2, num_classes=K)
    norm = "layer" if kwargs.get("loss") == "wasserstein" else "batch"
    d = DCGANDiscriminator(8, base_channels=4, min_size=2, norm=norm, num_classes=K, conditioning=conditioning)
    return GAN(g, d, optimizer_g=ADAM, optimizer_d=ADAM, **kwargs)


@pytest.mark.parametrize("conditioning", ["projection", "auxiliary"])
def test_d_step_moves_only_d_and_g_step_only_g(tmp_path, labelled_dm, conditioning):
    model = cond_gan(conditioning, n_critic=2, ema_decay=0.9)  # batch 0: a D step only
    g0, d0 = _params(model.generator), _params(model.discriminator)
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, labelled_dm)
    assert _changed(d0, model.discriminator) and not _changed(g0, model.generator)
    table = model.discriminator.class_head.embed if conditioning == "projection" else model.discriminator.class_head
    assert _changed(_params(cond_gan(conditioning).discriminator.class_head), table)  # the class head trained

    model = cond_gan(conditioning, n_critic=1, ema_decay=0.9)
    model.discriminator_step = lambda real, labels: None  # isolate the G step
    g0, d0, ema0 = _params(model.generator), _params(model.discriminator), _params(model.generator_ema.module)
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, labelled_dm)
    assert _changed(g0, model.generator) and not _changed(d0, model.discriminator)
    assert _changed(ema0, model.generator_ema.module)  # EMA follows G after its step
    gains = [m.gain.weight for m in model.generator.modules() if type(m).__name__ == "ConditionalBatchNorm2d"]
    assert gains and any(not torch.equal(w, torch.ones_like(w)) for w in gains)  # per-class tables trained


@pytest.mark.parametrize("conditioning", ["projection", "auxiliary"])
@pytest.mark.parametrize("loss", ["ns", "hinge", "wasserstein"])
def test_every_loss_trains_with_both_discriminators(tmp_path, labelled_dm, loss, conditioning):
    model = cond_gan(conditioning, loss=loss)
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1)
    trainer.fit(model, labelled_dm)
    metrics = trainer.logged_metrics
    expected = ["train/d_loss", "train/g_loss", "val/d_loss", "val/D(x)", "val/D(G(z))"]
    if loss == "wasserstein":
        expected.append("train/gradient_penalty")
    if conditioning == "auxiliary":
        expected += ["train/d_class_loss", "train/g_class_loss", "train/g_adversarial", "val/accuracy"]
    for key in expected:
        assert key in metrics and torch.isfinite(metrics[key]), key
    assert ("train/d_class_loss" in metrics) == (conditioning == "auxiliary")


def test_fakes_take_the_real_batch_labels(tmp_path, labelled_dm):
    model = cond_gan("auxiliary")
    seen = {"g": [], "d": []}
    g_forward, d_forward = model.generator.forward, model.discriminator.logits_and_classes
    model.generator.forward = lambda z, labels=None: seen["g"].append(labels.clone()) or g_forward(z, labels)
    model.discriminator.logits_and_classes = lambda x, labels=None: (
        seen["d"].append(labels.clone()) or d_forward(x, labels)
    )
    batches = []
    model.on_train_batch_start = lambda batch, i: batches.append(batch[1].clone())
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, labelled_dm)
    (y,) = batches
    assert len(seen["g"]) == 2 and all(torch.equal(s, y) for s in seen["g"])  # D step's and G step's fakes
    assert len(seen["d"]) == 3 and all(torch.equal(s, y) for s in seen["d"])  # real, fake, G step


def test_validation_logs_within_class_diversity_of_conditional_models(tmp_path):
    """Every conditional GAN / VAE-GAN validation batch logs its samples' within-class pixel diversity."""
    from lightning_gen.models import VAEGAN

    rng = np.random.default_rng(0)
    path = tmp_path / "labelled.npz"
    np.savez(path, images=rng.integers(0, 256, size=(48, 8, 8), dtype=np.uint8), labels=np.arange(48) % K)
    dm = ArrayImageDataModule(str(path), labels_key="labels", batch_size=12, val_fraction=0.5)
    torch.manual_seed(0)
    nets = dict(latent_dim=8, img_size=8, base_channels=4, min_size=2, num_classes=K)
    vaegan = VAEGAN(
        ConvEncoder(**nets), DCGANGenerator(**nets), DCGANDiscriminator(8, base_channels=4, min_size=2, num_classes=K),
        optimizer_e=ADAM, optimizer_g=ADAM, optimizer_d=ADAM, latent_density=LatentDensityConfig("gaussian"),
    )  # fmt: skip
    for model in (cond_gan(), vaegan):
        trainer = tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=1)
        trainer.fit(model, dm)
        value = trainer.logged_metrics["val/class_diversity_pixels"]
        assert torch.isfinite(value) and value > 0, type(model).__name__


def test_ema_generator_samples_the_asked_classes(tmp_path, labelled_dm):
    model = cond_gan(ema_decay=0.5)
    tiny_trainer(tmp_path, limit_train_batches=3, limit_val_batches=0).fit(model, labelled_dm)
    ema = model.generator_ema.module
    assert any(not torch.equal(a, b) for a, b in zip(ema.parameters(), model.generator.parameters()))
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        expected = ema.eval()(z, labels=y)
    assert torch.equal(model.sample(4, z=z, labels=y), expected)  # sample uses the EMA copy with the labels
    assert model.sample(5).shape == (5, 1, 8, 8)  # labels drawn from the stored distribution


def _batch_norms(net):
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def test_ema_batch_norm_track_changes_only_the_ema_statistics(tmp_path, labelled_dm):
    runs = {}
    for mode in ("average", "track"):
        model = cond_gan(ema_decay=0.9, ema_batch_norm=mode)
        tiny_trainer(tmp_path / mode, limit_train_batches=3, limit_val_batches=0).fit(model, labelled_dm)
        runs[mode] = model
    average, track = runs["average"], runs["track"]
    for name in ("generator", "discriminator", "generator_ema"):  # same training, same noise drawn
        assert not _changed(_params(getattr(average, name)), getattr(track, name)), name
    means = [(a.running_mean, t.running_mean) for a, t in zip(*map(_batch_norms, (average, track)))]
    assert means and all(torch.equal(a, t) for a, t in means[: len(_batch_norms(average.generator))])  # G's own
    assert any(not torch.equal(a, t) for a, t in means)  # the EMA copy's statistics differ


def test_tracked_ema_statistics_are_the_ema_weights_batch_statistics():
    model = cond_gan(ema_decay=0.9, ema_batch_norm="track")
    ema = model.generator_ema.module.eval()
    norms = _batch_norms(ema)
    for bn in norms:
        bn.momentum = 1.0  # the running statistics become this one batch's
    inputs = []
    hooks = [bn.register_forward_hook(lambda m, args, out: inputs.append(args[0])) for bn in norms]
    weights = _params(ema)
    model.generator_ema.track_statistics(torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2]))
    for h in hooks:
        h.remove()
    assert len(inputs) == len(norms) >= 2
    for bn, x in zip(norms, inputs):
        torch.testing.assert_close(bn.running_mean, x.mean((0, 2, 3)))
        torch.testing.assert_close(bn.running_var, x.var((0, 2, 3), unbiased=True))
    assert not ema.training and not _changed(weights, ema)  # mode restored, weights untouched


def test_mode_seeking_pairs_share_labels_and_reward_varied_images(tmp_path, labelled_dm):
    model = cond_gan(mode_seeking_weight=1.0)
    seen = []
    forward = model.generator.forward
    model.generator.forward = lambda z, labels=None: seen.append((z.detach(), labels.clone())) or forward(z, labels)
    tiny_trainer(tmp_path, limit_train_batches=1, limit_val_batches=0).fit(model, labelled_dm)
    (_, d_labels), (g_z, g_labels) = seen  # the D step's fakes, then the G step's pairs
    half = len(d_labels) // 2
    assert torch.equal(g_labels, d_labels[:half].repeat(2)) and not torch.equal(g_z[:half], g_z[half:])
    z = torch.cat([torch.zeros(2, 8), torch.ones(2, 8)])  # |z1 - z2| = 1
    same, varied = torch.zeros(4, 1, 8, 8), torch.cat([torch.zeros(2, 1, 8, 8), 2 * torch.ones(2, 1, 8, 8)])
    assert mode_seeking_loss(varied, z).item() == pytest.approx(0.5, rel=1e-4)  # 1 / (2 / 1)
    assert mode_seeking_loss(same, z).item() == pytest.approx(1e5)  # identical pairs are punished
    with pytest.raises(ValueError, match="mode_seeking_weight must be >= 0"):
        cond_gan(mode_seeking_weight=-1.0)


# -- conditional VAE -------------------------------------------------------------------------------------------
def test_conditional_vae_trains_samples_and_reconstructs_with_labels(tmp_path, labelled_dm):
    torch.manual_seed(0)
    enc = ConvEncoder(latent_dim=4, img_size=8, base_channels=4, min_size=2, num_classes=K)
    dec = DCGANGenerator(latent_dim=4, img_size=8, base_channels=4, min_size=2, num_classes=K)
    model = VAE(enc, dec, optimizer=ADAM, latent_density=LatentDensityConfig("gaussian"))
    e0, d0 = _params(enc), _params(dec)
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1)
    trainer.fit(model, labelled_dm)
    assert _changed(e0, enc) and _changed(d0, dec)
    assert bool(model.latent_density.fitted)  # codes encoded with their labels (the encoder refuses none)
    assert torch.isfinite(trainer.logged_metrics["val/elbo"])
    z = torch.randn(1, 4).expand(K, 4)
    _randomise_class_tables(model.decoder)
    out = model.sample(K, z=z, labels=torch.arange(K))
    assert not torch.allclose(out[0], out[1])
    x = torch.randn(2, 1, 8, 8)
    assert model.reconstruct(x, labels=[0, 1]).shape == (2, 1, 8, 8)
    assert model.interpolate(x[0], x[1], steps=4, labels_a=0, labels_b=2).shape == (1, 4, 1, 8, 8)
    with pytest.raises(ValueError, match="give the images' labels"):
        model.reconstruct(x)


# -- exact resume, DDP and the divergence guard on conditional models (the robust tests' own checks) ----------
@pytest.mark.parametrize("family", list(COND_FAMILIES))
def test_conditional_stop_and_resume_is_exact(family, tmp_path, cond_families):
    test_resume.test_stop_and_resume_is_exact(family, tmp_path)


@pytest.mark.parametrize("family", list(COND_FAMILIES))
def test_conditional_divergence_guard(family, tmp_path, capsys, cond_families):
    test_guards.test_nan_stops_every_family_and_keeps_its_last_good_checkpoint(family, tmp_path, capsys)


@pytest.mark.slow
def test_conditional_gan_ddp_two_processes(tmp_path, cond_families):
    test_ddp.test_ddp_two_processes("gan_cond", tmp_path)
