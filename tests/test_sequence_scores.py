"""The sequence scores beside TimeGAN's (stronger discriminator, Context-FID on a small TS2Vec, correlational score),
their real-data floor and their place in the evaluate job; tiny data, a few iterations."""

import numpy as np
import pytest
import torch

from lightning_gen.metrics.sequence_scores import (
    TS2VecEncoder,
    context_fid,
    correlational_score,
    cross_correlation,
    extra_sequence_scores,
    hierarchical_contrastive_loss,
    real_halves,
    strong_discriminative_score,
    train_ts2vec,
)


def correlated(n: int = 200, t: int = 8, d: int = 3, sign: float = 1.0, seed: int = 0) -> np.ndarray:
    """Windows whose feature 1 follows feature 0 (sign +1) or mirrors it (-1); feature 2 is noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, t, d)).astype(np.float32)
    x[..., 1] = 0.5 + sign * (x[..., 0] - 0.5) + 0.05 * rng.normal(size=(n, t))
    return x


def test_cross_correlation_is_liao_et_al_lag0():
    x = torch.from_numpy(correlated(400, sign=-1.0)).double()
    c = cross_correlation(x)
    assert c.shape == (6,)  # the lower triangle of 3 x 3 with its diagonal: (0,0) (1,0) (1,1) (2,0) (2,1) (2,2)
    assert c[0] == pytest.approx(1.0, abs=0.01) and c[1] < -0.9 and abs(float(c[3])) < 0.1
    np.testing.assert_allclose(c[1], np.corrcoef(x[..., 0].ravel(), x[..., 1].ravel())[0, 1], atol=0.01)


def test_correlational_score_sees_a_flipped_correlation():
    real, same, flipped = correlated(seed=0), correlated(seed=1), correlated(seed=2, sign=-1.0)
    own, _ = correlational_score(real, same, repeats=2)
    far, spread = correlational_score(real, flipped, repeats=2)
    assert far > 0.15 and own < 0.05 and spread >= 0.0  # one pair flips from +1 to -1: |2| / 10
    with pytest.raises(ValueError, match="constant"):
        correlational_score(real, np.zeros_like(real), repeats=2)


def test_strong_discriminator_sees_time_order():
    rng = np.random.default_rng(0)
    t = np.arange(12)
    real = np.sin(0.5 * t[None, :, None] + rng.uniform(0, 6.3, (200, 1, 2))).astype(np.float32)  # smooth waves
    shuffled = np.take_along_axis(real, np.argsort(rng.random((200, 12)), axis=1)[..., None], axis=1)
    score, _ = strong_discriminative_score(real, shuffled, hidden=8, iterations=80, batch_size=32, repeats=1)
    same, _ = strong_discriminative_score(real[:100], real[100:], hidden=8, iterations=80, batch_size=32, repeats=1)
    assert score > 0.2 > same


def test_ts2vec_loss_and_encoder_shapes():
    torch.manual_seed(0)
    net = TS2VecEncoder(3, hidden=8, output_dims=16, depth=2)
    z1, z2 = net(torch.rand(4, 8, 3)), net(torch.rand(4, 8, 3))
    assert z1.shape == (4, 8, 16)
    loss = hierarchical_contrastive_loss(z1, z2)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert net.input.weight.grad is not None and net.input.weight.grad.abs().sum() > 0
    assert net.embed(torch.rand(5, 8, 3)).shape == (5, 16)


def test_ts2vec_training_lowers_its_loss():
    real = correlated(64, t=8)
    before = train_ts2vec(real, iterations=0, seed=0, hidden=8, output_dims=8, depth=2)
    after = train_ts2vec(real, iterations=60, seed=0, hidden=8, output_dims=8, depth=2)
    x = torch.from_numpy(real[:32])

    def loss(net):  # two crops sharing steps 2..5, contrasted on those steps (no masking in eval mode)
        with torch.no_grad():
            return float(hierarchical_contrastive_loss(net(x[:, :6])[:, 2:], net(x[:, 2:])[:, :4]))

    assert loss(after) < loss(before)


def test_context_fid_separates_and_real_floor():
    real, other = correlated(160, seed=0), correlated(160, seed=1)
    far = np.random.default_rng(3).uniform(0, 0.2, size=real.shape).astype(np.float32)
    near, _ = context_fid(real, other, repeats=1, iterations=20, output_dims=16)
    away, _ = context_fid(real, far, repeats=1, iterations=20, output_dims=16)
    assert 0 <= near < away


def test_extra_scores_carry_the_real_floor():
    real, fake = correlated(80, seed=0), correlated(80, seed=1, sign=-1.0)
    out = extra_sequence_scores(real, fake, ("correlational",), repeats=2)
    entry = out["correlational"]
    assert entry["reference_value"] < entry["value"] and entry["repeats"] == 2
    a, b = real_halves(real)
    assert len(a) + len(b) == len(real) and not set(map(bytes, a)) & set(map(bytes, b))
    with pytest.raises(ValueError, match="Unknown sequence score"):
        extra_sequence_scores(real, fake, ("fid",))


def test_bad_inputs_are_refused():
    real = correlated(20)
    with pytest.raises(ValueError, match="features"):
        strong_discriminative_score(real, real[..., :2], iterations=1)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        strong_discriminative_score(real, real, iterations=0)


def test_evaluate_reports_the_scores_in_timegans_scaled_space(tmp_path):
    from lightning_gen.data import StocksDataModule
    from lightning_gen.jobs.evaluate.options import SEQUENCE_METRICS, TimeGANSettings
    from lightning_gen.jobs.evaluate.scores import sequence_metrics

    assert {"strong_discriminative", "context_fid", "correlational"} <= set(SEQUENCE_METRICS)
    rng = np.random.default_rng(0)
    rows = rng.uniform(10, 20, size=(60, 6))
    (tmp_path / "s.csv").write_text("a,b,c,d,e,f\n" + "\n".join(",".join(map(str, r)) for r in rows))
    dm = StocksDataModule(path=str(tmp_path / "s.csv"), sha256=None, window_length=8, batch_size=4)
    dm.setup()
    reference = torch.from_numpy(dm.splits["train"])  # as the evaluate job reads it: the model's [0, 1] space
    fake = dm.inverse_scale(dm.splits["val"][:20])  # samples come in the file's units
    values, info = sequence_metrics(["correlational"], reference, fake, dm, TimeGANSettings(repeats=2))
    assert "TimeGAN's scaled space" in info["scaling"]
    assert np.isfinite(values["correlational"]["value"]) and "reference_value" in values["correlational"]
    # the same score on the scaled arrays directly: evaluate scored in the whole file's min-max space
    direct, _ = correlational_score(dm.splits["train"], dm.splits["val"][:20], repeats=2)
    assert values["correlational"]["value"] == pytest.approx(direct, rel=1e-3)
