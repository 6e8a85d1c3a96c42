"""Sequence scores that still separate models where TimeGAN's published ones saturate, reported beside them.

TimeGAN's discriminative score (:mod:`lightning_gen.metrics.timegan`) trains a GRU of ``D / 2`` units: on stocks
(6 features) 3 units, too weak to see that a window's time steps are in the wrong order. Three scores from the
later literature, each on data in TimeGAN's scaled space (N, T, D):

- :func:`strong_discriminative_score`: the same protocol (80/20 split, ``|accuracy - 0.5|``) with a classifier that
  can see more: a GRU of ``hidden`` units (default 32) that reads each step's values and increments, standardised
  per feature with the real training windows' statistics (a day's change of a price is about 1 % of the scaled
  range: unscaled, a small GRU barely sees it), with a head on the last state and the time-average of its outputs,
  trained for 2,000 iterations. It was chosen so that real windows with their time steps shuffled score clearly
  above one half of the real windows against the other (benchmarks/README.md has the measurement).
- :func:`context_fid`: Context-FID (Jeha et al., "PSA-GAN", ICLR 2022; reported by Diffusion-TS, Yuan and Qiao,
  ICLR 2024): the Frechet distance between real and generated windows in the space of a TS2Vec encoder (Yue et al.,
  "TS2Vec: Towards Universal Representation of Time Series", AAAI 2022) trained on the real windows alone, one
  vector per window (the max over time of its per-step representation, TS2Vec's ``encoding_window='full_series'``).
  Here a smaller TS2Vec, trained as Diffusion-TS's ``Context_FID`` trains the original (200 iterations of batch 8,
  AdamW 1e-3, random overlapping crops, the hierarchical contrastive loss): 5 dilated residual blocks instead of 11
  (their receptive field, 125 steps, already covers a 24-step window many times) and 128 output dimensions instead
  of 320 (the Gaussians of the Frechet distance are then estimated from a few thousand windows with less bias).
- :func:`correlational_score`: the absolute difference of the lag-0 cross-correlation matrices of the features
  (Liao et al., "Conditional Sig-Wasserstein GANs for Time Series Generation", 2020, ``CrossCorrelLoss``; as
  Diffusion-TS computes it: features standardised over windows and steps, the lower triangle with its diagonal,
  summed and divided by 10, on ``repeats`` random draws of ``N / repeats`` windows of each set).

Each score comes with the real data's own score (one half of the windows against the other) in
:func:`extra_sequence_scores`: a model close to that floor is as good as the score can tell.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lightning_gen.errors import check_at_least
from lightning_gen.metrics.timegan import check_sequences, post_hoc_training

EXTRA_SEQUENCE_METRICS = ("strong_discriminative", "context_fid", "correlational")


# -- a stronger post-hoc discriminator ----------------------------------------------------------------
class _WindowClassifier(nn.Module):
    """GRU over each step's values and increments, standardised per feature; a linear head on its last state and
    the time-average of its outputs."""

    def __init__(self, dim: int, hidden: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)  # (2 D,): of the real training windows' values and increments
        self.register_buffer("std", std)
        self.gru = nn.GRU(2 * dim, hidden, batch_first=True)
        self.head = nn.Linear(2 * hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, last = self.gru((_with_increments(x) - self.mean) / self.std)  # outputs (B, T, H), last (1, B, H)
        return self.head(torch.cat([last[0], outputs.mean(dim=1)], dim=1)).squeeze(-1)  # (B,)


def _with_increments(x: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> (B, T, 2 D): the values and their step-to-step changes (0 at the first step). In the scaled space
    a day's change of a stock price is about 1 % of the range: standardised, the classifier sees it at once."""
    return torch.cat([x, torch.diff(x, dim=1, prepend=x[:, :1])], dim=-1)


