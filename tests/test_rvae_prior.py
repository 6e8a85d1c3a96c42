"""R-VAE / R-VAE-GAN: the fitted latent prior in checkpoints and samples, binary rolls sampled as
binary, and the R-VAE-GAN's one-backward step with its gradients routed to the intended networks."""

import functools

import numpy as np
import pytest
import torch

from lightning_gen.models import RVAE, RVAEGAN
from lightning_gen.models.latent_density import LatentDensity
from lightning_gen.nets import RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder
from tests.test_sequence_models import SMALL_VAE, fit_config

D, T, Z, H = 3, 8, 4, 8
adam = functools.partial(torch.optim.Adam, lr=1e-2)


def tiny_rvae_gan(**kwargs):
    torch.manual_seed(0)
    defaults = dict(teacher_forcing=1.0, kl_warmup_steps=0)
    defaults.update(kwargs)
    return RVAEGAN(
        RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), RecurrentDiscriminator(D, H), adam, adam, adam, **defaults
    )


def grads(model, x, seed=1) -> dict[str, list[torch.Tensor | None]]:
    """Gradients of the encoder-decoder loss, per network, for a fixed draw of the noise."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    model.encoder_decoder_loss(x)["loss"].backward()
    return {
        name: [None if p.grad is None else p.grad.clone() for p in getattr(model, name).parameters()]
        for name in ("encoder", "decoder", "discriminator")
    }


def is_zero(gs) -> bool:
    return all(g is None or not g.any() for g in gs)


def test_rvae_gan_gradient_routing():
    """One backward gives the encoder the gradient of beta * KL + L_rec, the decoder that of gamma * L_rec + the
    adversarial loss, D none (Larsen et al.'s reference code: scaled gradients instead of re-running nets)."""
    x = torch.rand(4, T, D)
    only_adversarial = grads(tiny_rvae_gan(feature_recon_weight=0, data_recon_weight=0, kl_weight=0), x)
    assert is_zero(only_adversarial["encoder"])  # prior samples have no encoder behind them
    assert not is_zero(only_adversarial["decoder"])
    assert all(g is None for g in only_adversarial["discriminator"])  # D frozen: out of the graph

    g1 = grads(tiny_rvae_gan(gamma=1.0, adversarial={"weight": 0.0}), x)
    g3 = grads(tiny_rvae_gan(gamma=3.0, adversarial={"weight": 0.0}), x)
    assert not is_zero(g1["encoder"])
    for a, b in zip(g1["encoder"], g3["encoder"]):  # the encoder's loss does not depend on gamma
        torch.testing.assert_close(a, b)
    for a, b in zip(g1["decoder"], g3["decoder"]):  # the decoder's reconstruction term is gamma * L_rec
        torch.testing.assert_close(3 * a, b)
    assert all(g is None for g in g1["discriminator"])


def test_rvae_gan_substeps_touch_only_their_network(tmp_path):
    from lightning_gen.data import SinesDataModule
    from tests.conftest import tiny_trainer
    from tests.test_sequence_models import record_steps

    model = tiny_rvae_gan(feature_recon_weight=1.0, teacher_forcing=0.5)
    log = record_steps(model)
    tiny_trainer(tmp_path, max_steps=6, limit_val_batches=0).fit(model, SinesDataModule(40, T, D, batch_size=4))
    assert log == [{"encoder"}, {"decoder"}, {"discriminator"}] * 2


def test_rvae_gan_makes_cheap_training_refits_and_a_rich_final_fit(tmp_path):
    """The latent density's cheap training refits (``train_components`` of its components on the first
    ``train_codes`` sequences) work for the sequence models as for the image ones; the prior samples of training
    come from the copy of the cheap refit taken at the next epoch's start, ``sample`` from the final fit."""
    from lightning_gen.data import SinesDataModule
    from lightning_gen.models.latent_density import LatentDensityConfig
    from tests.conftest import tiny_trainer

    model = tiny_rvae_gan(latent_density=LatentDensityConfig(components=2, train_components=1, train_codes=8))
    fits = []
    fit = model.latent_density.fit
    model.latent_density.fit = lambda c, **kw: (fits.append((len(c), kw.get("components"))), fit(c, **kw))[1]
    trainer = tiny_trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, SinesDataModule(40, T, D, batch_size=4))
    assert fits[0] == (8, 1) and fits[-1][1] is None and fits[-1][0] > 8  # cheap refit first, the final fit last
    assert bool(model.latent_density.final) and (model.latent_density.weights > 0).sum() == 2
    assert int(model.training_density.epoch) == 1 and (model.training_density.weights > 0).sum() == 1


@pytest.mark.parametrize("cls", ["rvae", "rvae_gan"])
def test_binary_models_return_binary_rolls(cls):
    torch.manual_seed(0)
    enc, dec = RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H)
    with torch.no_grad():
        dec.head.bias.fill_(-0.5)  # probabilities away from 0 and 1: a threshold would give all zeros
    if cls == "rvae":
        model = RVAE(enc, dec, adam, likelihood="bernoulli")
    else:
        model = RVAEGAN(enc, dec, RecurrentDiscriminator(D, H), adam, adam, adam, likelihood="bernoulli")
    rolls = model.sample(64, length=T)
    assert rolls.shape == (64, T, D) and set(rolls.unique().tolist()) == {0.0, 1.0}
    assert 0.05 < rolls.mean() < 0.95  # sampled, not thresholded probabilities
    assert set(model.reconstruct(rolls).unique().tolist()) <= {0.0, 1.0}


