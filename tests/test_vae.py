import math
import os

import numpy as np
import pytest
import torch
from torch import nn

from lightning_gen.checkpoints import load_model
from lightning_gen.cli import run_lightning_cli
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.jobs import sample
from lightning_gen.losses import bernoulli_nll, gaussian_nll, kl_normal
from lightning_gen.models import VAE
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.nets import ConvEncoder, DCGANGenerator
from tests.conftest import REPO, tiny_trainer


def tiny_vae(**kwargs) -> VAE:
    torch.manual_seed(0)
    enc = ConvEncoder(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2)
    dec = DCGANGenerator(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2)
    return VAE(enc, dec, **kwargs)


class FixedEncoder(nn.Module):
    """Returns the same (mu, logvar) for every image: a known posterior."""

    latent_dim, img_size, channels = 2, 8, 1

    def __init__(self, mu, logvar) -> None:
        super().__init__()
        self.mu, self.logvar = torch.tensor(mu), torch.tensor(logvar)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        b = x.shape[0]
        return self.mu.expand(b, -1) + 0 * self.dummy, self.logvar.expand(b, -1)


def test_encoder_shapes():
    enc = ConvEncoder(latent_dim=6, img_size=28, channels=3, base_channels=4)
    mu, logvar = enc(torch.randn(2, 3, 28, 28))
    assert mu.shape == logvar.shape == (2, 6)


def test_kl_matches_closed_form():
    # q = N((1, 2), diag(4, 1)): KL = sum_j 0.5 * (s_j^2 + m_j^2 - 1 - log s_j^2) = 0.5*(4+1-1-log 4) + 0.5*(1+4-1)
    expected = 0.5 * (4 + 1 - 1 - math.log(4)) + 0.5 * (1 + 4 - 1)
    enc = FixedEncoder([1.0, 2.0], [math.log(4.0), 0.0])
    model = VAE(enc, DCGANGenerator(latent_dim=2, img_size=8, base_channels=4, min_size=2))
    out = model(torch.zeros(3, 1, 8, 8))
    assert torch.allclose(out["kl"], torch.full((3,), expected), atol=1e-5)


def test_free_bits_floor_per_dimension():
    model = tiny_vae(free_bits=0.5)
    mu = torch.zeros(3, 4, requires_grad=True)
    mu_big = torch.tensor([[2.0, 0.0, 0.0, 0.0]]).expand(3, 4)
    logvar = torch.zeros(3, 4)
    assert model.kl_term(mu, logvar).item() == pytest.approx(4 * 0.5)  # all four dims at the floor
    # dim 0 has KL 2 > 0.5 and counts as itself; the other three count as the floor
    assert model.kl_term(mu_big, logvar).item() == pytest.approx(2.0 + 3 * 0.5)
    model.kl_term(mu + 0.01, logvar).backward()
    assert torch.equal(mu.grad, torch.zeros_like(mu))  # under the floor: no pressure towards the prior
    assert tiny_vae().kl_term(mu_big, logvar).item() == pytest.approx(2.0)  # off: the plain KL


def test_likelihoods():
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    mean = torch.rand(2, 1, 8, 8) * 2 - 1
    ref = -torch.distributions.Normal(mean, 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_nll(x, mean, 0.3), ref, atol=1e-4)
    binary = torch.randint(0, 2, (2, 1, 8, 8)).float() * 2 - 1  # {-1, 1} -> targets {0, 1}
    assert bernoulli_nll(binary, binary).max() < 1e-3  # perfect reconstruction costs ~0 nats
    assert (bernoulli_nll(binary, -binary) > 100).all()


