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

Sequences of different lengths are scored as the reference code scores them: zero-padded arrays with their
lengths (``extract_time`` in ``utils.py``), the lengths passed to the post-hoc GRUs (``dynamic_rnn(...,
sequence_length=T)``: the discriminator decides from each sequence's state at its last real step, the predictor
reads and is scored on real steps only); the scaling's minimum and maximum are those of the real steps; and the
report adds the two-sample Kolmogorov-Smirnov statistic between the real and the generated lengths
(:func:`length_ks`).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from lightning_gen.errors import check_at_least
from lightning_gen.metrics.mmd import mmd_rbf
from lightning_gen.nets.recurrent import run_rnn
from lightning_gen.scaling import min_max_scale


def check_lengths(lengths, x: np.ndarray, name: str) -> np.ndarray | None:
    """``lengths`` of the sequences ``x`` (N, T, D) as int64 (N,), each in [1, T]; None stays None."""
    if lengths is None:
        return None
    arr = np.asarray(lengths.detach().cpu().numpy() if isinstance(lengths, torch.Tensor) else lengths)
    if arr.shape != (len(x),) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} lengths: expected {len(x)} integers (one per sequence), got {arr.dtype} {arr.shape}.")
    bad = np.flatnonzero((arr < 1) | (arr > x.shape[1]))
    if len(bad):
        raise ValueError(
            f"{name}: sequence {bad[0]} has length {arr[bad[0]]}, outside [1, {x.shape[1]}] (the padded array's steps)."
        )
    return arr.astype(np.int64)


