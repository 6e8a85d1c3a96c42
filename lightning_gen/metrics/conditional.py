"""Scores of conditional samples: does a sample of a requested class look like that class?

- Images: Classification Accuracy Score style (Ravuri & Vinyals 2019 train a classifier on generated data and
  test it on real data; here, as in AC-GAN's evaluation, Odena et al. 2017, the domain classifier trained on real
  data classifies generated samples of requested labels): :func:`image_class_accuracy` /
  :func:`class_accuracy_from_logits`, with the classifier of the domain FID
  (:class:`lightning_gen.metrics.image.ClassifierFeatures`). And per-class FID (:func:`per_class_fid`): each
  class's generated samples against that class's reference images, as in the class-conditional evaluations of
  PyTorch-StudioGAN (Kang et al. 2023), flagged unstable when a class has fewer samples than feature dimensions.
- Sequences: a post-hoc classifier trained on the real labelled training sequences classifies generated ones
  (:func:`sequence_class_accuracy`), the post-hoc idea of TimeGAN's scores (Yoon et al. 2019). It is a logistic
  regression (scikit-learn) on per-feature magnitudes of the sequence's discrete Fourier transform
  (:func:`sequence_features`): the shipped conditions are spectral or pitch statistics (a sine's frequency band;
  a chorale's key and mode, read off how often each pitch sounds, the zero-frequency term), which these features
  carry directly; it fits in seconds on 2 CPU cores, deterministically, where a GRU would need thousands of noisy
  iterations per repeat. Its accuracy on the real held-out split is reported beside it: the ceiling to read the
  generated score against.

Accuracies are the share over all samples; their spread is the standard deviation over ``splits`` disjoint
subsets (as the Inception Score's), so the report reads ``value ± std`` like the other scores.
"""

from __future__ import annotations

import numpy as np
import torch

#: the accuracy's spread: the standard deviation over this many disjoint subsets of the samples
ACCURACY_SPLITS = 10


# -- labelled data --------------------------------------------------------------------------------------------
def labelled_split(datamodule, split: str, seed: int, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every item of a split with its label, in the order of
    :func:`lightning_gen.metrics.reference.reference_split` (images in [0, 1], sequences scaled as the model sees
    them). Raises ``ValueError`` when the data's batches carry no labels."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}.")
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "val") else "test")
    xs, ys = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in getattr(datamodule, f"{split}_dataloader")():
            batch = datamodule.on_after_batch_transfer(batch, 0)
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise ValueError(
                    f"{type(datamodule).__name__} gives no labels: class scores need a labelled dataset (for "
                    "sequences, the data's `condition` option)."
                )
            xs.append(batch[0])
            ys.append(torch.as_tensor(batch[1]).long().flatten())
    if not xs:
        raise ValueError(f"The {split} split of {type(datamodule).__name__} is empty; choose another split.")
    x, y = torch.cat(xs).float(), torch.cat(ys)
    if x.dim() == 4:  # images come in [-1, 1]
        x = (x + 1) / 2
    return (x[:limit], y[:limit]) if limit else (x, y)


def check_class_labels(labels, n: int, num_classes: int | None = None, name: str = "labels") -> torch.Tensor:
    """``labels`` as int64 (n,); a clear ``ValueError`` for floats, a wrong count or a label outside
    ``[0, num_classes)``."""
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name}: class labels must be integers, got dtype {y.dtype}.")
    y = y.long().flatten()
    if len(y) != n:
        raise ValueError(f"{name}: {len(y)} labels for {n} samples; give one label per sample.")
    if n and int(y.min()) < 0:
        raise ValueError(f"{name}: labels must be >= 0, got {int(y.min())} (a -1 label means 'no label').")
    if num_classes is not None and n and int(y.max()) >= num_classes:
        raise ValueError(f"{name}: label {int(y.max())} is outside [0, {num_classes}) of the classifier / model.")
    return y


# -- accuracy -------------------------------------------------------------------------------------------------
def accuracy_entry(predicted, labels, num_classes: int | None = None, splits: int = ACCURACY_SPLITS) -> dict:
    """``{"value": accuracy, "std": over disjoint splits, "splits", "per_class": {label: accuracy}, "n"}``."""
    predicted, labels = torch.as_tensor(predicted).long().flatten(), torch.as_tensor(labels).long().flatten()
    if len(predicted) != len(labels) or len(labels) == 0:
        raise ValueError(f"accuracy: {len(predicted)} predictions for {len(labels)} labels (need as many, >= 1).")
    correct = (predicted == labels).double()
    splits = max(1, min(splits, len(correct)))
    parts = [chunk.mean() for chunk in correct.tensor_split(splits)]
    entry = {"value": float(correct.mean()), "splits": splits, "n": len(correct)}
    if splits > 1:
        entry["std"] = float(torch.stack(parts).std())
    classes = range(num_classes) if num_classes else sorted(set(labels.tolist()))
    entry["per_class"] = {
        str(c): round(float(correct[labels == c].mean()), 4) for c in classes if bool((labels == c).any())
    }
    return entry


