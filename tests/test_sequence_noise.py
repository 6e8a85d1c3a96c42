"""The recurrent decoder's noise: fresh per-step input noise and output noise from its own training residuals."""

import functools

import pytest
import torch

from lightning_gen.data import SinesDataModule
from lightning_gen.models import RVAE, RVAEGAN
from lightning_gen.models.common import GeneratorEMA
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.nets import RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder
from lightning_gen.nets.sequence import ResidualNoise
from tests.conftest import tiny_trainer

D, T, Z, H = 3, 8, 4, 8


@pytest.mark.parametrize("feed_previous", [False, True])
def test_step_noise_shapes_seed_and_variation(feed_previous):
    """One code, several sequences: with per-step noise they differ; the same seed gives the same sequences."""
    torch.manual_seed(0)
    dec = RecurrentDecoder(Z, D, H, feed_previous=feed_previous, step_noise_dim=2).eval()
    z = torch.randn(1, Z).expand(4, Z)  # (4, Z): one code four times

    def draw(seed):
        torch.manual_seed(seed)
        return dec.generate(z, T)

    raw, values = draw(1)
    assert raw.shape == values.shape == (4, T, D)
    assert (values[0] - values[1]).abs().max() > 1e-4  # the noise reaches the output
    assert torch.equal(values, draw(1)[1]) and not torch.equal(values, draw(2)[1])
    plain = RecurrentDecoder(Z, D, H, feed_previous=feed_previous).eval()
    assert torch.equal(plain.generate(z, T)[1][0], plain.generate(z, T)[1][1])  # off by default: one code, one output


def test_residual_noise_records_in_training_and_samples_around_the_mean():
    torch.manual_seed(0)
    dec = RecurrentDecoder(Z, D, H, feed_previous=False, output_noise="residuals", residual_bank_size=64)
    z, x = torch.randn(16, Z), torch.rand(16, T, D)
    dec.eval()
    dec.generate(z, T, x)
    assert int(dec.residual_noise.filled) == 0  # nothing recorded outside training
    raw0, values0 = dec.generate(z, T)
    assert torch.equal(values0, torch.sigmoid(raw0))  # an empty bank: the means
    dec.train()
    raw, _ = dec.generate(z, T, x)  # the reconstruction pass records x - mean
    bank = dec.residual_noise.bank[:, 0].float() * ResidualNoise.resolution  # (64, D): windows of one step
    assert int(dec.residual_noise.filled) == 8  # an eighth of the bank per batch
    residuals = (x - torch.sigmoid(raw)).detach().flatten(0, 1)  # (B * T, D)
    gaps = (bank[:8, None] - residuals[None]).abs().amax(-1)  # (8, B * T)
    assert gaps.min(dim=1).values.max() < 1e-5  # each one a residual of the batch
    dec.eval()
    assert torch.allclose(dec.generate(z, T)[0], raw)  # the means do not change
    values = dec.generate(z[:1].expand(64, Z), T)[1]  # one code, 64 sequences
    assert (values[0] - values[1]).abs().max() > 1e-4 and values.min() >= 0 and values.max() <= 1
    for _ in range(20):  # the ring buffer wraps round and stays full
        dec.train()
        dec.generate(z, T, x)
    assert int(dec.residual_noise.filled) == 64 and 0 <= int(dec.residual_noise.position) < 64


def test_residual_windows_keep_the_time_structure_of_the_residuals():
    """residual_window: stretches of consecutive residuals, laid end to end for longer sequences."""
    noise = ResidualNoise(D, size=1, window=4)
    target = torch.arange(1, 1 + T, dtype=torch.float).view(1, T, 1).expand(1, T, D)  # step t: residual t
    noise.record(target, torch.zeros_like(target))
    stretch = noise(torch.zeros(2, 10, D))  # (2, 10, D): 3 stretches of 4 steps, cut to 10
    start = stretch[0, 0, 0]
    assert torch.equal(stretch[0, :4, 0], start + torch.arange(4.0))  # 4 consecutive steps of the recorded residuals
    assert torch.equal(stretch[0, 4:8], stretch[0, :4]) and torch.equal(stretch[0, 8:], stretch[0, :2])
    with pytest.raises(ValueError, match="residual_window=12"):
        ResidualNoise(D, window=12).record(target, target)