def test_binary_decoder_feeds_back_its_samples_with_straight_through_gradients():
    torch.manual_seed(0)
    dec, z = RecurrentDecoder(Z, D, H), torch.randn(5, Z, requires_grad=True)
    raw, values = dec.generate(z, T, binary=True)
    assert set(values.unique().tolist()) <= {0.0, 1.0}
    values.sum().backward()  # D's gradient reaches the decoder through the binary samples
    assert z.grad is not None and z.grad.abs().sum() > 0
    torch.manual_seed(1)
    a = dec.generate(z.detach(), T, binary=True)[0]
    torch.manual_seed(2)
    b = dec.generate(z.detach(), T, binary=True)[0]
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.equal(a, b)  # later steps read the sampled roll


def test_latent_density_reproduces_code_moments_and_gaussian_of_a_gmm():
    torch.manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 0.4]])
    codes = torch.randn(4000, 3) @ mixing.T + torch.tensor([1.0, -2.0, 0.5])
    codes[:2000] += 3.0  # two clusters
    for kind in ("gaussian", "gmm"):
        density = LatentDensity(3, kind, components=4)
        density.fit(codes)
        for sample_kind in {kind, "gaussian"}:
            drawn = density.sample(40000, sample_kind, generator=torch.Generator().manual_seed(0))
            torch.testing.assert_close(drawn.mean(0), codes.mean(0), atol=0.05, rtol=0)
            torch.testing.assert_close(torch.cov(drawn.T), torch.cov(codes.T), atol=0.08, rtol=0)
    standard = density.sample(40000, "standard")
    assert standard.mean(0).abs().max() < 0.05


def test_fitted_prior_in_checkpoint_restored_and_used_by_sample_job(tmp_path, capsys):
    from lightning_gen.checkpoints import load_model
    from lightning_gen.jobs.sample import main

    ckpt = fit_config(
        "configs/rvae/sines.yaml",
        tmp_path,
        "--data.init_args.num_sequences=64",
        "--data.init_args.seq_len=8",
        "--data.init_args.batch_size=4",
        "--model.init_args.latent_density.components=2",
        *SMALL_VAE,
    )  # fmt: skip  (fit_config's max_steps=4: stopped mid-epoch, 13 batches an epoch)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert bool(state["latent_density.fitted"]) and int(state["latent_density.fitted_at"]) == 4
    model = load_model(ckpt)
    for name, buf in model.latent_density.named_buffers():
        assert torch.equal(buf, state[f"latent_density.{name}"]), name
    with torch.no_grad():  # the density is that of the checkpoint's own encoder on the training items
        codes = model.encode_mean(torch.from_numpy(_train_split()))
    fresh = LatentDensity(4, "gmm", 2)
    fresh.fit(codes)
    torch.testing.assert_close(fresh.means, model.latent_density.means, atol=1e-4, rtol=1e-4)

    out = {}
    for prior in (None, "standard"):
        out[prior] = tmp_path / f"{prior}.npz"
        args = [ckpt, "--num-samples", "50", "--output", str(out[prior])] + (["--prior", prior] if prior else [])
        assert main(args) == 0
    fitted, standard = (np.load(out[p])["samples"] for p in (None, "standard"))
    assert fitted.shape == standard.shape == (50, 8, 5) and not np.allclose(fitted, standard)
    torch.manual_seed(0)  # the job seeds 0: the default samples are decoded from the fitted density
    expected = model.to_original(model.sample(50, length=8)).numpy()
    np.testing.assert_allclose(fitted, expected, atol=1e-5)


def _train_split() -> np.ndarray:
    """The training split the fit saw (the config's sines data module with the test's overrides)."""
    from lightning_gen.data import SinesDataModule

    dm = SinesDataModule(num_sequences=64, seq_len=8, dim=5, batch_size=4)
    dm.setup("fit")
    return dm.splits["train"]


def test_prior_option_refused_for_models_without_one(tmp_path, capsys):
    from lightning_gen.jobs.sample import main

    ckpt = fit_config(
        "configs/lstm_gan/sines.yaml", tmp_path, "--data.init_args.num_sequences=64", "--data.init_args.seq_len=8",
        "--data.init_args.batch_size=4",
    )  # fmt: skip
    assert main([ckpt, "--num-samples", "2", "--output", str(tmp_path / "x.npz"), "--prior", "standard"]) == 2
    assert "no latent prior" in capsys.readouterr().err


def test_checkpoints_without_a_density_still_load():
    model = RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), adam)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("latent_density.")}
    model.load_state_dict(state)  # strict: an old checkpoint loads as "not fitted"
    assert not bool(model.latent_density.fitted)