def real_step_values(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """The values of the real steps of (N, T, D) sequences, (steps, D): padding left out."""
    if lengths is None:
        return x.reshape(-1, x.shape[-1])
    return x[np.arange(x.shape[1])[None] < lengths[:, None]]


def zero_padding(x: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Steps past each length set to 0 (a copy), as TimeGAN's padded arrays."""
    if lengths is None:
        return x
    return np.where((np.arange(x.shape[1])[None] < lengths[:, None])[..., None], x, 0.0).astype(x.dtype)


def padded_lengths(x) -> np.ndarray:
    """The lengths (N,) of zero-padded sequences (N, T, D): up to each one's last step with a non-zero value (at
    least 1). For the padded splits of a variable-length DataModule and files that carry no lengths; continuous
    data essentially never has a real step of exact zeros in every feature."""
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    nonzero = (arr != 0).any(axis=2)  # (N, T)
    last = arr.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 1).astype(np.int64)


def original_scale_with_lengths(reference: np.ndarray, fake: np.ndarray, datamodule) -> tuple:
    """The evaluate job's reference split (as the model sees it) in the data's original scale beside generated
    sequences (already in it), and ``{"real_lengths", "fake_lengths"}`` for a DataModule of sequences of different
    lengths (``{}`` otherwise): both zero-padded to the reference's steps, their lengths read off the padding
    (:func:`padded_lengths`)."""
    if getattr(datamodule, "lengths", None) is None:
        if getattr(datamodule, "scale_data", True):
            reference = datamodule.inverse_scale(reference)
        return reference, fake, {}
    lengths = {"real_lengths": padded_lengths(reference), "fake_lengths": padded_lengths(fake)}
    fake = np.pad(fake, ((0, 0), (0, max(0, reference.shape[1] - fake.shape[1])), (0, 0)))
    reference = zero_padding(datamodule.inverse_scale(reference), lengths["real_lengths"])  # padding stays 0
    return reference, fake, lengths


def length_ks(real_lengths, fake_lengths) -> dict:
    """How well generated lengths match the real ones: the two-sample Kolmogorov-Smirnov statistic (the largest
    gap between the two empirical CDFs; 0: the same distribution), its p-value (``scipy.stats.ks_2samp``), and the
    histograms ``{length: count}`` of both."""
    from scipy.stats import ks_2samp

    real, fake = np.asarray(real_lengths, dtype=np.int64), np.asarray(fake_lengths, dtype=np.int64)
    test = ks_2samp(real, fake)
    hist = lambda a: {int(k): int(v) for k, v in zip(*np.unique(a, return_counts=True))}  # noqa: E731
    return {"value": float(test.statistic), "p_value": float(test.pvalue), "real_histogram": hist(real),
            "generated_histogram": hist(fake)}  # fmt: skip


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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        outputs, last = run_rnn(self.gru, x, lengths)  # outputs (B, T, H), last (1, B, H) at each last real step
        if self.per_step:
            return self.head(outputs)  # (B, T, 1)
        return self.head(last[0]).squeeze(-1)  # (B,)


def _hidden(dim: int) -> int:
    return max(1, int(dim / 2))


def _batch(rng: np.random.Generator, data: torch.Tensor, batch_size: int, lengths=None):
    """The reference's ``batch_generator``: a permutation, first ``batch_size`` indices (with their lengths)."""
    idx = torch.from_numpy(rng.permutation(len(data))[:batch_size])
    return data[idx], (None if lengths is None else lengths[idx])


def _discriminative_once(real, fake, iterations: int, batch_size: int, seed: int, device, real_len, fake_len) -> float:
    rng = np.random.default_rng(seed)
    # train_test_divide: each set permuted on its own, first 80 % for training (lengths with their sequences).
    real_idx, fake_idx = rng.permutation(len(real)), rng.permutation(len(fake))
    n_real, n_fake = int(len(real) * 0.8), int(len(fake) * 0.8)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    cut = lambda a, i: None if a is None else torch.from_numpy(a[i])  # noqa: E731  (lengths stay on the CPU)
    train_x, test_x = as_t(real[real_idx[:n_real]]), as_t(real[real_idx[n_real:]])
    train_x_hat, test_x_hat = as_t(fake[fake_idx[:n_fake]]), as_t(fake[fake_idx[n_fake:]])
    train_t, test_t = cut(real_len, real_idx[:n_real]), cut(real_len, real_idx[n_real:])
    train_t_hat, test_t_hat = cut(fake_len, fake_idx[:n_fake]), cut(fake_len, fake_idx[n_fake:])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _PostHocGRU(real.shape[2], _hidden(real.shape[2]), per_step=False).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    bce = nn.functional.binary_cross_entropy_with_logits
    for _ in range(iterations):
        logit_real = net(*_batch(rng, train_x, batch_size, train_t))
        logit_fake = net(*_batch(rng, train_x_hat, batch_size, train_t_hat))
        # d_loss = mean sigmoid CE(real, 1) + mean sigmoid CE(fake, 0)
        loss = bce(logit_real, torch.ones_like(logit_real)) + bce(logit_fake, torch.zeros_like(logit_fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = (net(test_x, test_t) > 0).sum() + (net(test_x_hat, test_t_hat) <= 0).sum()  # logit > 0: real
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
    real_lengths=None,
    fake_lengths=None,
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
        real_lengths, fake_lengths: the lengths (N,) and (M,) of zero-padded sequences of different lengths
            (None: every sequence has T steps); the GRU reads each sequence up to its length.
    """
    real = check_sequences(real, "real", min_count=5)
    fake = check_sequences(fake, "fake", dim=real.shape[2], min_count=5)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake sequences must have the same length T, got {real.shape[1]} and {fake.shape[1]}."
        )
    real_len, fake_len = check_lengths(real_lengths, real, "real"), check_lengths(fake_lengths, fake, "fake")
    return _repeated(
        _discriminative_once, (real, fake, real_len, fake_len), iterations, batch_size, repeats, seed, device
    )


def _predictive_once(real, fake, iterations: int, batch_size: int, seed: int, device, real_len, fake_len) -> float:
    rng = np.random.default_rng(seed)
    dim = real.shape[2]
    # Inputs: every feature but the last at steps 0..T-2; target: the last feature at steps 1..T-1 (T: a
    # sequence's length; the GRU reads T - 1 steps, as the reference's ``sequence_length=T - 1``).
    x_fake = torch.from_numpy(fake[:, :-1, : dim - 1]).to(device)  # (M, T-1, D-1)
    y_fake = torch.from_numpy(fake[:, 1:, dim - 1 :]).to(device)  # (M, T-1, 1)
    t_fake = None if fake_len is None else torch.from_numpy(fake_len - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _PostHocGRU(dim - 1, _hidden(dim), per_step=True).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(iterations):
        idx = torch.from_numpy(rng.permutation(len(fake))[:batch_size])
        t = None if t_fake is None else t_fake[idx]
        error = (torch.sigmoid(net(x_fake[idx.to(device)], t)) - y_fake[idx.to(device)]).abs()  # (B, T-1, 1)
        if t is None:
            loss = error.mean()  # absolute_difference
        else:  # the real steps' mean: padding is no target
            mask = (torch.arange(error.shape[1]) < t[:, None]).to(error).unsqueeze(-1)
            loss = (error * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t_real = None if real_len is None else torch.from_numpy(real_len - 1)
    with torch.no_grad():
        pred = torch.sigmoid(net(torch.from_numpy(real[:, :-1, : dim - 1]).to(device), t_real)).cpu().numpy()
    # Mean over sequences of each sequence's MAE (the reference's loop of mean_absolute_error), over real steps.
    error = np.abs(pred - real[:, 1:, dim - 1 :])[..., 0]  # (N, T-1)
    if real_len is None:
        return float(error.mean(axis=1).mean())
    mask = np.arange(error.shape[1])[None] < (real_len - 1)[:, None]
    return float(((error * mask).sum(axis=1) / mask.sum(axis=1)).mean())


def predictive_score(
    real,
    fake,
    iterations: int = 5000,
    batch_size: int = 128,
    repeats: int = 10,
    seed: int = 0,
    device: str | torch.device = "cpu",
    real_lengths=None,
    fake_lengths=None,
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
    real_len, fake_len = check_lengths(real_lengths, real, "real"), check_lengths(fake_lengths, fake, "fake")
    for name, lengths in (("real", real_len), ("fake", fake_len)):
        if lengths is not None and lengths.min() < 2:
            raise ValueError(f"predictive_score: a {name} sequence has length 1; it needs >= 2 (one step ahead).")
    return _repeated(_predictive_once, (real, fake, real_len, fake_len), iterations, batch_size, repeats, seed, device)


def _repeated(once, data, iterations: int, batch_size: int, repeats: int, seed: int, device) -> tuple[float, float]:
    """Mean and std of ``once(real, fake, iterations, batch_size, seed, device, real_len, fake_len)`` over
    ``repeats`` independent runs (TimeGAN's ``metric_iteration``), run ``r`` seeded with ``seed + r``; ``data`` is
    ``(real, fake, real_len, fake_len)``."""
    real, fake, real_len, fake_len = data
    check_at_least(1, iterations=iterations, batch_size=batch_size, repeats=repeats)
    with post_hoc_training(device):
        scores = [
            once(real, fake, iterations, batch_size, seed + r, device, real_len, fake_len) for r in range(repeats)
        ]
    return float(np.mean(scores)), float(np.std(scores))


@contextlib.contextmanager
def post_hoc_training(device="cpu", threads: int = 1):
    """Where a post-hoc network of a score trains: gradients on, even when called from a Lightning validation hook
    (no_grad / inference_mode), and single-threaded on the CPU: these small networks gain nothing from more
    threads, and on a loaded machine more threads contend for the cores and run far slower than one."""
    on_cpu = torch.device(device).type == "cpu"
    before = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        if on_cpu:
            torch.set_num_threads(before)


# -- the published protocol: which space, one code path --------------------------------------------
def scoring_space(
    real, fake, data_min=None, data_max=None, real_lengths=None, fake_lengths=None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Real and generated sequences (both in the data's original scale) in the space TimeGAN scores them in.

    Data that already lies in [0, 1] is scored as it is: TimeGAN's ``main.py`` scores its sines (in [0.5, 1])
    without scaling, and min-max scaling them to [0, 1] doubles the predictive MAE of real sines (.094 ->
    .20). Other data is min-max scaled per feature with ``data_min`` / ``data_max`` (the training split's, as
    the model saw it; default: ``real``'s own), TimeGAN's ``MinMaxScaler``. Generated values are never clipped.

    With ``real_lengths`` / ``fake_lengths`` (zero-padded sequences of different lengths) only real steps decide
    the range, and padding stays 0 after scaling.

    Returns:
        (real, fake, scaling): float32 arrays and a sentence naming the scaling, for the report.
    """
    real = check_sequences(real, "real")
    fake = check_sequences(fake, "fake", dim=real.shape[2])
    real_len, fake_len = check_lengths(real_lengths, real, "real"), check_lengths(fake_lengths, fake, "fake")
    steps = real_step_values(real, real_len)  # (steps, D)
    if steps.min() >= 0.0 and steps.max() <= 1.0:
        return real, fake, "none: the data already lies in [0, 1] and is scored as it is (TimeGAN's protocol)"
    lo = steps.min(axis=0) if data_min is None else np.asarray(data_min, dtype=np.float32)
    hi = steps.max(axis=0) if data_max is None else np.asarray(data_max, dtype=np.float32)
    scaled = [zero_padding(min_max_scale(x, lo, hi), n) for x, n in ((real, real_len), (fake, fake_len))]
    whose = "the real data's" if data_min is None else "the training split's"
    return scaled[0], scaled[1], f"min-max with {whose} per-feature min and max (TimeGAN's MinMaxScaler)"


def out_of_range_share(real, fake, real_lengths=None, fake_lengths=None) -> float:
    """Share of generated values outside the real data's per-feature [min, max] (0: all inside); real steps only
    for sequences of different lengths."""
    real, fake = check_sequences(real, "real"), check_sequences(fake, "fake", dim=np.shape(real)[2])
    real = real_step_values(real, check_lengths(real_lengths, real, "real"))
    fake = real_step_values(fake, check_lengths(fake_lengths, fake, "fake"))
    lo, hi = real.min(axis=0), real.max(axis=0)  # (D,) each
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
    real_lengths=None,
    fake_lengths=None,
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
        real_lengths, fake_lengths: lengths of zero-padded sequences of different lengths (None: all T steps);
            with both, the result also holds ``length_ks`` (:func:`length_ks`).

    Returns:
        ``({metric: {"value", ...}}, {"scaling": sentence, "out_of_range_share": share})``.
    """
    # lengths go to the scores only when given: fixed-length sequences take the very call they always took
    lengths = {k: v for k, v in (("real_lengths", real_lengths), ("fake_lengths", fake_lengths)) if v is not None}
    real, fake, scaling = scoring_space(real, fake, data_min, data_max, **lengths)
    real_len, fake_len = check_lengths(real_lengths, real, "real"), check_lengths(fake_lengths, fake, "fake")
    fixed = {} if real_len is None else {"real_lengths": real_len, "fake_lengths": real_len}
    out: dict[str, dict] = {}
    for name in metrics:
        if name == "discriminative":
            mean, std = discriminative_score(real, fake, disc_iterations, 128, repeats, seed, device, **lengths)
            out[name] = {"value": mean, "std": std, "iterations": disc_iterations, "repeats": repeats}
        elif name == "predictive":
            mean, std = predictive_score(real, fake, pred_iterations, 128, repeats, seed, device, **lengths)
            out[name] = {"value": mean, "std": std, "iterations": pred_iterations, "repeats": repeats}
            if reference_predictive:  # the same score trained on real data: the floor to compare with
                ref_mean, ref_std = predictive_score(real, real, pred_iterations, 128, repeats, seed, device, **fixed)
                out[name].update(reference_value=ref_mean, reference_std=ref_std)
        elif name == "mmd":
            out[name] = {"value": mmd_rbf(real, fake, x_lengths=real_len, y_lengths=fake_len),
                         "kernel": "rbf, median-heuristic bandwidth, biased"}  # fmt: skip
        else:
            raise ValueError(f"Unknown sequence score {name!r}: choose discriminative, predictive or mmd.")
    if real_len is not None and fake_len is not None:
        out["length_ks"] = length_ks(real_len, fake_len)
    return out, {"scaling": scaling, "out_of_range_share": out_of_range_share(real, fake, real_len, fake_len)}