def test_residual_noise_skips_padding_and_refuses_binary_rolls():
    noise = ResidualNoise(D, 16)
    target = torch.zeros(2, T, D)
    noise.record(target, torch.full_like(target, 0.5))  # all-zero steps: padding, not data
    assert int(noise.filled) == 0
    target[0, :5] = 1.0  # one sequence of 5 steps: 5 - 2 + 1 stretches of 2 real steps
    windows = ResidualNoise(D, 16, window=2)
    windows.record(target, torch.full_like(target, 0.5))
    assert int(windows.filled) == 2 and (windows.bank[:2] > 0).all()  # 16 // 8 of the 4, none with padding
    dec = RecurrentDecoder(Z, D, H, output_noise="residuals")
    with pytest.raises(ValueError, match="output_noise='none'"):
        dec.generate(torch.randn(2, Z), T, binary=True)
    with pytest.raises(ValueError, match="output_noise"):
        RecurrentDecoder(Z, D, H, output_noise="gaussian")
    with pytest.raises(ValueError, match="step_noise_dim"):
        RecurrentDecoder(Z, D, H, step_noise_dim=-1)


def test_residual_bank_is_copied_not_averaged_by_the_weight_average_and_saved():
    torch.manual_seed(0)
    dec = RecurrentDecoder(Z, D, H, feed_previous=False, output_noise="residuals", residual_bank_size=32)
    ema = GeneratorEMA(dec, 0.9)
    for _ in range(3):
        dec.generate(torch.randn(8, Z), T, torch.rand(8, T, D))
        ema.update(dec)
    assert torch.equal(ema.module.residual_noise.bank, dec.residual_noise.bank)
    fresh = RecurrentDecoder(Z, D, H, feed_previous=False, output_noise="residuals", residual_bank_size=32)
    fresh.load_state_dict(dec.state_dict())  # the bank travels in checkpoints
    assert torch.equal(fresh.residual_noise.bank, dec.residual_noise.bank)
    assert "residual_noise.bank" not in RecurrentDecoder(Z, D, H).state_dict()  # off: the same keys as before


@pytest.mark.parametrize("family", ["rvae", "rvae_gan"])
def test_models_train_and_sample_with_decoder_noise(family, tmp_path):
    """Both VAE-type families train with a noisy decoder; their samples carry the recorded residuals."""
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    enc = RecurrentEncoder(D, Z, H)
    dec = RecurrentDecoder(Z, D, H, feed_previous=False, step_noise_dim=2, output_noise="residuals")
    if family == "rvae":
        model, steps = RVAE(enc, dec, adam, latent_density=LatentDensityConfig("standard")), 3
    else:
        disc = RecurrentDiscriminator(D, H)
        model, steps = (
            RVAEGAN(enc, dec, disc, adam, adam, adam, latent_density=LatentDensityConfig("standard"), ema_decay=0.9),
            3 * 3,
        )
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=steps, limit_val_batches=1).fit(model, dm)
    assert int(dec.residual_noise.filled) > 0
    samples = model.sample(6)
    assert samples.shape == (6, T, D) and torch.isfinite(samples).all()
    if family == "rvae_gan":  # the average samples with the live decoder's residuals
        assert torch.equal(model.sampling_decoder.residual_noise.bank, dec.residual_noise.bank)


def test_refresh_residuals_gives_the_sampling_decoders_own_residuals(tmp_path):
    """After a density fit the bank holds residuals of the decoder that samples (the weight average), on the first
    training sequences decoded from their posterior means, in the live decoder too; no random numbers drawn."""
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    dec = RecurrentDecoder(
        Z, D, H, feed_previous=False, output_noise="residuals", residual_bank_size=8, residual_window=T
    )
    model = RVAEGAN(RecurrentEncoder(D, Z, H), dec, RecurrentDiscriminator(D, H), adam, adam, adam,
                    latent_density=LatentDensityConfig("gaussian"), ema_decay=0.9)  # fmt: skip
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=6, limit_val_batches=0).fit(model, dm)
    x = torch.rand(12, T, D)
    state = torch.random.get_rng_state()
    model.refresh_residuals(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    averaged = model.sampling_decoder
    assert averaged is not dec
    with torch.no_grad():
        mean = averaged.activate(averaged.generate(model.encode_mean(x), T)[0])
    bank = averaged.residual_noise.bank.float() * ResidualNoise.resolution
    assert int(averaged.residual_noise.filled) == 8
    assert torch.allclose(bank, (x - mean)[:8], atol=1e-5)  # the first 8 sequences, one stretch each
    assert torch.equal(dec.residual_noise.bank, averaged.residual_noise.bank)  # the next average update keeps it
