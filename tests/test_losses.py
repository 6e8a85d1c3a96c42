import math

import pytest
import torch
from torch import nn

from lightning_gen import losses


def test_ns_losses_on_known_logits():
    zero = torch.zeros(4)
    # D(x) = D(G(z)) = 0.5: -log 0.5 - log 0.5
    assert losses.d_loss_ns(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.g_loss_ns(zero).item() == pytest.approx(math.log(2))
    big = torch.full((4,), 20.0)
    assert losses.d_loss_ns(big, -big).item() == pytest.approx(0.0, abs=1e-6)  # perfect D
    assert losses.g_loss_ns(-big).item() == pytest.approx(20.0, rel=1e-4)  # non-saturating: large, not ~0


def test_hinge_and_wasserstein_on_known_logits():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert losses.d_loss_hinge(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert losses.g_loss_hinge(fake).item() == pytest.approx(1.0)
    assert losses.d_loss_wasserstein(real, fake).item() == pytest.approx(-1.0 - 1.25)
    assert losses.g_loss_wasserstein(fake).item() == pytest.approx(1.0)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="Unknown adversarial loss"):
        losses.get_adversarial_loss("lsgan")


def test_gradient_penalty_of_linear_critic_by_hand():
    # D(x) = w . x has gradient w everywhere: the penalty is (||w|| - 1)^2 = (5 - 1)^2 = 16.
    critic = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = losses.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake)
    assert gp.item() == pytest.approx(16.0)
    gp.backward()  # create_graph=True: the penalty trains the critic
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_kl_normal_closed_form():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.log(torch.tensor([[4.0, 0.25]]))
    # KL = 0.5 * sum(var + mu^2 - 1 - log var)
    expected = 0.5 * ((4 + 1 - 1 - math.log(4)) + (0.25 + 4 - 1 - math.log(0.25)))
    assert losses.kl_normal(mu, logvar).item() == pytest.approx(expected)
    assert losses.kl_normal(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max().item() == 0.0