def class_accuracy_from_logits(logits: torch.Tensor, labels, splits: int = ACCURACY_SPLITS) -> dict:
    """Share of samples whose classifier ``logits`` (N, K) pick their requested ``labels`` (N,)."""
    num_classes = int(logits.shape[1])
    labels = check_class_labels(labels, len(logits), num_classes, "requested labels")
    return accuracy_entry(logits.argmax(1), labels, num_classes, splits)


# -- per-class FID --------------------------------------------------------------------------------------------
def per_class_fid(real_features, real_labels, fake_features, fake_labels, num_classes: int) -> dict:
    """FID of each class's generated features against that class's reference features (torchmetrics).

    Returns ``{"value": mean over the classes scored, "per_class": {label: fid}, "samples_per_class": {label:
    [generated, real]}, "unstable": [labels with fewer samples than feature dimensions in a set], "skipped":
    [labels with fewer than 2 samples in a set]}``. FID's covariance is singular below the feature dimension:
    an unstable class's value is biased upward and only compares with values at the same counts."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from lightning_gen.metrics.image import GivenFeatures

    real_labels = check_class_labels(real_labels, len(real_features), num_classes, "reference labels")
    fake_labels = check_class_labels(fake_labels, len(fake_features), num_classes, "generated labels")
    dim = int(real_features.shape[1])
    values, counts, unstable, skipped = {}, {}, [], []
    for c in range(num_classes):
        real, fake = real_features[real_labels == c], fake_features[fake_labels == c]
        counts[str(c)] = [len(fake), len(real)]
        if min(len(real), len(fake)) < 2:
            skipped.append(c)
            continue
        metric = FrechetInceptionDistance(feature=GivenFeatures(dim))
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
        values[str(c)] = round(max(0.0, float(metric.compute())), 6)  # >= 0; a singular covariance rounds below
        if min(len(real), len(fake)) < dim:
            unstable.append(c)
    if not values:
        raise ValueError(f"per-class FID: no class has 2 or more generated and reference samples ({counts}).")
    entry = {
        "value": float(np.mean(list(values.values()))),
        "per_class": values,
        "samples_per_class": counts,
        "feature_dim": dim,
        "unstable": unstable,
    }
    if skipped:
        entry["skipped"] = skipped
    return entry


# -- sequences --------------------------------------------------------------------------------------------------
def sequence_features(x) -> np.ndarray:
    """(N, T, D) sequences -> (N, (T // 2 + 1) * D): per-feature magnitudes of the real DFT over time."""
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"sequences must be shaped (N, T, D), got {arr.shape}.")
    return np.abs(np.fft.rfft(arr, axis=1)).reshape(len(arr), -1)


def fit_sequence_classifier(train_x, train_y, seed: int = 0):
    """The post-hoc classifier: standardised :func:`sequence_features`, then a multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = check_class_labels(train_y, len(train_x), None, "training labels").numpy()
    if len(np.unique(y)) < 2:
        raise ValueError(f"The post-hoc classifier needs training sequences of 2 or more classes, got {np.unique(y)}.")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    return model.fit(sequence_features(train_x), y)


def sequence_class_accuracy(
    train_x,
    train_y,
    gen_x,
    gen_y,
    test_x=None,
    test_y=None,
    seed: int = 0,
    splits: int = ACCURACY_SPLITS,
) -> dict:
    """Share of generated sequences ``gen_x`` (N, T, D) that a classifier trained on the real ``train_x`` /
    ``train_y`` assigns to their requested class ``gen_y``. With ``test_x`` / ``test_y`` (real held-out
    sequences), their accuracy is ``reference_value``: what real data of a class scores. All sequences in one
    scale (e.g. the data's original one)."""
    classifier = fit_sequence_classifier(train_x, train_y, seed)
    known = set(classifier.classes_.tolist())
    gen_y = check_class_labels(gen_y, len(gen_x), None, "requested labels")
    unseen = sorted(set(gen_y.tolist()) - known)
    if unseen:
        raise ValueError(f"requested labels {unseen[:5]} never occur in the training sequences {sorted(known)}.")
    entry = accuracy_entry(classifier.predict(sequence_features(gen_x)), gen_y, None, splits)
    entry["classifier"] = "logistic regression on per-feature DFT magnitudes (sklearn), fit on the train split"
    if test_x is not None:
        test_y = check_class_labels(test_y, len(test_x), None, "held-out labels")
        entry["reference_value"] = float((classifier.predict(sequence_features(test_x)) == test_y.numpy()).mean())
    return entry
