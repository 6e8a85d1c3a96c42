"""TimeGAN's discriminative and predictive scores, the space they are computed in, and their one code path.

The TimeGAN scores follow the reference code of Yoon et al. 2019 ("Time-series Generative Adversarial
Networks", NeurIPS; github.com/jsyoon0823/TimeGAN, ``metrics/discriminative_metrics.py`` and
``metrics/predictive_metrics.py``) step for step, in PyTorch instead of TensorFlow 1:

- a post-hoc one-layer GRU with ``hidden = int(D / 2)`` units (at least 1: the reference would build a
  0-unit GRU for D = 1), then a linear layer;
- Adam with TensorFlow's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8);
- each iteration draws a mini-batch of 128 sequences without replacement (``np.random.permutation``);
- the whole procedure is repeated (``metric_iteration`` = 10 in the reference ``main.py``) and the mean
  and standard deviation are reported, as in the paper's tables.

Weight initialisation is PyTorch's, not TensorFlow's Glorot: the one unavoidable difference.

Both scores are defined on data in [0, 1] (the predictor ends in a sigmoid). TimeGAN's reference scores data
that already lies in [0, 1] as it is (its sines, in [0.5, 1]) and min-max scales the rest with the real data's
per-feature minimum and maximum (its real-data loaders); :func:`scoring_space` makes that choice and
:func:`sequence_scores` is the one code path of ``lightning-gen evaluate`` and ``benchmarks/bench_sines.py``.
Generated values outside the real range are scored as they are (a bad sample, not bad input) and their share
is reported (:func:`out_of_range_share`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.scaling import min_max_scale


# -- input checks -----------------------------------------------------------------------------------
def check_sequences(x, name: str = "samples", dim: int | None = None, min_count: int = 1) -> np.ndarray:
    """Return ``x`` as float32 (N, T, D); raise a clear ``ValueError`` on a wrong shape, NaN or infinity."""
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    if arr.ndim != 3:
        raise ValueError(
            f"{name}: expected sequences shaped (N, T, D) = (count, length, features), got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ValueError(f"{name}: expected numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=(1, 2)).sum())
        raise ValueError(f"{name}: {bad} of {len(arr)} sequences contain NaN or infinite values.")
    if dim is not None and arr.shape[2] != dim:
        raise ValueError(f"{name}: expected {dim} features per step (the real data's D), got {arr.shape[2]}.")
    if len(arr) < min_count:
        raise ValueError(f"{name}: at least {min_count} sequences are needed, got {len(arr)}.")
    return arr


def minmax_scale(real, *others) -> list[np.ndarray]:
    """Scale ``real`` and every array in ``others`` with the real data's per-feature min and max.

    This is TimeGAN's ``MinMaxScaler`` (reference ``utils.py``: ``(x - min) / (max - min + 1e-7)``; the data
    modules' :func:`~lightning_gen.scaling.min_max_scale`), with the generated data put through the same
    map so both live in the same [0, 1] space.
    """
    real = check_sequences(real, "real")
    lo, hi = real.min(axis=(0, 1)), real.max(axis=(0, 1))  # (D,) each
    others = [check_sequences(x, f"others[{i}]", dim=real.shape[2]) for i, x in enumerate(others)]
    return [min_max_scale(x, lo, hi) for x in (real, *others)]


# -- TimeGAN scores ---------------------------------------------------------------------------------
class _PostHocGRU(nn.Module):
    """GRU + linear head. ``per_step``: predict at every step (predictor), else from the last state."""

    def __init__(self, in_dim: int, hidden: int, per_step: bool) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.per_step = per_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, last = self.gru(x)  # outputs (B, T, H), last (1, B, H)
        if self.per_step:
            return self.head(outputs)  # (B, T, 1)
        return self.head(last[0]).squeeze(-1)  # (B,)


def _hidden(dim: int) -> int:
    return max(1, int(dim / 2))


def _batch(rng: np.random.Generator, data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The reference's ``batch_generator``: a permutation, first ``batch_size`` indices."""
    idx = rng.permutation(len(data))[:batch_size]
    return data[torch.from_numpy(idx)]


