"""The conditional LSTM-GAN's class aids: an auxiliary classifier trained beside D (AC-GAN) and the moment term
taken within each class, on sequences of different lengths."""

from __future__ import annotations

import functools

import pytest
import torch

from lightning_gen.models import LSTMGAN
from lightning_gen.models.lstm_gan import class_moment_loss, moment_loss
from lightning_gen.nets import LSTMGenerator, RecurrentDiscriminator
from lightning_gen.nets.sequence_classifier import RecurrentClassifier

pytestmark = pytest.mark.usefixtures("one_thread")
D, T, Z, H, K = 3, 7, 4, 8, 3
adam = functools.partial(torch.optim.Adam, lr=1e-2)


def model(**kwargs) -> LSTMGAN:
    torch.manual_seed(0)
    g = LSTMGenerator(Z, D, H, feed_previous=False, output="identity", sequence_latent_dim=2, num_classes=K)
    return LSTMGAN(g, RecurrentDiscriminator(D, H, num_classes=K), adam, adam, **kwargs)


def batch(b: int = 12):
    torch.manual_seed(1)
    lengths = torch.randint(3, T + 1, (b,))
    x = torch.rand(b, T, D) * (torch.arange(T) < lengths[:, None]).unsqueeze(-1)
    return x, torch.arange(b) % K, lengths


def test_classifier_reads_packed_sequences_and_ignores_padding():
    net = RecurrentClassifier(D, K, hidden_size=H)
    x, _, lengths = batch()
    garbage = x + 5.0 * (torch.arange(T) >= lengths[:, None]).unsqueeze(-1)  # padding changed, real steps not
    assert net(x, lengths).shape == (12, K)
    torch.testing.assert_close(net(x, lengths), net(garbage, lengths))
    with pytest.raises(ValueError, match=r"wants \(B, T, 3\)"):
        net(torch.rand(2, T, D + 1))
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        RecurrentClassifier(D, 1)


def test_class_moment_loss_sees_what_the_pooled_term_misses():
    """Fakes whose classes are swapped have the batch's pooled moments but not each class's: only the per-class
    term is positive."""
    x, y, _ = batch(12)
    x = x + y[:, None, None].float()  # each class its own level
    swapped = x[torch.roll(torch.arange(12), 1)]  # the same sequences, each under the next one's label
    assert float(moment_loss(x, swapped)) < 1e-6
    assert float(class_moment_loss(x, swapped, y)) > 0.5
    assert float(class_moment_loss(x, x.clone(), y)) < 1e-6


def test_auxiliary_classifier_trains_with_d_and_guides_g(monkeypatch):
    m = model(classifier_hidden=H, class_weight=2.0, class_moments=True, moment_matching=1.0)
    assert isinstance(m.classifier, RecurrentClassifier) and m.classifier.num_classes == K
    opt_g, opt_d = m.configure_optimizers()
    assert {id(p) for p in m.classifier.parameters()} <= {id(p) for g in opt_d.param_groups for p in g["params"]}
    assert not {id(p) for p in m.classifier.parameters()} & {id(p) for g in opt_g.param_groups for p in g["params"]}
    monkeypatch.setattr(m, "optimizers", lambda: (opt_g, opt_d))
    monkeypatch.setattr(m, "toggled_optimizer", lambda opt: torch.enable_grad())
    logged = {}
    monkeypatch.setattr(m, "log_dict", lambda d, **k: logged.update(d))
    monkeypatch.setattr(m, "log_g_step", lambda *a: None)
    monkeypatch.setattr(m, "log_d_step", lambda *a: None)
    monkeypatch.setattr(m, "log", lambda k, v, **kw: logged.update({k: v}))
    monkeypatch.setattr("lightning_gen.models.lstm_gan.logs_this_step", lambda module: True)
    monkeypatch.setattr("lightning_gen.models.common.logs_this_step", lambda module: True)
    monkeypatch.setattr(m, "manual_backward", lambda loss: loss.backward())
    monkeypatch.setattr(m, "finish_step", lambda opt, step=True: (opt.step(), opt.zero_grad())[1])
    x, y, lengths = batch()
    before = [p.detach().clone() for p in m.classifier.parameters()]
    m.discriminator_step(x, y, lengths)
    assert "train/d_class_loss" in logged
    assert any(not torch.equal(a, b) for a, b in zip(before, m.classifier.parameters()))
    g_before = [p.detach().clone() for p in m.generator.parameters()]
    m.generator_step(x, y, lengths)
    assert "train/class_loss" in logged and float(logged["train/class_loss"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(g_before, m.generator.parameters()))


def test_class_aids_need_a_conditional_model():
    g, d = LSTMGenerator(Z, D, H), RecurrentDiscriminator(D, H)
    with pytest.raises(ValueError, match="for class-conditional models"):
        LSTMGAN(g, d, class_moments=True)
    with pytest.raises(ValueError, match="for class-conditional models"):
        LSTMGAN(g, d, classifier_hidden=8)
    assert model().classifier is None and "classifier" not in "".join(model().state_dict())
    with pytest.raises(ValueError, match="must be >= 0"):
        model(class_weight=-1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        model(classifier_hidden=-1)
