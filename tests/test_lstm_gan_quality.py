"""LSTM-GAN parts that make it learn: per-sequence latent, unsquashed and binary outputs, TimeGAN's
moment and supervised terms, C-RNN-GAN's maximum-likelihood pretraining."""

import functools

import pytest
import torch

from lightning_gen.data import SinesDataModule
from lightning_gen.models import LSTMGAN
from lightning_gen.models.lstm_gan import moment_loss
from lightning_gen.nets import LSTMGenerator, RecurrentDiscriminator
from tests.conftest import tiny_trainer
from tests.test_sequence_models import record_steps

D, T, Z, S, H = 3, 8, 2, 4, 8


def test_per_sequence_latent_is_shared_by_all_steps_and_spreads_samples():
    torch.manual_seed(0)
    g = LSTMGenerator(Z, D, H, sequence_latent_dim=S, feed_previous=False, output="identity")
    z = g.noise(16, T)
    assert z.shape == (16, T, Z + S) and g.noise_dim == Z + S
    assert torch.equal(z[:, :1, Z:].expand(-1, T, -1), z[:, :, Z:])  # one draw per sequence
    assert not torch.equal(z[:, 0, :Z], z[:, 1, :Z])  # fresh per-step noise
    x = g(z)
    assert x.shape == (16, T, D)
    # the per-sequence latent alone (per-step noise fixed) moves whole sequences
    z2 = z.clone()
    z2[:, :, Z:] = g.noise(16, 1)[:, :, Z:]
    assert (g(z2) - x).abs().mean() > 1e-3
    with pytest.raises(ValueError, match=r"wants noise \(B, T, 6\)"):
        g(torch.randn(2, T, Z))


def test_identity_output_is_not_squashed():
    g = LSTMGenerator(Z, D, H, output="identity")
    with torch.no_grad():
        g.head.bias.fill_(3.0)
    assert (g(g.noise(4, T)) > 1.5).all()  # a sigmoid would keep it below 1


@pytest.mark.parametrize("feed_previous", [True, False])
def test_bernoulli_output_is_binary_with_straight_through_gradients(feed_previous):
    torch.manual_seed(0)
    g = LSTMGenerator(Z, D, H, feed_previous=feed_previous, output="bernoulli", sequence_latent_dim=S)
    with torch.no_grad():
        x = g(g.noise(32, T))
    assert set(x.unique().tolist()) <= {0.0, 1.0} and 0 < x.mean() < 1
    x = g(g.noise(32, T))  # with gradients: values still exactly binary, gradients reach G
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    (x * torch.randn_like(x)).sum().backward()
    assert g.head.weight.grad is not None and g.head.weight.grad.abs().sum() > 0


def test_bernoulli_feeds_back_the_sampled_roll():
    """With feed_previous, step t reads the binary sample of step t-1 (not its probability)."""
    torch.manual_seed(0)
    g = LSTMGenerator(Z, D, H, feed_previous=True, output="bernoulli")
    seen = []
    g.rnn.register_forward_hook(lambda m, inp, out: seen.append(inp[0][..., Z:].clone()))
    with torch.no_grad():
        x = g(g.noise(8, T))
    for t in range(1, T):
        assert torch.equal(seen[t][:, 0], x[:, t - 1])


def test_moment_loss():
    real = torch.rand(16, T, D)
    assert moment_loss(real, real) == pytest.approx(0.0, abs=1e-6)
    assert moment_loss(real, real + 0.5) == pytest.approx(0.5, abs=1e-5)  # mean gap only
    fake = real.clone().requires_grad_()
    moment_loss(real, fake * 2).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_next_step_loss_teacher_forces_and_needs_feed_previous():
    x = torch.rand(4, T, D)
    g = LSTMGenerator(Z, D, H, feed_previous=True, output="identity", sequence_latent_dim=S)
    z = g.noise(4, T)
    raw = g.next_step_prediction(z, x)
    x2 = x.clone()
    x2[:, 5:] = torch.rand(4, T - 5, D)
    # step t reads x_{t-1} only; a tolerance: float results of batched matmuls are not promised bit-identical
    assert torch.allclose(raw[:, :6], g.next_step_prediction(z, x2)[:, :6], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(raw[:, 6:], g.next_step_prediction(z, x2)[:, 6:], rtol=1e-5, atol=1e-6)
    assert torch.isfinite(g.next_step_loss(z, x))
    roll = (x > 0.5).float()
    gb = LSTMGenerator(Z, D, H, feed_previous=True, output="bernoulli")
    assert torch.isfinite(gb.next_step_loss(gb.noise(4, T), roll))
    no_feedback = LSTMGenerator(Z, D, H, feed_previous=False)
    with pytest.raises(ValueError, match="feed_previous=True"):
        no_feedback.next_step_prediction(no_feedback.noise(4, T), x)
    with pytest.raises(ValueError, match="need a generator with feed_previous=True"):
        LSTMGAN(no_feedback, RecurrentDiscriminator(D, H), supervised=1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        LSTMGAN(g, RecurrentDiscriminator(D, H), moment_matching=-1.0)


def test_pretraining_updates_only_g_then_the_game_starts(tmp_path):
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    g = LSTMGenerator(Z, D, H, feed_previous=True, output="identity", sequence_latent_dim=S)
    model = LSTMGAN(g, RecurrentDiscriminator(D, H), adam, adam, moment_matching=100.0, supervised=1.0,
                    pretrain_batches=2, feature_matching=1.0)  # fmt: skip
    log = record_steps(model)
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=6, limit_val_batches=1).fit(model, dm)
    assert log[:4] == [{"generator"}, {"generator"}, {"discriminator"}, {"generator"}]
    assert torch.isfinite(model.sample(3)).all()