def _discriminative_once(real: np.ndarray, fake: np.ndarray, iterations: int, batch_size: int, seed: int, device):
    rng = np.random.default_rng(seed)
    # train_test_divide: each set permuted on its own, first 80 % for training.
    real_idx, fake_idx = rng.permutation(len(real)), rng.permutation(len(fake))
    n_real, n_fake = int(len(real) * 0.8), int(len(fake) * 0.8)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    train_x, test_x = as_t(real[real_idx[:n_real]]), as_t(real[real_idx[n_real:]])
    train_x_hat, test_x_hat = as_t(fake[fake_idx[:n_fake]]), as_t(fake[fake_idx[n_fake:]])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _PostHocGRU(real.shape[2], _hidden(real.shape[2]), per_step=False).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    bce = nn.functional.binary_cross_entropy_with_logits
    for _ in range(iterations):
        logit_real = net(_batch(rng, train_x, batch_size))
        logit_fake = net(_batch(rng, train_x_hat, batch_size))
        # d_loss = mean sigmoid CE(real, 1) + mean sigmoid CE(fake, 0)
        loss = bce(logit_real, torch.ones_like(logit_real)) + bce(logit_fake, torch.zeros_like(logit_fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = (net(test_x) > 0).sum() + (net(test_x_hat) <= 0).sum()  # sigmoid > 0.5 <=> logit > 0
    accuracy = float(correct) / (len(test_x) + len(test_x_hat))
    return abs(0.5 - accuracy)


def discriminative_score(
    real,
    fake,
    iterations: int = 2000,
    batch_size: int = 128,
    repeats: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """TimeGAN's discriminative score: mean and std over ``repeats`` of ``|accuracy - 0.5|``.

    A post-hoc GRU classifier (hidden size D/2) learns real (label 1) vs generated (label 0) on 80 % of each
    set for ``iterations`` Adam steps with ``batch_size`` of each per step, and is tested on the other 20 %.
    0 means the classifier cannot tell them apart; 0.5 means it always can.

    Args:
        real: (N, T, D) real sequences in [0, 1].
        fake: (M, T, D) generated sequences in the same space.
        iterations, batch_size: the reference's 2,000 and 128.
        repeats: independent runs (fresh split, network and batches); TimeGAN's ``metric_iteration`` is 10.
        seed: run ``r`` uses seed ``seed + r``.
        device: where the GRU trains.
    """
    real = check_sequences(real, "real", min_count=5)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=5)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake sequences must have the same length T, got {real.shape[1]} and {fake.shape[1]}."
        )
    _check_args(iterations, batch_size, repeats)
    with _cpu_threads(device), _trainable():
        scores = [_discriminative_once(real, fake, iterations, batch_size, seed + r, device) for r in range(repeats)]
    return float(np.mean(scores)), float(np.std(scores))


def _predictive_once(real: np.ndarray, fake: np.ndarray, iterations: int, batch_size: int, seed: int, device):
    rng = np.random.default_rng(seed)
    dim = real.shape[2]
    # Inputs: every feature but the last at steps 0..T-2; target: the last feature at steps 1..T-1.
    x_fake = torch.from_numpy(fake[:, :-1, : dim - 1]).to(device)  # (M, T-1, D-1)
    y_fake = torch.from_numpy(fake[:, 1:, dim - 1 :]).to(device)  # (M, T-1, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _PostHocGRU(dim - 1, _hidden(dim), per_step=True).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(iterations):
        idx = torch.from_numpy(rng.permutation(len(fake))[:batch_size]).to(device)
        loss = (torch.sigmoid(net(x_fake[idx])) - y_fake[idx]).abs().mean()  # absolute_difference
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.sigmoid(net(torch.from_numpy(real[:, :-1, : dim - 1]).to(device))).cpu().numpy()
    # Mean over sequences of each sequence's MAE (the reference's loop of mean_absolute_error).
    return float(np.abs(pred - real[:, 1:, dim - 1 :]).mean(axis=(1, 2)).mean())


def predictive_score(
    real,
    fake,
    iterations: int = 5000,
    batch_size: int = 128,
    repeats: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """TimeGAN's predictive score ("train on synthetic, test on real"): mean and std of the MAE.

    A post-hoc GRU (hidden size D/2, sigmoid output) is trained on the generated sequences to predict the
    last feature one step ahead from the other D-1 features, for ``iterations`` Adam steps on the L1 loss,
    then its mean absolute error is measured on all real sequences. Lower is better; compare with the same
    score trained on real data. Needs D >= 2.

    Args: as :func:`discriminative_score` (reference defaults: 5,000 iterations, batch 128).
    """
    real = check_sequences(real, "real", min_count=1)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=1)
    if real.shape[2] < 2:
        raise ValueError("predictive_score needs at least 2 features per step (it predicts the last from the others).")
    if real.shape[1] < 2 or fake.shape[1] < 2:
        raise ValueError("predictive_score needs sequences of length >= 2 (it predicts one step ahead).")
    _check_args(iterations, batch_size, repeats)
    with _cpu_threads(device), _trainable():
        scores = [_predictive_once(real, fake, iterations, batch_size, seed + r, device) for r in range(repeats)]
    return float(np.mean(scores)), float(np.std(scores))


@contextlib.contextmanager
def _trainable():
    """Gradients on, even when called from a Lightning validation hook (no_grad / inference_mode)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextlib.contextmanager
def _cpu_threads(device, threads: int = 1):
    """Train the post-hoc GRUs single-threaded on the CPU: with a hidden size of D/2 they gain nothing from
    more threads, and on a loaded machine two threads were measured 40x slower than one."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_args(iterations: int, batch_size: int, repeats: int) -> None:
    for name, value in (("iterations", iterations), ("batch_size", batch_size), ("repeats", repeats)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")


# -- the published protocol: which space, one code path --------------------------------------------
def scoring_space(real, fake, data_min=None, data_max=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Real and generated sequences (both in the data's original scale) in the space TimeGAN scores them in.

    Data that already lies in [0, 1] is scored as it is: TimeGAN's ``main.py`` scores its sines (in [0.5, 1])
    without scaling, and min-max scaling them to [0, 1] doubles the predictive MAE of real sines (.094 ->
    .20). Other data is min-max scaled per feature with ``data_min`` / ``data_max`` (the training split's, as
    the model saw it; default: ``real``'s own), TimeGAN's ``MinMaxScaler``. Generated values are never clipped.

    Returns:
        (real, fake, scaling): float32 arrays and a sentence naming the scaling, for the report.
    """
    real = check_sequences(real, "real")
    fake = check_sequences(fake, "fake", dim=real.shape[2])
    if real.min() >= 0.0 and real.max() <= 1.0:
        return real, fake, "none: the data already lies in [0, 1] and is scored as it is (TimeGAN's protocol)"
    lo = real.min(axis=(0, 1)) if data_min is None else np.asarray(data_min, dtype=np.float32)
    hi = real.max(axis=(0, 1)) if data_max is None else np.asarray(data_max, dtype=np.float32)
    scaled = [min_max_scale(x, lo, hi) for x in (real, fake)]
    whose = "the real data's" if data_min is None else "the training split's"
    return scaled[0], scaled[1], f"min-max with {whose} per-feature min and max (TimeGAN's MinMaxScaler)"


def out_of_range_share(real, fake) -> float:
    """Share of generated values outside the real data's per-feature [min, max] (0: all inside)."""
    real, fake = check_sequences(real, "real"), check_sequences(fake, "fake", dim=np.shape(real)[2])
    lo, hi = real.min(axis=(0, 1)), real.max(axis=(0, 1))  # (D,) each
    return float(((fake < lo) | (fake > hi)).mean())


def sequence_scores(
    real,
    fake,
    metrics=("discriminative", "predictive"),
    disc_iterations: int = 2000,
    pred_iterations: int = 5000,
    repeats: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
    data_min=None,
    data_max=None,
    reference_predictive: bool = True,
) -> tuple[dict[str, dict], dict]:
    """TimeGAN's scores (and MMD) of generated against real sequences, both given in the data's original
    scale, in the space :func:`scoring_space` picks: the one code path of ``lightning-gen evaluate`` and
    ``benchmarks/bench_sines.py``.

    Args:
        real, fake: (N, T, D) and (M, T, D) in the data's original scale.
        metrics: any of ``discriminative``, ``predictive``, ``mmd``.
        disc_iterations, pred_iterations, repeats: TimeGAN's 2,000, 5,000 and 10; batch 128.
        data_min, data_max: per-feature scaling for data outside [0, 1] (see :func:`scoring_space`).
        reference_predictive: also train the predictor on ``real`` itself (the floor to compare with).

    Returns:
        ``({metric: {"value", ...}}, {"scaling": sentence, "out_of_range_share": share})``.
    """
    real, fake, scaling = scoring_space(real, fake, data_min, data_max)
    out: dict[str, dict] = {}
    for name in metrics:
        if name == "discriminative":
            mean, std = discriminative_score(real, fake, disc_iterations, 128, repeats, seed, device)
            out[name] = {"value": mean, "std": std, "iterations": disc_iterations, "repeats": repeats}
        elif name == "predictive":
            mean, std = predictive_score(real, fake, pred_iterations, 128, repeats, seed, device)
            out[name] = {"value": mean, "std": std, "iterations": pred_iterations, "repeats": repeats}
            if reference_predictive:  # the same score trained on real data: the floor to compare with
                ref_mean, ref_std = predictive_score(real, real, pred_iterations, 128, repeats, seed, device)
                out[name].update(reference_value=ref_mean, reference_std=ref_std)
        elif name == "mmd":
            out[name] = {"value": mmd_rbf(real, fake), "kernel": "rbf, median-heuristic bandwidth, biased"}
        else:
            raise ValueError(f"Unknown sequence score {name!r}: choose discriminative, predictive or mmd.")
    return out, {"scaling": scaling, "out_of_range_share": out_of_range_share(real, fake)}