def _strong_once(real: np.ndarray, fake: np.ndarray, hidden: int, iterations: int, batch_size: int, seed: int):
    rng = np.random.default_rng(seed)
    real_idx, fake_idx = rng.permutation(len(real)), rng.permutation(len(fake))
    n_real, n_fake = int(len(real) * 0.8), int(len(fake) * 0.8)  # TimeGAN's 80/20 split of each set
    train_r, test_r = torch.from_numpy(real[real_idx[:n_real]]), torch.from_numpy(real[real_idx[n_real:]])
    train_f, test_f = torch.from_numpy(fake[fake_idx[:n_fake]]), torch.from_numpy(fake[fake_idx[n_fake:]])
    steps = _with_increments(train_r).flatten(0, 1)  # (N T, 2 D)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _WindowClassifier(real.shape[2], hidden, steps.mean(0), steps.std(0) + 1e-6)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(iterations):
        x = torch.cat([train_r[rng.integers(len(train_r), size=batch_size)],
                       train_f[rng.integers(len(train_f), size=batch_size)]])  # fmt: skip
        target = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])
        loss = F.binary_cross_entropy_with_logits(net(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = (net(test_r) > 0).sum() + (net(test_f) <= 0).sum()
    return abs(0.5 - float(correct) / (len(test_r) + len(test_f)))


def strong_discriminative_score(
    real, fake, hidden: int = 32, iterations: int = 2000, batch_size: int = 128, repeats: int = 3, seed: int = 0
) -> tuple[float, float]:
    """``|accuracy - 0.5|`` of a post-hoc GRU classifier of ``hidden`` units on held-out windows: mean and std over
    ``repeats`` runs (fresh split, network and batches; run ``r`` uses seed ``seed + r``). 0: indistinguishable."""
    real = check_sequences(real, "real", min_count=5)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=5)
    check_at_least(1, hidden=hidden, iterations=iterations, batch_size=batch_size, repeats=repeats)
    with post_hoc_training():
        scores = [_strong_once(real, fake, hidden, iterations, batch_size, seed + r) for r in range(repeats)]
    return float(np.mean(scores)), float(np.std(scores))


# -- Context-FID on a small TS2Vec --------------------------------------------------------------------
class _DilatedBlock(nn.Module):
    """TS2Vec's residual block: two GELU + dilated same-length convolutions, a 1x1 projection when widths differ."""

    def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=dilation, dilation=dilation)
        self.project = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return self.conv2(F.gelu(self.conv1(F.gelu(x)))) + self.project(x)