def test_kl_warmup_and_logged_terms(tmp_path, image_npz):
    model = tiny_vae(kl_warmup_steps=4, likelihood="bernoulli", optimizer=lambda p: torch.optim.Adam(p, 1e-3))
    before = [p.detach().clone() for p in model.parameters()]
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    logged = trainer.logged_metrics
    assert logged["train/kl_weight"].item() == pytest.approx(0.25)  # second step: 1 / 4 of the way
    for key in ("train/elbo", "train/kl", "train/recon", "train/loss", "val/elbo", "val/kl", "val/recon"):
        assert torch.isfinite(logged[key]), key
    assert logged["val/elbo"] == pytest.approx(-(logged["val/recon"] + logged["val/kl"]).item(), rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_reconstruct_interpolate_sample_shapes():
    model = tiny_vae()
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert model.reconstruct(x).shape == (5, 1, 8, 8)
    line = model.interpolate(x[:2], x[2:4], steps=6)
    assert line.shape == (2, 6, 1, 8, 8)
    assert torch.allclose(line[:, 0], model.reconstruct(x[:2]), atol=1e-5)  # endpoints are reconstructions
    assert torch.allclose(line[:, -1], model.reconstruct(x[2:4]), atol=1e-5)
    assert model.interpolate(x[0], x[1], steps=3).shape == (1, 3, 1, 8, 8)
    s = model.sample(3)
    assert s.shape == (3, 1, 8, 8) and s.abs().max() <= 1
    assert model.training  # the public methods restore the mode


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: VAE(ConvEncoder(4, 8, base_channels=4), DCGANGenerator(5, 8, base_channels=4)), "latent_dim=4"),
        (lambda: VAE(ConvEncoder(4, 16, base_channels=4), DCGANGenerator(4, 8, base_channels=4)), "img_size"),
        (lambda: tiny_vae(sigma=0.0), "sigma"),
        (lambda: tiny_vae(free_bits=-1.0), "free_bits"),
        (lambda: tiny_vae(kl_warmup_steps=-1), "kl_warmup_steps"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_cli_checkpoint_and_sample_job(tmp_path):
    small = "{latent_dim: 4, img_size: 8, channels: 1, base_channels: 4, min_size: 2}"
    run_lightning_cli(
        [
            "fit",
            "--config",
            os.path.join(REPO, "configs/vae/digits.yaml"),
            f"--model.init_args.encoder.init_args={small}",
            f"--model.init_args.decoder.init_args={small}",
            "--trainer.max_steps=3",
            "--trainer.limit_val_batches=1",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    run = tmp_path / "lightning_logs" / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert (run / "samples" / "final.png").is_file()
    model = load_model(ckpt)
    assert isinstance(model, VAE) and model.latent_dim == 4
    out = tmp_path / "s.npz"
    assert sample.main([str(ckpt), "--num-samples", "6", "--output", str(out)]) == 0
    samples = np.load(out)["samples"]
    assert samples.shape == (6, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert (tmp_path / "s.png").is_file()


def _kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, by torch.distributions (an implementation independent of ours)."""
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)


def test_kl_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g) * 2, torch.randn(5, 3, generator=g)  # far from the prior too
    assert torch.allclose(kl_normal(mu, logvar), _kl_to_standard_normal(mu, logvar), atol=1e-5)


def test_model_kl_is_that_of_its_encoders_posterior():
    """The ``kl`` of VAE.forward is the KL of the encoder's own (mu, logvar) for each image, against
    torch.distributions: a wrong sign, factor, reduction or a swapped mu / logvar fails here."""
    model = tiny_vae()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    out = model(x)
    mu, logvar = model.encoder(x)
    assert out["kl"].shape == (4,)
    assert torch.allclose(out["kl"], _kl_to_standard_normal(mu, logvar), atol=1e-5)


def test_loss_is_pytorch_examples_vae_loss_per_image():
    """With the Bernoulli likelihood and beta = 1 the training loss is pytorch/examples' VAE loss
    (``F.binary_cross_entropy(recon, x, reduction="sum") + KLD``), divided by the batch size."""
    import torch.nn.functional as F

    model = tiny_vae(likelihood="bernoulli")
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    torch.manual_seed(1)
    out = model(x)
    ours = out["nll"].mean() + model.current_kl_weight() * model.kl_term(out["mu"], out["logvar"])
    recon01, x01 = (out["recon"] + 1) / 2, (x + 1) / 2
    mu, logvar = out["mu"], out["logvar"]
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    reference = (F.binary_cross_entropy(recon01, x01, reduction="sum") + kld) / x.shape[0]
    assert ours.item() == pytest.approx(reference.item(), rel=1e-4)


def test_sample_draws_from_the_fitted_latent_density(tmp_path, image_npz):
    model = tiny_vae(latent_density=LatentDensityConfig("gaussian"), optimizer=lambda p: torch.optim.Adam(p, 1e-3))
    assert not bool(model.latent_density.fitted)
    tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1).fit(
        model, ArrayImageDataModule(image_npz, batch_size=4)
    )
    assert bool(model.latent_density.fitted)
    with torch.no_grad():
        model.latent_density.means.fill_(-1.5)
        model.latent_density.scale_tril.zero_()
    point = torch.full((2, 4), -1.5)
    assert torch.allclose(model.sample(2), model.sample(2, z=point))
    assert not torch.allclose(model.sample(2, prior="standard"), model.sample(2, z=point))


def test_training_refits_are_cheap_and_the_final_fit_is_rich_and_saved(tmp_path, image_npz):
    """``latent_density.train_components`` / ``train_codes``: the refits while training fit 2 of the 4 components on
    the first 8 codes; the last refit, at the end of the last epoch, fits all 4 on every code, before last.ckpt is
    written."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    seen = []

    class Record(pl.Callback):
        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            d = pl_module.latent_density
            seen.append((int(d.fitted_at), int((d.weights > 0).sum()), bool(d.final)))

    model = tiny_vae(
        latent_density=LatentDensityConfig(components=4, train_components=2, train_codes=8, max_codes=1000)
    )
    codes = []
    fit = model.latent_density.fit
    model.latent_density.fit = lambda c, **kw: (codes.append(len(c)), fit(c, **kw))[1]
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, max_epochs=2,
                           enable_checkpointing=True, callbacks=[Record(), ckpt])  # fmt: skip
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    assert seen == [(2, 2, False), (4, 4, True)]  # a training refit (2 components), then the final fit (4)
    assert codes[0] == 8 and len(codes) == 2 and codes[1] > 8  # ... on 8 codes, then on every training code
    density = model.latent_density
    assert bool(density.final) and int(density.fitted_at) == 4 and (density.weights > 0).sum() == 4
    state = torch.load(ckpt.last_model_path, weights_only=True)["state_dict"]
    for name, buf in density.named_buffers():
        assert torch.equal(state[f"latent_density.{name}"], buf), name
    with pytest.raises(ValueError, match="latent_density.train_codes must be >= 1"):
        tiny_vae(latent_density={"train_codes": 0})