class TS2VecEncoder(nn.Module):
    """TS2Vec's encoder (Yue et al. 2022): a linear input projection, random timestamp masking while training, and
    dilated residual convolution blocks (dilation 1, 2, 4, ...); a representation per step (B, T, output_dims)."""

    def __init__(self, dim: int, hidden: int = 64, output_dims: int = 128, depth: int = 4) -> None:
        super().__init__()
        self.input = nn.Linear(dim, hidden)
        widths = [hidden] * depth + [output_dims]
        self.blocks = nn.Sequential(
            *[_DilatedBlock(widths[i - 1] if i else hidden, widths[i], 2**i) for i in range(depth + 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)  # (B, T, hidden)
        if self.training:  # TS2Vec's timestamp masking: each latent step kept with probability 0.5
            h = h * torch.bernoulli(torch.full(h.shape[:2], 0.5, device=h.device)).unsqueeze(-1)
        return self.blocks(h.transpose(1, 2)).transpose(1, 2)  # (B, C, T) convolutions -> (B, T, output_dims)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """One vector per window: the max over time of its per-step representation (``full_series``)."""
        self.eval()
        return torch.cat([self(x[i : i + batch_size]).amax(dim=1) for i in range(0, len(x), batch_size)])


def _instance_contrastive(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Each window's two views are positives; the other windows of the batch at the same step are negatives."""
    b = z1.shape[0]
    if b == 1:
        return z1.new_tensor(0.0)
    z = torch.cat([z1, z2]).transpose(0, 1)  # (T, 2B, C)
    return _contrast(z, b)


def _temporal_contrastive(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """A step's two views are positives; the window's other steps are negatives."""
    t = z1.shape[1]
    if t == 1:
        return z1.new_tensor(0.0)
    return _contrast(torch.cat([z1, z2], dim=1), t)  # (B, 2T, C)


def _contrast(z: torch.Tensor, n: int) -> torch.Tensor:
    """TS2Vec's contrastive term over ``z`` (G, 2n, C): item i and i + n are positives, all others negatives."""
    sim = z @ z.transpose(1, 2)  # (G, 2n, 2n)
    logits = torch.tril(sim, diagonal=-1)[:, :, :-1] + torch.triu(sim, diagonal=1)[:, :, 1:]  # self left out
    logits = -F.log_softmax(logits, dim=-1)  # (G, 2n, 2n - 1)
    i = torch.arange(n, device=z.device)
    return (logits[:, i, n + i - 1].mean() + logits[:, n + i, i].mean()) / 2


def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """TS2Vec's loss: instance and temporal contrast at every scale of a max-pooling pyramid over time."""
    loss, levels = z1.new_tensor(0.0), 0
    while z1.shape[1] > 1:
        loss = loss + alpha * _instance_contrastive(z1, z2) + (1 - alpha) * _temporal_contrastive(z1, z2)
        levels += 1
        z1 = F.max_pool1d(z1.transpose(1, 2), kernel_size=2).transpose(1, 2)  # (B, T // 2, C)
        z2 = F.max_pool1d(z2.transpose(1, 2), kernel_size=2).transpose(1, 2)
    if z1.shape[1] == 1:
        loss = loss + alpha * _instance_contrastive(z1, z2)
        levels += 1
    return loss / levels


def train_ts2vec(
    real: np.ndarray, iterations: int = 200, batch_size: int = 8, lr: float = 1e-3, seed: int = 0, **encoder_args
) -> TS2VecEncoder:
    """A :class:`TS2VecEncoder` trained on ``real`` (N, T, D) as TS2Vec trains: two overlapping random crops of each
    window (their common part is contrasted), the hierarchical contrastive loss."""
    rng = np.random.default_rng(seed)
    data = torch.from_numpy(check_sequences(real, "real"))
    t = data.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TS2VecEncoder(data.shape[2], **encoder_args)
        opt = torch.optim.AdamW(net.parameters(), lr=lr)
        net.train()
        for _ in range(iterations):
            x = data[rng.integers(len(data), size=min(batch_size, len(data)))]  # (B, T, D)
            crop = int(rng.integers(2, t + 1))  # the common part's length, TS2Vec's crop_l
            left = int(rng.integers(t - crop + 1))
            e_left, e_right = int(rng.integers(left + 1)), int(rng.integers(left + crop, t + 1))
            shift = rng.integers(-e_left, t - e_right + 1, size=(len(x), 1))  # (B, 1): each window its own offset
            rows = np.arange(len(x))[:, None]
            z1 = net(x[rows, shift + np.arange(e_left, left + crop)])[:, -crop:]  # (B, crop, C): the common part
            z2 = net(x[rows, shift + np.arange(left, e_right)])[:, :crop]  # the same steps
            loss = hierarchical_contrastive_loss(z1, z2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def context_fid(
    real, fake, repeats: int = 3, seed: int = 0, iterations: int = 200, output_dims: int = 128
) -> tuple[float, float]:
    """Context-FID: the Frechet distance of real and generated windows embedded by a TS2Vec trained on the real
    ones (:func:`train_ts2vec`); mean and std over ``repeats`` encoders (seeds ``seed + r``). Lower is better."""
    from lightning_gen.metrics.image import fid_from_features

    real = check_sequences(real, "real", min_count=2)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=2)
    check_at_least(1, repeats=repeats, iterations=iterations)
    scores = []
    with post_hoc_training():
        for r in range(repeats):
            net = train_ts2vec(real, iterations=iterations, seed=seed + r, output_dims=output_dims)
            real_z, fake_z = (net.embed(torch.from_numpy(a)).double() for a in (real, fake))  # (N, C) each
            scores.append(fid_from_features(real_z, fake_z))
    return float(np.mean(scores)), float(np.std(scores))


# -- the correlational score ------------------------------------------------------------------------
def cross_correlation(x: torch.Tensor) -> torch.Tensor:
    """Lag-0 cross-correlations of the features, standardised over windows and steps: the lower triangle with the
    diagonal, (D (D + 1) / 2,) (Liao et al.'s ``cacf_torch`` with ``max_lag=1``, averaged over windows)."""
    x = (x - x.mean(dim=(0, 1), keepdim=True)) / x.std(dim=(0, 1), keepdim=True)  # (N, T, D)
    rows, cols = torch.tril_indices(x.shape[2], x.shape[2])
    return (x[..., rows] * x[..., cols]).mean(dim=(0, 1))  # (D (D + 1) / 2,)


def correlational_score(real, fake, repeats: int = 5, seed: int = 0) -> tuple[float, float]:
    """Diffusion-TS's correlational score: ``sum |corr(real) - corr(fake)| / 10`` on ``repeats`` draws (with
    replacement) of ``N / repeats`` windows of each set; mean and std. Lower is better. A constant feature has no
    correlation (NaN): it is refused."""
    real = check_sequences(real, "real", min_count=2)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=2)
    check_at_least(1, repeats=repeats)
    rng = np.random.default_rng(seed)
    size = max(2, len(real) // repeats)
    scores = []
    for _ in range(repeats):
        r = torch.from_numpy(real[rng.integers(len(real), size=size)]).double()
        f = torch.from_numpy(fake[rng.integers(len(fake), size=size)]).double()
        scores.append(float((cross_correlation(f) - cross_correlation(r)).abs().sum() / 10.0))
    if not np.isfinite(scores).all():
        raise ValueError("correlational_score: a feature is constant in the real or the generated windows.")
    return float(np.mean(scores)), float(np.std(scores))


# -- all of them, each with the real data's own score ------------------------------------------------
SCORES = {
    "strong_discriminative": lambda real, fake, repeats, seed: strong_discriminative_score(
        real, fake, repeats=repeats, seed=seed
    ),
    "context_fid": lambda real, fake, repeats, seed: context_fid(real, fake, repeats=repeats, seed=seed),
    "correlational": lambda real, fake, repeats, seed: correlational_score(
        real, fake, repeats=max(repeats, 2), seed=seed
    ),
}


def real_halves(real: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The real windows split at random into two halves: the pair whose score is the real data's own."""
    order = np.random.default_rng(seed).permutation(len(real))
    return real[order[: len(real) // 2]], real[order[len(real) // 2 :]]


def extra_sequence_scores(
    real, fake, metrics=EXTRA_SEQUENCE_METRICS, repeats: int = 3, seed: int = 0, reference: bool = True
) -> dict[str, dict]:
    """``{metric: {"value", "std", "repeats"[, "reference_value", "reference_std"]}}`` of ``fake`` against ``real``
    (both in the scoring space, (N, T, D)); ``reference``: also the real data's own score, one half of the real
    windows against the other (the floor)."""
    real = check_sequences(real, "real", min_count=4)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=2)
    out = {}
    for name in metrics:
        if name not in SCORES:
            raise ValueError(f"Unknown sequence score {name!r}: choose from {list(SCORES)}.")
        mean, std = SCORES[name](real, fake, repeats, seed)
        out[name] = {"value": mean, "std": std, "repeats": repeats}
        if reference:
            ref_mean, ref_std = SCORES[name](*real_halves(real, seed), repeats, seed)
            out[name].update(reference_value=ref_mean, reference_std=ref_std)
    return out
